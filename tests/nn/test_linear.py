import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from fcnn import functional as F, nn
from oracle import assert_close, check_layer, randn, to_torch


@settings(max_examples=6)
@given(st.integers(1, 6), st.integers(1, 6), st.booleans(), st.sampled_from([(), (3,), (2, 3)]))
def test_linear_matches_torch(fin, fout, bias, lead):
    check_layer(nn.Linear(fin, fout, bias=bias), torch.nn.Linear(fin, fout, bias=bias),
                randn(tuple(lead) + (fin,), seed=fin))


def test_linear_functional_matches_torch():
    x, w, b = randn((2, 3, 5)), randn((4, 5), seed=1), randn((4,), seed=2)
    assert_close(F.linear(x, w, b), torch.nn.functional.linear(to_torch(x), to_torch(w), to_torch(b)))
    assert_close(F.linear(x[0, 0], w), torch.nn.functional.linear(to_torch(x[0, 0]), to_torch(w)))


def test_linear_default_init_and_keys():
    layer = nn.Linear(64, 32)
    params, state = layer.init(jax.random.key(0))
    assert set(params) == set(torch.nn.Linear(64, 32).state_dict()) and state == {}
    bound = 1 / np.sqrt(64)
    w, b = np.asarray(params["weight"]), np.asarray(params["bias"])
    assert w.shape == (32, 64) and b.shape == (32,)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
    np.testing.assert_allclose(w.std(), bound / np.sqrt(3), rtol=0.05)
    assert np.abs(b).max() <= bound and b.std() > 0.3 * bound
    p2, _ = nn.Linear(3, 2, weight_init=nn.init.zeros, bias_init=nn.init.constant(1.0)).init(jax.random.key(0))
    assert not np.asarray(p2["weight"]).any() and (np.asarray(p2["bias"]) == 1).all()


def test_linear_jit_vmap_grad():
    layer = nn.Linear(5, 3)
    params, state = layer.init(jax.random.key(1))
    x = jnp.asarray(randn((4, 5)))
    batched, _ = jax.jit(layer.apply)(params, state, x)
    per_ex, _ = jax.vmap(layer.apply, in_axes=(None, None, 0))(params, state, x)
    np.testing.assert_allclose(per_ex, batched, rtol=1e-6, atol=1e-6)
    g = jax.grad(lambda p: layer.apply(p, state, x)[0].sum())(params)
    t = torch.nn.Linear(5, 3)
    t.load_state_dict({k: to_torch(v) for k, v in params.items()})
    t(to_torch(x)).sum().backward()
    assert_close(g["weight"], t.weight.grad)
    assert_close(g["bias"], t.bias.grad)


@pytest.mark.parametrize("start,end,shape", [
    (1, -1, (2, 3, 4, 5)), (0, -1, (2, 3, 4)), (1, 2, (2, 3, 4, 5)), (-3, -2, (2, 3, 4, 5)),
    (2, 2, (2, 3, 4)), (0, 0, ()), (1, -1, (3, 4)), (0, -1, (5,)),
])
def test_flatten_matches_torch(start, end, shape):
    x = randn(shape)
    out, _ = nn.Flatten(start, end).apply({}, {}, jnp.asarray(x))
    assert_close(out, torch.nn.Flatten(start, end)(to_torch(x)))


@pytest.mark.parametrize("dim,size,shape", [
    (1, (2, 3), (4, 6)), (-1, (2, -1), (4, 3, 6)), (0, (1, 4), (4, 5)), (1, (2, 2, 3), (2, 12, 1)),
])
def test_unflatten_matches_torch(dim, size, shape):
    x = randn(shape)
    out, _ = nn.Unflatten(dim, size).apply({}, {}, jnp.asarray(x))
    assert_close(out, torch.nn.Unflatten(dim, size)(to_torch(x)))


def test_identity_and_flatten_in_a_model_match_torch():
    layer = nn.Sequential(nn.Identity(3, foo=1), nn.Flatten(), nn.Linear(12, 2), nn.Unflatten(1, (1, 2)))
    module = torch.nn.Sequential(torch.nn.Identity(), torch.nn.Flatten(), torch.nn.Linear(12, 2),
                                 torch.nn.Unflatten(1, (1, 2)))
    check_layer(layer, module, randn((2, 3, 2, 2)))


def test_bad_arguments_and_inputs():
    with pytest.raises(ValueError, match="in_features"):
        nn.Linear(0, 3)
    with pytest.raises(TypeError, match="bias"):
        nn.Linear(2, 3, bias=1)
    layer = nn.Linear(4, 3)
    params, state = layer.init(jax.random.key(0))
    with pytest.raises(ValueError, match="in_features"):
        layer.apply(params, state, jnp.ones((2, 5)))
    with pytest.raises(ValueError, match="in_features"):
        F.linear(jnp.ones((2, 5)), jnp.ones((3, 4)))
    with pytest.raises(ValueError, match="weight"):
        F.linear(jnp.ones((2, 4)), jnp.ones((4,)))
    with pytest.raises(ValueError, match="bias"):
        F.linear(jnp.ones((2, 4)), jnp.ones((3, 4)), jnp.ones((4,)))
    with pytest.raises(IndexError, match="start_dim"):
        nn.Flatten(3).apply({}, {}, jnp.ones((2, 3)))
    with pytest.raises(IndexError, match="end_dim"):
        nn.Flatten(0, 2).apply({}, {}, jnp.ones((2, 3)))
    with pytest.raises(ValueError, match="start_dim cannot come after end_dim"):
        nn.Flatten(2, 1).apply({}, {}, jnp.ones((2, 3, 4)))
    with pytest.raises(TypeError, match="start_dim"):
        nn.Flatten(1.0)
    with pytest.raises(ValueError, match="unflattened_size"):
        nn.Unflatten(1, (2, 4)).apply({}, {}, jnp.ones((2, 6)))
    with pytest.raises(ValueError, match="unflattened_size"):
        nn.Unflatten(1, (-1, -1))
    with pytest.raises(TypeError, match="unflattened_size"):
        nn.Unflatten(1, 3)


class ConvHead(nn.Module):
    """A fully-convolutional classifier head: 1×1 conv to class maps, then the global spatial mean."""

    def __init__(self, channels, classes):
        super().__init__()
        self.conv = nn.Conv2d(channels, classes, 1)

    def forward(self, ctx, x):
        return ctx.conv(x).mean((-2, -1))


class TorchConvHead(torch.nn.Module):
    def __init__(self, channels, classes):
        super().__init__()
        self.conv = torch.nn.Conv2d(channels, classes, 1)

    def forward(self, x):
        return self.conv(x).mean((2, 3))


def test_conv1x1_global_mean_head_matches_torch():
    check_layer(ConvHead(4, 3), TorchConvHead(4, 3), randn((2, 4, 5, 6)))
    # unbatched input works too, so the head can be vmapped over examples
    head = ConvHead(4, 3)
    params, state = head.init(jax.random.key(0))
    x = jnp.asarray(randn((3, 4, 5, 5)))
    per_ex, _ = jax.vmap(head.apply, in_axes=(None, None, 0))(params, state, x)
    np.testing.assert_allclose(per_ex, head.apply(params, state, x)[0], rtol=1e-5, atol=1e-6)
