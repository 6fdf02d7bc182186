"""F.add and F.mul against torch.add and torch.mul: values and gradients of both operands, with broadcasting,
on shapes below and above the size where the backend computes them channels-last."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from fcnn import functional as F

SHAPES = [((2, 3, 4, 5), (2, 3, 4, 5)), ((2, 3, 4, 5), (2, 3, 1, 1)), ((1, 3, 1, 1), (2, 3, 4, 5)),
          ((2, 8, 32, 32), (2, 8, 32, 32)), ((2, 8, 32, 32), (2, 8, 1, 1)), ((4, 7), (7,)), ((5,), ())]


@pytest.mark.parametrize("name", ["add", "mul"])
@pytest.mark.parametrize("a_shape, b_shape", SHAPES)
def test_values_and_gradients_match_torch(name, a_shape, b_shape):
    rs = np.random.RandomState(len(a_shape) + 7 * len(b_shape))
    a, b = rs.standard_normal(a_shape).astype(np.float32), rs.standard_normal(b_shape).astype(np.float32)
    ta, tb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    ty = getattr(torch, name)(ta, tb)
    g = rs.standard_normal(tuple(ty.shape)).astype(np.float32)
    ty.backward(torch.tensor(g))
    y, vjp = jax.vjp(jax.jit(getattr(F, name)), jnp.asarray(a), jnp.asarray(b))
    ga, gb = vjp(jnp.asarray(g))
    np.testing.assert_allclose(np.asarray(y), ty.detach().numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.asarray(ga), ta.grad.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(gb), tb.grad.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["add", "mul"])
def test_shapes_that_do_not_broadcast_are_refused_naming_the_op(name):
    with torch.no_grad(), pytest.raises(RuntimeError):
        getattr(torch, name)(torch.zeros(2, 3), torch.zeros(4))
    with pytest.raises(ValueError, match=rf"{name}: input \(2, 3\) and other \(4,\) do not broadcast"):
        getattr(F, name)(jnp.zeros((2, 3)), jnp.zeros(4))
