"""Transposed convolutions: ``conv_transpose1d/2d/3d`` as in torch.nn.functional.

Formulation (chosen by measurement, see ``benchmarks/README.md``):
a strided transposed convolution is computed *sub-pixel* style, as one
stride-1 convolution whose output channels hold the ``prod(stride)`` output
phases, followed by a depth-to-space interleave and a crop. Output phase ``ρ``
(``0 ≤ ρ < s`` per axis) only meets kernel taps ``ρ, ρ + s, ρ + 2s, …``, so
nothing is multiplied by the zeros that the textbook formulation
(``lhs_dilation=stride``, what ``jax.lax.conv_transpose`` does) inserts
between input pixels: the forward pass does ``prod(stride)`` times fewer
multiply-adds, and both gradients are ordinary stride-1 convolutions (the
weight gradient formulated as in :func:`fcnn.functional.conv.conv_core`).
Dilation is handled by zero-inserting the kernel first (rare in practice).
"""

from __future__ import annotations

import math

import jax.numpy as jnp

from fcnn import _checks
from fcnn.functional._compiled import compiled
from fcnn.functional.conv import conv_arguments, conv_core


def output_padding_error(output_padding, stride, dilation, where: str) -> None:
    """torch's check: each ``output_padding`` must be smaller than its stride or its dilation."""
    if any(op >= max(s, d) for op, s, d in zip(output_padding, stride, dilation)):
        raise ValueError(
            f"{where}: output padding must be smaller than either stride or dilation, but got "
            f"output_padding={output_padding}, stride={stride}, dilation={dilation}"
        )


def transposed_output_size(spatial, kernel, stride, padding, output_padding, dilation) -> tuple[int, ...]:
    """``(in − 1)·s − 2p + d·(k − 1) + output_padding + 1`` per spatial axis."""
    return tuple((i - 1) * s - 2 * p + d * (k - 1) + op + 1
                 for i, k, s, p, op, d in zip(spatial, kernel, stride, padding, output_padding, dilation))


def _dilate_kernel(w: jnp.ndarray, dilation: tuple[int, ...]) -> jnp.ndarray:
    n = len(dilation)
    if all(d == 1 for d in dilation):
        return w
    shape = w.shape[:2] + tuple(d * (k - 1) + 1 for k, d in zip(w.shape[2:], dilation))
    index = (slice(None), slice(None)) + tuple(slice(None, None, d) for d in dilation)
    return jnp.zeros(shape, w.dtype).at[index].set(w) if n else w


def _conv_transpose(x, w, stride, padding, output_padding, dilation, groups):
    """Batched core: ``x (N, C_in, *S)``, ``w (C_in, C_out/groups, *k)``; arguments validated."""
    n = x.ndim - 2
    spatial = x.shape[2:]
    c_in, c_out_g = w.shape[:2]
    c_out = c_out_g * groups
    w = _dilate_kernel(w, dilation)
    k_eff = w.shape[2:]
    out = transposed_output_size(spatial, k_eff, stride, padding, output_padding, (1,) * n)
    taps = tuple(-(-k // s) for k, s in zip(k_eff, stride))  # kernel taps per phase
    # Pad the kernel to taps·s per axis and split every axis k → (taps, s):
    # tap j of phase ρ is original tap ρ + s·j.
    w = jnp.pad(w, ((0, 0), (0, 0)) + tuple((0, t * s - k) for t, s, k in zip(taps, stride, k_eff)))
    w = w.reshape((c_in, c_out_g) + tuple(v for t, s in zip(taps, stride) for v in (t, s)))
    # phase ρ's output at m sums x[m − j]·w[ρ + s·j]: a correlation with the
    # tap axis flipped. Build the (O = groups·c_out_g·prod(s), I = c_in/groups, *taps) kernel.
    w = jnp.flip(w, axis=tuple(2 + 2 * i for i in range(n)))
    w = w.reshape((groups, c_in // groups, c_out_g) + w.shape[2:])
    perm = (0, 2) + tuple(4 + 2 * i for i in range(n)) + (1,) + tuple(3 + 2 * i for i in range(n))
    w = w.transpose(perm).reshape((c_out * math.prod(stride), c_in // groups) + taps)
    # Phase outputs m cover final positions s·m + ρ − p; keep the m's that reach [0, out).
    lo = tuple(t - 1 - p // s for t, p, s in zip(taps, padding, stride))
    m_len = tuple(-(-(o + p % s) // s) for o, p, s in zip(out, padding, stride))
    hi = tuple(m - i - l + t - 1 for m, i, l, t in zip(m_len, spatial, lo, taps))
    # a stride-1 convolution, differentiated like every fcnn convolution (its
    # weight gradient as per-tap matrix products where that is faster on CPU)
    y = conv_core(x, w, (1,) * n, tuple(zip(lo, hi)), (1,) * n, groups)
    # depth-to-space: (N, C_out, *s, *m) → (N, C_out, m0, s0, m1, s1, …) → crop
    if any(s > 1 for s in stride):
        y = y.reshape((x.shape[0], c_out) + tuple(stride) + m_len)
        perm = (0, 1) + tuple(v for i in range(n) for v in (2 + n + i, 2 + i))
        y = y.transpose(perm).reshape((x.shape[0], c_out) + tuple(m * s for m, s in zip(m_len, stride)))
    index = (slice(None), slice(None)) + tuple(slice(p % s, p % s + o) for p, s, o in zip(padding, stride, out))
    return y[index]


@compiled
def _conv_transpose_nd(input, weight, bias, stride, padding, output_padding, groups, dilation, n, where):
    x, unbatched, w, groups, stride, dilation = conv_arguments(
        input, weight, groups, stride, dilation, n, "(in_channels, out_channels/groups, *kernel)", where)
    if isinstance(padding, str):
        raise TypeError(f"{where}: padding must be an int or a tuple of {n} ints (no 'same'/'valid'), got {padding!r}")
    padding = _checks.ntuple(padding, n, "padding", where)
    _checks.non_negative(padding, "padding", where)
    output_padding = _checks.ntuple(output_padding, n, "output_padding", where)
    _checks.non_negative(output_padding, "output_padding", where)
    output_padding_error(output_padding, stride, dilation, where)
    c_in = w.shape[0]
    if c_in % groups != 0:
        raise ValueError(
            f"{where}: weight of size {list(w.shape)} has {c_in} input channels, not divisible by groups={groups}"
        )
    if x.shape[1] != c_in:
        raise ValueError(
            f"{where}: Given transposed=1, weight of size {list(w.shape)}, expected input{list(x.shape)} "
            f"to have {c_in} channels, but got {x.shape[1]} channels instead"
        )
    out = transposed_output_size(x.shape[2:], w.shape[2:], stride, padding, output_padding, dilation)
    # torch refuses a negative size, and an empty one for a batch of one (its kernel for larger
    # batches returns an empty output): fcnn refuses both, whatever the batch size
    if any(o < 1 for o in out):
        raise ValueError(
            f"{where}: Given input size per channel: {list(x.shape[2:])}, the calculated output size "
            f"{list(out)} is too small (padding={padding}, output_padding={output_padding}, "
            f"kernel {tuple(w.shape[2:])}, stride={stride}, dilation={dilation})"
        )
    y = _conv_transpose(x, w, stride, padding, output_padding, dilation, groups)
    if bias is not None:
        b = _checks.as_array(bias, "bias", where)
        c_out = w.shape[1] * groups
        if b.shape != (c_out,):
            raise ValueError(f"{where}: bias must have shape ({c_out},), got {tuple(b.shape)}")
        _checks.same_dtype(x, b, "input", "bias", where)
        y = y + b.reshape((1, c_out) + (1,) * n)
    return y[0] if unbatched else y


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """1-D transposed convolution; same as ``torch.nn.functional.conv_transpose1d``.

    Args:
      input: ``(N, C_in, L)`` or unbatched ``(C_in, L)``.
      weight: ``(C_in, C_out // groups, k)`` (torch's transposed layout).
      bias: optional ``(C_out,)``.
      stride, padding, output_padding, dilation: int or 1-tuple.
        ``padding`` removes ``dilation·(k−1) − padding`` … from both ends of
        the full output; ``output_padding`` (< stride or < dilation) adds
        positions at the end only.
      groups: number of channel groups.

    Returns:
      ``(N, C_out, L_out)``, ``L_out = (L − 1)·stride − 2·padding + dilation·(k − 1) + output_padding + 1``.
    """
    return _conv_transpose_nd(input, weight, bias, stride, padding, output_padding, groups, dilation, 1,
                              "conv_transpose1d")


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """2-D transposed convolution over ``(N, C_in, H, W)`` or ``(C_in, H, W)``; same as
    ``torch.nn.functional.conv_transpose2d``.

    Weight ``(C_in, C_out // groups, kH, kW)``;
    ``H_out = (H − 1)·s_h − 2·p_h + d_h·(kH − 1) + output_padding_h + 1`` (likewise W).
    See :func:`conv_transpose1d` for the arguments.
    """
    return _conv_transpose_nd(input, weight, bias, stride, padding, output_padding, groups, dilation, 2,
                              "conv_transpose2d")


def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """3-D transposed convolution over ``(N, C_in, D, H, W)`` or ``(C_in, D, H, W)``; same as
    ``torch.nn.functional.conv_transpose3d``.

    Weight ``(C_in, C_out // groups, kD, kH, kW)``; each output size as in :func:`conv_transpose2d`.
    """
    return _conv_transpose_nd(input, weight, bias, stride, padding, output_padding, groups, dilation, 3,
                              "conv_transpose3d")
