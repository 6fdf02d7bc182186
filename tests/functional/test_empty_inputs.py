"""Zero-size inputs: every functional op does what torch does, the same shape or an error where torch errors.

Each case runs torch first. If torch returns, fcnn must return arrays of the
same shapes and values (empty arrays, or the NaN / 0 of an empty mean / sum);
if torch raises, fcnn must raise a ValueError/TypeError that names the op.
"""

import functools
import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from fcnn import functional as F

TF = torch.nn.functional
KEY = jax.random.key(0)


def arr(*shape, dtype=np.float32, seed=0):
    rs = np.random.RandomState(seed)
    if np.issubdtype(dtype, np.integer):
        return rs.randint(0, 3, shape).astype(dtype)
    return rs.uniform(0.1, 0.9, shape).astype(dtype)


def as_torch(v):
    if isinstance(v, np.ndarray):
        return torch.from_numpy(v.astype(np.int64) if v.dtype == np.int32 else v.copy())
    if isinstance(v, (list, tuple)):
        return type(v)(as_torch(u) for u in v)
    return v


def outputs(value):
    if isinstance(value, (tuple, list)):
        return [u for v in value for u in outputs(v)]
    if value is None:
        return []
    return [value]


# Deliberate differences: torch's pixel_unshuffle returns an empty input unchanged, (0, 4, 6, 6) for
# (0, 4, 6, 6) by 2, where every non-empty input of that shape gives (n, 16, 3, 3); fcnn gives the latter.
FORMULA_SHAPES = {"pixel_unshuffle": lambda s, r: (s[0], s[1] * r * r, s[2] // r, s[3] // r)}


def compare(name, ours_call, theirs_call):
    try:
        expected = theirs_call()
    except (RuntimeError, ValueError, IndexError, TypeError, NotImplementedError) as error:
        with pytest.raises((ValueError, TypeError)) as info:
            ours_call()
        assert name.split("[")[0] in str(info.value), (str(info.value), f"torch: {error}")
        return
    got = outputs(ours_call())
    expected = [t.detach() for t in outputs(expected) if isinstance(t, torch.Tensor)]
    assert len(got) >= len(expected), name
    for g, e in zip(got, expected):
        assert tuple(np.shape(g)) == tuple(e.shape), f"{name}: shape {np.shape(g)} != torch {tuple(e.shape)}"
        np.testing.assert_allclose(np.asarray(g, np.float64), e.double().numpy(), rtol=1e-5, atol=1e-6,
                                   equal_nan=True, err_msg=name)


# (id, fcnn function name, args, kwargs); torch gets the same call with torch tensors (int32 → int64), fcnn
# extras (key=...) are in OURS.
CASES = []
OURS = {}


def add_case(id, fn, *args, ours=None, sweep=False, **kwargs):
    marks = [pytest.mark.sweep] if sweep else []
    CASES.append(pytest.param(fn, args, kwargs, id=id, marks=marks))
    if ours:
        OURS[id] = ours


case = add_case


# (shape, in the default run): the rest run with -m sweep
EMPTY_SHAPES = {1: [((0, 4, 7), True), ((2, 4, 0), False)],
                2: [((0, 4, 6, 7), True), ((2, 4, 0, 7), True), ((0, 4, 0, 0), False)],
                3: [((0, 4, 5, 6, 3), True), ((2, 4, 5, 0, 3), False)]}

for n, shapes in EMPTY_SHAPES.items():
    for s, default in shapes:
        tag = f"{n}d-{'x'.join(map(str, s))}"
        case = functools.partial(add_case, sweep=not default)
        case(f"conv{n}d-{tag}", f"conv{n}d", arr(*s), arr(6, 4, *(3,) * n), arr(6), 1, 1)
        case(f"conv{n}d-nopad-{tag}", f"conv{n}d", arr(*s), arr(6, 2, *(1,) * n), None, 1, 0, 1, 2)
        case(f"conv_transpose{n}d-{tag}", f"conv_transpose{n}d", arr(*s), arr(4, 3, *(3,) * n), arr(3), 2, 1)
        case(f"max_pool{n}d-{tag}", f"max_pool{n}d", arr(*s), 2)
        case(f"max_pool{n}d-idx-{tag}", f"max_pool{n}d", arr(*s), 3, 1, 1, return_indices=True)
        case(f"max_pool{n}d-large-{tag}", f"max_pool{n}d", arr(*s), 7, 1, 3, return_indices=True)
        case(f"avg_pool{n}d-{tag}", f"avg_pool{n}d", arr(*s), 2, 1, 1)
        case(f"lp_pool{n}d-{tag}", f"lp_pool{n}d", arr(*s), 2.0, 2)
        case(f"adaptive_avg_pool{n}d-{tag}", f"adaptive_avg_pool{n}d", arr(*s), 3)
        case(f"adaptive_max_pool{n}d-{tag}", f"adaptive_max_pool{n}d", arr(*s), 3, return_indices=True)
        case(f"max_unpool{n}d-{tag}", f"max_unpool{n}d", arr(*s), np.zeros(s, np.int32), 2)
        case(f"interpolate-nearest-{tag}", "interpolate", arr(*s), scale_factor=2.0)
        mode = {1: "linear", 2: "bilinear", 3: "trilinear"}[n]
        case(f"interpolate-{mode}-{tag}", "interpolate", arr(*s), size=(3,) * n, mode=mode)
        case(f"interpolate-area-{tag}", "interpolate", arr(*s), size=(3,) * n, mode="area")
        if n == 2:
            case(f"interpolate-bicubic-{tag}", "interpolate", arr(*s), scale_factor=0.5, mode="bicubic")
            case(f"interpolate-aa-{tag}", "interpolate", arr(*s), size=(2, 3), mode="bilinear", antialias=True)
            case(f"pixel_shuffle-{tag}", "pixel_shuffle", arr(*s), 2)
            case(f"unfold-{tag}", "unfold", arr(*s), 2, 1, 1)
            case(f"channel_shuffle-{tag}", "channel_shuffle", arr(*s), 2)
        for mode in ("constant", "reflect", "replicate", "circular"):
            case(f"pad-{mode}-{tag}", "pad", arr(*s), (1, 1) * n, mode)
        for training in (True, False):
            case(f"batch_norm-{training}-{tag}", "batch_norm", arr(*s), arr(4), arr(4) + 1, arr(4), arr(4), training)
            case(f"instance_norm-{training}-{tag}", "instance_norm", arr(*s), arr(4), arr(4) + 1, arr(4), arr(4),
                 training)
        case(f"batch_norm-nostats-{tag}", "batch_norm", arr(*s), None, None, None, None, True)
        case(f"group_norm-{tag}", "group_norm", arr(*s), 2, arr(4), arr(4))
        case(f"layer_norm-{tag}", "layer_norm", arr(*s), s[-1:])
        case(f"local_response_norm-{tag}", "local_response_norm", arr(*s), 3)
        case(f"dropout-{tag}", "dropout", arr(*s), 0.5, True, ours={"key": KEY})
        case(f"dropout{n}d-{tag}", f"dropout{n}d", arr(*s), 0.5, True, ours={"key": KEY})
        case(f"alpha_dropout-{tag}", "alpha_dropout", arr(*s), 0.5, True, ours={"key": KEY})
        case(f"softmax-{tag}", "softmax", arr(*s), 1)
        case(f"log_softmax-{tag}", "log_softmax", arr(*s), 1)
        case(f"prelu-{tag}", "prelu", arr(*s), arr(4))

case = add_case
for s in [(0, 12, 9), (0, 12, 0)]:
    case(f"fold-{'x'.join(map(str, s))}", "fold", arr(*s), (4, 5), 2)
case("threshold", "threshold", arr(0, 4, 3), 0.5, -1.0)

for s in [(0,), (0, 4), (2, 0), (0, 0)]:
    tag = "x".join(map(str, s))
    case = functools.partial(add_case, sweep=s not in ((0,), (0, 4)))
    case(f"batch_norm-flat-{tag}", "batch_norm", arr(*s), None, None, None, None, True)
    case(f"group_norm-flat-{tag}", "group_norm", arr(*s), 2)
    case(f"layer_norm-flat-{tag}", "layer_norm", arr(*s), s[-1:])
    case(f"linear-{tag}", "linear", arr(*s), arr(3, s[-1]), arr(3))
    for name in ("l1_loss", "mse_loss", "smooth_l1_loss", "huber_loss", "binary_cross_entropy",
                 "binary_cross_entropy_with_logits"):
        for reduction in ("mean", "sum", "none"):
            case(f"{name}-{reduction}-{tag}", name, arr(*s), arr(*s, seed=1), reduction=reduction)

for s, t in [((0, 5), (0,)), ((0, 5, 3, 2), (0, 3, 2)), ((2, 5, 0), (2, 0))]:
    tag = "x".join(map(str, s))
    case = functools.partial(add_case, sweep=len(s) == 3)
    for reduction in ("mean", "sum", "none"):
        case(f"cross_entropy-{reduction}-{tag}", "cross_entropy", arr(*s), arr(*t, dtype=np.int32),
             reduction=reduction)
        case(f"cross_entropy-probs-{reduction}-{tag}", "cross_entropy", arr(*s), arr(*s, seed=2),
             reduction=reduction, label_smoothing=0.1)
        case(f"nll_loss-{reduction}-{tag}", "nll_loss", arr(*s), arr(*t, dtype=np.int32), reduction=reduction)

ELEMENTWISE = [name for name, fn in vars(F).items()
               if callable(fn) and not name.startswith("_") and hasattr(TF, name)
               and not name.startswith("upsample")
               and len([p for p in inspect.signature(fn).parameters.values() if p.default is p.empty]) == 1]
case = add_case
for name in ELEMENTWISE:
    if not any(p.values[0] == name for p in CASES):
        case(f"{name}-generic", name, arr(0, 4, 3))


@pytest.mark.parametrize("fn,args,kwargs", CASES)
def test_empty_input_matches_torch(request, fn, args, kwargs):
    id = request.node.callspec.id
    ours = OURS.get(id, {})
    targs = as_torch(args)

    def theirs():
        out = getattr(TF, fn)(*targs, **as_torch(kwargs))
        if fn in ("batch_norm", "instance_norm") and args[1] is not None:
            return out, targs[1], targs[2]  # torch updates the running statistics in place
        return out

    compare(fn, lambda: getattr(F, fn)(*args, **kwargs, **ours), theirs)


@pytest.mark.parametrize("shape", [(0, 4, 6, 6), (2, 4, 0, 6), (0, 4, 0, 0)])
def test_pixel_unshuffle_of_an_empty_input_keeps_the_formula_shape(shape):
    assert tuple(TF.pixel_unshuffle(torch.zeros(shape), 2).shape) == shape  # torch's shortcut
    assert F.pixel_unshuffle(np.zeros(shape, np.float32), 2).shape == FORMULA_SHAPES["pixel_unshuffle"](shape, 2)
    # the formula is torch's for every non-empty input
    assert tuple(TF.pixel_unshuffle(torch.zeros(1, 4, 6, 6), 2).shape) == FORMULA_SHAPES["pixel_unshuffle"]((1, 4, 6, 6), 2)


def test_every_functional_op_has_an_empty_input_case():
    tested = {p.values[0] for p in CASES}
    public = {name for name, fn in vars(F).items() if callable(fn) and not name.startswith("_") and hasattr(TF, name)}
    # aliases of interpolate; pixel_unshuffle: see test_pixel_unshuffle_of_an_empty_input_keeps_the_formula_shape
    skipped = {"upsample", "upsample_nearest", "upsample_bilinear", "pixel_unshuffle"}
    assert public - tested - skipped == set()
