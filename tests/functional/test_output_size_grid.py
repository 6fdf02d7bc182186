"""Exhaustive small grids of the size arithmetic, compared with torch.

Pooling (max, average, power-average), convolution and transposed convolution
each have an output-size formula with several corner cases (``ceil_mode``'s
last-window rule, dilation, a kernel larger than the padded input, an
``output_padding`` that must stay below the stride or the dilation). Every
combination of small lengths and arguments is run through torch and fcnn:
where torch returns an output, fcnn's shape must equal it; where torch refuses
the arguments, fcnn must raise a ``ValueError`` before tracing. The cases come
from the grid alone, never from fcnn's own size helpers.

Values are compared where ``ceil_mode`` changes the output size (the windows
that hang over the input's edge) in the default run, and on the whole grid in
the ``sweep`` run.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as TF

from fcnn import functional as F
from oracle import assert_close, to_torch, windows_reach_input

LENGTHS = range(1, 8)


@pytest.fixture(autouse=True, scope="module")
def _quick_small_calls():
    """Thousands of tiny calls: one torch thread (its thread pool only adds latency here), and no
    traceback filtering for the ValueErrors fcnn raises (JAX's filter dominates their cost)."""
    threads, filtering = torch.get_num_threads(), jax.config.jax_traceback_filtering
    torch.set_num_threads(1)
    jax.config.update("jax_traceback_filtering", "off")
    yield
    jax.config.update("jax_traceback_filtering", filtering)
    torch.set_num_threads(threads)


def _torch_shape(f, *args):
    try:
        out = f(*args)
    except RuntimeError:
        return None
    return tuple((out[0] if isinstance(out, tuple) else out).shape)


def _fcnn_shape(f, *shapes):
    """fcnn's output shape from tracing alone (nothing compiles), or the ValueError it raised."""
    try:
        out = jax.eval_shape(f, *[jax.ShapeDtypeStruct(s, jnp.float32) for s in shapes])
    except ValueError as e:
        return e
    return tuple((out[0] if isinstance(out, tuple) else out).shape)


def _agree(want, got, what):
    if want is None:
        assert isinstance(got, ValueError), f"{what}: torch refuses it, fcnn gave shape {got}"
    else:
        assert not isinstance(got, Exception), f"{what}: torch gives {want}, fcnn raised {got!r}"
        assert got == want, f"{what}: fcnn shape {got} != torch {want}"


# ---- pooling ----------------------------------------------------------------------------------

# (L, k, s, p, d, ceil): padding up to 2 for every kernel, so torch's "pad at most
# half the kernel" refusal is part of the grid, as are kernels longer than the input.
def _pool_grid(lengths, dilations):
    return [(L, k, s, p, d, c) for L, k, s, p, d, c in itertools.product(
        lengths, range(1, 5), range(1, 4), range(0, 3), dilations, (False, True))]


MAX_GRID = _pool_grid(range(1, 7), (1, 2))
AVG_GRID = [r for r in _pool_grid(range(1, 8), (1,))]
# the sweep run: longer inputs and dilation 3
FULL_MAX_GRID = _pool_grid(range(1, 10), (1, 2, 3))
FULL_AVG_GRID = _pool_grid(range(1, 10), (1,))
sweep = pytest.mark.sweep


@pytest.mark.parametrize("grid", [MAX_GRID, pytest.param(FULL_MAX_GRID, marks=sweep)], ids=["small", "full"])
def test_max_pool_output_size_grid_matches_torch(grid):
    for L, k, s, p, d, ceil in grid:
        want = _torch_shape(TF.max_pool1d, torch.zeros(2, L), k, s, p, d, ceil, True)
        got = _fcnn_shape(lambda a: F.max_pool1d(a, k, s, p, d, ceil, True), (2, L))
        _agree(want, got, f"max_pool1d(L={L}, k={k}, s={s}, p={p}, d={d}, ceil_mode={ceil})")


@pytest.mark.parametrize("grid", [AVG_GRID, pytest.param(FULL_AVG_GRID, marks=sweep)], ids=["small", "full"])
@pytest.mark.parametrize("cip", [True, False])
def test_avg_pool_output_size_grid_matches_torch(cip, grid):
    for L, k, s, p, _, ceil in grid:
        want = _torch_shape(TF.avg_pool1d, torch.zeros(2, L), k, s, p, ceil, cip)
        got = _fcnn_shape(lambda a: F.avg_pool1d(a, k, s, p, ceil, cip), (2, L))
        _agree(want, got, f"avg_pool1d(L={L}, k={k}, s={s}, p={p}, ceil_mode={ceil}, count_include_pad={cip})")


def test_lp_pool_output_size_grid_matches_torch():
    for L, k, s, p, _, ceil in AVG_GRID:
        if p:
            continue  # lp_pool has no padding
        for norm in (2.0, float("inf")):
            want = _torch_shape(TF.lp_pool1d, torch.ones(2, L), norm, k, s, ceil)
            got = _fcnn_shape(lambda a: F.lp_pool1d(a, norm, k, s, ceil), (2, L))
            _agree(want, got, f"lp_pool1d(norm={norm}, L={L}, k={k}, s={s}, ceil_mode={ceil})")


def test_2d_pool_output_size_is_per_dimension():
    # each dimension follows its own arguments: pairs of 1-D grid rows in one 2-D call
    rows = [(5, 3, 2, 1, 2, True), (4, 2, 3, 0, 1, True), (7, 4, 3, 2, 1, False), (2, 1, 3, 0, 3, True),
            (6, 3, 2, 1, 1, True)]
    for (L1, k1, s1, p1, d1, c1), (L2, k2, s2, p2, d2, _) in itertools.permutations(rows, 2):
        args = ((k1, k2), (s1, s2), (p1, p2), (d1, d2), c1)
        want = _torch_shape(TF.max_pool2d, torch.zeros(1, 2, L1, L2), *args)
        got = _fcnn_shape(lambda a: F.max_pool2d(a, *args), (1, 2, L1, L2))
        _agree(want, got, f"max_pool2d(size={(L1, L2)}, args={args})")


def _ceil_matters(grid, pool):
    """The rows whose ``ceil_mode=True`` output is longer than the floor one, by torch."""
    rows = []
    for L, k, s, p, d, ceil in grid:
        if not ceil:
            continue
        up = _torch_shape(pool, torch.zeros(1, L), k, s, p, d, True)
        down = _torch_shape(pool, torch.zeros(1, L), k, s, p, d, False)
        if up is not None and up != down:
            rows.append((L, k, s, p, d, ceil))
    return rows


def _grid_values(grid, fj, ft, seed=0):
    """Compare 1-D pooling over ``grid`` with torch: values, the second output if any (indices),
    and input gradients, all rows in one compiled program."""
    rs = np.random.RandomState(seed)
    # ties (few distinct values) so index and gradient tie-breaking is exercised too
    xs = [rs.randint(-2, 3, (2, 3, row[0])).astype(np.float32) for row in grid]
    want, cots = [], []
    for row, x in zip(grid, xs):
        xt = to_torch(x, requires_grad=True)
        y, aux = ft(xt, row)
        cot = rs.standard_normal(tuple(y.shape)).astype(np.float32)
        y.backward(torch.from_numpy(cot))
        want.append((y.detach(), aux, xt.grad))
        cots.append(cot)

    @jax.jit
    def go(xs, cots):
        res = []
        for row, x, cot in zip(grid, xs, cots):
            y, vjp, aux = jax.vjp(lambda a: fj(a, row), x, has_aux=True)
            res.append((y, aux, vjp(cot)[0]))
        return res

    for row, (y, aux, g), (yt, auxt, gt) in zip(grid, go(xs, cots), want):
        assert_close(y, yt, what=f"forward {row}")
        if auxt is not None:
            np.testing.assert_array_equal(np.asarray(aux), auxt.numpy(), err_msg=f"indices {row}")
        assert_close(g, gt, what=f"input gradient {row}")


def _max_rows(grid):
    # torch's gradient for a window lying wholly in the padding is a torch bug (see test_pool)
    out = [_torch_shape(TF.max_pool1d, torch.zeros(1, r[0]), *r[1:]) for r in grid]
    return [r for r, o in zip(grid, out) if o is not None and windows_reach_input((r[0],), o[1:], *r[1:5])]


def _max_pair():
    return (lambda a, r: F.max_pool1d(a, *r[1:], return_indices=True),
            lambda a, r: TF.max_pool1d(a, *r[1:], return_indices=True))


def _avg_pair(cip):
    return (lambda a, r: (F.avg_pool1d(a, r[1], r[2], r[3], r[5], cip), None),
            lambda a, r: (TF.avg_pool1d(a, r[1], r[2], r[3], r[5], cip), None))


def _lp_pair(norm):
    # positive inputs with the same derivative on both sides (|a| differs at 0: jnp's 1, torch's 0)
    return (lambda a, r: (F.lp_pool1d(a * a + 0.5, norm, r[1], r[2], r[5]), None),
            lambda a, r: (TF.lp_pool1d(a * a + 0.5, norm, r[1], r[2], r[5]), None))


def _every(rows, n):
    """A fixed spread-out slice of ``rows`` for the default run (the sweep takes them all)."""
    return rows[::max(1, len(rows) // n)]


def test_max_pool_values_where_ceil_mode_adds_a_window():
    rows = _max_rows(_ceil_matters(MAX_GRID, TF.max_pool1d))
    assert len(rows) >= 40
    _grid_values(_every(rows, 16), *_max_pair())


@pytest.mark.parametrize("cip", [True, False])
def test_avg_pool_values_where_ceil_mode_adds_a_window(cip):
    rows = _ceil_matters(AVG_GRID, lambda x, k, s, p, d, c: TF.avg_pool1d(x, k, s, p, c))
    assert len(rows) >= 15
    _grid_values(_every(rows, 12), *_avg_pair(cip))


def test_lp_pool_values_where_ceil_mode_adds_a_window():
    rows = [r for r in _ceil_matters(AVG_GRID, lambda x, k, s, p, d, c: TF.lp_pool1d(x + 1, 2.0, k, s, c))
            if r[3] == 0]
    assert len(rows) >= 5
    _grid_values(rows, *_lp_pair(2.0))


@sweep
@pytest.mark.parametrize("kind", ["max", "avg", "avg_no_pad", "lp2", "lp3"])
def test_pool_values_on_the_whole_grid(kind):
    if kind == "max":
        rows, pair = _max_rows(FULL_MAX_GRID), _max_pair()
    else:
        rows = [r for r in FULL_AVG_GRID if _torch_shape(TF.avg_pool1d, torch.zeros(1, r[0]), r[1], r[2], r[3], r[5])]
        if kind.startswith("lp"):
            rows = [r for r in rows if r[3] == 0]
        pair = _avg_pair(kind == "avg") if kind.startswith("avg") else _lp_pair(float(kind[2:]))
    for i in range(0, len(rows), 100):  # programs of bounded size
        _grid_values(rows[i:i + 100], *pair, seed=i)


# ---- convolution ------------------------------------------------------------------------------

CONV_GRID = list(itertools.product(range(1, 7), range(1, 4), range(1, 4), (0, 1, 2, "same", "valid"), range(1, 3)))


def test_conv_output_size_grid_matches_torch():
    for L, k, s, p, d in CONV_GRID:
        w = torch.zeros(3, 2, k)
        want = _torch_shape(TF.conv1d, torch.zeros(1, 2, L), w, None, s, p, d)
        got = _fcnn_shape(lambda a, b: F.conv1d(a, b, None, s, p, d), (1, 2, L), (3, 2, k))
        _agree(want, got, f"conv1d(L={L}, k={k}, stride={s}, padding={p!r}, dilation={d})")


def test_conv_transpose_output_size_grid_matches_torch():
    for L, k, s, p, d in CONV_GRID:
        if isinstance(p, str):
            continue  # torch's transposed convolutions take no string padding
        for op in range(0, 3):
            w = torch.zeros(2, 3, k)
            want = _torch_shape(TF.conv_transpose1d, torch.zeros(1, 2, L), w, None, s, p, op, 1, d)
            got = _fcnn_shape(lambda a, b: F.conv_transpose1d(a, b, None, s, p, op, 1, d), (1, 2, L), (2, 3, k))
            _agree(want, got, f"conv_transpose1d(L={L}, k={k}, stride={s}, padding={p}, "
                              f"output_padding={op}, dilation={d})")


def test_conv_and_transpose_values_on_a_grid_slice():
    # the size formula decides which input elements meet which taps: compare values where
    # stride, padding and dilation all differ from their defaults
    rows = [(L, k, s, p, d) for L, k, s, p, d in CONV_GRID if s > 1 and d > 1 and p == 1 and L % 2]
    rs = np.random.RandomState(0)
    cases = []
    for L, k, s, p, d in rows:
        x, w = rs.standard_normal((1, 2, L)).astype(np.float32), rs.standard_normal((3, 2, k)).astype(np.float32)
        yt = _torch_shape(TF.conv1d, to_torch(x), to_torch(w), None, s, p, d)
        if yt is not None:
            cases.append(("conv", (L, k, s, p, d, 0), x, w, TF.conv1d(to_torch(x), to_torch(w), None, s, p, d)))
        for op in range(max(s, d)):
            wt = rs.standard_normal((2, 3, k)).astype(np.float32)
            yt = _torch_shape(lambda *a: TF.conv_transpose1d(*a), to_torch(x), to_torch(wt), None, s, p, op, 1, d)
            if yt is not None and yt[-1] > 0:
                yt = TF.conv_transpose1d(to_torch(x), to_torch(wt), None, s, p, op, 1, d)
                cases.append(("transpose", (L, k, s, p, d, op), x, wt, yt))
    assert len(cases) >= 20

    @jax.jit
    def go(args):
        out = []
        for (kind, (L, k, s, p, d, op), _, _, _), (x, w) in zip(cases, args):
            out.append(F.conv1d(x, w, None, s, p, d) if kind == "conv"
                       else F.conv_transpose1d(x, w, None, s, p, op, 1, d))
        return out

    for (kind, row, _, _, yt), y in zip(cases, go([(c[2], c[3]) for c in cases])):
        assert_close(y, yt, what=f"{kind} {row}")
