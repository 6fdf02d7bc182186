"""fcnn.nn.init draws flat (fast to compile) but must give exactly jax.random's values for the shape."""

import math

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings, strategies as st

from fcnn import functional as F
from fcnn.nn import init

shapes = st.lists(st.integers(0, 9), min_size=2, max_size=5).map(tuple)


@settings(max_examples=12, deadline=None)
@given(shapes, st.integers(0, 2**31 - 1))
def test_random_initialisers_equal_jax_random_on_the_shape(shape, seed):
    key = jax.random.key(seed)
    if math.prod(shape) and shape[0] and shape[1]:
        fan_in, fan_out = init.calculate_fan_in_and_fan_out(shape)
        bound, std = math.sqrt(3.0 / fan_in), math.sqrt(2.0 / fan_out)
        cases = [
            (init.kaiming_uniform(a=1.0), jax.random.uniform(key, shape, jnp.float32, -bound, bound)),
            (init.kaiming_normal(mode="fan_out", nonlinearity="relu"), std * jax.random.normal(key, shape)),
        ]
    else:
        cases = []
    cases += [
        (init.uniform(-0.3, 0.7), jax.random.uniform(key, shape, jnp.float32, -0.3, 0.7)),
        (init.normal(0.5, 2.0), 0.5 + 2.0 * jax.random.normal(key, shape)),
        (init.trunc_normal(0.1, 0.5, -0.4, 0.9), 0.1 + 0.5 * jax.random.truncated_normal(key, -1.0, 1.6, shape)),
    ]
    for fn, expected in cases:
        got = fn(key, shape, jnp.float32)
        assert got.shape == shape and got.dtype == jnp.float32
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)


def test_initialisers_trace_under_jit_and_vmap():
    keys = jax.random.split(jax.random.key(0), 3)
    fn = init.kaiming_normal()
    stacked = jax.jit(jax.vmap(lambda k: fn(k, (4, 3, 5, 5))))(keys)
    for i in range(3):
        np.testing.assert_allclose(stacked[i], fn(keys[i], (4, 3, 5, 5)), rtol=1e-6)


@given(st.sampled_from([(3, 4), (2, 3, 5, 5), (2, 2, 3, 4, 4)]), st.floats(0.1, 0.9))
@settings(max_examples=6, deadline=None)
def test_dropout_mask_is_jax_bernoulli_on_the_shape(shape, p):
    key = jax.random.key(7)
    x = jnp.ones(shape)
    keep = jax.random.bernoulli(key, 1.0 - p, shape)
    np.testing.assert_array_equal(F.dropout(x, p, key=key) != 0, keep)
