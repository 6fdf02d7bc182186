import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from fcnn import functional as F, nn
from conv_configs import layer_configs
from oracle import assert_close, check_layer, randn, to_torch

TORCH_CONV = {1: torch.nn.Conv1d, 2: torch.nn.Conv2d, 3: torch.nn.Conv3d}
FCNN_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}


@settings(max_examples=14)
@given(layer_configs())
def test_conv_layer_matches_torch(cfg):
    n, cin, cout, k, stride, padding, dilation, groups, bias, mode, size, batched = cfg
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, bias=bias, padding_mode=mode)
    layer = FCNN_CONV[n](cin, cout, k, **kwargs)
    module = TORCH_CONV[n](cin, cout, k, **kwargs)
    shape = ((2,) if batched else ()) + (cin,) + size
    check_layer(layer, module, randn(shape, seed=n), rtol=1e-4, atol=1e-5)


@given(layer_configs(dims=(2,)))
def test_conv2d_functional_matches_torch(cfg):
    n, cin, cout, k, stride, padding, dilation, groups, bias, mode, size, batched = cfg
    x = randn((2, cin) + size, seed=1)
    w = randn((cout, cin // groups) + k, seed=2)
    b = randn((cout,), seed=3) if bias else None
    out = F.conv2d(x, w, b, stride, padding, dilation, groups)
    ref = torch.nn.functional.conv2d(to_torch(x), to_torch(w), None if b is None else to_torch(b),
                                     stride, padding, dilation, groups)
    assert_close(out, ref, 1e-4, 1e-5)


def test_depthwise_conv_matches_torch():
    layer = nn.Conv2d(4, 8, 3, padding=1, groups=4)
    check_layer(layer, torch.nn.Conv2d(4, 8, 3, padding=1, groups=4), randn((2, 4, 7, 7)))
    # and op by op, as in a notebook cell without jit
    check_layer(layer, torch.nn.Conv2d(4, 8, 3, padding=1, groups=4), randn((2, 4, 7, 7)), eager=True)


def test_state_dict_keys_and_default_init_distribution():
    layer = nn.Conv2d(16, 32, 3, bias=True)
    params, state = layer.init(jax.random.key(0))
    ref = torch.nn.Conv2d(16, 32, 3)
    assert set(params) == set(ref.state_dict()) and state == {}
    bound = 1 / np.sqrt(16 * 9)
    w = np.asarray(params["weight"])
    assert w.shape == (32, 16, 3, 3)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
    # a uniform on ±bound has std bound/√3
    np.testing.assert_allclose(w.std(), bound / np.sqrt(3), rtol=0.05)
    assert np.abs(np.asarray(params["bias"])).max() <= bound
    assert "bias" not in nn.Conv2d(3, 4, 3, bias=False).init(jax.random.key(0))[0]


def test_custom_initialisers():
    layer = nn.Conv2d(2, 3, 3, weight_init=nn.init.zeros, bias_init=nn.init.constant(0.5))
    params, _ = layer.init(jax.random.key(0))
    assert not np.asarray(params["weight"]).any()
    np.testing.assert_array_equal(params["bias"], np.full(3, 0.5, np.float32))


def test_jit_grad_and_vmap_over_examples_and_ensembles():
    layer = nn.Conv2d(3, 4, 3, padding=1)
    x = jnp.asarray(randn((5, 3, 6, 6)))
    params, state = layer.init(jax.random.key(0))
    batched, _ = jax.jit(layer.apply)(params, state, x)
    per_example, _ = jax.vmap(layer.apply, in_axes=(None, None, 0))(params, state, x)
    np.testing.assert_allclose(per_example, batched, rtol=1e-5, atol=1e-6)
    keys = jax.random.split(jax.random.key(1), 3)
    stacked, _ = jax.vmap(layer.init)(keys)
    ens, _ = jax.vmap(layer.apply, in_axes=(0, None, None))(stacked, state, x)
    for i in range(3):
        p_i = jax.tree_util.tree_map(lambda a: a[i], stacked)
        np.testing.assert_allclose(ens[i], layer.apply(p_i, state, x)[0], rtol=1e-5, atol=1e-6)
    g = jax.grad(lambda p: layer.apply(p, state, x)[0].sum())(params)
    t = torch.nn.Conv2d(3, 4, 3, padding=1)
    t.load_state_dict({k: to_torch(v) for k, v in params.items()})
    t(to_torch(x)).sum().backward()
    assert_close(g["weight"], t.weight.grad, 1e-4, 1e-4)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: nn.Conv2d(3, 4, 3, groups=2), "in_channels"),
        (lambda: nn.Conv2d(4, 3, 3, groups=2), "out_channels"),
        (lambda: nn.Conv2d(0, 3, 3), "in_channels"),
        (lambda: nn.Conv2d(3, 3, 0), "kernel_size"),
        (lambda: nn.Conv2d(3, 3, 3, stride=0), "stride"),
        (lambda: nn.Conv2d(3, 3, 3, padding=-1), "padding"),
        (lambda: nn.Conv2d(3, 3, 3, stride=2, padding="same"), "padding='same'"),
        (lambda: nn.Conv2d(3, 3, 3, padding="full"), "padding"),
        (lambda: nn.Conv2d(3, 3, (3, 3, 3)), "kernel_size"),
        (lambda: nn.Conv2d(3, 3, 3, padding_mode="mirror"), "padding_mode"),
        (lambda: nn.Conv2d(3, 3, 3, dilation=0), "dilation"),
    ],
)
def test_bad_constructor_arguments(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_bad_inputs_name_the_problem():
    layer = nn.Conv2d(3, 4, 3)
    params, state = layer.init(jax.random.key(0))
    with pytest.raises(ValueError, match="in_channels"):
        layer.apply(params, state, jnp.ones((1, 5, 8, 8)))
    with pytest.raises(ValueError, match="3D .*4D"):
        layer.apply(params, state, jnp.ones((8, 8)))
    with pytest.raises(ValueError, match="Kernel size can't be greater"):
        layer.apply(params, state, jnp.ones((1, 3, 2, 2)))
    with pytest.raises(TypeError, match="dtype"):
        layer.apply(params, state, jnp.ones((1, 3, 8, 8), jnp.float16))
    with pytest.raises(ValueError, match="channels"):
        F.conv2d(jnp.ones((1, 4, 8, 8)), jnp.ones((2, 3, 3, 3)))
    with pytest.raises(TypeError, match="floating"):
        F.conv2d(jnp.ones((1, 3, 8, 8), jnp.int32), jnp.ones((2, 3, 3, 3), jnp.int32))
