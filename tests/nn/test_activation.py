import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from fcnn import functional as F, nn
from oracle import assert_close, check_layer, randn, to_torch

T = torch.nn

# (fcnn layer, torch module) pairs; all parameter-free except PReLU.
LAYERS = {
    "relu": (lambda: nn.ReLU(), lambda: T.ReLU()),
    "leaky_relu": (lambda: nn.LeakyReLU(0.2), lambda: T.LeakyReLU(0.2)),
    "leaky_default": (lambda: nn.LeakyReLU(), lambda: T.LeakyReLU()),
    "elu": (lambda: nn.ELU(1.5), lambda: T.ELU(1.5)),
    "tanh": (lambda: nn.Tanh(), lambda: T.Tanh()),
    "sigmoid": (lambda: nn.Sigmoid(), lambda: T.Sigmoid()),
    "gelu": (lambda: nn.GELU(), lambda: T.GELU()),
    "gelu_tanh": (lambda: nn.GELU("tanh"), lambda: T.GELU("tanh")),
    "silu": (lambda: nn.SiLU(), lambda: T.SiLU()),
    "relu6": (lambda: nn.ReLU6(), lambda: T.ReLU6()),
    "hardswish": (lambda: nn.Hardswish(), lambda: T.Hardswish()),
    "hardsigmoid": (lambda: nn.Hardsigmoid(), lambda: T.Hardsigmoid()),
    "softmax1": (lambda: nn.Softmax(1), lambda: T.Softmax(1)),
    "softmax_last": (lambda: nn.Softmax(-1), lambda: T.Softmax(-1)),
    "log_softmax": (lambda: nn.LogSoftmax(1), lambda: T.LogSoftmax(1)),
    "prelu": (lambda: nn.PReLU(), lambda: T.PReLU()),
    "prelu_c": (lambda: nn.PReLU(3, init=0.1), lambda: T.PReLU(3, init=0.1)),
}

# the kinks, plus values around them and in the saturated regions
KINKS = np.array([-6.0, -3.0, -1.0, 0.0, 1.0, 3.0, 6.0, 7.0, -2.5, 2.5, 5.5, -0.5], np.float32)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_matches_torch_on_random_inputs(name):
    make, make_t = LAYERS[name]
    x = 3 * randn((2, 3, 4, 5), seed=len(name))
    check_layer(make(), make_t(), x)


@pytest.mark.parametrize("name", sorted(k for k in LAYERS if not k.startswith(("softmax", "log_softmax", "prelu_c"))))
def test_gradients_at_the_kinks_equal_torch(name):
    make, make_t = LAYERS[name]
    check_layer(make(), make_t(), KINKS.reshape(3, 4))


def test_prelu_per_channel_at_kinks_and_1d_input():
    x = KINKS.reshape(1, 3, 4)
    check_layer(nn.PReLU(3), T.PReLU(3), x)
    # torch counts a 1-D input as a single channel: only num_parameters=1 works there.
    check_layer(nn.PReLU(init=0.3), T.PReLU(init=0.3), KINKS)
    with pytest.raises(ValueError, match="channel size = 1"):
        nn.PReLU(12).apply({"weight": jnp.ones(12)}, {}, jnp.asarray(KINKS))
    with pytest.raises(RuntimeError, match="channel size = 1"):
        T.PReLU(12)(to_torch(KINKS))
    # unbatched (C, H, W) uses dim 1 as torch does: 4 channels here
    check_layer(nn.PReLU(4), T.PReLU(4), randn((3, 4, 2)))


@given(st.sampled_from(sorted(LAYERS)), st.sampled_from([(5, 3), (1, 3, 7), (2, 3, 1, 2)]), st.floats(0.1, 10.0))
@settings(max_examples=10)
def test_layers_match_torch_over_shapes_and_scales(name, shape, scale):
    make, make_t = LAYERS[name]
    check_layer(make(), make_t(), scale * randn(shape, seed=len(shape)))


@pytest.mark.parametrize("fn,ref,kw", [
    (F.relu, torch.nn.functional.relu, {}),
    (F.leaky_relu, torch.nn.functional.leaky_relu, {"negative_slope": 0.3}),
    (F.elu, torch.nn.functional.elu, {"alpha": 0.7}),
    (F.gelu, torch.nn.functional.gelu, {"approximate": "tanh"}),
    (F.softmax, torch.nn.functional.softmax, {"dim": 0}),
    (F.log_softmax, torch.nn.functional.log_softmax, {"dim": 1, "dtype": torch.float64}),
    (F.relu6, torch.nn.functional.relu6, {}),
    (F.hardswish, torch.nn.functional.hardswish, {}),
    (F.hardsigmoid, torch.nn.functional.hardsigmoid, {}),
    (F.silu, torch.nn.functional.silu, {}),
])
def test_functional_matches_torch(fn, ref, kw):
    x = 4 * randn((3, 5))
    jkw = {k: (jnp.float32 if v is torch.float64 else v) for k, v in kw.items()}
    # fcnn keeps float32 without x64; compare against torch's float64 result at float32 tolerance
    assert_close(fn(jnp.asarray(x), **jkw), ref(to_torch(x), **kw).float())


def test_nan_propagates_and_large_inputs_have_finite_gradients():
    x = jnp.asarray([jnp.nan, -100.0, 100.0])
    for fn, tfn in [(F.relu, torch.relu), (F.relu6, torch.nn.functional.relu6), (F.elu, torch.nn.functional.elu),
                    (F.leaky_relu, torch.nn.functional.leaky_relu), (F.hardswish, torch.nn.functional.hardswish)]:
        assert_close(fn(x), tfn(to_torch(x)))
    g = jax.grad(lambda v: F.elu(v).sum())(jnp.asarray([-100.0, 100.0, 1e4]))
    assert np.isfinite(np.asarray(g)).all()


def test_jit_and_vmap():
    layer = nn.PReLU(3)
    params, state = layer.init(jax.random.key(0))
    x = jnp.asarray(randn((4, 3, 5)))
    batched, _ = jax.jit(layer.apply)(params, state, x)
    per_example, _ = jax.vmap(layer.apply, in_axes=(None, None, 0))(params, state, x[:, None])
    np.testing.assert_allclose(per_example[:, 0], batched, rtol=1e-6)
    sm = nn.Softmax(-1)
    np.testing.assert_allclose(jax.vmap(lambda v: sm.apply({}, {}, v)[0])(x), sm.apply({}, {}, x)[0], rtol=1e-6)


def test_bad_arguments():
    with pytest.raises(TypeError, match="dim"):
        nn.Softmax()
    with pytest.raises(TypeError, match="dim"):
        F.softmax(jnp.ones(3))
    with pytest.raises(IndexError, match="dim"):
        F.log_softmax(jnp.ones((2, 3)), dim=2)
    with pytest.raises(ValueError, match="approximate"):
        nn.GELU("erf")
    with pytest.raises(TypeError, match="negative_slope"):
        nn.LeakyReLU("0.1")
    with pytest.raises(ValueError, match="num_parameters"):
        nn.PReLU(0)
    layer = nn.PReLU(3)
    params, state = layer.init(jax.random.key(0))
    with pytest.raises(ValueError, match="channel size"):
        layer.apply(params, state, jnp.ones((2, 4, 5)))
    with pytest.raises(TypeError, match="floating"):
        F.relu(jnp.ones(3, jnp.int32))
