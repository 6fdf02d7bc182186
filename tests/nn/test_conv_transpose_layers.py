import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from fcnn import nn
from conv_configs import transposed
from oracle import check_layer, randn, to_torch

TORCH = {1: torch.nn.ConvTranspose1d, 2: torch.nn.ConvTranspose2d, 3: torch.nn.ConvTranspose3d}
FCNN = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}


@st.composite
def layer_configs(draw):
    n = draw(st.sampled_from([1, 2, 3]))
    cin, cout, groups, k, stride, padding, output_padding, dilation, size = draw(transposed(n, [1, 2], 4))
    kwargs = dict(stride=stride, padding=padding, output_padding=output_padding, groups=groups,
                  bias=draw(st.booleans()), dilation=dilation)
    # output_size: one reachable size per axis, given with or without the leading dims
    use_size = draw(st.booleans())
    batched = draw(st.booleans())
    return n, cin, cout, k, kwargs, size, batched, use_size, [draw(st.integers(0, s - 1)) for s in stride]


@settings(max_examples=6)
@given(layer_configs())
def test_conv_transpose_layer_matches_torch(cfg):
    n, cin, cout, k, kwargs, size, batched, use_size, extra = cfg
    layer = FCNN[n](cin, cout, k, **kwargs)
    module = TORCH[n](cin, cout, k, **kwargs)
    shape = ((2,) if batched else ()) + (cin,) + size
    apply_kwargs = torch_kwargs = None
    if use_size:
        s, p, d = kwargs["stride"], kwargs["padding"], kwargs["dilation"]
        out = [(i - 1) * st_ - 2 * pp + dd * (kk - 1) + 1 + e for i, st_, pp, dd, kk, e in zip(size, s, p, d, k, extra)]
        if min(out) <= 0:
            return
        if batched and n == 2:
            out = [2, cout] + out
        apply_kwargs = torch_kwargs = {"output_size": out}
    check_layer(layer, module, randn(shape, seed=n), rtol=1e-4, atol=1e-5,
                apply_kwargs=apply_kwargs, torch_kwargs=torch_kwargs)


def test_default_init_uses_torch_fan_of_the_transposed_layout():
    layer = nn.ConvTranspose2d(16, 8, 3, groups=2)
    params, state = layer.init(jax.random.key(0))
    ref = torch.nn.ConvTranspose2d(16, 8, 3, groups=2)
    assert set(params) == set(ref.state_dict()) and state == {}
    assert params["weight"].shape == tuple(ref.weight.shape) == (16, 4, 3, 3)
    bound = 1 / np.sqrt(4 * 9)  # fan_in = weight.shape[1] · prod(kernel)
    w = np.asarray(params["weight"])
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    np.testing.assert_allclose(w.std(), bound / np.sqrt(3), rtol=0.1)
    assert np.abs(np.asarray(params["bias"])).max() <= bound
    assert "bias" not in nn.ConvTranspose2d(2, 2, 3, bias=False).init(jax.random.key(0))[0]


def test_attributes_are_normalised_tuples():
    layer = nn.ConvTranspose2d(4, 4, 3, stride=2, padding=1, output_padding=1, dilation=(1, 2))
    assert layer.kernel_size == (3, 3) and layer.stride == (2, 2) and layer.padding == (1, 1)
    assert layer.output_padding == (1, 1) and layer.dilation == (1, 2) and layer.groups == 1
    assert "output_padding=(1, 1)" in repr(layer)


def test_jit_grad_and_vmap_with_output_size():
    layer = nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1)
    params, state = layer.init(jax.random.key(1))
    x = jnp.asarray(randn((4, 3, 5, 5), seed=2))
    f = jax.jit(lambda p, a: layer.apply(p, state, a, output_size=(10, 10))[0])
    y = f(params, x)
    assert y.shape == (4, 2, 10, 10)
    per_example = jax.vmap(lambda a: layer.apply(params, state, a, output_size=(10, 10))[0])(x)
    np.testing.assert_allclose(per_example, y, rtol=1e-5, atol=1e-6)
    t = torch.nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1)
    t.load_state_dict({k: to_torch(v) for k, v in params.items()})
    t(to_torch(x), output_size=[10, 10]).sum().backward()
    g = jax.grad(lambda p: f(p, x).sum())(params)
    np.testing.assert_allclose(g["weight"], t.weight.grad.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "make, err, match",
    [
        (lambda: nn.ConvTranspose2d(3, 4, 3, groups=2), ValueError, "in_channels"),
        (lambda: nn.ConvTranspose2d(4, 3, 3, groups=2), ValueError, "out_channels"),
        (lambda: nn.ConvTranspose2d(2, 2, 3, stride=2, output_padding=2), ValueError, "output padding"),
        (lambda: nn.ConvTranspose2d(2, 2, 3, padding_mode="reflect"), ValueError, "padding_mode"),
        (lambda: nn.ConvTranspose2d(2, 2, 3, padding="same"), TypeError, "padding"),
        (lambda: nn.ConvTranspose2d(2, 2, 0), ValueError, "kernel_size"),
        (lambda: nn.ConvTranspose2d(2, 2, 3, stride=(1, 2, 3)), ValueError, "stride"),
        (lambda: nn.ConvTranspose2d(2, 2, 3, bias=1), TypeError, "bias"),
    ],
)
def test_bad_constructor_arguments(make, err, match):
    with pytest.raises(err, match=match):
        make()


def test_bad_inputs_and_unreachable_output_size():
    layer = nn.ConvTranspose2d(2, 3, 3, stride=2)
    params, state = layer.init(jax.random.key(0))
    x = jnp.ones((1, 2, 4, 4))
    with pytest.raises(ValueError, match=r"output_size .*valid sizes range from \[9, 9\] to \[10, 10\]"):
        layer.apply(params, state, x, output_size=(20, 20))
    with pytest.raises(ValueError, match="output_size must have 2 elements"):
        layer.apply(params, state, x, output_size=(1, 2, 20, 20, 3))
    with pytest.raises(ValueError, match="in_channels"):
        layer.apply(params, state, jnp.ones((1, 5, 4, 4)))
    with pytest.raises(ValueError, match="3D .*4D"):
        layer.apply(params, state, jnp.ones((4, 4)))
