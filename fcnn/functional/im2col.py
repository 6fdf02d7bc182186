"""``unfold`` and ``fold``: torch.nn.functional's sliding-block extraction (im2col) and its adjoint (col2im).

``unfold`` copies every ``kernel_size`` block of a ``(N, C, H, W)`` input into
a column; ``fold`` sums columns back into an image, adding where blocks
overlap. ``fold`` is the linear transpose of ``unfold`` (torch documents the
same relation), so here it is computed as exactly that with
``jax.linear_transpose``, which keeps the two consistent by construction.
Both are exact: blocks are gathered by strided slicing, never by a
convolution with an identity kernel, which would turn an ``inf`` into NaNs
in the neighbouring columns and round on accelerators that multiply in
reduced precision.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from fcnn import _checks
from fcnn.functional._compiled import compiled


def fold_args(kernel_size, dilation, padding, stride, where):
    """``fold``/``unfold``'s window arguments as checked pairs ``(kernel_size, dilation, padding, stride)``."""
    k = _checks.ntuple(kernel_size, 2, "kernel_size", where)
    d = _checks.ntuple(dilation, 2, "dilation", where)
    p = _checks.ntuple(padding, 2, "padding", where)
    s = _checks.ntuple(stride, 2, "stride", where)
    _checks.positive(k, "kernel_size", where)
    _checks.positive(d, "dilation", where)
    _checks.positive(s, "stride", where)
    _checks.non_negative(p, "padding", where)
    return k, d, p, s


def _blocks(spatial, k, d, p, s) -> tuple[int, int]:
    """The number of sliding blocks along each spatial dimension."""
    return tuple((n + 2 * pi - di * (ki - 1) - 1) // si + 1 for n, ki, di, pi, si in zip(spatial, k, d, p, s))


def _describe(k, d, p, s=None) -> str:
    return f"kernel_size={k}, dilation={d}, padding={p}" + (f", stride={s}" if s is not None else "")


def _unfold(x, k, d, p, s, blocks):
    """``(N, C, H, W)`` → ``(N, C·kh·kw, Lh·Lw)``, column index ``c·kh·kw + i·kw + j`` (torch's order)."""
    n, c = x.shape[:2]
    xp = jnp.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])))
    taps = [jax.lax.slice(xp, (0, 0, i * d[0], j * d[1]),
                          (n, c, i * d[0] + s[0] * (blocks[0] - 1) + 1, j * d[1] + s[1] * (blocks[1] - 1) + 1),
                          (1, 1, s[0], s[1]))
            for i in range(k[0]) for j in range(k[1])]
    return jnp.stack(taps, axis=2).reshape(n, c * k[0] * k[1], blocks[0] * blocks[1])


@compiled
def unfold(input, kernel_size, dilation=1, padding=0, stride=1):
    """Extract sliding local blocks, as ``torch.nn.functional.unfold``.

    Args:
      input: ``(N, C, H, W)`` or unbatched ``(C, H, W)``.
      kernel_size, dilation, padding, stride: ints or pairs, as for a convolution.

    Returns:
      ``(N, C·kh·kw, L)`` (``(C·kh·kw, L)`` unbatched) with ``L = Lh·Lw`` and
      ``Lh = floor((H + 2·padding − dilation·(kh − 1) − 1) / stride) + 1``; column
      ``l = lh·Lw + lw`` holds block ``(lh, lw)`` in channel-major order.
    """
    where = "unfold"
    k, d, p, s = fold_args(kernel_size, dilation, padding, stride, where)
    x = _checks.as_array(input, "input", where)
    if x.ndim not in (3, 4):
        raise ValueError(f"{where}: expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, got shape {tuple(x.shape)}")
    if 0 in x.shape[x.ndim - 3:]:
        raise ValueError(f"{where}: expected non-zero channel and spatial sizes (only the batch may be empty), "
                         f"got shape {tuple(x.shape)}")
    x, unbatched = (x[None], True) if x.ndim == 3 else (x, False)
    blocks = _blocks(x.shape[2:], k, d, p, s)
    if min(blocks) < 1:
        raise ValueError(
            f"{where}: given input with spatial size {tuple(x.shape[2:])}, {_describe(k, d, p)}, the array of "
            f"sliding blocks has shape {blocks}, but its components must be at least one"
        )
    out = _unfold(x, k, d, p, s, blocks)
    return out[0] if unbatched else out


@compiled
def fold(input, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """Sum sliding local blocks into an image, as ``torch.nn.functional.fold`` (the adjoint of :func:`unfold`).

    Args:
      input: ``(N, C·kh·kw, L)`` or unbatched ``(C·kh·kw, L)``, ``L`` the number of blocks
        that fit ``output_size``.
      output_size: ``(H, W)`` (or an int) of the result.
      kernel_size, dilation, padding, stride: as for :func:`unfold`.

    Returns:
      ``(N, C, H, W)`` (``(C, H, W)`` unbatched); overlapping blocks add up.
    """
    where = "fold"
    k, d, p, s = fold_args(kernel_size, dilation, padding, stride, where)
    size = _checks.ntuple(output_size, 2, "output_size", where)
    _checks.positive(size, "output_size", where)
    x = _checks.as_array(input, "input", where)
    if x.ndim not in (2, 3):
        raise ValueError(f"{where}: expected a 2-D (C·kh·kw, L) or 3-D (N, C·kh·kw, L) input, "
                         f"got shape {tuple(x.shape)}")
    x, unbatched = (x[None], True) if x.ndim == 2 else (x, False)
    n, ckk, length = x.shape
    if ckk % (k[0] * k[1]):
        raise ValueError(f"{where}: expected size of input's dimension 1 to be divisible by the product of "
                         f"kernel_size, but got input.size(1)={ckk} and kernel_size={k}")
    blocks = _blocks(size, k, d, p, s)
    if min(blocks) < 1 or blocks[0] * blocks[1] != length:
        raise ValueError(
            f"{where}: given output_size={size}, {_describe(k, d, p, s)}, expected size of input's dimension 2 "
            f"to match the calculated number of sliding blocks {blocks[0]} * {blocks[1]} = {blocks[0] * blocks[1]}, "
            f"but got input.size(2)={length}"
        )
    image = jax.ShapeDtypeStruct((n, ckk // (k[0] * k[1])) + size, x.dtype)
    (out,) = jax.linear_transpose(lambda v: _unfold(v, k, d, p, s, blocks), image)(x)
    return out[0] if unbatched else out
