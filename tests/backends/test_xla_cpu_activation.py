"""XLA:CPU's formulations of the per-element activations against the reference and torch."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from fcnn import backends
from fcnn import functional as F
from fcnn.backends.xla_cpu import activation
from oracle import assert_close, randn, to_torch

POLICIES = {"erf": backends.Policy("cpu", gelu_erf=True), "reference": backends.Policy("cpu", fast_paths=False)}


def _inputs(seed):
    # the normal bulk, the tails where erf and erfc differ most, and exact zeros
    x = np.concatenate([randn((2, 4, 8, 8), seed).ravel() * 3, np.linspace(-12, 12, 97, dtype=np.float32), [0, -0.0]])
    return x.astype(np.float32).reshape(1, 1, -1, 1)


@pytest.mark.parametrize("name", list(POLICIES))
def test_gelu_formulations_match_the_reference_and_torch(name):
    x = jnp.asarray(_inputs(0))
    grad = jax.grad(lambda v: jnp.sum(jnp.sin(F.gelu(v))))
    second = jax.grad(lambda v: jnp.sum(jax.grad(lambda u: jnp.sum(F.gelu(u)))(v)))
    with backends.use(POLICIES[name]):
        y, g, h = jax.jit(F.gelu)(x), jax.jit(grad)(x), jax.jit(second)(x)
        y_vmap = jax.vmap(F.gelu)(x)
    ref = jax.nn.gelu(x, approximate=False)
    assert_close(y, ref, 1e-6, 1e-6, "value vs reference")
    assert_close(y_vmap, ref, 1e-6, 1e-6, "vmap")
    assert_close(g, jax.grad(lambda v: jnp.sum(jnp.sin(jax.nn.gelu(v, approximate=False))))(x), 1e-5, 1e-6, "grad")
    assert_close(h, jax.grad(lambda v: jnp.sum(jax.grad(lambda u: jnp.sum(jax.nn.gelu(u, False)))(v)))(x),
                 1e-5, 1e-5, "second derivative")
    xt = to_torch(x, requires_grad=True)
    yt = torch.nn.functional.gelu(xt)
    torch.sin(yt).sum().backward()
    assert_close(y, yt.detach(), 1e-6, 1e-6, "value vs torch")
    assert_close(g, xt.grad, 1e-5, 1e-6, "grad vs torch")


def test_the_policy_picks_the_gelu_formula():
    x = jnp.ones((4,))
    for p, erfc in ((backends.Policy("cpu"), False), (backends.Policy("cpu", gelu_erf=False), True),
                    (backends.Policy("gpu"), True)):
        with backends.use(p):
            assert ("erfc" in str(jax.make_jaxpr(lambda v: F.gelu(v))(x))) == erfc, p
    assert (activation.gelu(x) == F.gelu(x)).all()
