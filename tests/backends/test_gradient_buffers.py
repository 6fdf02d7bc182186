"""DenseNet's gradient buffers (:attr:`fcnn.backends.Policy.dense_gradient_buffers`) against torch and the reference.

:func:`fcnn.backends.xla_cpu.buffers.gradient_buffer` is the identity whose
cotangent passes through a conditional, so that XLA:CPU computes the sum of a
DenseNet feature map's gradients once instead of in each of its consumers.
Held here: values and derivatives of the identity in every mode (including
the branch taken for a NaN), that XLA keeps the conditional, and torchvision's
dense block with the buffers on and off.
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from fcnn import backends
from fcnn.backends.xla_cpu.buffers import gradient_buffer
from fcnn.models import densenet
from oracle import assert_close, check_layer, equations, randn
from torchvision_cpu import import_torchvision


def _loss(x, y):
    a = gradient_buffer(x)
    return jnp.sum(jnp.tanh(a) * y) + jnp.sum(jnp.sin(a[:, :2]) ** 2)


def _reference_loss(x, y):
    return jnp.sum(jnp.tanh(x) * y) + jnp.sum(jnp.sin(x[:, :2]) ** 2)


def _same(got, want, what):
    """Equal to float rounding, with NaNs in the same places (``assert_allclose`` compares NaNs as equal)."""
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        assert_close(a, b, 1e-6, 1e-6, what)


@pytest.mark.parametrize("first", [0.5, np.nan])
def test_the_gradient_buffer_is_the_identity_in_every_mode(first):
    """Gradient, JVP, Hessian and per-example gradients equal those without the buffer; a NaN first element
    (the conditional's other branch) changes nothing but that element's own derivatives."""
    x, y, t = randn((3, 4), seed=1), randn((3, 4), seed=2), randn((3, 4), seed=3)
    x[0, 0] = first
    x, y, t = jnp.asarray(x), jnp.asarray(y), jnp.asarray(t)
    for fn, name in ((jax.grad, "gradient"), (jax.hessian, "hessian")):
        _same(jax.jit(fn(_loss))(x, y), jax.jit(fn(_reference_loss))(x, y), name)
    _same(jax.jit(lambda a, d: jax.jvp(_loss, (a, y), (d, y)))(x, t),
          jax.jit(lambda a, d: jax.jvp(_reference_loss, (a, y), (d, y)))(x, t), "jvp")
    _same(jax.jit(jax.vmap(jax.grad(_loss), in_axes=(0, None)))(x[:, None], y[:1]),
          jax.vmap(jax.grad(_reference_loss), in_axes=(0, None))(x[:, None], y[:1]), "per-example gradients")
    if np.isnan(first):  # the NaN's own derivatives are NaN, the others' finite
        grad = jax.jit(jax.grad(_loss))(x, y)
        assert np.isnan(grad[0, 0]) and np.isfinite(np.delete(np.asarray(grad).ravel(), 0)).all()


def test_xla_keeps_the_gradient_buffers_conditional():
    """The cotangent's conditional survives XLA's simplification (two trivial branches would become a select,
    and the sum would be fused into its consumers again)."""
    x, y = jnp.asarray(randn((8, 16), seed=4)), jnp.asarray(randn((8, 16), seed=5))
    hlo = jax.jit(jax.grad(_loss)).lower(x, y).compile().as_text()
    assert len(re.findall(r"= \(f32\[8,16\][^)]*\) conditional\(", hlo)) == 1


def _torch_block(layers, cin, bn_size, growth):
    tv = import_torchvision()
    return tv.models.densenet._DenseBlock(layers, cin, bn_size, growth, drop_rate=0.0)


@pytest.mark.parametrize("buffers", [True, False])
@settings(max_examples=4, deadline=None)
@given(layers=st.integers(1, 3), cin=st.integers(1, 6), growth=st.integers(1, 4), batch=st.integers(1, 3),
       size=st.integers(2, 6), seed=st.integers(0, 99))
def test_a_dense_block_with_and_without_gradient_buffers_matches_torch(buffers, layers, cin, growth, batch, size,
                                                                       seed):
    """torchvision's ``_DenseBlock`` in training: outputs, input and parameter gradients, running statistics."""
    block = densenet.DenseBlock(layers, cin, 2, growth, 0.0)
    module = _torch_block(layers, cin, 2, growth)
    with backends.use(backends.Policy("cpu", channels_last_min_elements=0, dense_gradient_buffers=buffers)):
        check_layer(block, module, randn((batch, cin, size, size), seed=seed), train=True, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("buffers", [True, False])
def test_a_dense_blocks_maps_pass_through_the_buffers_where_the_policy_says(buffers):
    """With the field on, the block's input and each layer's map (1 + 3) each have one conditional in the gradient's
    program (the block's convolutions have none of their own); with it off, none."""
    block = densenet.DenseBlock(3, 4, 2, 3, 0.0)
    params, state = block.init(jax.random.key(0))
    x = jnp.asarray(randn((2, 4, 5, 5), seed=6))

    def loss(p, a):
        return jnp.sum(block.apply(p, state, a, train=True)[0] ** 2)

    with backends.use(backends.Policy("cpu", channels_last_min_elements=0, dense_gradient_buffers=buffers)):
        jaxpr = jax.make_jaxpr(jax.grad(loss, (0, 1)))(params, x).jaxpr
    # (JAX's partial evaluation adds a scalar conditional per buffer, the factor of the second branch)
    maps = [e for e in equations(jaxpr, "cond") if any(v.aval.shape for v in e.outvars)]
    assert len(maps) == (4 if buffers else 0)


@pytest.mark.parametrize("buffers", [True, False])
def test_a_dense_block_of_an_empty_batch_has_empty_gradients(buffers):
    block = densenet.DenseBlock(2, 4, 2, 3, 0.0)
    params, state = block.init(jax.random.key(0))
    x = jnp.zeros((0, 4, 5, 5))

    def loss(p, a):
        return jnp.sum(block.apply(p, state, a, train=True)[0])

    with backends.use(backends.Policy("cpu", dense_gradient_buffers=buffers)):
        grads, gx = jax.jit(jax.grad(loss, (0, 1)))(params, x)
    assert gx.shape == x.shape
    assert all(np.all(np.asarray(g) == 0) for g in jax.tree.leaves(grads))
