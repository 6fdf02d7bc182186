"""Pooling parity with torch: forward values, indices and input gradients (ties included)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import assume, given, settings, strategies as st

from fcnn import functional as F
from oracle import assert_close, randn, to_torch, torch_pool_output, windows_reach_input


def _values(draw, shape, ties):
    seed = draw(st.integers(0, 2**16))
    rs = np.random.RandomState(seed)
    if ties:
        # Few distinct integer values: windows with several equal maxima.
        return rs.randint(-2, 3, shape).astype(np.float32)
    return rs.standard_normal(shape).astype(np.float32)


def _fcnn_vjp(f, x, cot):
    """fcnn output, aux (indices) and input gradient for cotangent ``cot``, in one compiled call."""

    @jax.jit
    def go(x, cot):
        def primal(x):
            r = f(x)
            return r if isinstance(r, tuple) else (r, None)

        y, vjp, aux = jax.vjp(primal, x, has_aux=True)
        return y, aux, vjp(cot)[0]

    return go(jnp.asarray(x), jnp.asarray(cot))


def _torch_vjp(f, x, cot):
    xt = to_torch(x, requires_grad=True)
    r = f(xt)
    y, aux = r if isinstance(r, tuple) else (r, None)
    y.backward(torch.from_numpy(cot))
    return y, aux, xt.grad


def _compare(f_fcnn, f_torch, x, seed=0, rtol=1e-5, atol=1e-5):
    xt = to_torch(x)
    out_t = f_torch(xt)
    shape = tuple((out_t[0] if isinstance(out_t, tuple) else out_t).shape)
    cot = np.random.RandomState(seed).standard_normal(shape).astype(np.float32)
    y, aux, g = _fcnn_vjp(f_fcnn, x, cot)
    yt, auxt, gt = _torch_vjp(f_torch, x, cot)
    assert_close(y, yt, rtol, atol, "forward")
    if auxt is not None:
        assert aux.dtype == jnp.int32
        np.testing.assert_array_equal(np.asarray(aux), auxt.numpy(), err_msg="indices")
    assert_close(g, gt, rtol, atol, "input gradient")
    return y, aux


@st.composite
def max_configs(draw, dims=(1, 2, 3), dilated=True):
    n = draw(st.sampled_from(dims))
    k = tuple(draw(st.integers(1, 3)) for _ in range(n))
    d = tuple(draw(st.integers(1, 2 if dilated else 1)) for _ in range(n))
    p = tuple(draw(st.integers(0, kk // 2)) for kk in k)
    s = draw(st.one_of(st.none(), st.tuples(*[st.integers(1, 3)] * n)))
    ceil = draw(st.booleans())
    size = tuple(draw(st.integers(max(1, dd * (kk - 1) + 1 - 2 * pp), dd * (kk - 1) + 4))
                 for kk, dd, pp in zip(k, d, p))
    # Valid cases are the ones torch accepts, at the size torch computes. A dilated
    # window may skip the whole input (value −inf); torch's gradient for it lands
    # in the next channel, a torch bug not worth mirroring.
    out = torch_pool_output(size, k, s or k, p, d, ceil)
    assume(out is not None and windows_reach_input(size, out, k, s or k, p, d))
    batched = draw(st.booleans())
    x = _values(draw, ((2,) if batched else ()) + (2,) + size, ties=draw(st.booleans()))
    return n, k, s, p, d, ceil, x


@settings(max_examples=16)
@given(max_configs())
def test_max_pool_values_indices_and_tie_gradients_match_torch(cfg):
    n, k, s, p, d, ceil, x = cfg
    fj = getattr(F, f"max_pool{n}d")
    ft = getattr(TF, f"max_pool{n}d")
    # torch's positional order: kernel_size, stride, padding, dilation, ceil_mode, return_indices
    _compare(lambda a: fj(a, k, s, p, d, ceil, True), lambda a: ft(a, k, s, p, d, ceil, True), x)


@pytest.mark.parametrize("n, size, k", [(1, (5,), 2), (2, (5, 5), 2), (2, (7, 6), 3), (3, (3, 4, 5), 2)])
@pytest.mark.parametrize("indices", [True, False])
def test_max_pool_tiling_windows_with_ceil_mode_overhang(n, size, k, indices):
    # kernel == stride, no padding: the reshape fast path must not be used when a
    # ceil_mode window hangs over the input's edge (regression: it crashed).
    x = np.random.RandomState(n).standard_normal((2, 3) + size).astype(np.float32)
    fj = getattr(F, f"max_pool{n}d")
    ft = getattr(TF, f"max_pool{n}d")
    _compare(lambda a: fj(a, k, ceil_mode=True, return_indices=indices),
             lambda a: ft(a, k, ceil_mode=True, return_indices=indices), x)


@settings(max_examples=6)
@given(max_configs(dims=(2,)))
def test_max_pool_without_indices_and_stride_none(cfg):
    n, k, s, p, d, ceil, x = cfg
    _compare(lambda a: F.max_pool2d(a, k, padding=p, dilation=d, ceil_mode=ceil),
             lambda a: TF.max_pool2d(a, k, padding=p, dilation=d, ceil_mode=ceil), x)


def test_max_pool_ceil_mode_window_starting_in_padding_and_dilation():
    x = np.arange(2 * 7 * 6, dtype=np.float32).reshape(1, 2, 7, 6) % 5
    args = ((3, 2), (2, 3), (1, 1), (2, 1), True)
    y, idx = _compare(lambda a: F.max_pool2d(a, *args, return_indices=True),
                      lambda a: TF.max_pool2d(a, *args, return_indices=True), x)


# Windows of more than 32 elements take the one-axis-at-a-time arg-max: padding, dilation, a ceil_mode
# window over the edge, ties and NaNs, each with indices and gradients.
LARGE_WINDOWS = [(1, (50,), (40,), (7,), (20,), (1,), True), (2, (13, 17), (6, 6), (2, 3), (3, 1), (1, 2), True),
                 (2, (16, 12), (7, 5), None, (0, 0), (1, 1), True), (3, (6, 7, 8), (4, 3, 3), (2, 2, 1), (2, 1, 0),
                 (1, 1, 2), False)]


@pytest.mark.parametrize("n, size, k, s, p, d, ceil", LARGE_WINDOWS)
@pytest.mark.parametrize("values", ["ties", "nan"])
def test_max_pool_large_windows_match_torch(n, size, k, s, p, d, ceil, values):
    out = torch_pool_output(size, k, s or k, p, d, ceil)
    assert out is not None and windows_reach_input(size, out, k, s or k, p, d)
    rs = np.random.RandomState(n)
    x = rs.randint(-2, 3, (2, 2) + size).astype(np.float32)
    if values == "nan":
        x[rs.uniform(size=x.shape) < 0.01] = np.nan
    fj, ft = getattr(F, f"max_pool{n}d"), getattr(TF, f"max_pool{n}d")
    _compare(lambda a: fj(a, k, s, p, d, ceil, True), lambda a: ft(a, k, s, p, d, ceil, True), x)


def test_max_pool_nan_and_neg_inf_pick_torchs_element():
    x = np.array([[[1.0, np.nan, 3.0, np.nan, -np.inf, -np.inf, -np.inf, 2.0, 2.0]]], np.float32)
    for args in [(3, 2, 1), (4, 1, 2), (2, 2, 0), (2, 1, 1, 9)]:
        y, idx = jax.jit(lambda a: F.max_pool1d(a, *args, return_indices=True))(x)
        yt, it = TF.max_pool1d(to_torch(x), *args, return_indices=True)
        np.testing.assert_array_equal(np.asarray(y), yt.numpy())
        np.testing.assert_array_equal(np.asarray(idx), it.numpy())
    # dilated windows that skip the one-element input: −inf, and torch's index
    x = np.ones((1, 2, 1), np.float32)
    y, idx = F.max_pool1d(x, 2, 1, 1, 2, return_indices=True)
    yt, it = TF.max_pool1d(to_torch(x), 2, 1, 1, 2, return_indices=True)
    np.testing.assert_array_equal(np.asarray(y), yt.numpy())
    np.testing.assert_array_equal(np.asarray(idx), it.numpy())
    # the same in 2-D: torch's index there combines each axis' first non-negative position
    x = np.ones((1, 2, 1, 3), np.float32)
    args = ((2, 3), 1, (1, 1), (2, 1))
    y, idx = F.max_pool2d(x, *args, return_indices=True)
    yt, it = TF.max_pool2d(to_torch(x), *args, return_indices=True)
    np.testing.assert_array_equal(np.asarray(y), yt.numpy())
    np.testing.assert_array_equal(np.asarray(idx), it.numpy())


@st.composite
def avg_configs(draw, dims=(1, 2, 3)):
    n = draw(st.sampled_from(dims))
    k = tuple(draw(st.integers(1, 3)) for _ in range(n))
    p = tuple(draw(st.integers(0, kk // 2)) for kk in k)
    s = draw(st.one_of(st.none(), st.tuples(*[st.integers(1, 3)] * n)))
    ceil = draw(st.booleans())
    cip = draw(st.booleans())
    div = draw(st.sampled_from([None, None, 1, 3])) if n > 1 else None
    size = tuple(draw(st.integers(max(1, kk - 2 * pp), kk + 4)) for kk, pp in zip(k, p))
    batched = draw(st.booleans())
    x = _values(draw, ((2,) if batched else ()) + (2,) + size, ties=False)
    return n, k, s, p, ceil, cip, div, x


@given(avg_configs())
def test_avg_pool_matches_torch_divisors(cfg):
    n, k, s, p, ceil, cip, div, x = cfg
    fj = getattr(F, f"avg_pool{n}d")
    ft = getattr(TF, f"avg_pool{n}d")
    extra = (div,) if n > 1 else ()
    _compare(lambda a: fj(a, k, s, p, ceil, cip, *extra), lambda a: ft(a, k, s, p, ceil, cip, *extra), x)


def test_avg_pool_count_include_pad_false_with_ceil_mode_overhang():
    x = np.random.RandomState(0).standard_normal((1, 1, 6, 5)).astype(np.float32)
    for cip in (True, False):
        args = (3, 2, 1, True, cip)
        _compare(lambda a: F.avg_pool2d(a, *args), lambda a: TF.avg_pool2d(a, *args), x)
    # a large kernel takes the reduce_window path instead of strided slices
    x = np.random.RandomState(1).standard_normal((1, 2, 9, 8)).astype(np.float32)
    args = ((7, 5), 2, (3, 2), True, False)
    _compare(lambda a: F.avg_pool2d(a, *args), lambda a: TF.avg_pool2d(a, *args), x)


@st.composite
def adaptive_configs(draw, dims=(1, 2, 3)):
    n = draw(st.sampled_from(dims))
    size = tuple(draw(st.integers(1, 9)) for _ in range(n))
    # torch's 1-d adaptive pools refuse None
    none = st.none() if n > 1 else st.nothing()
    out = tuple(draw(st.one_of(none, st.integers(1, 2 * L + 1))) for L in size)
    if draw(st.booleans()) and out[0] is not None:
        out = out[0]  # a single int, torch broadcasts it (size checks below use the tuple)
    batched = draw(st.booleans())
    x = _values(draw, ((2,) if batched else ()) + (2,) + size, ties=draw(st.booleans()))
    return n, out, x


@settings(max_examples=15)
@given(adaptive_configs())
def test_adaptive_avg_pool_matches_torch(cfg):
    n, out, x = cfg
    fj = getattr(F, f"adaptive_avg_pool{n}d")
    ft = getattr(TF, f"adaptive_avg_pool{n}d")
    _compare(lambda a: fj(a, out), lambda a: ft(a, out), x)


@settings(max_examples=8)
@given(adaptive_configs())
def test_adaptive_max_pool_matches_torch(cfg):
    n, out, x = cfg
    fj = getattr(F, f"adaptive_max_pool{n}d")
    ft = getattr(TF, f"adaptive_max_pool{n}d")
    _compare(lambda a: fj(a, out, True), lambda a: ft(a, out, True), x)


@settings(max_examples=15)
@given(max_configs(dilated=False))  # torch's unpooling has no dilation
def test_max_unpool_round_trip_with_output_size(cfg):
    n, k, s, p, d, ceil, x = cfg
    pool = getattr(TF, f"max_pool{n}d")
    y, idx = pool(to_torch(x), k, s, p, 1, ceil, True)
    stride = s or k
    default = tuple((a - 1) * b - 2 * c + kk for a, b, c, kk in zip(y.shape[-n:], stride, p, k))
    # the input size when it is an allowed output_size, else the default
    want = tuple(x.shape[-n:])
    if any(not dd - ss < w < dd + ss for w, dd, ss in zip(want, default, stride)):
        want = None
    fj = getattr(F, f"max_unpool{n}d")
    ft = getattr(TF, f"max_unpool{n}d")
    yv = y.detach().numpy()
    idx_np = idx.numpy()
    _compare(lambda a: fj(a, jnp.asarray(idx_np, jnp.int32), k, s, p, want),
             lambda a: ft(a, idx, k, s, p, want), yv)


def test_max_unpool_gradient_reaches_every_duplicate_index():
    x = np.array([[[1.0, 5.0, 2.0, 0.0]]], np.float32)
    y, idx = F.max_pool1d(x, 2, 1, return_indices=True)  # index 1 chosen twice
    yt, it = TF.max_pool1d(to_torch(x), 2, 1, return_indices=True)
    _compare(lambda a: F.max_unpool1d(a, idx, 2, 1), lambda a: TF.max_unpool1d(a, it, 2, 1), np.asarray(y))


@settings(max_examples=10)
@given(st.sampled_from([1, 2, 3]), st.sampled_from([1, 2, 3.0, 1.5]), st.integers(1, 3),
       st.one_of(st.none(), st.integers(1, 3)), st.booleans(), st.integers(0, 100))
def test_lp_pool_matches_torch(n, norm, k, s, ceil, seed):
    x = np.abs(np.random.RandomState(seed).standard_normal((2, 2) + (k + 2,) * n)).astype(np.float32) + 0.1
    fj = getattr(F, f"lp_pool{n}d")
    ft = getattr(TF, f"lp_pool{n}d")
    _compare(lambda a: fj(a, norm, k, s, ceil), lambda a: ft(a, norm, k, s, ceil), x, rtol=1e-4)


def test_lp_pool_inf_norm_and_zero_window_gradient():
    x = np.zeros((1, 1, 4, 4), np.float32)
    x[0, 0, 2:, 2:] = np.arange(4).reshape(2, 2) - 1.5
    _compare(lambda a: F.lp_pool2d(a, 2, 2), lambda a: TF.lp_pool2d(a, 2, 2), x)
    _compare(lambda a: F.lp_pool2d(a, float("inf"), 2), lambda a: TF.lp_pool2d(a, float("inf"), 2), x)


def test_jit_vmap_over_unbatched_examples():
    x = jnp.asarray(np.random.RandomState(0).standard_normal((4, 3, 9, 9)).astype(np.float32))
    for f in (lambda a: F.max_pool2d(a, 3, 2, 1), lambda a: F.avg_pool2d(a, 3, 2, 1, True, False),
              lambda a: F.adaptive_avg_pool2d(a, (4, 5)), lambda a: F.adaptive_max_pool2d(a, 4)):
        batched = jax.jit(f)(x)
        per_example = jax.jit(jax.vmap(f))(x)
        np.testing.assert_allclose(per_example, batched, rtol=1e-6, atol=1e-6)


def test_adaptive_global_pool_equals_mean_and_max():
    x = jnp.asarray(np.random.RandomState(0).standard_normal((2, 3, 5, 7)).astype(np.float32))
    np.testing.assert_allclose(F.adaptive_avg_pool2d(x, 1)[..., 0, 0], x.mean((2, 3)), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(F.adaptive_max_pool2d(x, 1)[..., 0, 0], x.max((2, 3)))


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda x: F.max_pool2d(x, 2, padding=2), ValueError, "half of kernel size.*padding=.2, 2."),
        (lambda x: F.max_pool1d(x[0], 3, dilation=2, padding=2), ValueError, "padding=2"),
        (lambda x: F.avg_pool2d(x, 2, padding=2), ValueError, "padding"),
        (lambda x: F.max_pool2d(x, 9), ValueError, "kernel_size"),
        (lambda x: F.avg_pool2d(x, (2, 9)), ValueError, "Output size is too small"),
        (lambda x: F.max_pool2d(x, 0), ValueError, "kernel_size"),
        (lambda x: F.max_pool2d(x, 2, stride=0), ValueError, "stride"),
        (lambda x: F.max_pool2d(x, 2, stride=-1), ValueError, "stride"),
        (lambda x: F.max_pool2d(x, 2, padding=-1), ValueError, "padding"),
        (lambda x: F.max_pool2d(x, 2, dilation=0), ValueError, "dilation"),
        (lambda x: F.max_pool2d(x, (2, 2, 2)), ValueError, "kernel_size"),
        (lambda x: F.max_pool2d(x[0, 0], 2), ValueError, "3D .*4D"),
        (lambda x: F.max_pool2d(x.astype(jnp.int32), 2), TypeError, "floating"),
        (lambda x: F.max_pool2d(x, 2, ceil_mode=1), TypeError, "ceil_mode"),
        (lambda x: F.avg_pool2d(x, 2, divisor_override=0), ValueError, "divisor"),
        (lambda x: F.adaptive_avg_pool2d(x, (0, 2)), ValueError, "output_size"),
        (lambda x: F.adaptive_max_pool2d(x, (2, 2, 2)), ValueError, "output_size"),
        (lambda x: F.adaptive_max_pool2d(x, (-1, 2)), ValueError, "output_size"),
        (lambda x: F.max_unpool2d(x, jnp.zeros(x.shape, jnp.int32), 2, output_size=(20, 20)),
         ValueError, "output_size"),
        (lambda x: F.max_unpool2d(x, jnp.zeros(x.shape, jnp.int32), 2, output_size=(10, 10, 10)),
         ValueError, "output_size"),
        (lambda x: F.max_unpool2d(x, jnp.zeros((1, 1, 2, 2), jnp.int32), 2), ValueError, "indices"),
        (lambda x: F.max_unpool2d(x, x, 2), TypeError, "indices"),
        (lambda x: F.lp_pool2d(x, 0, 2), ValueError, "norm_type"),
    ],
)
def test_bad_arguments_raise_naming_them(call, exc, match):
    x = jnp.ones((1, 2, 5, 5))
    with pytest.raises(exc, match=match):
        call(x)


def test_unpool_drops_traced_out_of_range_indices_in_every_mode():
    # torch refuses such indices; traced ones cannot be checked and are dropped: nothing written,
    # no forward-mode tangent, no gradient (the expected arrays are built from that definition)
    x, t, w = randn((1, 2, 4), seed=3), randn((1, 2, 4), seed=4), randn((1, 2, 8), seed=5)
    idx = np.array([[[0, -1, 5, 9], [12, 3, 7, -3]]], np.int32)  # output length (4 - 1)·2 + 2 = 8
    keep = (idx >= 0) & (idx < 8)

    def unpooled(v):
        out = np.zeros((1, 2, 8), np.float32)
        for c, j in zip(*np.nonzero(keep[0])):
            out[0, c, idx[0, c, j]] = v[0, c, j]
        return out

    f = jax.jit(lambda a, i: F.max_unpool1d(a, i, 2))
    y, ty = jax.jvp(lambda a: f(a, idx), (jnp.asarray(x),), (jnp.asarray(t),))
    np.testing.assert_array_equal(np.asarray(y), unpooled(x))
    np.testing.assert_array_equal(np.asarray(ty), unpooled(t))
    g = jax.grad(lambda a: jnp.sum(f(a, idx) * w))(jnp.asarray(x))
    want = np.where(keep, np.take_along_axis(w, np.clip(idx, 0, 7), axis=2), 0)
    np.testing.assert_array_equal(np.asarray(g), want)


def test_unpool_accepts_output_size_with_batch_and_channels():
    x = np.random.RandomState(1).standard_normal((1, 2, 5, 5)).astype(np.float32)
    y, idx = F.max_pool2d(x, 2, return_indices=True)
    out = F.max_unpool2d(y, idx, 2, output_size=(1, 2, 5, 5))
    yt, it = TF.max_pool2d(to_torch(x), 2, return_indices=True)
    assert_close(out, TF.max_unpool2d(yt, it, 2, output_size=(1, 2, 5, 5)))


@pytest.mark.parametrize("n", [1, 2])
def test_unpool_output_size_bounds_are_torchs(n):
    # torch accepts output sizes strictly between default − stride and default + stride; both bounds are tried
    # decreasing values: every window's maximum is its first element, so each index also fits the
    # smallest accepted output (torch checks the indices against the output at run time)
    x = -np.arange(2 * 7 ** n, dtype=np.float32).reshape((1, 2) + (7,) * n)
    y, idx = TF.max_pool1d(to_torch(x), 3, 2, return_indices=True) if n == 1 else \
        TF.max_pool2d(to_torch(x), 3, 2, return_indices=True)
    default = (y.shape[-1] - 1) * 2 + 3
    fj, ft = getattr(F, f"max_unpool{n}d"), getattr(TF, f"max_unpool{n}d")
    for size in range(default - 3, default + 4):
        out = (size,) * n
        try:
            want = ft(y, idx, 3, 2, 0, out)
        except ValueError:
            with pytest.raises(ValueError, match="output_size"):
                fj(y.numpy(), jnp.asarray(idx.numpy(), jnp.int32), 3, 2, 0, out)
        else:
            assert_close(fj(y.numpy(), jnp.asarray(idx.numpy(), jnp.int32), 3, 2, 0, out), want)
