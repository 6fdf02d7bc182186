"""Sums and products of arrays as ops: ``add`` and ``mul``, as ``torch.add`` and ``torch.mul``.

A residual sum or a channel-attention scale written as one of these ops is
computed in the layout of the convolutions around it (:mod:`fcnn.backends`),
as the other per-element ops are; written as ``a + b`` it is channel-first.
The values are the same either way.
"""

from __future__ import annotations

import jax.numpy as jnp

from fcnn import backends


def _broadcast(input, other, where: str):
    shapes = (jnp.shape(input), jnp.shape(other))
    try:
        out = jnp.broadcast_shapes(*shapes)
    except ValueError:
        raise ValueError(f"{where}: input {shapes[0]} and other {shapes[1]} do not broadcast") from None
    return jnp.broadcast_to(input, out), jnp.broadcast_to(other, out)


def add(input, other):
    """``input + other`` with NumPy broadcasting; ``torch.add`` without ``alpha``."""
    return backends.pointwise(jnp.add, *_broadcast(input, other, "add"))


def mul(input, other):
    """``input * other`` with NumPy broadcasting; ``torch.mul``."""
    return backends.pointwise(jnp.multiply, *_broadcast(input, other, "mul"))
