"""Sums, products and concatenations of arrays as ops: ``add``, ``mul`` and ``cat``, as ``torch.add``,
``torch.mul`` and ``torch.cat``.

A residual sum, a channel-attention scale or a channel concatenation (DenseNet)
written as one of these ops is computed in the layout of the convolutions
around it (:mod:`fcnn.backends`), as the other per-element ops are; written as
``a + b`` or ``jnp.concatenate`` it is channel-first. The values are the same
either way.
"""

from __future__ import annotations

import jax.numpy as jnp

from fcnn import _checks, backends


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


def cat(tensors, dim: int = 0):
    """``torch.cat``: ``tensors`` joined along ``dim``; every size but ``dim``'s must match.

    The dtypes promote as ``jnp.concatenate`` promotes them (torch's rules for
    the usual mixes). Joining 3-D or 4-D arrays along the channels
    (``dim=1``) is done in the layout the backend picks for their
    convolutions. torch's legacy skipping of 1-D empty tensors is not
    supported: every array must have the first one's number of dimensions.
    """
    where = "cat"
    if isinstance(tensors, (str, bytes)) or not isinstance(tensors, (list, tuple)) or not tensors:
        raise TypeError(f"{where}: tensors must be a non-empty list or tuple of arrays, got {tensors!r:.80}")
    arrays = [_checks.as_array(t, f"tensors[{i}]", where) for i, t in enumerate(tensors)]
    ndim = arrays[0].ndim
    if ndim == 0:
        raise ValueError(f"{where}: zero-dimensional tensors[0] cannot be concatenated")
    dim = _checks.dim_index(dim, ndim, "dim", where)
    for i, a in enumerate(arrays[1:], 1):
        if a.ndim != ndim:
            raise ValueError(f"{where}: tensors must have the same number of dimensions: tensors[0] has {ndim}, "
                             f"tensors[{i}] has {a.ndim}")
        if any(x != y for d, (x, y) in enumerate(zip(a.shape, arrays[0].shape)) if d != dim):
            raise ValueError(f"{where}: sizes must match except in dimension {dim}: tensors[0] has shape "
                             f"{tuple(arrays[0].shape)}, tensors[{i}] has {tuple(a.shape)}")
    if dim == 1 and ndim in (3, 4):
        joined = arrays[0].shape[:1] + (sum(a.shape[1] for a in arrays),) + arrays[0].shape[2:]
        if backends.policy().channels_last(joined):
            return backends.to_channels_first(jnp.concatenate([backends.to_channels_last(a) for a in arrays], -1))
    return jnp.concatenate(arrays, dim)
