"""Backend fast paths, and the one policy that selects them.

:mod:`fcnn.functional` states what each op computes, in plain ``jax.lax``;
this package holds the formulations that compute the same values faster on
one platform, and :class:`Policy`, the one place that decides which an op
uses. An op asks the policy in force (:func:`policy`) and either runs its
reference formulation or hands its validated arguments to the implementation
the policy names. The values agree to float rounding; the tests compare every
registered implementation with the reference (``tests/backends/``).

What the policy decides, each by a named field:

- the **layout**: one rule, :meth:`Policy.channels_last`, consulted by every
  op that can compute channels-last inside (convolutions, max pooling, the
  normalisations, the per-element ops). XLA:CPU's convolutions work on
  ``(N, *spatial, C)`` data; when each op transposes its ``(N, C, *spatial)``
  input to that layout, computes, and transposes back, XLA removes the
  transposes between consecutive ops. The API, values and gradients stay
  channel-first;
- the **convolution's formulation** (:meth:`Policy.conv`): XLA's convolution,
  or the XLA:CPU formulations of :mod:`fcnn.backends.xla_cpu.conv`;
- the **weight gradient of a product by a weight** (``linear``, a 1×1
  convolution; :meth:`Policy.linear`, :attr:`Policy.weight_gradient_input_first`):
  which operand XLA:CPU transposes;
- the **pooling window scan** (:attr:`Policy.window_scan_taps`);
- the **exact GELU's formula** (:attr:`Policy.gelu_erf`);
- **DenseNet's transitions**: tiled average pooling as a reduction
  (:attr:`Policy.avg_pool_tiles`), and the pool before the 1×1 convolution
  (:attr:`Policy.transition_pool_first`); its dense blocks' feature maps'
  gradients computed once (:attr:`Policy.dense_gradient_buffers`).

An op called on concrete arrays outside any transformation is compiled as a
program of its own (:mod:`fcnn.functional._compiled`); it is traced under the
policy with ``eager=True``, and the policy is part of the compiled program's
key. Transposes only pay off between ops that share the layout, so an eager
op computes in its input's layout.

``benchmarks/README.md`` says why each formulation is there;
``python -m benchmarks.ops_conv`` and ``benchmarks.ops_pool`` time them.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp


class ConvPlan(NamedTuple):
    """How :mod:`fcnn.backends.xla_cpu.conv` writes one convolution.

    ``forward``: ``"xla"`` (XLA's convolution), ``"stencil"`` (a sum of
    window products; one input channel per group only), ``"matmul"`` (one
    matrix product over the channels; 1×1 kernels without padding or groups
    only), ``"patches"`` (XLA's convolution channels-last, differentiated as
    one matrix product of the input's patches with the weight; one group
    only) or ``"toeplitz"`` (one matrix product per channel with the kernel's
    Toeplitz matrix; one input channel per group only). JAX differentiates
    the last three, so the fields below but ``weight_grad`` and
    ``matrix_axes`` do not apply to them. ``weight_grad``:
    ``"xla"`` or ``"window"`` (one matrix product per kernel tap); for the
    matrix-product plan, ``"xla"`` (JAX's), ``"per_example"`` (a sum of
    per-example products) or ``"input_first"`` (one product with the input as
    its first operand: :mod:`fcnn.backends.xla_cpu.matmul`).
    ``channels_last``: XLA's convolution between two transposes.
    ``batch_chunks``: a grouped stencil's weight gradient (its per-tap window
    reductions) runs over this many equal chunks of the batch, one after the
    other (the greatest common divisor with the batch size, where it does not
    divide it).
    ``row_halves``: a stencil without derivatives, or of an odd batch, is
    computed as a two-step loop over the halves of its output rows (when
    their number is even) instead of behind an optimization barrier.
    ``groups_per_block``: XLA's forward and its input gradient convolve this
    many consecutive groups as one, with a block-diagonal kernel (zero
    between the groups): fewer, wider groups. A group count it does not
    divide is padded with groups of zeros to a multiple of it.
    ``branch``: a stencil's forward and input gradient (one input channel
    per group) are each the result of a conditional whose taken branch is
    the stencil (the other, never taken, a fill of zeros), with or without
    derivatives; it takes precedence over
    ``row_halves`` and the batch halves.
    ``phases``: a strided convolution without dilation (a stencil, or
    XLA's forward) computes its input gradient as one stride-1 stencil or
    convolution per output phase (every ``stride``-th input), each with the
    kernel taps that reach that phase, instead of one over the zero-dilated
    output gradient.
    ``matrix_axes``: the ``"toeplitz"`` forward (one input channel per
    group; JAX differentiates it) multiplies each channel by its kernel's
    Toeplitz matrix over the last ``matrix_axes`` spatial axes, or over
    every axis when 0, the other axes cut into one window per kernel tap.
    """
    forward: str = "xla"
    weight_grad: str = "xla"
    channels_last: bool = False
    batch_chunks: int = 1
    row_halves: bool = False
    groups_per_block: int = 1
    matrix_axes: int = 0
    branch: bool = False
    phases: bool = False


@dataclasses.dataclass(frozen=True)
class Policy:
    """Which implementation each op uses on ``platform``, and the thresholds that decide it.

    Attributes:
      platform: ``"cpu"``, ``"gpu"`` or ``"tpu"``. The fast paths below are
        XLA:CPU's; elsewhere every op runs its reference formulation.
      eager: the op is traced as a program of its own (called on concrete
        arrays outside ``jit``/``grad``/``vmap``). Set by
        :func:`fcnn.functional._compiled.compiled`, not by users.
      fast_paths: ``False`` runs every op's reference formulation, channel-first.
      channels_last_min_elements: smaller inputs stay channel-first: there the
        transposes are extra work in a step bound by per-op overhead (LeNet-5
        at batch 1).
      small_kernel_taps: the per-tap formulations (stencil, per-tap weight
        gradient) are used for kernels of at most this many taps; larger
        kernels unroll into too many products.
      stencil_max_outputs: a 2-D convolution of a single input channel is a
        stencil when it has at most this many outputs (LeNet's first layer);
        with more, XLA's convolution is as fast or faster.
      stencil_chunk_elements: a grouped stencil's weight gradient reads one
        window of its input per kernel tap; for inputs of more elements than
        this it runs over batch chunks of at most this many (the fewest that
        divide the batch), so that each chunk's windows stay in the cache
        (MobileNet-V2 at batch 32, 128×128). The loop also writes its input
        to memory once: fused into each tap's window instead, its producer
        (ConvNeXt's LayerNorm, a batch norm and activation) is recomputed per
        tap. Each iteration costs a window copy and a reduction per tap, so
        chunks of 4 MB (2²⁰ floats) beat those of one image: train steps 5–22 %
        shorter than with 2¹⁶ (one process, A/B: EfficientNet-B0 b32 128² 596
        -> 469 ms, MobileNet-V3-Large 300 -> 258, ConvNeXt-Tiny b8 96² 322 -> 295).
      stencil_row_halves_min_taps: :attr:`ConvPlan.row_halves` for the
        depthwise stencils of at least this many kernel taps. XLA:CPU removes
        optimization barriers before it fuses, so a stencil behind one is
        recomputed in each of its consumers (ConvNeXt's LayerNorm reads its
        7×7 stencil three times); a loop's output is written once. A 3×3
        stencil with one consumer (MobileNet-V2) is faster recomputed.
      stencil_branch_min_taps: :attr:`ConvPlan.branch` for the depthwise
        stencils of at least this many kernel taps (3×3 and larger). A
        conditional's result is written once, like a loop's, but by one
        fusion on every core, where a loop updates its output in place on one
        thread. Measured against the loops and the barrier (one process, A/B,
        ``benchmarks/README.md``): training steps 2–7 % shorter (MobileNet-V2,
        EfficientNet-B0, ShuffleNet-V2, ConvNeXt-Tiny), inference up to 14 %
        (ConvNeXt-Tiny with the weights as arguments), frozen inference within
        3 % or shorter.
      stencil_strided_phases: :attr:`ConvPlan.phases` for strided, undilated
        stencils. The zero-dilated output gradient is a padded copy ``stride²``
        times its size (53 MB for MobileNet-V2's first strided 3×3 layer at
        batch 32, 128×128), and three of every four taps of a stride-2 stencil
        over it read zeros; per phase each input is computed from the taps that
        reach it. That layer's forward and input gradient take 32 instead of 46
        ms; train steps are 1–3 % shorter (MobileNet-V2, MobileNet-V3-Large).
      conv_strided_phases_min_rows: :attr:`ConvPlan.phases` for XLA's
        strided convolutions without dilation (channels-last) of at least this
        many output pixels over the batch. XLA:CPU's input gradient convolves
        the zero-dilated output gradient, ``stride²`` times the products; one
        stride-1 convolution per phase is 1.3–3× faster from 16384 rows
        (RegNet-Y-400MF's first strided block at batch 32, 128²: 54 -> 21 ms)
        and with fewer rows by turns faster and slower, by channel count
        (``benchmarks/README.md``).
      toeplitz_min_taps, toeplitz_max_pixels_per_tap, toeplitz_min_batch: a
        depthwise convolution (one input channel per group, several groups)
        of at least ``toeplitz_min_taps`` kernel taps, on inputs of at most
        ``toeplitz_max_pixels_per_tap`` pixels per tap and batches of at least
        ``toeplitz_min_batch``, is one matrix product per channel with its
        kernel's Toeplitz matrix over every spatial axis
        (``ConvPlan("toeplitz")``): ConvNeXt's 7×7 depthwise convolutions at
        8×8 and smaller. The product does ``pixels / taps`` times the
        stencil's multiply-adds, at matrix-product speed and in a few ops
        where the stencil and its gradients are one op per tap. At batch 1
        writing the matrices costs as much as the product.
      gelu_erf: the exact GELU computes ``x/2·(1 + erf(x/√2))`` (torch's
        formula; :mod:`fcnn.backends.xla_cpu.activation`), which XLA:CPU
        evaluates faster than the reference's ``erfc``.
      patches_max_rows, patches_max_ratio: a 2-D convolution of one group
        with at most ``patches_max_rows`` output pixels over the batch (counted
        at stride 1), whose input patches (those pixels × in_channels × taps)
        have at most ``patches_max_ratio`` times the weight's elements, is
        differentiated as one matrix product of its patches with the weight
        (``ConvPlan("patches")``): deep layers at small spatial sizes, such as
        ResNet-50's last two stages at batch 8 and 96². XLA's convolution
        relayouts the weight three times per training step (forward, input
        gradient, weight gradient), which costs more than the products there;
        with more rows (ResNet-50's last stage at batch 32 and 128²: 512) Eigen's
        convolution is the faster.
      patches_non_overlapping: a 2-D convolution of one group whose windows
        tile the input (kernel equal to stride, no padding or dilation:
        ConvNeXt's stem and downsampling layers, patch embeddings) is
        differentiated as the product of its patches at any size. Its patches
        are the input rearranged, not duplicated; XLA's weight-gradient
        convolution there transposes the input batch-innermost (20 ms of
        ConvNeXt-Tiny's train step at batch 32, 128×128, for one 12 MB input).
      pointwise_per_example_min_elements, pointwise_per_example_pixels_per_channel:
        a 1×1 convolution that :attr:`weight_gradient_input_first` leaves
        has its weight gradient as a sum of per-example matrix products when
        its output gradient has at least
        ``pointwise_per_example_min_elements`` elements and each example at
        least ``pointwise_per_example_pixels_per_channel`` pixels per input
        channel (both counted at stride 1). As one product over the batch,
        XLA:CPU first transposes the whole output gradient, which for large
        maps leaves the cache (MobileNet-V2's expansions at batch 32, 128×128);
        per example the transposes stay in it, but each example's product
        writes a whole weight-sized partial sum, which costs more than it
        saves where the maps are small against the channels (ResNet-50's
        last stages).
      weight_gradient_input_first: a product by a weight (``linear``, a 1×1
        convolution) computes its weight gradient with the input as the first
        operand (:mod:`fcnn.backends.xla_cpu.matmul`) where that transposes
        fewer elements: XLA:CPU transposes the first operand to put the
        contracted rows innermost, so the input's ``rows × in_features``
        are transposed instead of the output gradient's ``rows ×
        out_features``, and the weight-sized result once more. Expanding 1×1
        convolutions and MLP layers on many rows: ResNet-50's first three
        stages, MobileNet's expansions, ConvNeXt-Tiny's first MLP layers at
        batch 32; not ResNet-50's last stage there (512 rows against a 512 →
        2048 weight). It takes precedence over the per-example weight
        gradient, which transposes the output gradient one example at a time.
      grouped_block_rows_per_group, grouped_block_channels, grouped_pad_block_channels, grouped_dense_max_channels:
        a 2-D grouped convolution (channels-last) of several input channels per
        group convolves blocks of ``k`` consecutive groups as one group with a
        block-diagonal kernel, in its forward and input gradient
        (:attr:`ConvPlan.groups_per_block`), when it has at least
        ``k · grouped_block_rows_per_group`` output pixels over the batch.
        XLA:CPU's Eigen convolution runs each group as a convolution of its
        own that reads the whole input, so at RegNet-Y-400MF's 8 channels per
        group and large maps the passes over the input cost more than the ``k``
        times as many products (most of them by the kernel's zeros); with
        fewer pixels the products cost more than they save (RegNet-Y-400MF's
        last stage at batch 8, 96²; its second stage's strided block at batch
        1, 224²). A block holds the most groups that divide the group count in
        at most ``grouped_block_channels`` input channels, or, where no count
        from 2 divides it (RegNet-Y-400MF's 13 groups), ``grouped_pad_block_channels``
        input channels, the group count padded with groups of zeros; a strided
        convolution of at most ``grouped_dense_max_channels`` input channels,
        whose input gradient XLA writes as a convolution of the zero-dilated
        output gradient, is one dense convolution (one block).
      window_scan_taps: max and average pooling (on every platform) compute
        windows of at most this many taps as one strided slice per tap, which
        is faster than ``lax.reduce_window`` for small windows; larger windows
        are reduced by ``lax.reduce_window``.
      avg_pool_tiles: average pooling whose windows tile the input (stride
        equal to the kernel, no padding: DenseNet's transitions), where the
        layout rule picks channels-last, sums each window as one reduction
        over the window axes of a reshaped channels-last view. Its gradient is
        then one broadcast; the window scan's is one padded copy per tap, and
        XLA:CPU recomputes the gradient's producer (DenseNet's sum over every
        later layer) in each. Small channel-first inputs keep the scan, which
        is the faster there.
      transition_pool_first: DenseNet's transitions average-pool before their
        1×1 convolution instead of after it (torchvision's order). Both are
        linear and the convolution has no bias, so the values agree to float
        rounding; the convolution and its two gradients run on a quarter of
        the pixels.
      dense_gradient_buffers: DenseNet's dense blocks pass each feature map
        through :func:`fcnn.backends.xla_cpu.buffers.gradient_buffer`, so
        that the sum of its gradients from every later layer of the block is
        computed once, in its own layout, instead of inside both consumers
        of it (its convolution's input and weight gradients, the latter
        reading it transposed). Only the program differs.
    """
    platform: str
    eager: bool = False
    fast_paths: bool = True
    channels_last_min_elements: int = 2**14
    small_kernel_taps: int = 49
    stencil_max_outputs: int = 8
    stencil_chunk_elements: int = 2**20
    window_scan_taps: int = 32
    grouped_block_rows_per_group: int = 64
    grouped_block_channels: int = 48
    grouped_pad_block_channels: int = 32
    grouped_dense_max_channels: int = 128
    patches_max_rows: int = 320
    patches_max_ratio: float = 5.0
    patches_non_overlapping: bool = True
    pointwise_per_example_min_elements: int = 2**20
    pointwise_per_example_pixels_per_channel: int = 16
    weight_gradient_input_first: bool = True
    stencil_row_halves_min_taps: int = 49
    stencil_branch_min_taps: int = 9
    conv_strided_phases_min_rows: int = 16384
    stencil_strided_phases: bool = True
    toeplitz_min_taps: int = 49
    toeplitz_max_pixels_per_tap: float = 1.5
    toeplitz_min_batch: int = 2
    toeplitz_last_axis_max_width: int = 0
    gelu_erf: bool = True
    avg_pool_tiles: bool = True
    transition_pool_first: bool = True
    dense_gradient_buffers: bool = True

    def replace(self, **changes) -> "Policy":
        return dataclasses.replace(self, **changes)

    @property
    def xla_cpu(self) -> bool:
        """Whether XLA:CPU's fast paths apply."""
        return self.fast_paths and self.platform == "cpu"

    def channels_last(self, shape) -> bool:
        """The layout rule: compute a channel-first ``shape`` channels-last inside.

        True on XLA:CPU, inside a caller's trace, for 3-D and 4-D inputs (those
        of 1-D and 2-D convolutions; 3-D convolutions are slower channels-last
        on XLA:CPU) of at least :attr:`channels_last_min_elements` elements.
        """
        return (self.xla_cpu and not self.eager and len(shape) in (3, 4)
                and math.prod(shape) >= self.channels_last_min_elements)

    def conv(self, x_shape, w_shape, groups: int, pads, stride=None, dilation=None):
        """The fast convolution for an ``x_shape`` input and ``w_shape`` weight, or ``None`` for the reference.

        ``pads``: the (lo, hi) zero padding of each spatial dimension;
        ``stride``, ``dilation``: per spatial dimension (default 1).

        On XLA:CPU: the per-tap weight gradient for grouped and 3-D
        convolutions with at least 2 input channels per group and a small
        kernel, where XLA's weight-gradient convolution is several times
        slower (for 1-D/2-D convolutions with one group, XLA's own, on
        Eigen, is the faster); the stencil forward for depthwise-style
        convolutions (several groups of one input channel) and for 2-D
        convolutions of one input channel to at most
        :attr:`stencil_max_outputs` outputs, where XLA:CPU's convolution
        packs its input one float at a time; and the layout rule. A 1×1
        convolution without padding or groups is a matrix product over the
        channels (of every ``stride``-th pixel): written as one, XLA reads the
        weight in torch's ``(O, I)`` layout, where its convolution would
        transpose it on every call, which dominates inference at small batches.
        For the same reason a convolution of few output pixels
        (:attr:`patches_max_rows`), or whose windows tile its input
        (:attr:`patches_non_overlapping`), is differentiated as a matrix
        product of its patches. A 2-D grouped convolution of several input
        channels per group and many output pixels convolves blocks of groups
        as one (:attr:`grouped_block_rows_per_group`). A large depthwise kernel on a small
        map is one matrix product per channel (:attr:`toeplitz_min_taps`).
        """
        if not self.xla_cpu:
            return None
        from fcnn.backends.xla_cpu import conv
        if (groups == 1 and all(k == 1 for k in w_shape[2:])
                and all(p == (0, 0) for p in pads)):
            pixels = math.prod(x_shape[2:])
            per_example = (x_shape[0] * pixels * w_shape[0] >= self.pointwise_per_example_min_elements
                           and pixels >= self.pointwise_per_example_pixels_per_channel * w_shape[1])
            stride = (1,) * len(pads) if stride is None else tuple(stride)
            rows = x_shape[0] * math.prod(-(-size // s) for size, s in zip(x_shape[2:], stride))
            weight_grad = ("input_first" if self._input_first(rows, w_shape[1], w_shape[0])
                           else "per_example" if per_example else "xla")
            return functools.partial(conv.conv, plan=ConvPlan("matmul", weight_grad))
        taps = math.prod(w_shape[2:])
        if (self.patches_non_overlapping and groups == 1 and taps > 1 and self.channels_last(x_shape)
                and len(x_shape) == 4 and stride is not None and tuple(stride) == tuple(w_shape[2:])
                and all(p == (0, 0) for p in pads) and (dilation is None or all(d == 1 for d in dilation))):
            return functools.partial(conv.conv, plan=ConvPlan("patches"))
        if groups == 1 and taps > 1 and len(x_shape) == 4 and self.channels_last(x_shape):
            # the output of a stride-1 convolution: an upper bound for strided ones
            out = [size + lo + hi - k + 1 for size, (lo, hi), k in zip(x_shape[2:], pads, w_shape[2:])]
            rows = x_shape[0] * math.prod(out)
            if (rows <= self.patches_max_rows
                    and rows * x_shape[1] * taps <= self.patches_max_ratio * math.prod(w_shape)):
                return functools.partial(conv.conv, plan=ConvPlan("patches"))
        small_kernel = taps <= self.small_kernel_taps
        per_tap = (groups > 1 or len(x_shape) == 5) and w_shape[1] >= 2 and small_kernel
        per_block = self._groups_per_block(x_shape, w_shape, groups, pads, stride) if per_tap else 1
        first_layer = len(x_shape) == 4 and w_shape[0] <= self.stencil_max_outputs
        stencil = w_shape[1] == 1 and (groups > 1 or first_layer) and small_kernel
        chunks, batch = 1, x_shape[0]
        if (stencil and groups > 1 and taps >= self.toeplitz_min_taps and batch >= self.toeplitz_min_batch
                and math.prod(x_shape[2:]) <= self.toeplitz_max_pixels_per_tap * taps):
            return functools.partial(conv.conv, plan=ConvPlan("toeplitz"))
        if (stencil and groups > 1 and taps >= self.toeplitz_min_taps and batch >= self.toeplitz_min_batch
                and x_shape[-1] <= self.toeplitz_last_axis_max_width):
            return functools.partial(conv.conv, plan=ConvPlan("toeplitz", matrix_axes=1))
        if stencil and groups > 1:
            chunks = next((d for d in range(1, batch) if batch % d == 0 and batch // d * math.prod(x_shape[1:])
                           <= self.stencil_chunk_elements), batch)
        strided = (stride is not None and any(s > 1 for s in stride)
                   and (dilation is None or all(d == 1 for d in dilation)))
        if stencil or not strided:
            phases = strided and self.stencil_strided_phases
        else:
            out = [(size + lo + hi - k) // s + 1 for size, (lo, hi), k, s in zip(x_shape[2:], pads, w_shape[2:], stride)]
            phases = (self.channels_last(x_shape)
                      and x_shape[0] * math.prod(out) >= self.conv_strided_phases_min_rows)
        plan = ConvPlan("stencil" if stencil else "xla", "window" if per_tap else "xla",
                        self.channels_last(x_shape), chunks,
                        stencil and groups > 1 and taps >= self.stencil_row_halves_min_taps, per_block,
                        branch=stencil and groups > 1 and taps >= self.stencil_branch_min_taps, phases=phases)
        return functools.partial(conv.conv, plan=plan)

    def linear(self, x_shape, w_shape):
        """The fast ``x · wᵀ`` for an ``x_shape`` input ``(*, in_features)`` and ``(out_features, in_features)``
        weight, or ``None`` for ``dot_general``.

        On XLA:CPU: :func:`fcnn.backends.xla_cpu.matmul.product` where
        :attr:`weight_gradient_input_first` applies. Called as
        ``fast(x, weight, axis)``, ``axis`` being ``x``'s in_features axis.
        """
        if not (self.xla_cpu and self._input_first(math.prod(x_shape[:-1]), w_shape[1], w_shape[0])):
            return None
        from fcnn.backends.xla_cpu import matmul
        return matmul.product

    def _input_first(self, rows: int, in_features: int, out_features: int) -> bool:
        # the input is transposed instead of the output gradient, and the weight-sized result once more
        return self.weight_gradient_input_first and rows * (out_features - in_features) > in_features * out_features

    def _groups_per_block(self, x_shape, w_shape, groups, pads, stride):
        """:attr:`ConvPlan.groups_per_block` for a grouped convolution (see :attr:`grouped_block_rows_per_group`)."""
        if len(x_shape) != 4 or not self.channels_last(x_shape):
            return 1
        stride = (1,) * len(pads) if stride is None else tuple(stride)
        out = [(size + lo + hi - k) // s + 1 for size, (lo, hi), k, s in zip(x_shape[2:], pads, w_shape[2:], stride)]
        if any(s > 1 for s in stride) and x_shape[1] <= self.grouped_dense_max_channels:
            per_block = groups
        else:
            # groups wider than a block (ResNeXt-101 32x8d's 64 channels, RegNet-X-8GF's 120) stay apart
            per_block = max((k for k in range(1, groups + 1)
                             if groups % k == 0 and k * w_shape[1] <= self.grouped_block_channels), default=1)
            if per_block == 1:
                per_block = max(1, min(groups, self.grouped_pad_block_channels // w_shape[1]))
        return per_block if x_shape[0] * math.prod(out) >= per_block * self.grouped_block_rows_per_group else 1


@functools.cache
def _default(platform: str) -> Policy:
    return Policy(platform)


_ACTIVE: contextvars.ContextVar[Policy | None] = contextvars.ContextVar("fcnn_backend_policy", default=None)


def policy() -> Policy:
    """The policy in force: the one given to :func:`use`, else the default for JAX's default backend."""
    active = _ACTIVE.get()
    return _default(jax.default_backend()) if active is None else active


@contextlib.contextmanager
def use(p: Policy):
    """Trace fcnn's ops under ``p`` inside the ``with`` block.

    Ops compiled as programs of their own key their programs on the policy, so
    switching needs no cache clearing; a caller's own ``jax.jit`` should be
    traced inside the block (its cache does not know the policy).
    """
    if not isinstance(p, Policy):
        raise TypeError(f"use: expected a fcnn.backends.Policy, got {p!r}")
    token = _ACTIVE.set(p)
    try:
        yield p
    finally:
        _ACTIVE.reset(token)


def to_channels_last(x):
    """``(N, C, *spatial)`` -> ``(N, *spatial, C)``."""
    return jnp.moveaxis(x, 1, -1)


def to_channels_first(x):
    """``(N, *spatial, C)`` -> ``(N, C, *spatial)``."""
    return jnp.moveaxis(x, -1, 1)


def pointwise(f, *xs):
    """``f(*xs)`` for a per-element ``f`` and arrays of one shape, in the layout :meth:`Policy.channels_last` picks.

    The values are the same either way; only the program XLA sees differs.
    An op between convolutions written channel-first leaves its result (or
    its derivative, a ReLU mask) channel-first; XLA:CPU then materialises it
    in that layout and the convolutions read it through strided transposes.
    """
    if not xs:
        raise TypeError("pointwise: give at least one array after the function")
    shape = xs[0].shape
    if any(x.shape != shape for x in xs):
        raise ValueError(f"pointwise: the arrays must have one shape, got {[tuple(x.shape) for x in xs]}")
    if policy().channels_last(shape):
        return to_channels_first(f(*(to_channels_last(x) for x in xs)))
    return f(*xs)


def channel_layout(x):
    """``x`` in the layout :meth:`Policy.channels_last` picks for it: ``(view, channel_axis, restore)``.

    ``restore`` turns a result in the view's layout back into channel-first.
    """
    if policy().channels_last(x.shape):
        return to_channels_last(x), x.ndim - 1, to_channels_first
    return x, 1, _identity


def _identity(x):
    return x
