"""Convolutions: ``conv1d``, ``conv2d``, ``conv3d`` as in torch.nn.functional.

One N-dimensional implementation on ``jax.lax.conv_general_dilated``; the
public 1-D/2-D/3-D functions only fix the number of spatial dimensions.
Inputs are channel-first, ``(N, C, *spatial)`` or unbatched ``(C, *spatial)``,
weights ``(out_channels, in_channels // groups, *kernel)``, exactly torch's layout.
1-D and 2-D convolutions may compute channels-last inside (:func:`fcnn.xla.channels_last`).
"""

from __future__ import annotations

import functools
import itertools
import math

import jax
import jax.numpy as jnp

from fcnn import _checks, xla
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


def _padded_channels_last(x, pads, kernel, stride, dilation):
    """``x`` as ``(N, *S_padded, C)`` with the zero ``pads``, and the convolution's output spatial size.

    Transposing before padding lets XLA write the padded copy in one pass (6-9 % faster).
    """
    xt = jax.lax.pad(xla.to_channels_last(x), jnp.zeros((), x.dtype),
                     [(0, 0, 0)] + [(lo, hi, 0) for lo, hi in pads] + [(0, 0, 0)])
    out_sp = tuple((p - d * (k - 1) - 1) // st + 1 for p, k, st, d in zip(xt.shape[1:-1], kernel, stride, dilation))
    return xt, out_sp


def _window_conv(x, w, stride, pads, dilation, groups):
    """``conv(x, w)`` as one matrix product per kernel tap (linear in ``w``).

    It serves as the weight term of :func:`conv_core`'s tangent; reverse mode
    uses its transpose: for each tap ``t``,
    ``grad_w[..., t] = g (O, N·S_out) @ window_t(x) (N·S_out, C)``, a plain
    matrix product over the channels-last input window. XLA:CPU runs
    these at matrix-multiply speed, whereas its weight-gradient convolution
    (a convolution whose "kernel" is the whole output map) is up to an order
    of magnitude slower.

    The taps are a ``lax.scan`` whose body is rematerialised, so the backward
    pass cuts one window at a time from ``x``: unrolled, XLA kept all the
    windows (one activation-sized copy per tap) alive at once, and the scan is
    also the faster of the two (``benchmarks/results_conv.md``).
    """
    batch, c_in = x.shape[:2]
    c_out, c_group = w.shape[:2]
    kernel = w.shape[2:]
    n = len(kernel)
    # channels last, so that each window row is C contiguous values
    xt, out_sp = _padded_channels_last(x, pads, kernel, stride, dilation)
    span = tuple(s * (o - 1) + 1 for s, o in zip(stride, out_sp))
    starts = jnp.asarray([[t * d for t, d in zip(tap, dilation)]
                          for tap in itertools.product(*(range(k) for k in kernel))], jnp.int32)
    w_taps = jnp.moveaxis(w.reshape(c_out, c_group, -1), -1, 0)  # (taps, O, C/groups), same tap order

    @jax.checkpoint
    def tap(acc, inputs):
        start, wt = inputs
        win = jax.lax.dynamic_slice(xt, (0, *(start[i] for i in range(n)), 0), (batch, *span, c_in))
        win = win[(slice(None), *(slice(None, None, s) for s in stride), slice(None))]
        if groups == 1:
            y = jax.lax.dot_general(wt, win.reshape(-1, c_in), (((1,), (1,)), ((), ())))  # (O, N·S_out)
        else:
            y = jax.lax.dot_general(wt.reshape(groups, c_out // groups, c_group), win.reshape(-1, groups, c_group),
                                    (((2,), (2,)), ((0,), (1,)))).reshape(c_out, -1)
        return acc + y, None

    acc = jnp.zeros((c_out, batch * math.prod(out_sp)), jnp.result_type(x, w))
    acc, _ = jax.lax.scan(tap, acc, (starts, w_taps))
    return jnp.moveaxis(acc.reshape((c_out, batch) + out_sp), 0, 1)


def _xla_conv(x, w, stride, pads, dilation, groups, channels_last, kernel="IO"):
    """XLA's convolution, channel-first or between two transposes channels-last.

    Channels-last, the kernel goes in as ``(*k, I, O)``, the layout XLA:CPU's
    Eigen convolution takes, or as ``(*k, O, I)`` (``kernel="OI"``) for the
    input term of the JVP rule, whose transpose swaps the two (see below).
    """
    def conv(x, w, lhs_layout, rhs_layout):
        return jax.lax.conv_general_dilated(x, w, window_strides=stride, padding=pads, rhs_dilation=dilation,
                                            dimension_numbers=(lhs_layout, rhs_layout, lhs_layout),
                                            feature_group_count=groups)

    s = _SPATIAL[x.ndim - 2]
    if channels_last:
        w_last = jnp.moveaxis(w, (0, 1), (-1, -2) if kernel == "IO" else (-2, -1))
        return xla.to_channels_first(conv(xla.to_channels_last(x), w_last, "N" + s + "C", s + kernel))
    return conv(x, w, "NC" + s, "OI" + s)


# XLA:CPU runs a convolution on Eigen only in one form: input (N, *S, C), kernel
# (*k, I, O), output (N, *S, O), in memory in that order ("b01f_01io->b01f").
# Outside loops XLA transposes other convolutions into that form itself; inside
# a loop body (lax.scan, gradient accumulation) it does not, and runs them
# naively, 20-30x slower. JAX writes a convolution's gradients as convolutions
# whose dimension numbers derive from the forward one's, so for groups == 1 the
# JVP rule writes its two tangent terms such that their transposes (the input
# and weight gradients of reverse mode) are already in Eigen's form: the input
# term with its kernel laid out (*k, O, I), since the transpose swaps the
# kernel's I and O labels (_xla_conv(..., kernel="OI")), and the weight term
# as below. The transposes that this takes are the ones XLA inserted before.


def _eigen_weight_term(x, dw, stride, pads, dilation):
    """``conv(x, dw)``, written so that its transpose (the weight gradient) is in Eigen's form.

    JAX's transpose of a convolution in its kernel swaps the batch and feature
    labels of the input and of the output, and gives the gradient the kernel's
    labels: the input is laid out ``(C, *S, N)``, the output ``(*S, N, O)`` and
    the kernel ``(I, *k, O)``, labelled that way here.
    """
    s = _SPATIAL[x.ndim - 2]
    n = x.ndim - 2
    x_cn = jnp.moveaxis(x, 0, -1)  # (C, *S, N)
    dw_iko = jnp.moveaxis(dw, (0, 1), (-1, 0))  # (I, *k, O)
    y = jax.lax.conv_general_dilated(x_cn, dw_iko, stride, pads, rhs_dilation=dilation,
                                     dimension_numbers=("C" + s + "N", "I" + s + "O", s + "NC"))
    return jnp.moveaxis(y, (n, n + 1), (0, 1))  # (*S, N, O) -> (N, O, *S)


def _stencil_conv(x, w, stride, pads, dilation, groups):
    """``conv(x, w)`` for one input channel per group, as a sum over taps of window × weight.

    Each kernel tap contributes ``window_t(x)[..., g] · w[o, 0, t]`` to the
    outputs ``o`` of group ``g``: an elementwise product, so XLA fuses all taps
    into one pass over the output (channels-last inside). XLA:CPU's grouped
    convolution handles depthwise layers badly: forward + backward of a
    32-channel 3×3 depthwise layer at 56², batch 8, takes 67 ms that way and
    15 ms this way (torch: 5-7 ms; ``benchmarks/results_conv.md``).
    """
    batch, c_in = x.shape[:2]
    c_out, kernel = w.shape[0], w.shape[2:]
    per_group = c_out // groups
    xt, out_sp = _padded_channels_last(x, pads, kernel, stride, dilation)
    y = None
    for tap in itertools.product(*(range(k) for k in kernel)):
        start = tuple(t * d for t, d in zip(tap, dilation))
        limit = tuple(a + st * (o - 1) + 1 for a, st, o in zip(start, stride, out_sp))
        win = jax.lax.slice(xt, (0,) + start + (0,), (batch,) + limit + (c_in,), (1,) + tuple(stride) + (1,))
        if per_group > 1:  # input channel g feeds outputs g·per_group … (g+1)·per_group − 1
            win = jnp.repeat(win, per_group, axis=-1)
        term = win * w[(slice(None), 0) + tap]
        y = term if y is None else y + term
    return xla.to_channels_first(y)


def _batch_halves(fn, x):
    """``fn(x)``, computed for the two halves of the batch in a two-step ``lax.scan``.

    The loop makes XLA write ``fn``'s result to memory as a kernel of its own.
    Without it, XLA:CPU fuses a stencil's window products into every
    consumer, such as a max-pool's arg-max reduction, batch norm's statistics
    or the ReLU mask of the backward pass, where they run as slow scalar
    loops and are recomputed in each. LeNet's step at batch 128 took 23 ms
    that way, 14-17 ms this way, and 23 ms with XLA's convolution; a
    depthwise 3×3 → batch norm → ReLU block's value and gradients 1.4-1.9x
    less time this way (``benchmarks/README.md``, sixth session). An odd
    batch gets one zero example appended, then dropped.
    """
    n = x.shape[0]
    xp = jnp.pad(x, ((0, n % 2),) + ((0, 0),) * (x.ndim - 1))
    halves = xp.reshape((2, xp.shape[0] // 2) + x.shape[1:])
    _, ys = jax.lax.scan(lambda carry, xh: (carry, fn(xh)), None, halves)
    return ys.reshape((xp.shape[0],) + ys.shape[2:])[:n]


def _forward_conv(x, w, stride, pads, dilation, groups, channels_last, stencil):
    if stencil:
        return _batch_halves(lambda xh: _stencil_conv(xh, w, stride, pads, dilation, groups), x)
    return _xla_conv(x, w, stride, pads, dilation, groups, channels_last)


def conv_core(x, w, stride, pads, dilation, groups, weight_grad="auto", channels_last=None, forward="auto"):
    """Batched, validated convolution ``(N, C, *S) ⊛ (O, C/groups, *k)`` with explicit (lo, hi) pads.

    The value is XLA's convolution, or for depthwise convolutions on CPU a sum
    of window products (``forward``, below). The derivative rule is a
    custom JVP, so every transformation (``grad``, ``jvp``, ``jacfwd``,
    ``hessian``, ``vmap``) works: the tangent is ``conv(dx, w) + conv(x, dw)``.

    ``weight_grad`` chooses how the second term (whose transpose is the weight
    gradient) is written. ``"xla"`` is XLA's convolution. ``"window"`` is one
    matrix product per kernel tap (:func:`_window_conv`). ``"auto"`` takes
    ``"window"`` on CPU for grouped and for 3-D convolutions with at least 2
    input channels per group and at most 49 taps, where XLA's weight gradient
    is 4-40× slower than the per-tap products, and ``"xla"`` otherwise: with
    XLA:CPU's 1-D and 2-D convolutions on Eigen, as fcnn's compiled steps have
    them (:mod:`fcnn.xla`), XLA's own weight gradient is the faster one there,
    as it is for depthwise convolutions and large kernels
    (``benchmarks/results_conv.md``).

    ``forward`` chooses how the value and the input term are written:
    ``"xla"``, ``"stencil"`` (:func:`_stencil_conv`; one input channel per
    group only) or ``"auto"``: ``"stencil"`` on CPU for depthwise-style
    convolutions (several groups of one input channel) and for 2-D
    convolutions of a single input channel to at most 8 outputs (``groups=1``,
    LeNet's first layer), at most 49 taps. For a single input channel XLA's
    Eigen convolution spends most of its time packing im2col blocks one float
    at a time (LeNet's first layer: 8-10 ms of a 23 ms step). With up to 8
    outputs the stencil's forward and weight gradient took 0.4-0.6x Eigen's
    time; with 16 about the same, with 24-64 Eigen's was faster
    (``benchmarks/README.md``, sixth session). The stencil's value is
    computed in a batch loop (:func:`_batch_halves`) so that it is not fused
    into its consumers.

    ``channels_last``: compute XLA's convolution on ``(N, *S, C)`` between two
    transposes (:func:`fcnn.xla.channels_last`; same values). ``None`` chooses
    it for 1-D and 2-D convolutions where that function says so; 3-D
    convolutions measured 30 % slower channels-last on XLA:CPU.
    """
    cpu = jax.default_backend() == "cpu"
    small_kernel = math.prod(w.shape[2:]) <= 49
    if channels_last is None:
        channels_last = x.ndim <= 4 and xla.channels_last(x.shape)
    if weight_grad == "auto":
        per_tap = (groups > 1 or x.ndim == 5) and w.shape[1] >= 2 and small_kernel
        weight_grad = "window" if per_tap and cpu else "xla"
    if forward == "auto":
        # a single-channel 2-D input with few outputs (LeNet's first layer), where it was measured faster
        first_layer = x.ndim == 4 and w.shape[0] <= 8
        forward = "stencil" if w.shape[1] == 1 and (groups > 1 or first_layer) and small_kernel and cpu else "xla"
    if forward == "stencil" and w.shape[1] != 1:
        raise ValueError(f"conv_core: forward='stencil' needs one input channel per group, got weight {w.shape}")
    return _conv_core(x, w, stride, pads, dilation, groups, weight_grad, bool(channels_last), forward == "stencil")


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3, 4, 5, 6, 7, 8))
def _conv_core(x, w, stride, pads, dilation, groups, weight_grad, channels_last, stencil):
    return _forward_conv(x, w, stride, pads, dilation, groups, channels_last, stencil)


@_conv_core.defjvp
def _conv_core_jvp(stride, pads, dilation, groups, weight_grad, channels_last, stencil, primals, tangents):
    x, w = primals
    dx, dw = tangents
    y = _forward_conv(x, w, stride, pads, dilation, groups, channels_last, stencil)
    eigen = channels_last and groups == 1
    if weight_grad == "window":
        weight_term = _window_conv(x, dw, stride, pads, dilation, groups)
    elif eigen:
        weight_term = _eigen_weight_term(x, dw, stride, pads, dilation)
    else:
        weight_term = _xla_conv(x, dw, stride, pads, dilation, groups, channels_last)
    if eigen and not stencil:
        input_term = _xla_conv(dx, w, stride, pads, dilation, 1, True, kernel="OI")
    else:
        input_term = _forward_conv(dx, w, stride, pads, dilation, groups, channels_last, stencil)
    return y, input_term + weight_term


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
