"""XLA:CPU formulations of a convolution: channels-last, per-tap weight gradient, stencil, matrix products.

:func:`conv` computes ``conv(x, w)`` (batched ``(N, C, *S) ⊛ (O, C/groups,
*k)`` with explicit (lo, hi) pads, already validated) as :class:`ConvPlan`
says, with a custom JVP so that every transformation (``grad``, ``jvp``,
``jacfwd``, ``hessian``, ``vmap``) works: the tangent is
``conv(dx, w) + conv(x, dw)``, each term written so that its transpose (the
input and the weight gradient of reverse mode) is fast on XLA:CPU.

Why each formulation is faster is measured in ``benchmarks/README.md``
(``benchmarks/ops_conv.py``).
"""

from __future__ import annotations

import functools
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np

from fcnn.backends import ConvPlan, to_channels_first, to_channels_last
from fcnn.backends.xla_cpu import matmul

_SPATIAL = {1: "W", 2: "HW", 3: "DHW"}

#: Every plan :func:`conv` accepts; the tests compare each with the reference convolution.
PLANS = (tuple(ConvPlan(f, g, last) for f in ("xla", "stencil") for g in ("xla", "window") for last in (False, True))
         + tuple(ConvPlan("stencil", "xla", last, 2) for last in (False, True))
         + tuple(ConvPlan("stencil", g, True, 1, True) for g in ("xla", "window"))
         + tuple(ConvPlan("stencil", g, True, branch=True) for g in ("xla", "window"))
         + tuple(ConvPlan("stencil", g, last, branch=b, phases=True) for g, last, b in (("xla", True, True),
                                                                                     ("window", False, False)))
         + (ConvPlan("xla", "xla", True, phases=True),))
#: XLA's forward convolving two or three groups as one, block-diagonal (three: two groups padded with a third),
#: and with its input gradient by phases.
BLOCKS = tuple(ConvPlan("xla", g, last, groups_per_block=k) for g in ("xla", "window") for last in (False, True)
               for k in (2, 3)) + (ConvPlan("xla", "window", False, groups_per_block=2, phases=True),)
#: The matrix-product plan (1×1 kernels without padding or groups).
MATMUL = ConvPlan("matmul")
#: The matrix-product plan with its weight gradient summed over per-example products.
MATMUL_PER_EXAMPLE = ConvPlan("matmul", "per_example")
#: The matrix-product plan with its weight gradient taking the input first (:mod:`fcnn.backends.xla_cpu.matmul`).
MATMUL_INPUT_FIRST = ConvPlan("matmul", "input_first")
#: XLA's convolution differentiated as patches times the weight (one group).
PATCHES = ConvPlan("patches")
#: Depthwise convolutions as per-channel products with the kernel's Toeplitz matrix over every spatial axis,
#: or over the last one with windows over the others (one input channel per group).
TOEPLITZ = ConvPlan("toeplitz")
TOEPLITZ_LAST_AXIS = ConvPlan("toeplitz", matrix_axes=1)


def conv(x, w, stride, pads, dilation, groups, plan: ConvPlan):
    """``conv(x, w)`` as ``plan`` writes it; the same values and derivatives as XLA's convolution."""
    if plan.forward == "matmul":
        if groups != 1 or any(k != 1 for k in w.shape[2:]) or any(tuple(p) != (0, 0) for p in pads):
            raise ValueError(f"conv: the matmul plan needs a 1x1 kernel without padding or groups, got weight "
                             f"{w.shape}, pads {pads}, groups {groups}")
        xs = x[(slice(None), slice(None)) + tuple(slice(None, None, s) for s in stride)]
        w2 = w.reshape(w.shape[:2])
        if plan.weight_grad == "per_example":
            return to_channels_first(_pointwise_per_example(xs, w2))
        if plan.weight_grad == "input_first":
            return to_channels_first(matmul.product(xs, w2, 1))
        return to_channels_first(_pointwise_product(xs, w2))
    if plan.forward == "patches":
        if groups != 1:
            raise ValueError(f"conv: the patches plan needs groups=1, got groups {groups}")
        return _patches_conv(x, w, tuple(stride), tuple(pads), tuple(dilation))
    if plan.forward == "toeplitz":
        if w.shape[1] != 1:
            raise ValueError(f"conv: the toeplitz plan needs one input channel per group, got weight {w.shape}")
        return _toeplitz_conv(x, w, tuple(stride), tuple(pads), tuple(dilation), groups, plan.matrix_axes)
    if plan.forward == "stencil" and w.shape[1] != 1:
        raise ValueError(f"conv: the stencil forward needs one input channel per group, got weight {w.shape}")
    if plan.groups_per_block > 1 and plan.forward != "xla":
        raise ValueError(f"conv: groups_per_block {plan.groups_per_block} needs XLA's forward, got forward "
                         f"{plan.forward!r}")
    return _conv(x, w, tuple(stride), tuple(pads), tuple(dilation), groups, plan.weight_grad,
                 bool(plan.channels_last), plan.forward == "stencil", math.gcd(x.shape[0], plan.batch_chunks),
                 bool(plan.row_halves), plan.groups_per_block, bool(plan.branch), bool(plan.phases))


def _pointwise_product(xs, w2):
    """A 1×1 convolution of the (already strided) ``(N, C, *S)`` input by the ``(O, C)`` weight, ``(N, *S, O)`` out.

    One ``dot_general`` contracting the input's channels with the weight's
    ``in_channels`` axis, in the weight's own layout; JAX's derivatives of it
    are matrix products too.
    """
    return jax.lax.dot_general(xs, w2, (((1,), (1,)), ((), ())))


@jax.custom_jvp
def _pointwise_per_example(xs, w2):
    """:func:`_pointwise_product`, its weight gradient summed over per-example matrix products.

    JAX's weight gradient of the product is one matrix product over every
    pixel of the batch, for which XLA:CPU first transposes the whole output
    gradient, a copy out of cache for large maps (50 MB at MobileNet-V2's
    first expansion, batch 32 at 128×128). Per example, the transposes are of
    one image's pixels each and stay in cache.
    """
    return _pointwise_product(xs, w2)


@_pointwise_per_example.defjvp
def _pointwise_per_example_jvp(primals, tangents):
    xs, w2 = primals
    dxs, dw2 = tangents
    # the weight tangent as one copy per example: the transpose sums a batched product over the batch
    per_example = jnp.broadcast_to(dw2, (xs.shape[0],) + dw2.shape)
    weight_term = jax.lax.dot_general(xs, per_example, (((1,), (2,)), ((0,), (0,))))
    return _pointwise_product(xs, w2), _pointwise_product(dxs, w2) + weight_term


def _patch_matmul_conv(x, w, stride, pads, dilation):
    """``conv(x, w)`` (one group) as one matrix product of the input's patches with the weight in torch's layout.

    The patches ``(N, *S_out, C·taps)`` are the channels-last input's window
    slices stacked tap-minor, the order of the weight's ``(O, C, *k)``
    flattened to ``(O, C·taps)``, which the product reads in place. JAX's
    derivatives are matrix products too, the weight gradient again in
    torch's layout. Where the patches are few, this saves the weight
    relayouts XLA's convolution makes in each of its three uses in a training
    step.
    """
    xt, out_sp = _padded_channels_last(x, pads, w.shape[2:], stride, dilation)
    windows = [win for _, win in _tap_windows(xt, w.shape[2:], stride, dilation, out_sp)]
    patches = jnp.stack(windows, axis=-1).reshape((x.shape[0],) + out_sp + (-1,))
    y = jax.lax.dot_general(patches, w.reshape(w.shape[0], -1), (((patches.ndim - 1,), (1,)), ((), ())))
    return to_channels_first(y)


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3, 4))
def _patches_conv(x, w, stride, pads, dilation):
    """XLA's convolution (channels-last), differentiated as :func:`_patch_matmul_conv`.

    Inference keeps XLA's convolution, which is as fast or faster there (and
    under :func:`fcnn.freeze` lays its weight out once).
    """
    return _xla_conv(x, w, stride, pads, dilation, 1, True)


@_patches_conv.defjvp
def _patches_conv_jvp(stride, pads, dilation, primals, tangents):
    return jax.jvp(lambda x, w: _patch_matmul_conv(x, w, stride, pads, dilation), primals, tangents)


def _axis_taps(kernel, size, out, stride, lo, dilation, dtype):
    """``A[t, i, o] = 1`` where input ``i`` of one spatial axis meets kernel tap ``t`` for output ``o``, else 0.

    ``i = stride·o + dilation·t − lo``; inputs in the zero padding have no row.
    """
    taps = np.zeros((kernel, size, out), dtype)
    for t in range(kernel):
        for o in range(out):
            i = stride * o + dilation * t - lo
            if 0 <= i < size:
                taps[t, i, o] = 1
    return taps


def _toeplitz_conv(x, w, stride, pads, dilation, groups, matrix_axes):
    """``conv(x, w)`` for one input channel per group as one matrix product per channel.

    Along one spatial axis, a convolution is a product with a banded
    (Toeplitz) matrix built from the kernel: ``sum_t w[t] · A[t]`` with
    :func:`_axis_taps`' 0/1 matrices, which also place the stride, dilation
    and zero padding. Over the last ``matrix_axes`` spatial axes (every axis
    when 0), each output channel's kernel becomes one matrix of
    ``in_pixels × out_pixels``, the sum over its taps of the weight times the
    Kronecker product of the axes' 0/1 matrices; the
    other, leading axes are cut into one window per kernel tap along them,
    stacked into the product's contraction. Each channel is then one matrix
    product over the batch's rows, a batched ``dot_general`` over the groups,
    where the stencil is a sum of one window product per tap. The product
    does ``in_pixels / taps`` times the stencil's multiply-adds (over the
    matrix axes), at matrix-product speed and in a handful of ops. JAX
    differentiates it: the input gradient is the product with the
    transposed matrices, the weight gradient one product over the batch
    contracted with the constant 0/1 matrices.
    """
    batch, n = x.shape[0], x.ndim - 2
    m = n if matrix_axes == 0 else min(matrix_axes, n)
    lead, trail = n - m, slice(n - m, n)
    kernel, spatial = w.shape[2:], x.shape[2:]
    out_sp = tuple((size + lo + hi - d * (k - 1) - 1) // s + 1
                   for size, (lo, hi), k, s, d in zip(spatial, pads, kernel, stride, dilation))
    # the Toeplitz matrix of each output channel: (O, *k_lead, *in_trail, *out_trail)
    t = w[:, 0]
    for size, out, k, s, (lo, _), d in zip(spatial[trail], out_sp[trail], kernel[trail], stride[trail],
                                           pads[trail], dilation[trail]):
        t = jnp.tensordot(t, _axis_taps(k, size, out, s, lo, d, w.dtype), axes=((1 + lead,), (0,)))
    # tensordot appends (in, out) per axis: order them as (O, *k_lead, *in_trail, *out_trail)
    first = 1 + lead
    t = jnp.transpose(t, tuple(range(first)) + tuple(first + 2 * j for j in range(m))
                      + tuple(first + 2 * j + 1 for j in range(m)))
    c_out, per_group = w.shape[0], w.shape[0] // groups
    p_out = math.prod(out_sp[trail])
    t = t.reshape(groups, per_group, -1, p_out)
    # the input's windows along the leading axes: (N, G, *out_lead, *k_lead, *in_trail)
    if lead:
        xp = jax.lax.pad(x, jnp.zeros((), x.dtype), [(0, 0, 0)] * 2 + [(lo, hi, 0) for lo, hi in pads[:lead]]
                         + [(0, 0, 0)] * m)
        windows = []
        for tap in itertools.product(*(range(k) for k in kernel[:lead])):
            start = tuple(tk * d for tk, d in zip(tap, dilation))
            limit = tuple(a + s * (o - 1) + 1 for a, s, o in zip(start, stride, out_sp))
            windows.append(jax.lax.slice(xp, (0, 0) + start + (0,) * m, xp.shape[:2] + limit + spatial[trail],
                                         (1, 1) + stride[:lead] + (1,) * m))
        rows = jnp.stack(windows, axis=2 + lead)
    else:
        rows = x
    rows = rows.reshape(batch, groups, math.prod(out_sp[:lead]), -1)
    y = jax.lax.dot_general(rows, t, (((3,), (2,)), ((1,), (0,))))  # (G, N, rows, per_group, p_out)
    y = jnp.transpose(y, (1, 0, 3, 2, 4))
    return y.reshape((batch, c_out) + out_sp)


def _padded_channels_last(x, pads, kernel, stride, dilation):
    """``x`` as ``(N, *S_padded, C)`` with the zero ``pads``, and the convolution's output spatial size.

    Transposing before padding lets XLA write the padded copy in one pass.
    """
    return _padded(to_channels_last(x), pads, kernel, stride, dilation)


def _padded(xt, pads, kernel, stride, dilation):
    """Channels-last ``xt`` with the zero ``pads``, and the convolution's output spatial size."""
    xt = jax.lax.pad(xt, jnp.zeros((), xt.dtype), [(0, 0, 0)] + [(lo, hi, 0) for lo, hi in pads] + [(0, 0, 0)])
    out_sp = tuple((p - d * (k - 1) - 1) // st + 1 for p, k, st, d in zip(xt.shape[1:-1], kernel, stride, dilation))
    return xt, out_sp


def _window_conv(x, w, stride, pads, dilation, groups):
    """``conv(x, w)`` as one matrix product per kernel tap (linear in ``w``).

    It serves as the weight term of the tangent; reverse mode uses its
    transpose: for each tap ``t``,
    ``grad_w[..., t] = g (O, N·S_out) @ window_t(x) (N·S_out, C)``, a plain
    matrix product over the channels-last input window. XLA:CPU runs these at
    matrix-multiply speed, whereas its weight-gradient convolution (a
    convolution whose "kernel" is the whole output map) is up to an order of
    magnitude slower.

    The taps are a ``lax.scan`` whose body is rematerialised, so the backward
    pass cuts one window at a time from ``x``: unrolled, XLA keeps all the
    windows (one activation-sized copy per tap) alive at once, and the scan is
    also the faster of the two.
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
        zero = jnp.zeros((), start.dtype)  # one index dtype, also under jax_enable_x64
        win = jax.lax.dynamic_slice(xt, (zero, *(start[i] for i in range(n)), zero), (batch, *span, c_in))
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
        return to_channels_first(conv(to_channels_last(x), w_last, "N" + s + "C", s + kernel))
    return conv(x, w, "NC" + s, "OI" + s)


# JAX writes a convolution's gradients as convolutions whose dimension numbers
# derive from the forward one's, so the JVP rule writes its two tangent terms
# such that their transposes (the input and weight gradients of reverse mode)
# are already in Eigen's form (this package's docstring), also inside loops,
# where XLA:CPU does not canonicalize them: the input term with its kernel laid
# out (*k, O, I), since the transpose swaps the kernel's I and O labels
# (_xla_conv(..., kernel="OI"); grouped convolutions too), and, for groups == 1,
# the weight term as below.


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


def _padded_for_weight_gradient(x, kernel, stride, pads, dilation):
    """``(x, pads)`` for a weight term that XLA transposes: ``x`` zero-padded beforehand where the output is
    wider than the input.

    The transpose's "kernel" is then the output gradient; wider than the
    unpadded input (a 2×2 kernel padded by 1, as in the sub-pixel transposed
    convolution), XLA swaps the two operands into a reversed-window
    convolution that XLA:CPU runs outside Eigen, 100× slower. Padded
    beforehand, behind a barrier that keeps XLA from folding the padding back
    into the convolution, the input is the wider of the two.
    """
    out_sp = [(size + lo + hi - d * (k - 1) - 1) // st + 1
              for size, (lo, hi), k, st, d in zip(x.shape[2:], pads, kernel, stride, dilation)]
    if all(o <= size for o, size in zip(out_sp, x.shape[2:])):
        return x, pads
    padded = jax.lax.pad(x, jnp.zeros((), x.dtype), [(0, 0, 0)] * 2 + [(lo, hi, 0) for lo, hi in pads])
    return jax.lax.optimization_barrier(padded), ((0, 0),) * len(pads)


def _stencil_conv(x, w, stride, pads, dilation, groups):
    """``conv(x, w)`` for one input channel per group, as a sum over taps of window × weight.

    Each kernel tap contributes ``window_t(x)[..., g] · w[o, 0, t]`` to the
    outputs ``o`` of group ``g``: an elementwise product, so XLA fuses all taps
    into one pass over the output (channels-last inside). XLA:CPU's grouped
    convolution handles depthwise layers badly, and its convolution of a
    single input channel spends most of its time packing im2col blocks one
    float at a time.
    """
    return to_channels_first(_stencil_channels_last(to_channels_last(x), _tap_major(w), stride, pads, dilation,
                                                    groups))


def _tap_major(w):
    """A one-input-channel-per-group ``(O, 1, *k)`` weight as ``(*k, O)``: each tap's weights contiguous.

    A stencil multiplies each tap's window by that tap's ``O`` weights along
    the channels-last input's minor axis. Sliced from torch's layout inside
    the stencil's loop (the halves of :func:`_materialised` and
    :func:`_stencil_row_halves`), those weights lie ``prod(k)`` floats apart
    and XLA:CPU gathers them element by element, which makes ConvNeXt-Tiny's
    7×7 stencils at 56×56 about twice as slow. Laid out before the loop,
    the loop's operand is this array and each tap's weights are one vector
    load. Outside loops XLA fuses the relayout into the stencil either way.
    """
    return jnp.moveaxis(w[:, 0], 0, -1)


def _stencil_weight_term(x, dw, stride, pads, dilation, groups, chunks):
    """``conv(x, dw)`` for one input channel per group, over ``chunks`` equal chunks of the batch.

    Transposed (the weight gradient), each tap's window of ``x`` is multiplied
    by the output gradient and summed; XLA:CPU writes each window to memory
    first. Over the whole batch of a large activation those copies go to main
    memory; chunk by chunk, in a ``lax.scan`` whose body is rematerialised (so
    the windows are cut in the backward pass, not kept from the forward), they
    stay in cache.
    """
    if chunks == 1:
        return _stencil_conv(x, dw, stride, pads, dilation, groups)
    xt = to_channels_last(x)
    dwt = _tap_major(dw)

    @jax.checkpoint
    def chunk(carry, xc):
        return carry, _stencil_channels_last(xc, dwt, stride, pads, dilation, groups)

    _, ys = jax.lax.scan(chunk, None, xt.reshape((chunks, xt.shape[0] // chunks) + xt.shape[1:]))
    return to_channels_first(ys.reshape((xt.shape[0],) + ys.shape[2:]))


def _stencil_channels_last(xt, wt, stride, pads, dilation, groups):
    """:func:`_stencil_conv` of a channels-last ``(N, *S, C)`` input and a tap-major ``(*k, O)`` weight
    (:func:`_tap_major`), channels-last out. Negative pads crop."""
    kernel = wt.shape[:-1]
    per_group = wt.shape[-1] // groups
    xt, out_sp = _padded(xt, pads, kernel, stride, dilation)
    y = None
    for tap, win in _tap_windows(xt, kernel, stride, dilation, out_sp):
        if per_group > 1:  # input channel g feeds outputs g·per_group … (g+1)·per_group − 1
            win = jnp.repeat(win, per_group, axis=-1)
        term = win * wt[tap]
        y = term if y is None else y + term
    return y


def _tap_windows(xt, kernel, stride, dilation, out_sp):
    """``(tap, window)`` per kernel tap of a padded channels-last ``(N, *S, C)`` input: the ``(N, *out_sp, C)``
    input values that tap multiplies, one strided slice each."""
    for tap in itertools.product(*(range(k) for k in kernel)):
        start = tuple(t * d for t, d in zip(tap, dilation))
        limit = tuple(a + st * (o - 1) + 1 for a, st, o in zip(start, stride, out_sp))
        yield tap, jax.lax.slice(xt, (0,) + start + (0,), (xt.shape[0],) + limit + (xt.shape[-1],),
                                 (1,) + tuple(stride) + (1,))


def _stencil_input_gradient(g, wt_flipped, in_spatial, stride, pads, dilation, groups, phases=False):
    """The input gradient of :func:`_stencil_channels_last` for the output gradient ``g``, as a stencil over ``g``.

    Per spatial dimension (input size ``L``, pads ``lo``/``hi``, ``O``
    outputs): ``dx[i] = Σ_t g_s[i + d·t] · w[k−1−t]``, where ``g_s`` is ``g``
    with ``s − 1`` zeros between its values, ``d(k−1) − lo`` zeros before and
    ``L + lo − s(O−1) − 1`` after (negative counts crop): a stride-1
    stencil with the flipped kernel, one read per tap and output, where the
    transpose of the forward's window slices is one padded copy of ``g`` per
    tap. Channels-last in and out; outputs of one group are summed into their
    input channel. ``wt_flipped``: the weight flipped along its spatial axes,
    tap-major (:func:`_tap_major`). ``phases``: a strided stencil without
    dilation is instead one stencil per output phase
    (:func:`_stencil_input_gradient_phases`).
    """
    kernel, out_sp = wt_flipped.shape[:-1], g.shape[1:-1]
    per_group = wt_flipped.shape[-1] // groups
    if phases and any(s > 1 for s in stride) and all(d == 1 for d in dilation):
        dx = _stencil_input_gradient_phases(g, wt_flipped, in_spatial, stride, pads)
    else:
        n = len(kernel)
        pads_g = tuple((d * (k - 1) - lo, size + lo - s * (o - 1) - 1)
                       for k, o, s, (lo, _), d, size in zip(kernel, out_sp, stride, pads, dilation, in_spatial))
        if any(s > 1 for s in stride):
            g = jax.lax.pad(g, jnp.zeros((), g.dtype), [(0, 0, 0)] + [(0, 0, s - 1) for s in stride] + [(0, 0, 0)])
        dx = _stencil_channels_last(g, wt_flipped, (1,) * n, pads_g, dilation, wt_flipped.shape[-1])
    return dx.reshape(dx.shape[:-1] + (groups, per_group)).sum(-1) if per_group > 1 else dx


def _stencil_input_gradient_phases(g, wt_flipped, in_spatial, stride, pads):
    """:func:`_stencil_input_gradient` of a strided stencil without dilation, one stencil per output phase
    (:func:`_by_phases`). The zero-dilated form reads ``s^n`` times as many
    values, most of them zeros, from a copy of ``g`` ``s^n`` times its size.
    Channels-last in and out, one output per input channel (before a
    group's outputs are summed). ``wt_flipped`` as in
    :func:`_stencil_input_gradient`.
    """
    n = len(stride)
    wt = jnp.flip(wt_flipped, tuple(range(n)))

    def part(taps, pads_g):
        sub = jnp.flip(wt[taps], tuple(range(n)))
        return _stencil_channels_last(g, sub, (1,) * n, pads_g, (1,) * n, sub.shape[-1])

    return _by_phases(g, wt.shape[:-1], in_spatial, stride, pads, g.shape[-1], part)


def _xla_input_gradient_phases(g, w, in_spatial, stride, pads, groups):
    """The input gradient of a strided convolution without dilation (:func:`_xla_conv`'s), one of XLA's
    stride-1 convolutions per output phase (:func:`_by_phases`).

    Each phase convolves the output gradient ``g`` with the flipped
    sub-kernel of its taps, features swapped (``O`` in, ``C`` out, within
    each of the ``groups``). XLA's own input gradient convolves the
    zero-dilated ``g``: ``s^n`` times the products, most of them by zeros.
    Channels-last ``g`` ``(N, *out, O)`` and result ``(N, *in_spatial, C)``;
    ``w`` in torch's ``(O, C/groups, *k)`` layout.
    """
    n = len(stride)
    out, c_group = w.shape[0], w.shape[1]
    s = _SPATIAL[n]

    def part(taps, pads_g):
        sub = jnp.flip(w[(slice(None), slice(None)) + taps], tuple(range(2, 2 + n)))
        # (O, C/G, *J) -> (*J, O/G, C): group j's outputs read its O/G input features, as the forward's groups
        sub = sub.reshape((groups, out // groups, c_group) + sub.shape[2:])
        sub = jnp.moveaxis(sub, (0, 1, 2), (n + 1, n, n + 2)).reshape(sub.shape[3:] + (out // groups, groups * c_group))
        gc = jax.lax.slice(g, (0,) + tuple(max(0, -lo) for lo, _ in pads_g) + (0,),
                           (g.shape[0],) + tuple(size - max(0, -hi) for size, (_, hi) in zip(g.shape[1:-1], pads_g))
                           + (g.shape[-1],))
        return jax.lax.conv_general_dilated(gc, sub, (1,) * n, [(max(0, lo), max(0, hi)) for lo, hi in pads_g],
                                            dimension_numbers=("N" + s + "C", s + "IO", "N" + s + "C"),
                                            feature_group_count=groups)

    return _by_phases(g, w.shape[2:], in_spatial, stride, pads, groups * c_group, part)


def _by_phases(g, kernel, in_spatial, stride, pads, channels, part):
    """The input gradient of a strided convolution without dilation, as one stride-1 convolution per output phase.

    Per spatial dimension (stride ``s``, kernel ``k``, pad ``lo``): the
    inputs ``i = s·m + p`` of phase ``p`` are reached by the taps
    ``t ≡ p + lo (mod s)`` only, ``dx[s·m + p] = Σ_j g[m + m0 − j] · w[r + s·j]``
    with ``r = (p + lo) mod s`` and ``m0 = (p + lo) div s``: a stride-1
    convolution over ``g`` with every ``s``-th tap of the kernel, read as a
    window from ``m + m0 − (J−1)``. ``part(taps, pads_g)`` computes one
    phase, ``(N, *counts, channels)``: ``taps`` the slices of the kernel's
    spatial axes it uses, ``pads_g`` the (lo, hi) pads of ``g`` (negative
    ones crop). A phase that no tap reaches (kernel smaller than the
    stride) is zero. The phases' results are interleaved and cropped to
    ``in_spatial``; channels-last ``g`` and result.
    """
    out_sp = g.shape[1:-1]
    counts = [-(-size // s) for size, s in zip(in_spatial, stride)]  # outputs per phase, the last ones cropped
    parts = {}
    for phase in itertools.product(*(range(s) for s in stride)):
        first = [(p + lo) % s for p, (lo, _), s in zip(phase, pads, stride)]
        m0 = [(p + lo) // s for p, (lo, _), s in zip(phase, pads, stride)]
        taps = [len(range(r, k, s)) for r, k, s in zip(first, kernel, stride)]
        if not all(taps):
            parts[phase] = jnp.zeros((g.shape[0], *counts, channels), g.dtype)
            continue
        pads_g = tuple((j - 1 - m, c + m - o) for j, m, c, o in zip(taps, m0, counts, out_sp))
        parts[phase] = part(tuple(slice(r, None, s) for r, s in zip(first, stride)), pads_g)
    dx = _interleaved(parts, stride, 0)
    return jax.lax.slice(dx, (0,) * dx.ndim, (dx.shape[0], *in_spatial, dx.shape[-1]))


def _xla_input_term_phases(dx, w, stride, pads, groups):
    """``conv(dx, w)`` (XLA's convolution's tangent in its input), written as the transpose of
    :func:`_xla_input_gradient_phases`, so that reverse mode computes the input gradient by phases."""
    return _transposed_input_gradient(
        dx, w, stride, pads, (1,) * len(stride),
        lambda g, in_spatial: _xla_input_gradient_phases(g, w, in_spatial, stride, pads, groups))


def _transposed_input_gradient(dx, w, stride, pads, dilation, gradient):
    """``conv(dx, w)``, the tangent in the input, as the transpose of ``gradient(g, in_spatial)``: the linear map
    from a channels-last output gradient ``g`` to the channels-last input gradient.

    Reverse mode transposes the result back, so the input gradient is
    ``gradient`` itself; forward mode evaluates its transpose.
    """
    xt = to_channels_last(dx)
    in_spatial = xt.shape[1:-1]
    out_sp = tuple((p + lo + hi - d * (k - 1) - 1) // s + 1
                   for p, (lo, hi), k, s, d in zip(in_spatial, pads, w.shape[2:], stride, dilation))
    g_struct = jax.ShapeDtypeStruct((xt.shape[0],) + out_sp + (w.shape[0],), xt.dtype)
    (y,) = jax.linear_transpose(lambda g: gradient(g, in_spatial), g_struct)(xt)
    return to_channels_first(y)


def _interleaved(parts, stride, axis, prefix=()):
    """The channels-last arrays ``parts[phase]`` (``(N, *counts, C)``) as one ``(N, *(counts·stride), C)`` array
    whose element ``s·m + p`` along each spatial axis is element ``m`` of phase ``p``."""
    if axis == len(stride):
        return parts[prefix]
    sub = [_interleaved(parts, stride, axis + 1, prefix + (p,)) for p in range(stride[axis])]
    if len(sub) == 1:
        return sub[0]
    y = jnp.stack(sub, axis=axis + 2)  # (N, …, m, p, …, C)
    return y.reshape(y.shape[:axis + 1] + (y.shape[axis + 1] * y.shape[axis + 2],) + y.shape[axis + 3:])


def _stencil_input_term(dx, w, stride, pads, dilation, groups, branch=False, phases=False):
    """``conv(dx, w)`` (the stencil's tangent in its input), written as the transpose of :func:`_stencil_input_gradient`
    (:func:`_transposed_input_gradient`): the input gradient is that gather-form stencil, materialised as the
    forward is; forward mode evaluates the transpose itself, a sum of padded copies."""
    wt_flipped = _tap_major(jnp.flip(w, tuple(range(2, w.ndim))))

    def gradient(g, in_spatial):
        fn = lambda gh: _stencil_input_gradient(gh, wt_flipped, in_spatial, stride, pads, dilation, groups,  # noqa: E731
                                                phases)
        return _branched(fn, g, w) if branch else _materialised(fn, g, True)

    return _transposed_input_gradient(dx, w, stride, pads, dilation, gradient)


def _materialised(fn, x, differentiated: bool):
    """``fn(x)`` (a stencil), written to memory as a kernel of its own.

    Left to itself, XLA:CPU fuses a stencil's window products into every
    consumer, such as a max-pool's arg-max reduction, batch norm's statistics
    or the ReLU mask of the backward pass, where they run as slow scalar
    loops and are recomputed in each. An optimization barrier stops that.
    Under differentiation, an even batch is instead computed in two halves
    by a two-step ``lax.scan``, which also keeps the stencil's transpose (the
    input gradient) out of its consumers and is the faster of the two in
    training steps; without derivatives the barrier is the faster
    (MobileNet-V2's inference, ``benchmarks/README.md``). XLA:CPU removes the
    barrier before it fuses, though, so a stencil with several consumers is
    recomputed in each: :func:`_stencil_row_halves` and :func:`_branched`
    avoid that for depthwise stencils (``ConvPlan.row_halves``,
    ``ConvPlan.branch``).
    """
    n = x.shape[0]
    if n % 2 or not differentiated:
        return jax.lax.optimization_barrier(fn(x))
    halves = x.reshape((2, n // 2) + x.shape[1:])
    _, ys = jax.lax.scan(lambda carry, xh: (carry, fn(xh)), None, halves)
    return ys.reshape((n,) + ys.shape[2:])


def _branched(fn, x, key):
    """``fn(x)`` (a stencil), written to memory as the result of a conditional whose taken branch is ``fn``.

    A conditional's result is a buffer of its own: XLA:CPU neither fuses the
    stencil into its consumers (as it does past an optimization barrier) nor
    writes it from a loop, whose in-place update of the output runs on one
    thread (:func:`_materialised`, :func:`_stencil_row_halves`); in its branch
    the stencil is one fusion over the whole output, on every core.

    The predicate is the bits of ``key``'s first element with the lowest bit
    set, compared with zero: true for every value, NaN included, but XLA does
    not reason about bits and keeps the conditional. ``key`` must be a value
    XLA cannot fold, or XLA folds the predicate and inlines the branch: the
    weight in training, the input in inference, where :func:`fcnn.freeze`
    makes the weight a constant. The branch never taken is zeros of the
    stencil's shape (a broadcast of ``0 · x[0]``), so the program holds each
    stencil once: a copy in that branch would be 4,400 of the 47,000 HLO
    instructions of EfficientNet-B0's compiled train step, which XLA parses
    and rebuilds on every load from the persistent cache
    (``benchmarks/README.md``). Under a ``vmap`` over ``key`` the predicate is
    batched and JAX runs both branches and selects: the stencil and a fill.

    The taken branch calls a ``jax.jit`` of ``fn``: JAX's reverse mode
    partially evaluates and transposes each branch of a conditional, and
    through the call it does so with the call's cached rules instead of each
    tap's (a fifth to a third off the train-step traces of MobileNet-V2,
    EfficientNet-B0 and ConvNeXt-Tiny, ``benchmarks/README.md``). XLA inlines
    the call.
    """
    first = key.reshape(-1)[0]
    bits = jax.lax.bitcast_convert_type(first, jnp.dtype(f"uint{8 * first.dtype.itemsize}"))
    call = jax.jit(fn)
    out = jax.eval_shape(call, x)  # traced once: the conditional reuses the call's trace

    def never(v):
        # reads v: JAX's partial evaluation would compute a constant fill in the forward pass and keep it,
        # activation-sized, as a residual for the backward pass
        return jnp.broadcast_to(v.reshape(-1)[0] * 0, out.shape)

    return jax.lax.cond((bits | 1) != 0, call, never, x)


def _stencil_row_halves(xt, w, stride, pads, dilation, groups):
    """:func:`_stencil_channels_last` computed as a two-step ``lax.scan`` over the two halves of the output rows
    (an even number), each from its rows of the padded input: written to memory once, as the batch halves of
    :func:`_materialised` are, for any batch."""
    kernel = w.shape[2:]
    xp, out_sp = _padded(xt, pads, kernel, stride, dilation)
    half = out_sp[0] // 2
    rows = stride[0] * (half - 1) + dilation[0] * (kernel[0] - 1) + 1
    halves = jnp.stack([jax.lax.slice_in_dim(xp, s, s + rows, axis=1) for s in (0, stride[0] * half)])
    none = ((0, 0),) * len(kernel)
    wt = _tap_major(w)
    _, ys = jax.lax.scan(lambda c, h: (c, _stencil_channels_last(h, wt, stride, none, dilation, groups)), None, halves)
    ys = jnp.moveaxis(ys, 0, 1)  # (N, 2, half, ...)
    return ys.reshape((ys.shape[0], 2 * half) + ys.shape[3:])


def _block_diagonal(w, groups, per_block):
    """The ``(O, C/groups, *k)`` weight of ``groups`` groups as that of ``groups/per_block`` groups.

    Each new group's kernel is block-diagonal in ``per_block`` old groups:
    ``(O, per_block·C/groups, *k)``, zero between old groups (selected, not
    multiplied, so that a non-finite weight stays in its group).
    """
    out, c_group = w.shape[:2]
    blocks = w.reshape((groups // per_block, per_block, out // groups, 1, c_group) + w.shape[2:])
    same = (jnp.arange(per_block)[:, None] == jnp.arange(per_block))[:, None, :, None]
    same = same.reshape(same.shape + (1,) * (w.ndim - 2))
    wide = jnp.where(same, blocks, jnp.zeros((), w.dtype))  # (blocks, per_block, O/groups, per_block, C/groups, *k)
    return wide.reshape((out, per_block * c_group) + w.shape[2:])


def _zero_groups(x, w, groups, extra):
    """``x``, ``w`` and the group count with ``extra`` groups of zero input channels and zero kernels appended
    (their outputs are zero)."""
    if not extra:
        return x, w, groups
    x = jax.lax.pad(x, jnp.zeros((), x.dtype), [(0, 0, 0), (0, extra * (x.shape[1] // groups), 0)]
                    + [(0, 0, 0)] * (x.ndim - 2))
    w = jax.lax.pad(w, jnp.zeros((), w.dtype), [(0, extra * (w.shape[0] // groups), 0)] + [(0, 0, 0)] * (w.ndim - 1))
    return x, w, groups + extra


def _forward_conv(x, w, stride, pads, dilation, groups, channels_last, stencil, differentiated=False,
                  row_halves=False, per_block=1, branch=False):
    if stencil and row_halves and not branch and (x.shape[0] % 2 or not differentiated):
        out_rows = (x.shape[2] + sum(pads[0]) - dilation[0] * (w.shape[2] - 1) - 1) // stride[0] + 1
        if out_rows % 2 == 0:
            return to_channels_first(_stencil_row_halves(to_channels_last(x), w, stride, pads, dilation, groups))
    if stencil:
        # the layout changes stay outside the conditional or loop, where XLA
        # cancels them against those of channels-last neighbours
        wt = _tap_major(w)
        fn = lambda xh: _stencil_channels_last(xh, wt, stride, pads, dilation, groups)  # noqa: E731
        xt = to_channels_last(x)
        y = _branched(fn, xt, w if differentiated else x) if branch else _materialised(fn, xt, differentiated)
        return to_channels_first(y)
    # blocks of groups: XLA:CPU convolves each group on its own, one pass over the whole input per group
    return _blocked(lambda x, w, groups: _xla_conv(x, w, stride, pads, dilation, groups, channels_last),
                    x, w, groups, per_block)


def _blocked(conv, x, w, groups, per_block):
    """``conv(x, w, groups)`` computed as ``conv`` over blocks of ``per_block`` groups, each block one group with a
    block-diagonal kernel (:func:`_block_diagonal`), zero groups appended to fill the last block
    (:func:`_zero_groups`) and their outputs dropped."""
    if per_block == 1:
        return conv(x, w, groups)
    out = w.shape[0]
    x, w, groups = _zero_groups(x, w, groups, -groups % per_block)
    return conv(x, _block_diagonal(w, groups, per_block), groups // per_block)[:, :out]


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13))
def _conv(x, w, stride, pads, dilation, groups, weight_grad, channels_last, stencil, chunks, row_halves, per_block,
          branch, phases):
    return _forward_conv(x, w, stride, pads, dilation, groups, channels_last, stencil, row_halves=row_halves,
                         per_block=per_block, branch=branch)


@_conv.defjvp
def _conv_jvp(stride, pads, dilation, groups, weight_grad, channels_last, stencil, chunks, row_halves, per_block,
              branch, phases, primals, tangents):
    x, w = primals
    dx, dw = tangents
    y = _forward_conv(x, w, stride, pads, dilation, groups, channels_last, stencil, differentiated=True,
                      row_halves=row_halves, per_block=per_block, branch=branch)
    eigen = channels_last and groups == 1
    if weight_grad == "window":
        weight_term = _window_conv(x, dw, stride, pads, dilation, groups)
    elif stencil and groups > 1:
        # transposed, a sum over the batch and pixels of window_t(x) · g per tap;
        # XLA's transpose of a grouped convolution is one that XLA:CPU expands
        # into a dense convolution with a masked (C, C) kernel
        weight_term = _stencil_weight_term(x, dw, stride, pads, dilation, groups, chunks)
    else:
        x_w, pads_w = _padded_for_weight_gradient(x, w.shape[2:], stride, pads, dilation)
        if eigen:
            weight_term = _eigen_weight_term(x_w, dw, stride, pads_w, dilation)
        else:
            weight_term = _xla_conv(x_w, dw, stride, pads_w, dilation, groups, channels_last)
    if phases and not stencil and any(s > 1 for s in stride) and all(d == 1 for d in dilation):
        input_term = _blocked(lambda dx, w, groups: _xla_input_term_phases(dx, w, stride, pads, groups),
                              dx, w, groups, per_block)
    elif channels_last and not stencil:
        # grouped too: the transpose moves the groups into the kernel's output features, which stay last
        input_term = _blocked(lambda dx, w, groups: _xla_conv(dx, w, stride, pads, dilation, groups, True, kernel="OI"),
                              dx, w, groups, per_block)
    elif stencil:
        input_term = _stencil_input_term(dx, w, stride, pads, dilation, groups, branch, phases)
    else:
        input_term = _forward_conv(dx, w, stride, pads, dilation, groups, channels_last, stencil, differentiated=True,
                                   per_block=per_block)
    return y, input_term + weight_term
