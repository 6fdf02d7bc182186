"""fcnn.nn.init draws flat (fast to compile) but must give exactly jax.random's values for the shape."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from fcnn import functional as F
from fcnn.nn import init
from oracle import backend_compiles

# the reference draws on multi-dimensional shapes are what compiles slowly, so few shapes, several keys
SHAPES = [(0, 3), (5, 7), (4, 3, 5, 5)]


def _initialisers(shape):
    fan_in, fan_out = init.calculate_fan_in_and_fan_out(shape)
    bound, std = math.sqrt(3.0 / max(fan_in, 1)), math.sqrt(2.0 / max(fan_out, 1))
    return [
        (init.kaiming_uniform(a=1.0), lambda k: jax.random.uniform(k, shape, jnp.float32, -bound, bound)),
        (init.kaiming_normal(mode="fan_out", nonlinearity="relu"), lambda k: std * jax.random.normal(k, shape)),
        (init.uniform(-0.3, 0.7), lambda k: jax.random.uniform(k, shape, jnp.float32, -0.3, 0.7)),
        (init.normal(0.5, 2.0), lambda k: 0.5 + 2.0 * jax.random.normal(k, shape)),
        (init.trunc_normal(0.1, 0.5, -0.4, 0.9), lambda k: 0.1 + 0.5 * jax.random.truncated_normal(k, -1.0, 1.6, shape)),
    ]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@settings(max_examples=3, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_random_initialisers_equal_jax_random_on_the_shape(shape, seed):
    key = jax.random.key(seed)
    for fn, reference in _initialisers(shape):
        got = fn(key, shape, jnp.float32)
        assert got.shape == shape and got.dtype == jnp.float32
        np.testing.assert_allclose(got, reference(key), rtol=1e-6, atol=1e-7)


def test_initialisers_trace_under_jit_and_vmap():
    keys = jax.random.split(jax.random.key(0), 3)
    fn = init.kaiming_normal()
    stacked = jax.jit(jax.vmap(lambda k: fn(k, (4, 3, 5, 5))))(keys)
    for i in range(3):
        np.testing.assert_allclose(stacked[i], fn(keys[i], (4, 3, 5, 5)), rtol=1e-6)


@pytest.mark.parametrize("shape, p", [((3, 4), 0.3), ((2, 3, 5, 5), 0.6)])
@settings(max_examples=3, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_dropout_mask_is_jax_bernoulli_on_the_shape(shape, p, seed):
    key = jax.random.key(seed)
    x = jnp.ones(shape)
    keep = jax.random.bernoulli(key, 1.0 - p, shape)
    np.testing.assert_array_equal(F.dropout(x, p, key=key) != 0, keep)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.int32])
def test_fills_are_the_same_eager_and_traced(dtype):
    key = jax.random.key(0)
    for fn, value in ((init.zeros, 0), (init.ones, 1), (init.constant(3), 3)):
        eager = fn(key, (2, 3), dtype)
        traced = jax.jit(lambda k: fn(k, (2, 3), dtype))(key)
        assert eager.dtype == traced.dtype == dtype and not eager.weak_type
        np.testing.assert_array_equal(eager, traced)
        np.testing.assert_array_equal(eager, np.full((2, 3), value))
    # traced, a fill is an operation of the program, not a constant captured from NumPy
    jaxpr = jax.make_jaxpr(lambda k: init.ones(k, (64, 64)))(key)
    assert not jaxpr.consts and "broadcast_in_dim" in str(jaxpr)


def test_an_eager_init_compiles_no_program_per_parameter_shape():
    from fcnn import nn

    def net(widths):
        layers = []
        for c_in, c_out in zip(widths, widths[1:]):
            layers += [nn.Conv2d(c_in, c_out, 3), nn.BatchNorm2d(c_out), nn.LayerNorm([c_out, 5, 5]), nn.PReLU(c_out)]
        return nn.Sequential(*layers)

    net((3, 4, 6)).init(jax.random.key(0))  # compiles the draws every layer shares
    with backend_compiles() as compiles:
        params, state = net((3, 5, 7, 9, 11, 13)).init(jax.random.key(1))  # every parameter shape new
    assert compiles == []
    assert params["8"]["weight"].shape == (9, 7, 3, 3) and state["9"]["running_var"].shape == (9,)
