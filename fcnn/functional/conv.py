"""Convolutions: ``conv1d``, ``conv2d``, ``conv3d`` as in torch.nn.functional.

One N-dimensional implementation on ``jax.lax.conv_general_dilated``; the
public 1-D/2-D/3-D functions only fix the number of spatial dimensions.
Inputs are channel-first, ``(N, C, *spatial)`` or unbatched ``(C, *spatial)``,
weights ``(out_channels, in_channels // groups, *kernel)``, exactly torch's layout.
The backend policy may compute a convolution in a faster formulation with the
same values (:mod:`fcnn.backends`).
"""

from __future__ import annotations

import jax

from fcnn import _checks, backends
from fcnn.functional._compiled import compiled

_SPATIAL = {1: "W", 2: "HW", 3: "DHW"}


def conv_padding(padding, kernel, dilation, stride, n: int, where: str) -> tuple[tuple[int, int], ...]:
    """Turn torch's ``padding`` (int, tuple, 'same', 'valid') into (lo, hi) pairs."""
    if isinstance(padding, str):
        _checks.one_of(padding, ("same", "valid"), "padding", where)
        if padding == "valid":
            return ((0, 0),) * n
        if any(s != 1 for s in stride):
            raise ValueError(
                f"{where}: padding='same' is not supported for strided convolutions, got stride={stride}"
            )
        # torch puts the odd extra element on the right (end) side.
        out = []
        for k, d in zip(kernel, dilation):
            total = d * (k - 1)
            out.append((total // 2, total - total // 2))
        return tuple(out)
    pad = _checks.ntuple(padding, n, "padding", where)
    _checks.non_negative(pad, "padding", where)
    return tuple((p, p) for p in pad)


def check_kernel_fits(spatial, pads, kernel, dilation, where: str) -> None:
    padded = tuple(s + lo + hi for s, (lo, hi) in zip(spatial, pads))
    eff = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    if any(p < e for p, e in zip(padded, eff)):
        fmt = lambda t: "(" + " x ".join(map(str, t)) + ")"
        raise ValueError(
            f"{where}: Calculated padded input size per channel: {fmt(padded)}. "
            f"Kernel size: {fmt(eff)}. Kernel size can't be greater than actual input size"
        )


def conv_arguments(input, weight, groups, stride, dilation, n: int, weight_layout: str, where: str):
    """The checks every convolution (plain or transposed) makes of its common arguments.

    Returns ``(x, unbatched, w, groups, stride, dilation)`` with ``x`` batched
    and the int arguments as ``n``-tuples.
    """
    x, unbatched = _checks.spatial_input(input, n, where)
    w = _checks.as_array(weight, "weight", where)
    _checks.floating(x, "input", where)
    if w.ndim != n + 2:
        raise ValueError(f"{where}: weight must be {n + 2}D {weight_layout}, got shape {tuple(w.shape)}")
    _checks.same_dtype(x, w, "input", "weight", where)
    if 0 in w.shape[:2]:
        raise ValueError(f"{where}: expected weight to be at least 1 at dimensions 0 and 1, but got weight of "
                         f"size {list(w.shape)}")
    groups = _checks.positive_int(groups, "groups", where)
    stride = _checks.ntuple(stride, n, "stride", where)
    _checks.positive(stride, "stride", where)
    dilation = _checks.ntuple(dilation, n, "dilation", where)
    _checks.positive(dilation, "dilation", where)
    return x, unbatched, w, groups, stride, dilation


def conv_core(x, w, stride, pads, dilation, groups):
    """Batched, validated convolution ``(N, C, *S) ⊛ (O, C/groups, *k)`` with explicit (lo, hi) pads.

    XLA's convolution, channel-first, differentiated by JAX; or the
    implementation that the backend policy (:meth:`fcnn.backends.Policy.conv`)
    picks for these shapes, which computes the same values and derivatives.
    """
    fast = backends.policy().conv(x.shape, w.shape, groups, pads, stride, dilation)
    if fast is not None:
        return fast(x, w, stride, pads, dilation, groups)
    return reference_conv(x, w, stride, pads, dilation, groups)


def reference_conv(x, w, stride, pads, dilation, groups):
    """:func:`conv_core` as ``jax.lax.conv_general_dilated`` states it, in torch's layouts."""
    s = _SPATIAL[x.ndim - 2]
    return jax.lax.conv_general_dilated(x, w, window_strides=stride, padding=pads, rhs_dilation=dilation,
                                        dimension_numbers=("NC" + s, "OI" + s, "NC" + s), feature_group_count=groups)


@compiled
def _conv(input, weight, bias, stride, padding, dilation, groups, n: int, where: str):
    x, unbatched, w, groups, stride, dilation = conv_arguments(
        input, weight, groups, stride, dilation, n, "(out_channels, in_channels/groups, *kernel)", where)
    out_ch, in_per_group = w.shape[0], w.shape[1]
    if out_ch % groups != 0:
        raise ValueError(
            f"{where}: weight of size {list(w.shape)} has {out_ch} output channels, not divisible by groups={groups}"
        )
    if x.shape[1] != in_per_group * groups:
        raise ValueError(
            f"{where}: Given groups={groups}, weight of size {list(w.shape)}, expected input"
            f"{list(x.shape)} to have {in_per_group * groups} channels, but got {x.shape[1]} channels instead"
        )
    kernel = tuple(w.shape[2:])
    pads = conv_padding(padding, kernel, dilation, stride, n, where)
    check_kernel_fits(x.shape[2:], pads, kernel, dilation, where)
    y = conv_core(x, w, stride, pads, dilation, groups)
    if bias is not None:
        b = _checks.as_array(bias, "bias", where)
        if b.shape != (out_ch,):
            raise ValueError(f"{where}: bias must have shape ({out_ch},), got {tuple(b.shape)}")
        _checks.same_dtype(x, b, "input", "bias", where)
        y = y + b.reshape((1, out_ch) + (1,) * n)
    return y[0] if unbatched else y


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """1-D convolution over ``(N, C_in, L)`` or ``(C_in, L)``; same as ``torch.nn.functional.conv1d``.

    Args:
      input: ``(N, C_in, L)`` or unbatched ``(C_in, L)``.
      weight: ``(C_out, C_in // groups, k)``.
      bias: optional ``(C_out,)``.
      stride, padding, dilation: int or 1-tuple; ``padding`` may also be
        ``'valid'`` or ``'same'`` (stride 1 only; odd extra padding goes on the right).
      groups: number of channel groups.

    Returns:
      ``(N, C_out, L_out)`` with ``L_out = floor((L + 2p - d(k-1) - 1) / s) + 1``.
    """
    return _conv(input, weight, bias, stride, padding, dilation, groups, 1, "conv1d")


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution over ``(N, C_in, H, W)`` or ``(C_in, H, W)``; same as ``torch.nn.functional.conv2d``.

    Weight ``(C_out, C_in // groups, kH, kW)``; output
    ``H_out = floor((H + 2p_h - d_h(kH-1) - 1) / s_h) + 1`` (likewise W).
    See :func:`conv1d` for the arguments.
    """
    return _conv(input, weight, bias, stride, padding, dilation, groups, 2, "conv2d")


def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """3-D convolution over ``(N, C_in, D, H, W)`` or ``(C_in, D, H, W)``; same as ``torch.nn.functional.conv3d``.

    Weight ``(C_out, C_in // groups, kD, kH, kW)``. See :func:`conv1d` for the arguments.
    """
    return _conv(input, weight, bias, stride, padding, dilation, groups, 3, "conv3d")
