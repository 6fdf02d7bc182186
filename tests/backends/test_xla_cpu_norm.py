"""Batch norm's multiply-add training output (``Policy.batch_norm_multiply_add``, opt-in) against the reference and torch."""

import jax
import jax.numpy as jnp
import numpy as np
import torch
from hypothesis import given, settings, strategies as st

from fcnn import backends
from fcnn import functional as F
from oracle import assert_close, randn, to_torch

MULTIPLY_ADD = backends.Policy("cpu", batch_norm_multiply_add=True)
REFERENCE = backends.Policy("cpu")


def _bn(x, w, b):
    return F.batch_norm(x, None, None, w, b, training=True, eps=1e-3)[0]


def _derivatives(policy, x, w, b, t):
    """Value, the three gradients of a non-linear loss, a JVP, a second derivative and a vmap under ``policy``."""
    def loss(x, w, b):
        return jnp.sum(jnp.sin(_bn(x, w, b)) * t)

    with backends.use(policy):
        value = jax.jit(_bn)(x, w, b)
        grads = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(x, w, b)
        _, tangent = jax.jit(lambda x: jax.jvp(lambda v: _bn(v, w, b), (x,), (t,)))(x)
        second = jax.jit(jax.grad(lambda x: jnp.sum(jax.grad(loss)(x, w, b) ** 2)))(x)
        mapped = jax.jit(jax.vmap(_bn, in_axes=(0, None, None)))(jnp.stack([x, 2 * x]), w, b)
    return value, grads, tangent, second, mapped


@settings(max_examples=12, deadline=None)
@given(shape=st.sampled_from([(4, 3), (2, 5, 7), (3, 4, 5, 6), (2, 3, 2, 3, 4), (8, 16, 32, 32)]),
       offset=st.sampled_from([0.0, 1000.0]), affine=st.booleans(), seed=st.integers(0, 2**16))
def test_multiply_add_matches_the_reference_and_torch(shape, offset, affine, seed):
    x = jnp.asarray(randn(shape, seed) + offset)
    c = shape[1]
    w = jnp.asarray(randn((c,), seed + 1) + 1) if affine else None
    b = jnp.asarray(randn((c,), seed + 2)) if affine else None
    t = jnp.asarray(randn(shape, seed + 3))
    ours = _derivatives(MULTIPLY_ADD, x, w, b, t)
    ref = _derivatives(REFERENCE, x, w, b, t)
    names = ("value", "grads", "jvp", "second derivative", "vmap")
    for name, a, e in zip(names, ours, ref):
        for i, (u, v) in enumerate(zip(jax.tree.leaves(a), jax.tree.leaves(e))):
            assert_close(u, v, 2e-4, 2e-4, f"{name}[{i}] vs reference")
    xt = to_torch(x, requires_grad=True)
    wt, bt = (to_torch(v, requires_grad=True) if affine else None for v in (w, b))
    yt = torch.nn.functional.batch_norm(xt, None, None, wt, bt, training=True, eps=1e-3)
    (torch.sin(yt) * to_torch(t)).sum().backward()
    value, grads = ours[0], ours[1]
    # float32 holds an input near 1000 to 6e-5, which the normalisation scales up (the reference's error too)
    tol = 1e-4 if offset == 0 else 1e-3
    assert_close(value, yt, tol, tol, "value vs torch")
    assert_close(grads[0], xt.grad, 10 * tol, 10 * tol, "input gradient vs torch")
    if affine:
        assert_close(grads[1], wt.grad, 10 * tol, 10 * tol, "weight gradient vs torch")
        assert_close(grads[2], bt.grad, 10 * tol, 10 * tol, "bias gradient vs torch")


def test_the_policy_picks_the_formulation():
    x, w = jnp.asarray(randn((4, 3, 5, 5))), jnp.ones((3,))
    for p, multiply_add in ((MULTIPLY_ADD, True), (REFERENCE, False), (backends.Policy("cpu", fast_paths=False), False),
                            (backends.Policy("gpu"), False)):
        with backends.use(p):
            jaxpr = str(jax.make_jaxpr(lambda v: _bn(v, w, w))(x))
        # the reference subtracts the mean of the shifted input from every element: one more full-size sub
        assert (jaxpr.count("f32[4,3,5,5] = sub") == 1) == multiply_add, (p, jaxpr)
    assert np.isfinite(np.asarray(_bn(x, w, w))).all()
