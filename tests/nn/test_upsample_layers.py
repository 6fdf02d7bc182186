import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from fcnn import nn
from oracle import check_layer, randn


@pytest.mark.parametrize(
    "kwargs, shape",
    [
        (dict(scale_factor=2), (2, 3, 5)),
        (dict(size=(7, 4), mode="bilinear"), (2, 3, 5, 6)),
        (dict(scale_factor=(1.7, 0.6), mode="bicubic", align_corners=True), (1, 2, 5, 6)),
        (dict(scale_factor=1.5, mode="trilinear", recompute_scale_factor=True), (1, 2, 3, 4, 2)),
        (dict(scale_factor=0.5, mode="area"), (1, 2, 6, 7)),
        (dict(size=9, mode="nearest-exact"), (1, 2, 4)),
        (dict(scale_factor=2.5, mode="linear", align_corners=False), (2, 1, 4)),
    ],
)
def test_upsample_matches_torch(kwargs, shape):
    check_layer(nn.Upsample(**kwargs), torch.nn.Upsample(**kwargs), randn(shape, seed=len(shape)))


def test_upsampling_2d_layers_match_torch():
    x = randn((2, 3, 4, 5))
    check_layer(nn.UpsamplingNearest2d(scale_factor=3), torch.nn.UpsamplingNearest2d(scale_factor=3), x)
    check_layer(nn.UpsamplingBilinear2d(size=(7, 9)), torch.nn.UpsamplingBilinear2d(size=(7, 9)), x)
    layer = nn.UpsamplingBilinear2d(scale_factor=2)
    assert layer.mode == "bilinear" and layer.align_corners is True and layer.scale_factor == 2.0


def test_upsample_attributes_follow_torch():
    for kwargs in (dict(scale_factor=2), dict(scale_factor=(2, 3)), dict(size=5), dict(size=(4, 5), mode="bilinear")):
        ours, ref = nn.Upsample(**kwargs), torch.nn.Upsample(**kwargs)
        for name in ("size", "scale_factor", "mode", "align_corners", "recompute_scale_factor"):
            assert getattr(ours, name) == getattr(ref, name), name
    assert "scale_factor=2.0" in repr(nn.Upsample(scale_factor=2))


@pytest.mark.parametrize("r", [1, 2, 3])
def test_pixel_shuffle_layers_match_torch(r):
    x = randn((2, 2 * r * r, 3, 2), seed=r)
    check_layer(nn.PixelShuffle(r), torch.nn.PixelShuffle(r), x)
    check_layer(nn.PixelShuffle(r), torch.nn.PixelShuffle(r), x[0])  # unbatched
    y = randn((2, 2, 3 * r, 2 * r), seed=r)
    check_layer(nn.PixelUnshuffle(r), torch.nn.PixelUnshuffle(r), y)


def test_jit_and_vmap_over_examples():
    layer = nn.Upsample(scale_factor=2, mode="bilinear")
    x = jnp.asarray(randn((4, 3, 5, 5)))
    batched, _ = jax.jit(layer.apply)({}, {}, x)
    per_example, _ = jax.vmap(layer.apply, in_axes=(None, None, 0))({}, {}, x[:, None])
    np.testing.assert_allclose(per_example[:, 0], batched, rtol=1e-6, atol=1e-6)
    shuffle = nn.PixelShuffle(2)
    z = jnp.asarray(randn((3, 8, 2, 2)))
    out, _ = jax.vmap(shuffle.apply, in_axes=(None, None, 0))({}, {}, z)
    np.testing.assert_array_equal(out, shuffle.apply({}, {}, z)[0])


@pytest.mark.parametrize(
    "make, err, match",
    [
        (lambda: nn.Upsample(), ValueError, "either size or scale_factor"),
        (lambda: nn.Upsample(size=3, scale_factor=2), ValueError, "only one of size or scale_factor"),
        (lambda: nn.Upsample(scale_factor=2, mode="nearest", align_corners=True), ValueError, "align_corners"),
        (lambda: nn.Upsample(scale_factor=2, mode="bilinar"), ValueError, "mode"),
        (lambda: nn.PixelShuffle(0), ValueError, "upscale_factor"),
        (lambda: nn.PixelUnshuffle(1.5), TypeError, "downscale_factor"),
    ],
)
def test_bad_constructor_arguments(make, err, match):
    with pytest.raises(err, match=match):
        make()


def test_wrong_rank_for_mode_names_the_problem():
    with pytest.raises(ValueError, match="Got 3D input, but bilinear mode needs 4D input"):
        nn.Upsample(scale_factor=2, mode="bilinear").apply({}, {}, jnp.ones((2, 3, 4)))
