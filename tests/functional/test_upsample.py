import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from fcnn import functional as F
from oracle import assert_close, randn, to_torch

TF = torch.nn.functional
MODE_DIMS = {"nearest": (1, 2, 3), "nearest-exact": (1, 2, 3), "area": (1, 2, 3), "linear": (1,),
             "bilinear": (2,), "bicubic": (2,), "trilinear": (3,)}


def check_against_torch(fn, torch_fn, x, rtol=1e-5, atol=1e-5, seed=0):
    """Forward and input gradient (random cotangent) of ``fn`` vs ``torch_fn``."""
    out, vjp = jax.vjp(fn, jnp.asarray(x))
    tx = to_torch(x, requires_grad=True)
    ref = torch_fn(tx)
    assert_close(out, ref, rtol, atol, "forward")
    cot = np.random.RandomState(seed).standard_normal(ref.shape).astype(np.float32)
    (g,) = vjp(jnp.asarray(cot))
    ref.backward(torch.from_numpy(cot))
    assert_close(g, tx.grad, rtol, atol, "grad of input")
    return out


LINEAR_MODES = ("linear", "bilinear", "bicubic", "trilinear")
# Every mode in each of its dimensions, every align_corners the mode takes, and size or scale
# factor: explicit parameters, so each combination runs on every test run; hypothesis draws the
# continuous part (lengths, sizes, factors, recompute_scale_factor, antialias) within each.
INTERPOLATE_CASES = [(mode, n, ac, how) for mode in sorted(MODE_DIMS) for n in MODE_DIMS[mode]
                     for ac in ((None, False, True) if mode in LINEAR_MODES else (None,))
                     for how in ("size", "scale_factor")]


@st.composite
def interpolate_configs(draw, mode, n, align_corners, how):
    spatial = tuple(draw(st.integers(1, 7 if n < 3 else 4)) for _ in range(n))
    kwargs = {"mode": mode}
    if mode in LINEAR_MODES:
        kwargs["align_corners"] = align_corners
    if how == "size":
        size = tuple(draw(st.integers(1, 9 if n < 3 else 5)) for _ in range(n))
        kwargs["size"] = size if n > 1 and draw(st.booleans()) else (size if n > 1 else size[0])
        if n > 1 and len(set(size)) > 1 and not isinstance(kwargs["size"], tuple):
            kwargs["size"] = size
    else:
        factors = st.sampled_from([0.6, 1.0, 1.7, 2.0, 2.5, 3.0, 0.5, 0.34])
        sf = tuple(draw(factors) for _ in range(n))
        kwargs["scale_factor"] = sf if draw(st.booleans()) else sf[0]
        kwargs["recompute_scale_factor"] = draw(st.sampled_from([None, False, True]))
        factors_t = sf if isinstance(kwargs["scale_factor"], tuple) else (sf[0],) * n
        # every output size must be >= 1, as torch requires
        spatial = tuple(max(s, int(np.ceil(1 / f))) for s, f in zip(spatial, factors_t))
    if mode in ("bilinear", "bicubic"):
        kwargs["antialias"] = draw(st.booleans())
    batch = draw(st.integers(1, 2))
    return (batch, 2) + spatial, kwargs


def _aa_torch_bug(shape, kwargs):
    """torch 2.13's CPU antialias kernel ignores the height pass when the output width is 1."""
    if not kwargs.get("antialias"):
        return False
    out = TF.interpolate(torch.zeros(shape), **kwargs).shape  # torch's size, not the one under test
    return out[-1] == 1 and out[-2] != shape[-2]


@pytest.mark.parametrize("mode, n, align_corners, how", INTERPOLATE_CASES,
                         ids=[f"{m}-{n}d-ac{a}-{h}" for m, n, a, h in INTERPOLATE_CASES])
@settings(max_examples=2)
@given(data=st.data())
def test_interpolate_matches_torch(mode, n, align_corners, how, data):
    shape, kwargs = data.draw(interpolate_configs(mode, n, align_corners, how)
                              .filter(lambda c: not _aa_torch_bug(*c)))
    x = randn(shape, seed=len(shape))
    check_against_torch(lambda a: F.interpolate(a, **kwargs), lambda t: TF.interpolate(t, **kwargs), x)


@pytest.mark.parametrize("mode", ["linear", "bilinear", "bicubic", "trilinear"])
@pytest.mark.parametrize("in_size, out_size", [(1, 5), (4, 1), (1, 1), (5, 2)])
def test_align_corners_with_size_one(mode, in_size, out_size):
    n = {"linear": 1, "bilinear": 2, "bicubic": 2, "trilinear": 3}[mode]
    x = randn((1, 2) + (in_size,) * n, seed=3)
    for ac in (True, False):
        kw = dict(size=(out_size,) * n, mode=mode, align_corners=ac)
        check_against_torch(lambda a: F.interpolate(a, **kw), lambda t: TF.interpolate(t, **kw), x)


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
@pytest.mark.parametrize("size", [(5, 3), (7, 12), (2, 2)])
def test_antialias_downsampling(mode, size):
    x = randn((2, 3, 16, 13), seed=4)
    for ac in (False, True):
        kw = dict(size=size, mode=mode, align_corners=ac, antialias=True)
        check_against_torch(lambda a: F.interpolate(a, **kw), lambda t: TF.interpolate(t, **kw), x)
    kw = dict(scale_factor=0.3, mode=mode, antialias=True)
    check_against_torch(lambda a: F.interpolate(a, **kw), lambda t: TF.interpolate(t, **kw), x)


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_antialias_downsampling_by_a_whole_factor(mode):
    # a factor of 3 puts filter taps exactly on the edge of the filter's support (weight zero there)
    x = randn((1, 2, 12, 9), seed=3)
    kw = dict(size=(4, 3), mode=mode, antialias=True)
    check_against_torch(lambda a: F.interpolate(a, **kw), lambda t: TF.interpolate(t, **kw), x)


def test_nearest_legacy_rounding_and_scale_factor_coordinates():
    # scale_factor=2.1 on 5 pixels: output 10 = 2·in, where torch special-cases the index to dst>>1;
    # 1.7 uses 1/1.7 (not in/out) unless recompute_scale_factor=True.
    x = randn((1, 1, 5), seed=5)
    for kw in (dict(scale_factor=2.1), dict(scale_factor=1.7), dict(scale_factor=1.7, recompute_scale_factor=True),
               dict(scale_factor=0.6, mode="nearest-exact"), dict(size=13, mode="nearest-exact")):
        check_against_torch(lambda a: F.interpolate(a, **kw), lambda t: TF.interpolate(t, **kw), x)


def test_nearest_clamps_a_source_index_that_float32_rounds_past_the_input():
    # 3 pixels scaled by ~4e6 (12 million outputs): float32 rounding puts the last outputs' source
    # coordinate at 3.0, which torch clamps to the last pixel
    sf, x = 4020010.0050025014, randn((1, 1, 3), seed=7)
    assert np.floor(np.float32(math.floor(3 * sf) - 1) * np.float32(1 / sf)) >= 3
    ref = TF.interpolate(to_torch(x), scale_factor=sf, mode="nearest")
    np.testing.assert_array_equal(np.asarray(F.interpolate(x, scale_factor=sf, mode="nearest")), ref.numpy())


@pytest.mark.filterwarnings("ignore:`nn.functional.upsample")
def test_upsample_aliases():
    x = randn((2, 3, 4, 5), seed=6)
    check_against_torch(lambda a: F.upsample_nearest(a, scale_factor=2), lambda t: TF.upsample_nearest(t, scale_factor=2), x)
    check_against_torch(lambda a: F.upsample_bilinear(a, size=(7, 3)), lambda t: TF.upsample_bilinear(t, size=(7, 3)), x)
    check_against_torch(lambda a: F.upsample(a, scale_factor=1.5, mode="bicubic"),
                        lambda t: TF.interpolate(t, scale_factor=1.5, mode="bicubic"), x)


def test_jit_and_vmap():
    x = jnp.asarray(randn((4, 3, 6, 5), seed=7))
    f = jax.jit(lambda a: F.interpolate(a, scale_factor=1.7, mode="bicubic", align_corners=True))
    ref = TF.interpolate(to_torch(x), scale_factor=1.7, mode="bicubic", align_corners=True)
    assert_close(f(x), ref)
    per_example = jax.vmap(lambda a: F.interpolate(a[None], size=(9, 4), mode="bilinear")[0])(x)
    assert_close(per_example, TF.interpolate(to_torch(x), size=(9, 4), mode="bilinear"))


@pytest.mark.parametrize(
    "call, err, match",
    [
        (lambda x: F.interpolate(x, size=4, scale_factor=2), ValueError, "only one of size or scale_factor"),
        (lambda x: F.interpolate(x), ValueError, "either size or scale_factor"),
        (lambda x: F.interpolate(x, size=4, align_corners=True), ValueError, "align_corners option"),
        (lambda x: F.interpolate(x, size=4, mode="area", align_corners=False), ValueError, "align_corners option"),
        (lambda x: F.interpolate(x, size=4, mode="linear"), ValueError, "Got 4D input, but linear mode needs 3D input"),
        (lambda x: F.interpolate(x, size=4, mode="trilinear"), NotImplementedError, "trilinear mode needs 5D"),
        (lambda x: F.interpolate(x, size=(4, 4, 4)), ValueError, "output size"),
        (lambda x: F.interpolate(x, scale_factor=(2.0,)), ValueError, "scale_factor"),
        (lambda x: F.interpolate(x, size=4, recompute_scale_factor=True), ValueError, "recompute_scale_factor"),
        (lambda x: F.interpolate(x, size=4, antialias=True), ValueError, "Anti-alias"),
        (lambda x: F.interpolate(x, size=4, mode="cubic"), ValueError, "mode"),
        (lambda x: F.interpolate(x, scale_factor=0.1), ValueError, "sizes should be greater than 0"),
        (lambda x: F.interpolate(x, size=(2.5, 3)), TypeError, "size"),
        (lambda x: F.interpolate(x[0, 0], size=4), ValueError, "Only 3D, 4D and 5D"),
        (lambda x: F.interpolate(x.astype(jnp.int32), size=4, mode="bilinear"), TypeError, "floating"),
    ],
)
def test_interpolate_bad_arguments(call, err, match):
    with pytest.raises(err, match=match):
        call(jnp.ones((1, 2, 3, 3)))


@pytest.mark.parametrize("mode", ["nearest", "nearest-exact", "bilinear", "bicubic", "area"])
def test_interpolate_of_an_empty_spatial_axis_is_refused_where_torch_refuses_it(mode):
    x = np.ones((1, 2, 0, 3), np.float32)
    try:
        want = TF.interpolate(to_torch(x), size=(2, 2), mode=mode)
    except RuntimeError:
        with pytest.raises(ValueError, match="sizes should be greater than 0"):
            F.interpolate(x, size=(2, 2), mode=mode)
    else:
        assert_close(F.interpolate(x, size=(2, 2), mode=mode), want)


@st.composite
def shuffle_configs(draw):
    r = draw(st.integers(1, 3))
    lead = tuple(draw(st.integers(1, 2)) for _ in range(draw(st.integers(0, 2))))
    c = draw(st.integers(1, 2))
    h, w = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    return r, lead, c, h, w


@settings(max_examples=8)
@given(shuffle_configs())
def test_pixel_shuffle_and_unshuffle_match_torch_and_round_trip(cfg):
    r, lead, c, h, w = cfg
    x = randn(lead + (c * r * r, h, w), seed=8)
    y = check_against_torch(lambda a: F.pixel_shuffle(a, r), lambda t: TF.pixel_shuffle(t, r), x)
    back = check_against_torch(lambda a: F.pixel_unshuffle(a, r), lambda t: TF.pixel_unshuffle(t, r), np.asarray(y))
    np.testing.assert_array_equal(back, x)


@pytest.mark.parametrize(
    "call, err, match",
    [
        (lambda: F.pixel_shuffle(jnp.ones((3, 4, 4)), 2), ValueError, "divisible by the square of upscale_factor"),
        (lambda: F.pixel_shuffle(jnp.ones((4, 4)), 2), ValueError, "at least 3 dimensions"),
        (lambda: F.pixel_shuffle(jnp.ones((4, 4, 4)), 0), ValueError, "upscale_factor"),
        (lambda: F.pixel_shuffle(jnp.ones((4, 4, 4)), 2.0), TypeError, "upscale_factor"),
        (lambda: F.pixel_unshuffle(jnp.ones((1, 5, 4)), 2), ValueError, "height"),
        (lambda: F.pixel_unshuffle(jnp.ones((1, 4, 5)), 2), ValueError, "width"),
        (lambda: F.pixel_unshuffle(jnp.ones((1, 4, 4)), -1), ValueError, "downscale_factor"),
    ],
)
def test_pixel_shuffle_bad_arguments(call, err, match):
    with pytest.raises(err, match=match):
        call()


@pytest.mark.parametrize("op, shape, r", [("pixel_shuffle", (1, 5, 2, 2), 3), ("pixel_shuffle", (2, 3, 4, 4), 2),
                                         ("pixel_unshuffle", (1, 4, 5), 2), ("pixel_unshuffle", (2, 1, 7, 6), 3),
                                         ("pixel_unshuffle", (1, 6, 7), 3)])
def test_pixel_shuffle_refusals_carry_torchs_message(op, shape, r):
    # the sizes and the factor (r², not r^r) the message names are torch's
    with pytest.raises(RuntimeError) as want:
        getattr(TF, op)(torch.ones(shape), r)
    with pytest.raises(ValueError) as got:
        getattr(F, op)(jnp.ones(shape), r)
    assert str(want.value) in str(got.value)


@pytest.mark.parametrize("mode, kwargs", [("bilinear", dict(align_corners=True)), ("bilinear", dict(align_corners=False)),
                                          ("linear", {}), ("nearest", {}), ("bicubic", {})])
@pytest.mark.parametrize("scale", [2, 2.1])
def test_gradient_inside_jit_matches_torch(mode, kwargs, scale):
    # Regression: the custom-gradient paths closed over jnp constants, which are
    # tracers under jit ("No constant handler for type: DynamicJaxprTracer").
    shape = (1, 2, 5) if mode == "linear" else (1, 2, 5, 4)
    x = np.random.RandomState(0).standard_normal(shape).astype(np.float32)
    cot_shape = torch.nn.functional.interpolate(torch.from_numpy(x), scale_factor=scale, mode=mode, **kwargs).shape
    cot = np.random.RandomState(1).standard_normal(tuple(cot_shape)).astype(np.float32)
    g = jax.jit(jax.grad(lambda a: (F.interpolate(a, scale_factor=scale, mode=mode, **kwargs) * cot).sum()))(x)
    xt = torch.from_numpy(x).requires_grad_(True)
    (torch.nn.functional.interpolate(xt, scale_factor=scale, mode=mode, **kwargs) * torch.from_numpy(cot)).sum().backward()
    np.testing.assert_allclose(np.asarray(g), xt.grad.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode, shape, scale", [
    ("linear", (1, 2, 3), 1.1),
    ("bilinear", (1, 2, 3, 4), 1.1),
    ("bilinear", (1, 2, 3, 4), (1.1, 1.5)),
    ("bilinear", (1, 2, 3, 4), (1.6, 1.2)),
    ("trilinear", (1, 1, 2, 3, 2), (1.2, 1.7, 1.3)),
    ("bicubic", (1, 2, 3, 4), (1.1, 1.5)),
])
@pytest.mark.parametrize("align_corners", [False, True])
def test_scale_factor_that_keeps_an_axis_size(mode, shape, scale, align_corners):
    """An axis whose size a scale_factor leaves unchanged is copied by torch's linear kernels (not bicubic)."""
    x = randn(shape, seed=5)
    kwargs = dict(scale_factor=scale, mode=mode, align_corners=align_corners)
    check_against_torch(lambda a: F.interpolate(a, **kwargs), lambda a: torch.nn.functional.interpolate(a, **kwargs), x)
