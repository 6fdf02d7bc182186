"""``pad``: torch.nn.functional.pad for JAX arrays."""

from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp
import numpy as np

from fcnn import _checks
from fcnn.functional._compiled import compiled

_JNP_MODE = {"constant": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


@compiled
def pad(input, pad: Sequence[int], mode: str = "constant", value: float | None = None):
    """Pad (or, with negative amounts in ``constant`` mode, crop) the trailing dimensions.

    Same as ``torch.nn.functional.pad``: ``pad`` lists ``(left, right)`` pairs
    starting from the **last** dimension, so ``(1, 1, 2, 0)`` pads the last
    dimension by 1 on both sides and the one before it by 2 at the front.

    Modes: ``'constant'`` (fill with ``value``, default 0), ``'reflect'``
    (mirror without repeating the edge; each amount < that dimension's size),
    ``'replicate'`` (repeat the edge) and ``'circular'`` (wrap around; each
    amount <= that dimension's size). Non-constant modes pad at most the last
    three dimensions, of an input with one or two leading (batch, channel)
    dimensions more, as torch requires.
    """
    where = "pad"
    x = _checks.as_array(input, "input", where)
    if isinstance(pad, int) or len(pad) % 2 != 0:
        raise ValueError(f"{where}: Padding length must be divisible by 2, got pad={pad!r}")
    # ints, or integer array elements (a NumPy pad is traced by the compiled op, then run uncompiled)
    if not all(not isinstance(p, (bool, np.bool_)) and jnp.issubdtype(getattr(p, "dtype", type(p)), jnp.integer)
               for p in pad):
        raise TypeError(f"{where}: pad must be a tuple of ints, got {tuple(pad)!r}")
    pad = [int(p) for p in pad]
    n = len(pad) // 2
    if n > x.ndim:
        raise ValueError(
            f"{where}: Padding length should be less than or equal to two times the input dimension "
            f"but got padding length {len(pad)} and input of dimension {x.ndim}"
        )
    _checks.one_of(mode, tuple(_JNP_MODE), "mode", where)
    if mode != "constant":
        if value not in (None, 0, 0.0):
            raise ValueError(f"{where}: Padding mode \"{mode}\" doesn't take in value argument, got value={value!r}")
        if n > 3 or x.ndim not in (n + 1, n + 2):
            raise ValueError(
                f"{where}: mode {mode!r} pads the last 1-3 dimensions of a {n + 1}D or {n + 2}D input; "
                f"got pad of length {len(pad)} for input of shape {tuple(x.shape)}"
            )
    widths = [(0, 0)] * x.ndim
    for i in range(n):
        dim = x.ndim - 1 - i
        lo, hi = pad[2 * i], pad[2 * i + 1]
        size = x.shape[dim]
        if mode == "reflect" and (lo >= size or hi >= size):
            raise ValueError(
                f"{where}: Padding size should be less than the corresponding input dimension, "
                f"but got: padding ({lo}, {hi}) at dimension {dim} of input {tuple(x.shape)}"
            )
        if mode == "circular" and (lo > size or hi > size):
            raise ValueError(
                f"{where}: Padding value causes wrapping around more than once: "
                f"padding ({lo}, {hi}) at dimension {dim} of input {tuple(x.shape)}"
            )
        if mode != "constant" and (lo < 0 or hi < 0):
            raise ValueError(f"{where}: negative padding ({lo}, {hi}) is only allowed in 'constant' mode")
        if size + lo + hi < 0:
            raise ValueError(
                f"{where}: the input size {size} at dimension {dim} plus padding ({lo}, {hi}) is negative"
            )
        widths[dim] = (lo, hi)
    # Negative amounts crop: slice first, then pad the non-negative remainder.
    slices = tuple(slice(max(-lo, 0), x.shape[d] - max(-hi, 0)) for d, (lo, hi) in enumerate(widths))
    x = x[slices]
    widths = [(max(lo, 0), max(hi, 0)) for lo, hi in widths]
    if all(w == (0, 0) for w in widths):
        return x
    if mode == "constant":
        return jnp.pad(x, widths, mode="constant", constant_values=0 if value is None else value)
    return jnp.pad(x, widths, mode=_JNP_MODE[mode])
