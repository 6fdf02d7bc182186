"""Pooling layers: torch parity through the layer protocol, normalised attributes, bad arguments."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from fcnn import nn
from oracle import assert_close, check_layer, randn, to_torch

T = torch.nn

LAYERS = [
    (nn.MaxPool1d(3, 2, 1, ceil_mode=True), T.MaxPool1d(3, 2, 1, ceil_mode=True), (2, 3, 8)),
    (nn.MaxPool2d((3, 2), dilation=(1, 2), padding=(1, 1)), T.MaxPool2d((3, 2), dilation=(1, 2), padding=(1, 1)),
     (3, 7, 6)),
    (nn.MaxPool3d(2, 1), T.MaxPool3d(2, 1), (1, 2, 3, 4, 3)),
    (nn.AvgPool1d(3, 2, 1, True, False), T.AvgPool1d(3, 2, 1, True, False), (2, 8)),
    (nn.AvgPool2d(3, 2, 1, ceil_mode=True, divisor_override=4), T.AvgPool2d(3, 2, 1, ceil_mode=True,
                                                                            divisor_override=4), (2, 3, 7, 6)),
    (nn.AvgPool3d((1, 2, 3), padding=(0, 1, 1)), T.AvgPool3d((1, 2, 3), padding=(0, 1, 1)), (2, 3, 4, 5)),
    (nn.AdaptiveAvgPool1d(3), T.AdaptiveAvgPool1d(3), (2, 3, 7)),
    (nn.AdaptiveAvgPool2d((None, 3)), T.AdaptiveAvgPool2d((None, 3)), (3, 5, 7)),
    (nn.AdaptiveAvgPool3d(2), T.AdaptiveAvgPool3d(2), (1, 2, 3, 5, 4)),
    (nn.AdaptiveMaxPool1d(4), T.AdaptiveMaxPool1d(4), (2, 7)),
    (nn.AdaptiveMaxPool2d((3, 4)), T.AdaptiveMaxPool2d((3, 4)), (2, 2, 7, 6)),
    (nn.AdaptiveMaxPool3d((2, None, 1)), T.AdaptiveMaxPool3d((2, None, 1)), (2, 3, 3, 3)),
    (nn.LPPool1d(2, 3, 2), T.LPPool1d(2, 3, 2), (2, 3, 9)),
    (nn.LPPool2d(1.5, 2, ceil_mode=True), T.LPPool2d(1.5, 2, ceil_mode=True), (2, 2, 5, 5)),
]


@pytest.mark.parametrize("layer, module, shape", LAYERS, ids=lambda v: type(v).__name__ if not isinstance(v, tuple)
                         else str(v))
def test_layer_matches_torch_module(layer, module, shape):
    x = randn(shape, seed=len(shape))
    if isinstance(layer, nn.LPPool1d | nn.LPPool2d):
        x = np.abs(x) + 0.1
    params, state = layer.init(jax.random.key(0))
    assert params == {} and state == {}
    check_layer(layer, module, x)


def test_attributes_are_normalised_tuples_like_torch_names():
    p = nn.MaxPool2d(3, padding=1)
    assert (p.kernel_size, p.stride, p.padding, p.dilation, p.ceil_mode, p.return_indices) == \
        ((3, 3), (3, 3), (1, 1), (1, 1), False, False)
    a = nn.AvgPool1d(4, 2)
    assert (a.kernel_size, a.stride, a.padding, a.ceil_mode, a.count_include_pad) == ((4,), (2,), (0,), False, True)
    assert nn.AvgPool3d(2, divisor_override=3).divisor_override == 3
    assert nn.AdaptiveAvgPool2d(7).output_size == (7, 7)
    assert nn.AdaptiveMaxPool3d((2, None, 1)).output_size == (2, None, 1)
    u = nn.MaxUnpool2d(2)
    assert (u.kernel_size, u.stride, u.padding) == ((2, 2), (2, 2), (0, 0))
    assert nn.MaxPool2d(3, 2, 1).out_spatial((56, 56)) == (28, 28)
    assert nn.MaxUnpool2d(2).out_spatial((28, 28)) == (56, 56)
    assert "kernel_size=(3, 3)" in repr(p)


def test_pool_with_indices_then_unpool_layer_round_trip():
    pool, unpool = nn.MaxPool2d(2, return_indices=True), nn.MaxUnpool2d(2)
    x = randn((2, 3, 5, 7), seed=3)
    (y, idx), _ = pool.apply({}, {}, jnp.asarray(x))
    rec, _ = unpool.apply({}, {}, y, idx, output_size=x.shape[-2:])
    ty, tidx = T.MaxPool2d(2, return_indices=True)(to_torch(x))
    np.testing.assert_array_equal(np.asarray(idx), tidx.numpy())
    assert_close(rec, T.MaxUnpool2d(2)(ty, tidx, output_size=x.shape[-2:]))


def test_sequential_jit_and_vmap_over_unbatched_examples():
    model = nn.Sequential(nn.MaxPool2d(3, 2, 1), nn.AvgPool2d(2, ceil_mode=True), nn.AdaptiveAvgPool2d(1))
    params, state = model.init(jax.random.key(0))
    x = jnp.asarray(randn((4, 3, 11, 9), seed=5))
    batched, _ = jax.jit(model.apply)(params, state, x)
    per_example, _ = jax.vmap(model.apply, in_axes=(None, None, 0))(params, state, x)
    np.testing.assert_allclose(per_example, batched, rtol=1e-6, atol=1e-6)
    ref = T.Sequential(T.MaxPool2d(3, 2, 1), T.AvgPool2d(2, ceil_mode=True), T.AdaptiveAvgPool2d(1))(to_torch(x))
    assert_close(batched, ref)


@pytest.mark.parametrize(
    "make, exc, match",
    [
        (lambda: nn.MaxPool2d(0), ValueError, "kernel_size"),
        (lambda: nn.MaxPool2d(2, stride=0), ValueError, "stride"),
        (lambda: nn.MaxPool2d(2, padding=2), ValueError, "half of kernel size"),
        (lambda: nn.MaxPool2d(3, dilation=0), ValueError, "dilation"),
        (lambda: nn.MaxPool1d((2, 2)), ValueError, "kernel_size"),
        (lambda: nn.MaxPool2d(2, ceil_mode="yes"), TypeError, "ceil_mode"),
        (lambda: nn.AvgPool2d(2, padding=-1), ValueError, "padding"),
        (lambda: nn.AvgPool2d(2, divisor_override=0), ValueError, "divisor"),
        (lambda: nn.AvgPool2d(2, count_include_pad=None), TypeError, "count_include_pad"),
        (lambda: nn.AdaptiveAvgPool2d((0, 1)), ValueError, "output_size"),
        (lambda: nn.AdaptiveMaxPool2d((1, 2, 3)), ValueError, "output_size"),
        (lambda: nn.MaxUnpool2d(2, stride=0), ValueError, "stride"),
        (lambda: nn.LPPool2d(0, 2), ValueError, "norm_type"),
    ],
)
def test_bad_constructor_arguments(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_bad_inputs_name_the_problem():
    with pytest.raises(ValueError, match="MaxPool2d.*Output size is too small.*kernel_size"):
        nn.MaxPool2d(5).apply({}, {}, jnp.ones((1, 1, 3, 3)))
    with pytest.raises(ValueError, match="AvgPool2d: expected 3D .* or 4D"):
        nn.AvgPool2d(2).apply({}, {}, jnp.ones((4, 4)))
    with pytest.raises(ValueError, match="MaxUnpool2d.*output_size"):
        nn.MaxUnpool2d(2).apply({}, {}, jnp.ones((1, 1, 2, 2)), jnp.zeros((1, 1, 2, 2), jnp.int32),
                                output_size=(7, 7))


POOL_LAYERS = [
    cls(*args) for n in (1, 2, 3) for cls, args in (
        (getattr(nn, f"MaxPool{n}d"), (2,)), (getattr(nn, f"AvgPool{n}d"), (2,)),
        (getattr(nn, f"LPPool{n}d"), (2, 2)), (getattr(nn, f"AdaptiveAvgPool{n}d"), (1,)),
        (getattr(nn, f"AdaptiveMaxPool{n}d"), (1,)),
    )
]


@pytest.mark.parametrize("layer", POOL_LAYERS, ids=lambda layer: type(layer).__name__)
def test_a_bad_input_names_the_layer(layer):
    # the layer checks its input with the functional op's own checks, under its name
    name = type(layer).__name__
    with pytest.raises(ValueError, match=f"^{name}: expected .*input"):
        layer.apply({}, {}, jnp.ones((2,) * (layer.n + 3)))
    with pytest.raises(ValueError, match=f"^{name}: expected non-empty input"):
        layer.apply({}, {}, jnp.ones((1, 0) + (4,) * layer.n))
    if hasattr(layer, "kernel_size"):
        with pytest.raises(ValueError, match=f"^{name}: .*Output size is too small"):
            layer.apply({}, {}, jnp.ones((1, 1) + (1,) * layer.n))


@pytest.mark.parametrize("n", [1, 2, 3])
def test_a_bad_unpool_input_names_the_layer(n):
    unpool = getattr(nn, f"MaxUnpool{n}d")(2)
    x = jnp.ones((1, 1) + (2,) * n)
    with pytest.raises(ValueError, match=f"^MaxUnpool{n}d: Found an invalid max index: 99"):
        unpool.apply({}, {}, x, jnp.full(x.shape, 99, jnp.int32))
    with pytest.raises(TypeError, match=f"^MaxUnpool{n}d: indices must be an integer array"):
        unpool.apply({}, {}, x, x)
