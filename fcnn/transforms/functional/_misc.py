"""``normalize``, ``to_dtype`` and ``erase``, as ``torchvision.transforms.v2.functional``."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from fcnn.functional._compiled import compiled
from fcnn.transforms.functional._utils import image, is_float, max_value


@compiled
def normalize(inpt, mean, std, inplace: bool = False):
    """``(x − mean[c]) / std[c]`` per channel of a floating ``(..., C, H, W)`` image.

    ``mean``/``std``: a number or one value per channel (or one for all);
    ``inplace`` is accepted and ignored (arrays are immutable).
    """
    where = "normalize"
    x = image(inpt, where)
    if not is_float(x):
        raise TypeError(f"{where}: the image must be floating point (see to_dtype(..., scale=True)), "
                        f"got dtype {x.dtype}")
    c = x.shape[-3]
    stats = []
    for name, v in (("mean", mean), ("std", std)):
        a = np.asarray(v, np.float64).reshape(-1)
        if a.size not in (1, c):
            raise ValueError(f"{where}: {name} must have 1 or {c} (channels) values, got {a.size}")
        stats.append(a)
    if not np.all(stats[1]):
        raise ValueError(f"{where}: std evaluated to zero, leading to division by zero (std={std!r})")
    m, s = (jnp.asarray(a, x.dtype).reshape(-1, 1, 1) for a in stats)
    return (x - m) / s


def _bits(dtype) -> int:
    return {jnp.dtype(jnp.uint8): 8, jnp.dtype(jnp.int8): 7, jnp.dtype(jnp.int16): 15,
            jnp.dtype(jnp.uint16): 16, jnp.dtype(jnp.int32): 31}[jnp.dtype(dtype)]


@compiled
def to_dtype(inpt, dtype=jnp.float32, scale: bool = False):
    """Cast, and with ``scale=True`` map the value range between dtypes, as torchvision.

    uint8 → float multiplies by ``1/255``; float → uint8 multiplies by
    ``255.999`` and truncates (so values in [0, 1] spread evenly over 0…255);
    integer → integer shifts bits. Without ``scale`` it is a plain cast.
    """
    where = "to_dtype"
    x = image(inpt, where)
    try:
        dtype = jnp.dtype(dtype)
    except TypeError:
        raise TypeError(f"{where}: dtype must be a numpy/jax dtype, got {dtype!r}") from None
    if x.dtype == dtype:
        return x
    if not scale:
        return x.astype(dtype)
    float_out = jnp.issubdtype(dtype, jnp.floating)
    if is_float(x):
        if float_out:
            return x.astype(dtype)
        if not jnp.issubdtype(dtype, jnp.integer):
            raise TypeError(f"{where}: cannot scale to dtype {dtype}")
        if dtype.itemsize >= 4:
            raise TypeError(f"{where}: the conversion from {x.dtype} to {dtype} cannot be performed safely")
        return (x * (float(jnp.iinfo(dtype).max) + 1.0 - 1e-3)).astype(dtype)
    if float_out:
        return x.astype(dtype) * (1.0 / max_value(x.dtype))
    shift = _bits(x.dtype) - _bits(dtype)
    if shift > 0:
        return jnp.right_shift(x, shift).astype(dtype)
    return jnp.left_shift(x.astype(dtype), -shift)


@compiled
def erase(inpt, i, j, h, w, v, inplace: bool = False):
    """Set the ``h × w`` box at row ``i``, column ``j`` to ``v``, as torchvision.

    ``v`` broadcasts to the box ``(..., C, h, w)`` (e.g. ``(C, 1, 1)`` per-channel
    values). The box may be traced (``RandomErasing`` under ``jit``); then ``v``
    must broadcast to the whole image ``(..., C, H, W)``, and it is taken where
    the box is. ``v`` is cast to the image dtype (uint8 truncates, as torch).
    ``inplace`` is accepted and ignored.
    """
    where = "erase"
    x = image(inpt, where)
    v = jnp.asarray(v).astype(x.dtype)
    H, W = x.shape[-2:]
    static = all(isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in (i, j, h, w))
    if static:
        if min(i, j, h, w) < 0:
            raise ValueError(f"{where}: the box (i={i}, j={j}, h={h}, w={w}) must be non-negative")
        box = x[..., i:i + h, j:j + w]
        try:
            fill = jnp.broadcast_to(v, box.shape)
        except ValueError:
            raise ValueError(f"{where}: v of shape {tuple(v.shape)} does not broadcast to the box "
                             f"{tuple(box.shape)}") from None
        return x.at[..., i:i + h, j:j + w].set(fill)
    try:
        fill = jnp.broadcast_to(v, x.shape)
    except ValueError:
        raise ValueError(f"{where}: with a traced box, v (shape {tuple(v.shape)}) must broadcast to the image "
                         f"{tuple(x.shape)}") from None
    rows, cols = jnp.arange(H), jnp.arange(W)
    inside = ((rows >= i) & (rows < i + h))[:, None] & ((cols >= j) & (cols < j + w))[None, :]
    return jnp.where(inside, fill, x)
