"""Pooling as in torch.nn.functional: max, max-unpool, average, adaptive and power-average.

One N-dimensional implementation per kind of pooling; the public
``*_pool1d/2d/3d`` functions only fix the number of spatial dimensions.
Inputs are channel-first, ``(N, C, *spatial)`` or unbatched ``(C, *spatial)``;
Max pooling, and average pooling over windows that tile the input, may compute channels-last inside
(:meth:`fcnn.backends.Policy.channels_last`).

Torch semantics reproduced exactly (and tested against torch):

- output size ``floor((L + 2p − d(k−1) − 1 + (s−1 if ceil_mode)) / s) + 1``, minus one
  in ``ceil_mode`` when the last window would start in the right padding;
- max pooling pads with −inf, so padding never wins; the arg-max is the first
  maximum in the window's row-major scan order (a NaN wins over numbers, the
  last NaN over earlier ones), and the gradient goes to that element only;
- ``return_indices=True`` gives the flat index of the arg-max inside its
  channel of the *unpadded* input (``h * W + w`` in 2-D), the layout
  :func:`max_unpool2d` expects. Torch stores these as int64; fcnn stores
  int32 because JAX runs with 64-bit types disabled (enough for 2³¹ elements
  per channel);
- average pooling divides by torch's divisor: the window clipped to
  ``input + padding`` (``count_include_pad=True``) or to the input
  (``False``), or ``divisor_override``;
- adaptive pooling uses the bins ``floor(i·L/out) … ceil((i+1)·L/out)``.
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from fcnn import _checks, backends
from fcnn.functional import upsample as _upsample
from fcnn.functional._compiled import compiled

# --------------------------------------------------------------------------------------------
# arguments and geometry


def _fmt(shape) -> str:
    return "x".join(map(str, shape))


def pool_args(kernel_size, stride, padding, dilation, n: int, where: str):
    """Normalise torch's pooling arguments to ``n``-tuples and validate them.

    ``stride=None`` (or an empty sequence, as torch accepts) means ``kernel_size``.
    Padding is limited to half the kernel (``padding <= kernel_size // 2``): torch
    checks the dilated kernel in one place and the plain kernel in another, so
    the plain kernel is what it accepts.
    """
    kernel = _checks.ntuple(kernel_size, n, "kernel_size", where)
    _checks.positive(kernel, "kernel_size", where)
    if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0):
        stride = kernel
    stride = _checks.ntuple(stride, n, "stride", where)
    _checks.positive(stride, "stride", where)
    pad = _checks.ntuple(padding, n, "padding", where)
    _checks.non_negative(pad, "padding", where)
    dil = _checks.ntuple(dilation, n, "dilation", where)
    _checks.positive(dil, "dilation", where)
    for k, p in zip(kernel, pad):
        if p > k // 2:
            raise ValueError(
                f"{where}: pad should be smaller than or equal to half of kernel size, but got "
                f"padding={pad if n > 1 else p} and kernel_size={kernel if n > 1 else k}"
            )
    return kernel, stride, pad, dil


def pool_output_size(size, kernel, stride, padding, dilation, ceil_mode: bool) -> tuple[int, ...]:
    """Torch's pooling output size per spatial dimension (may be < 1 for a too large kernel)."""
    out = []
    for length, k, s, p, d in zip(size, kernel, stride, padding, dilation):
        o = (length + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1
        # torch: the last window must start inside the input or the left padding.
        if ceil_mode and (o - 1) * s >= length + p:
            o -= 1
        out.append(o)
    return tuple(out)


def checked_output_size(x, kernel, stride, padding, dilation, ceil_mode: bool, where: str) -> tuple[int, ...]:
    """:func:`pool_output_size` of the batched input ``x`` (from :func:`pool_input`), refused naming
    ``where`` when a window does not fit (an output size below 1)."""
    spatial = x.shape[2:]
    out = pool_output_size(spatial, kernel, stride, padding, dilation, ceil_mode)
    if any(o < 1 for o in out):
        raise ValueError(
            f"{where}: Given input size: ({_fmt(x.shape[1:])}). Calculated output size: "
            f"({_fmt((x.shape[1],) + out)}). Output size is too small: kernel_size={kernel} "
            f"(dilation={dilation}) does not fit the input padded by padding={padding}"
        )
    return out


def _pads(spatial, out, kernel, stride, padding, dilation):
    """(lo, hi) padding so that exactly ``out`` windows fit (hi covers ceil-mode overhang)."""
    return tuple(
        (p, max(0, (o - 1) * s + d * (k - 1) + 1 - length - p))
        for length, o, k, s, p, d in zip(spatial, out, kernel, stride, padding, dilation)
    )


def pool_input(input, n: int, where: str, *, floating: bool = True):
    """The pooling ops' input check: ``(input with a batch axis, whether it was unbatched)``.

    Refuses, naming ``where``, an input that is not ``(N, C, *spatial)`` or
    ``(C, *spatial)`` with ``n`` spatial dimensions, a non-floating one
    (``floating=True``), and empty channel or spatial sizes. Layers call it
    with their own name before calling the op, so that a bad input names the layer.
    """
    x, unbatched = _checks.spatial_input(input, n, where)
    if floating:
        _checks.floating(x, "input", where)
    if any(s == 0 for s in x.shape[1:]):
        raise ValueError(f"{where}: expected non-empty input (channels and spatial sizes > 0), got shape {tuple(x.shape)}")
    return x, unbatched


# --------------------------------------------------------------------------------------------
# max pooling


def _scanned(kernel) -> bool:
    """Whether windows of ``kernel`` are computed slice by slice (:attr:`fcnn.backends.Policy.window_scan_taps`)."""
    return math.prod(kernel) <= backends.policy().window_scan_taps


def _offsets(kernel):
    """Kernel offsets in torch's scan order (row-major: last dimension fastest)."""
    return list(itertools.product(*(range(k) for k in kernel)))


def _valid_mask(offs, spatial, out, stride, padding, dilation, last=False):
    """Static mask (broadcastable to the output) of windows whose element ``offs`` is inside the input.

    ``last``: the output is channels-last ``(N, *out, C)`` (the mask gets a trailing axis).
    """
    n = len(spatial)
    mask = np.ones((1,) * n, bool)
    for i, (off, length, o, s, p, d) in enumerate(zip(offs, spatial, out, stride, padding, dilation)):
        pos = np.arange(o) * s - p + off * d
        shape = [1] * n
        shape[i] = o
        mask = mask & ((pos >= 0) & (pos < length)).reshape(shape)
    return mask[..., None] if last else mask


def _window_slice(xp, offs, out, stride, dilation, last=False):
    """The window element ``offs`` of every output position: ``(N, C, *out)`` (``(N, *out, C)`` if ``last``)."""
    start = tuple(o * d for o, d in zip(offs, dilation))
    limit = tuple(st + (o - 1) * s + 1 for st, o, s in zip(start, out, stride))
    if last:
        return lax.slice(xp, (0,) + start + (0,), xp.shape[:1] + limit + xp.shape[-1:], (1,) + tuple(stride) + (1,))
    return lax.slice(xp, (0, 0) + start, xp.shape[:2] + limit, (1, 1) + tuple(stride))


def _scan_max(slices_and_masks, shape, dtype, arg0=0, last=False):
    """Torch's arg-max scan over a window given as a list of (values, static validity mask).

    An element replaces the running maximum when it is strictly greater or NaN;
    the first valid element is always taken (so an all −inf window still points
    into the input). A window without any valid element keeps ``arg0``.
    Returns the maximum and the position in the list, int32.
    """
    best = jnp.full(shape, -jnp.inf, dtype)
    arg = jnp.broadcast_to(jnp.asarray(arg0, jnp.int32), shape)
    seen = np.zeros((1,) * (len(shape) - 2 + last), bool)  # shaped like the masks
    for k, (v, valid) in enumerate(slices_and_masks):
        take = (v > best) | jnp.isnan(v)
        if not seen.all():
            take = take | ~seen
        if valid is not None and not valid.all():
            take = take & valid
            seen = seen | valid
        else:
            seen = np.ones_like(seen)
        best = jnp.where(take, v, best)
        arg = jnp.where(take, jnp.int32(k), arg)
    return best, arg


class _Windows(NamedTuple):
    """The geometry of a max pooling: per spatial axis the window, its placement and the output size."""

    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    dilation: tuple[int, ...]
    out: tuple[int, ...]
    pads: tuple[tuple[int, int], ...]  # (lo, hi) padding so that exactly ``out`` windows fit
    last: bool  # the input is channels-last, ``(N, *spatial, C)``


def _tiles(geom, spatial) -> bool:
    """Windows tile the input: kernel == stride, no padding, no dilation, and
    every window lies inside the input (a ceil_mode window may hang over the edge)."""
    kernel, stride, padding, dilation, out, pads, last = geom
    n = len(kernel)
    return (stride == kernel and padding == (0,) * n and dilation == (1,) * n
            and all(o * k <= length for o, k, length in zip(out, kernel, spatial)))


def _spatial(x, geom):
    """The spatial sizes of ``x``, channel-first or (``geom``'s last flag) channels-last."""
    return x.shape[1:-1] if geom.last else x.shape[2:]


def _max_pool_fwd_impl(x, geom):
    """Values and arg-max (window position, int32) of every window."""
    if _tiles(geom, _spatial(x, geom)):
        return _tiled_max_arg(x, geom)
    if not _scanned(geom.kernel):
        return _separable_max_arg(x, geom)
    return _window_scan(x, geom)


def _separable_max_arg(x, geom):
    """Large windows: torch's arg-max one spatial axis at a time, ``O(Σ k)`` work per output instead of ``O(Π k)``.

    Torch's choice is the first maximum in row-major window order (the last
    NaN if any): reducing the last axis first and carrying each winner's
    position along, every earlier axis then picks, among the winners of the
    later axes, the first maximum (last NaN) by its own position, which is
    the row-major order. Each axis is one variadic ``reduce_window`` with the
    order-independent reducer. Padding positions rank after every input
    position, so they never win a tie (torch's scan starts at the first valid
    element); a (dilated) window without any input element keeps torch's
    starting position.
    """
    kernel, stride, padding, dilation, out, pads, last = geom
    spatial = _spatial(x, geom)
    n = len(kernel)
    first = 1 if last else 2
    cfg = [(0, 0)] * x.ndim
    for i, (lo, hi) in enumerate(pads):
        cfg[first + i] = (lo, hi)
    xp = jnp.pad(x, cfg, constant_values=-jnp.inf)
    outside = np.iinfo(np.int32).max
    values, positions = xp, []
    for i in reversed(range(n)):
        axis = first + i
        length = values.shape[axis]
        pos = np.arange(length) - padding[i]
        pos = np.where((pos >= 0) & (pos < spatial[i]), pos, outside).astype(np.int32)
        shape = [1] * values.ndim
        shape[axis] = length
        pos = jnp.broadcast_to(pos.reshape(shape), values.shape)
        window = [1] * values.ndim
        window[axis] = kernel[i]
        strides = [1] * values.ndim
        strides[axis] = stride[i]
        dil = [1] * values.ndim
        dil[axis] = dilation[i]
        inits = (np.array(-np.inf, x.dtype), np.array(outside, np.int32)) + (np.array(outside, np.int32),) * len(positions)

        def reducer(a, b):
            v, p = _torch_max_reducer(a[:2], b[:2])
            take_b = p == b[1]
            return (v, p) + tuple(jnp.where(take_b, bc, ac) for ac, bc in zip(a[2:], b[2:]))

        res = lax.reduce_window((values, pos) + tuple(positions), inits, reducer, window, strides, "VALID",
                                window_dilation=dil)
        # crop to the output size (a ceil-mode pad may leave room for one more window than torch counts)
        crop = tuple(slice(0, out[i]) if d == axis else slice(None) for d in range(values.ndim))
        values, positions = res[0][crop], [res[1][crop]] + [p[crop] for p in res[2:]]
    # positions: input coordinates per axis (axis 0 first); to the position inside the window
    arg = jnp.zeros(values.shape, jnp.int32)
    found = jnp.ones(values.shape, bool)
    for i, p in enumerate(positions):
        shape = [1] * values.ndim
        shape[first + i] = out[i]
        start = np.asarray((np.arange(out[i]) * stride[i] - padding[i]).reshape(shape), np.int32)
        found = found & (p != outside)
        arg = arg * kernel[i] + (p - start) // dilation[i]
    empty = _empty_window_arg(out, kernel, stride, padding, dilation, last)
    return values, jnp.where(found, arg, empty)


def _window_scan(x, geom):
    kernel, stride, padding, dilation, out, pads, last = geom
    spatial = _spatial(x, geom)
    cfg = [(lo, hi, 0) for lo, hi in pads]
    cfg = [(0, 0, 0)] + cfg + [(0, 0, 0)] if last else [(0, 0, 0), (0, 0, 0)] + cfg
    xp = lax.pad(x, jnp.array(-jnp.inf, x.dtype), cfg)
    items = [
        (_window_slice(xp, offs, out, stride, dilation, last),
         _valid_mask(offs, spatial, out, stride, padding, dilation, last))
        for offs in _offsets(kernel)
    ]
    shape = x.shape[:1] + out + x.shape[-1:] if last else x.shape[:2] + out
    return _scan_max(items, shape, x.dtype, _empty_window_arg(out, kernel, stride, padding, dilation, last), last)


def _torch_max_reducer(a, b):
    """Order-independent form of torch's scan (so XLA may reduce in any order).

    ``(value, position)`` pairs: NaN beats numbers and a later NaN an earlier
    one; otherwise the larger value wins, and on a tie the earlier position.
    """
    av, ai = a
    bv, bi = b
    a_nan, b_nan = jnp.isnan(av), jnp.isnan(bv)
    take_b = jnp.where(a_nan | b_nan, b_nan & (~a_nan | (bi > ai)), (bv > av) | ((bv == av) & (bi < ai)))
    return jnp.where(take_b, bv, av), jnp.where(take_b, bi, ai)


def _windows_last(x, kernel, out, last=False):
    """Tiling windows ``(N, C, *spatial)`` -> ``(N, C, *out, prod(kernel))``, in torch's scan order.

    ``last``: ``(N, *spatial, C)`` -> ``(N, *out, C, prod(kernel))``.
    """
    n = len(kernel)
    if last:
        xc = x[(slice(None),) + tuple(slice(0, o * k) for o, k in zip(out, kernel)) + (slice(None),)]
        w = xc.reshape(x.shape[:1] + tuple(v for o, k in zip(out, kernel) for v in (o, k)) + x.shape[-1:])
        # (N, o1, k1, ..., on, kn, C) -> (N, o1..on, C, k1..kn)
        w = w.transpose((0,) + tuple(1 + 2 * i for i in range(n)) + (2 * n + 1,) + tuple(2 + 2 * i for i in range(n)))
        return w.reshape(x.shape[:1] + out + x.shape[-1:] + (math.prod(kernel),))
    lead = x.shape[:2]
    xc = x[(slice(None), slice(None)) + tuple(slice(0, o * k) for o, k in zip(out, kernel))]
    w = xc.reshape(lead + tuple(v for o, k in zip(out, kernel) for v in (o, k)))
    # (N, C, o1, k1, ..., on, kn) -> (N, C, o1..on, k1..kn)
    w = w.transpose((0, 1) + tuple(2 + 2 * i for i in range(n)) + tuple(3 + 2 * i for i in range(n)))
    return w.reshape(lead + out + (math.prod(kernel),))


def _tiled_max_arg(x, geom):
    """Tiling windows: gather each window's elements on a new axis and reduce it once."""
    kernel, stride, padding, dilation, out, pads, last = geom
    w = _windows_last(x, kernel, out, last)
    pos = lax.broadcasted_iota(jnp.int32, w.shape, w.ndim - 1)
    inits = (np.array(-np.inf, x.dtype), np.array(np.iinfo(np.int32).max, np.int32))
    return lax.reduce((w, pos), inits, _torch_max_reducer, (w.ndim - 1,))


def _empty_window_arg(out, kernel, stride, padding, dilation, last=False):
    """Torch's starting arg-max: the first window element at a non-negative position.

    It only survives in a (dilated) window that has no element inside the
    input, whose value is −inf; torch then reports this position.
    """
    n = len(kernel)
    arg = np.zeros((1,) * n, np.int64)
    for i, (o, k, s, p, d) in enumerate(zip(out, kernel, stride, padding, dilation)):
        first = np.minimum(np.maximum(-((np.arange(o) * s - p) // d), 0), k - 1)
        shape = [1] * n
        shape[i] = o
        arg = arg * k + first.reshape(shape)
    return arg.astype(np.int32)[..., None] if last else arg.astype(np.int32)


def _arg_tangent(t, arg, spatial, geom):
    """The tangent of max pooling: ``t`` (shaped like the input) read at each window's arg-max.

    A linear map of ``t`` (``arg`` is a fixed int32 array), written so that its
    transpose, which JAX derives for reverse mode, is the fast backward:

    - tiling windows: the windows on a trailing axis (the reshape of
      :func:`_tiled_max_arg`) and a one-hot select summed over that axis; the
      transpose is a select, a transpose and a reshape, all output-sized, plus
      a zero pad for an uncovered edge;
    - overlapping or padded windows: a gather at torch's flat indices, whose
      transpose is a scatter-add reading the arg-max once per output element.
      (Elementwise formulations of that backward let XLA fuse the whole forward
      window scan into the backward loop, recomputing it for every input
      element, several times slower; benchmarks/README.md.)
    """
    # Under jax.checkpoint what is derived from the arg-max (the one-hot mask,
    # the flat indices, zero constants) is recomputed in the backward pass
    # instead of being saved: reverse mode keeps only the int32 arg-max, as a
    # custom VJP would. prevent_cse=False: under jit no optimization barrier
    # stops XLA from sharing that work with the forward pass (with one, XLA
    # recomputed the whole window scan for the indices).
    return jax.checkpoint(_arg_tangent_impl, prevent_cse=False, static_argnums=(2, 3))(t, arg, tuple(spatial), geom)


def _arg_tangent_impl(t, arg, spatial, geom):
    kernel, stride, padding, dilation, out, pads, last = geom
    if _tiles(geom, spatial):
        w = _windows_last(t, kernel, out, last)
        hit = arg[..., None] == lax.broadcasted_iota(jnp.int32, w.shape, w.ndim - 1)
        return jnp.sum(jnp.where(hit, w, jnp.zeros((), t.dtype)), axis=-1)
    idx = _flat_indices(arg, kernel, stride, padding, dilation, spatial, out, last)
    if last:
        n, c = t.shape[0], t.shape[-1]
        flat = jnp.take_along_axis(t.reshape(n, math.prod(spatial), c), idx.reshape(n, math.prod(out), c), axis=1,
                                   mode="fill", fill_value=0)
    else:
        n, c = t.shape[:2]
        flat = jnp.take_along_axis(t.reshape(n, c, math.prod(spatial)), idx.reshape(n, c, math.prod(out)), axis=2,
                                   mode="fill", fill_value=0)
    return flat.reshape(arg.shape)


# Two entry points share one derivative rule: ``_max_pool_values`` gives the
# values only, ``_max_pool_with_arg`` also the arg-max. The rule computes the
# arg-max (int32) and the tangent is the input tangent read there
# (:func:`_arg_tangent`), so forward mode (jvp, jacfwd, Hessian-vector
# products) works, and reverse mode keeps the arg-max as its only residual
# instead of letting XLA re-derive it (select_and_scatter, 2-4x slower).


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _max_pool_values(x, geom):
    # The elementwise window scan (its unused arg-max is dead code) is faster
    # on CPU than lax.reduce_window for small windows (benchmarks/README.md);
    # a large window would be hundreds of slices.
    if not _scanned(geom.kernel) and not _tiles(geom, _spatial(x, geom)):
        kernel, stride, padding, dilation, out, pads, last = geom
        cfg = ((0, 0),) + pads + ((0, 0),) if last else ((0, 0), (0, 0)) + pads
        ones = (1,) * (x.ndim - len(kernel))
        window = (1,) + kernel + (1,) if last else ones + kernel
        strides = (1,) + stride + (1,) if last else ones + stride
        dil = (1,) + dilation + (1,) if last else ones + dilation
        y = lax.reduce_window(x, np.array(-np.inf, x.dtype), lax.max, window, strides, cfg, window_dilation=dil)
        return y[tuple(slice(0, o) for o in (y.shape[:1] + out + y.shape[-1:] if last else y.shape[:2] + out))]
    return _window_scan(x, geom)[0]


@_max_pool_values.defjvp
def _max_pool_values_jvp(geom, primals, tangents):
    (x,), (t,) = primals, tangents
    best, arg = _max_pool_with_arg(x, geom)
    return best, _arg_tangent(t, arg, _spatial(x, geom), geom)


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _max_pool_with_arg(x, geom):
    return _max_pool_fwd_impl(x, geom)


@_max_pool_with_arg.defjvp
def _max_pool_with_arg_jvp(geom, primals, tangents):
    (x,), (t,) = primals, tangents
    # The rule calls the function itself, so that a further derivative of the
    # values goes through this rule again (and the arg-max is computed once).
    best, arg = _max_pool_with_arg(x, geom)
    return (best, arg), (_arg_tangent(t, arg, _spatial(x, geom), geom), np.zeros(arg.shape, jax.dtypes.float0))


def _flat_index(arg, window, spatial, position):
    """Torch's flat index into the unpadded input channel of each arg-max.

    ``arg`` is a position in the window (row-major over the sizes ``window``);
    ``position(i, offset)`` is the input coordinate along spatial axis ``i`` of
    window offset ``offset``, broadcast against ``arg``.
    """
    flat = jnp.zeros(arg.shape, jnp.int32)
    rem = arg
    for i in reversed(range(len(window))):
        offset, rem = rem % window[i], rem // window[i]
        flat = flat + position(i, offset) * int(math.prod(spatial[i + 1:]))
    return flat


def _flat_indices(arg, kernel, stride, padding, dilation, spatial, out, last=False):
    """Window position (0..K-1) → torch's flat index; ``arg`` is ``(N, C, *out)``, or ``(N, *out, C)`` if ``last``."""
    n = len(kernel)

    def position(i, offset):
        shape = [1] * (n + 2)
        shape[1 + i if last else 2 + i] = out[i]
        start = jnp.asarray((np.arange(out[i]) * stride[i] - padding[i]).reshape(shape), jnp.int32)
        return start + offset * dilation[i]

    return _flat_index(arg, kernel, spatial, position)


@compiled
def _max_pool(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, n, where):
    x, unbatched = pool_input(input, n, where)
    kernel, stride, padding, dilation = pool_args(kernel_size, stride, padding, dilation, n, where)
    ceil_mode = _checks.boolean(ceil_mode, "ceil_mode", where)
    return_indices = _checks.boolean(return_indices, "return_indices", where)
    out = checked_output_size(x, kernel, stride, padding, dilation, ceil_mode, where)
    pads = _pads(x.shape[2:], out, kernel, stride, padding, dilation)
    # channels-last inside where the convolutions around it are (the backend's layout rule)
    last = backends.policy().channels_last(x.shape)
    geom = _Windows(kernel, stride, padding, dilation, out, pads, last)
    xw = backends.to_channels_last(x) if last else x
    if not return_indices:
        y = _max_pool_values(xw, geom)
        y = backends.to_channels_first(y) if last else y
        return y[0] if unbatched else y
    y, arg = _max_pool_with_arg(xw, geom)
    idx = _flat_indices(arg, kernel, stride, padding, dilation, x.shape[2:], out, last)
    if last:
        y, idx = backends.to_channels_first(y), backends.to_channels_first(idx)
    return (y[0], idx[0]) if unbatched else (y, idx)


_MAX_POOL_DOC = """{n}-D max pooling over ``{shape}`` or unbatched; same as ``torch.nn.functional.max_pool{n}d``.

    Args:
      input: ``{shape}`` or without the batch dimension.
      kernel_size, stride (default ``kernel_size``), padding, dilation: int or {n}-tuple.
        ``padding`` (implicit −inf) is at most ``kernel_size // 2``.
      ceil_mode: round the output size up; a window must still start inside the
        input or the left padding.
      return_indices: also return the int32 flat index (per channel, unpadded
        input) of each maximum, for :func:`max_unpool{n}d`.

    Returns:
      the pooled values (and the indices), ``L_out = floor((L + 2p − d(k−1) − 1 [+ s − 1]) / s) + 1``
      per spatial dimension. The gradient flows to the first maximum of each
      window, as in torch.
    """


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    return _max_pool(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, 1, "max_pool1d")


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    return _max_pool(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, 2, "max_pool2d")


def max_pool3d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    return _max_pool(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, 3, "max_pool3d")


max_pool1d.__doc__ = _MAX_POOL_DOC.format(n=1, shape="(N, C, L)")
max_pool2d.__doc__ = _MAX_POOL_DOC.format(n=2, shape="(N, C, H, W)")
max_pool3d.__doc__ = _MAX_POOL_DOC.format(n=3, shape="(N, C, D, H, W)")


# --------------------------------------------------------------------------------------------
# max unpooling


def unpool_output_size(in_spatial, kernel, stride, padding, output_size, where: str) -> tuple[int, ...]:
    """Torch's unpooling size: ``(L − 1)·s − 2p + k``, or ``output_size`` if within ``± stride`` of it."""
    n = len(kernel)
    default = tuple((length - 1) * s - 2 * p + k for length, k, s, p in zip(in_spatial, kernel, stride, padding))
    if output_size is None:
        size = default
    else:
        if isinstance(output_size, (int, np.integer)) or not isinstance(output_size, Sequence):
            raise TypeError(f"{where}: output_size must be a sequence of {n} or {n + 2} ints, got {output_size!r}")
        size = tuple(int(v) for v in output_size)
        if len(size) == n + 2:
            size = size[2:]
        if len(size) != n:
            raise ValueError(
                f"{where}: output_size should be a sequence containing {n} or {n + 2} elements, "
                f"but it has a length of '{len(size)}'"
            )
        for d, (v, dflt, s) in enumerate(zip(size, default, stride)):
            if not dflt - s < v < dflt + s:
                raise ValueError(
                    f'{where}: invalid output_size "{tuple(output_size)}" (dim {d} must be between '
                    f"{dflt - s} and {dflt + s}, exclusive)"
                )
    if any(v <= 0 for v in size):
        raise ValueError(f"{where}: output size must be positive, got {size} (check kernel_size, stride, padding)")
    return size


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def _unpool_scatter(values, indices, size):
    """Write ``values`` (N, C, L) at ``indices`` of a zero (N, C, size) output; an index outside it is dropped."""
    n, c = values.shape[:2]
    rows = jnp.arange(n)[:, None, None]
    cols = jnp.arange(c)[None, :, None]
    # a negative index would count from the end: send it past the end, where it is dropped
    indices = jnp.where(indices < 0, size, indices)
    return jnp.zeros((n, c, size), values.dtype).at[rows, cols, indices].set(values, mode="drop")


@_unpool_scatter.defjvp
def _unpool_scatter_jvp(size, primals, tangents):
    # torch's backward gathers the output gradient at every index, so each of
    # several inputs written to the same place receives it. The tangent is
    # therefore a scatter-*add* of the input tangent, whose transpose is that
    # gather (a scatter-set's transpose would give it to one of them only).
    # Where indices repeat, the tangent is the sum of theirs, consistent with
    # the gradient; torch's forward mode (a scatter-set) keeps one of them.
    # (jax.checkpoint: reverse mode keeps the indices only, see _arg_tangent.)
    values, indices = primals
    dy = jax.checkpoint(_scatter_add, prevent_cse=False, static_argnums=(2,))(tangents[0], indices, size)
    return _unpool_scatter(values, indices, size), dy


def _scatter_add(t, indices, size):
    # Dropping the out-of-range indices by a mask and a clamp (rather than
    # mode="drop") makes the transpose a clamped gather and a select, with no
    # bounds check on the batch and channel coordinates.
    n, c = t.shape[:2]
    rows = jnp.arange(n)[:, None, None]
    cols = jnp.arange(c)[None, :, None]
    valid = (indices >= 0) & (indices < size)
    t = jnp.where(valid, t, jnp.zeros((), t.dtype))
    return jnp.zeros((n, c, size), t.dtype).at[rows, cols, jnp.clip(indices, 0, size - 1)].add(t, mode="clip")


def unpool_input(input, indices, kernel_size, stride, padding, output_size, n: int, where: str):
    """The max-unpooling check: ``(input, indices, unbatched, output spatial size)``, both arrays with a batch axis.

    Refuses, naming ``where``, a bad input (:func:`pool_input`), ``indices`` of
    another shape or a non-integer dtype, bad pooling arguments and an
    ``output_size`` outside torch's range. Concrete indices outside the output
    are refused as torch refuses them; traced ones cannot be checked (see
    :func:`max_unpool2d`). Layers call it with their own name before calling the op.
    """
    x, unbatched = pool_input(input, n, where)
    idx = _checks.as_array(indices, "indices", where)
    if tuple(idx.shape) != tuple(input.shape):
        raise ValueError(
            f"{where}: Expected shape of indices to be same as that of the input tensor "
            f"({tuple(input.shape)}) but got indices tensor with shape: {tuple(idx.shape)}"
        )
    if not jnp.issubdtype(idx.dtype, jnp.integer):
        raise TypeError(f"{where}: indices must be an integer array, got dtype {idx.dtype}")
    if unbatched:
        idx = idx[None]
    kernel, stride, padding = unpool_args(kernel_size, stride, padding, n, where)
    size = unpool_output_size(x.shape[2:], kernel, stride, padding, output_size, where)
    if not isinstance(idx, jax.core.Tracer):
        values = np.asarray(idx)
        bad = values[(values < 0) | (values >= math.prod(size))]
        if bad.size:
            raise ValueError(
                f"{where}: Found an invalid max index: {int(bad.flat[0])} (output volumes are of size "
                f"{_fmt(size)}; indices must lie in [0, {math.prod(size)}))"
            )
    return x, idx, unbatched, size


@compiled
def _max_unpool_impl(input, indices, kernel_size, stride, padding, output_size, n, where):
    x, idx, unbatched, size = unpool_input(input, indices, kernel_size, stride, padding, output_size, n, where)
    lead = x.shape[:2]
    flat = lead + (math.prod(x.shape[2:]),)  # explicit sizes: a -1 can't be resolved for an empty batch
    y = _unpool_scatter(x.reshape(flat), idx.reshape(flat).astype(jnp.int32), math.prod(size))
    y = y.reshape(lead + size)
    return y[0] if unbatched else y


def _max_unpool(input, indices, kernel_size, stride, padding, output_size, n, where):
    # checked here, outside the compiled program, where concrete indices are still values
    unpool_input(input, indices, kernel_size, stride, padding, output_size, n, where)
    return _max_unpool_impl(input, indices, kernel_size, stride, padding, output_size, n, where)


def unpool_args(kernel_size, stride, padding, n, where):
    kernel = _checks.ntuple(kernel_size, n, "kernel_size", where)
    _checks.positive(kernel, "kernel_size", where)
    stride = kernel if stride is None else _checks.ntuple(stride, n, "stride", where)
    _checks.positive(stride, "stride", where)
    pad = _checks.ntuple(padding, n, "padding", where)
    _checks.non_negative(pad, "padding", where)
    return kernel, stride, pad


_MAX_UNPOOL_DOC = """Inverse of :func:`max_pool{n}d`; same as ``torch.nn.functional.max_unpool{n}d``.

    Puts each value of ``input`` at its flat index ``indices`` (as returned by
    ``max_pool{n}d(..., return_indices=True)``) of a zero output per channel.

    Args:
      input, indices: ``{shape}`` (or unbatched), same shape.
      kernel_size, stride (default ``kernel_size``), padding: those of the pooling.
      output_size: spatial size (``{n}`` ints, or ``{n2}`` with batch and channels);
        each must lie strictly within ``± stride`` of the default.

    Returns:
      ``L_out = (L − 1)·s − 2p + k`` per spatial dimension, or ``output_size``.

    An index outside ``[0, prod(L_out))`` (negative or too large) raises a
    ``ValueError`` when ``indices`` is a concrete array, as in torch. Traced
    indices (under ``jit``, ``grad``, ``vmap``) cannot be checked: there such a
    value is dropped (nothing is written for it, and it gets no gradient).
    """


def max_unpool1d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    return _max_unpool(input, indices, kernel_size, stride, padding, output_size, 1, "max_unpool1d")


def max_unpool2d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    return _max_unpool(input, indices, kernel_size, stride, padding, output_size, 2, "max_unpool2d")


def max_unpool3d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    return _max_unpool(input, indices, kernel_size, stride, padding, output_size, 3, "max_unpool3d")


max_unpool1d.__doc__ = _MAX_UNPOOL_DOC.format(n=1, n2=3, shape="(N, C, L)")
max_unpool2d.__doc__ = _MAX_UNPOOL_DOC.format(n=2, n2=4, shape="(N, C, H, W)")
max_unpool3d.__doc__ = _MAX_UNPOOL_DOC.format(n=3, n2=5, shape="(N, C, D, H, W)")


# --------------------------------------------------------------------------------------------
# average pooling


def _avg_divisor(spatial, out, kernel, stride, padding, count_include_pad):
    """Torch's per-window divisor; it is a product over dimensions, so build it separably."""
    n = len(spatial)
    div = np.ones((1,) * n, np.float64)
    for i, (length, o, k, s, p) in enumerate(zip(spatial, out, kernel, stride, padding)):
        start = np.arange(o) * s - p
        end = np.minimum(start + k, length + p)
        if not count_include_pad:
            start, end = np.maximum(start, 0), np.minimum(end, length)
        shape = [1] * n
        shape[i] = o
        div = div * (end - start).reshape(shape)
    return div



def _window_sum(x, kernel, stride, out, pads):
    """Sum of each window: strided slices of the zero-padded input added in torch's
    scan order for small kernels (3-10x faster than reduce_window on CPU, forward
    and backward), reduce_window for large ones."""
    if _scanned(kernel):
        xp = jnp.pad(x, ((0, 0), (0, 0)) + pads)
        total = None
        for offs in _offsets(kernel):
            sl = _window_slice(xp, offs, out, stride, (1,) * len(kernel))
            total = sl if total is None else total + sl
        return total
    # a NumPy init value: JAX recognises the (differentiable) sum only for a concrete 0
    return lax.reduce_window(
        x, np.array(0, x.dtype), lax.add, (1, 1) + kernel, (1, 1) + stride, ((0, 0), (0, 0)) + pads
    )


def _tiled_sum(x, kernel, out):
    """The sum of each window of windows that tile ``x`` (:func:`_tiles`), computed channels-last: one
    reduction over the window axes of a reshaped view (:attr:`fcnn.backends.Policy.avg_pool_tiles`)."""
    n = len(kernel)
    xt = backends.to_channels_last(x)[(slice(None),) + tuple(slice(0, o * k) for o, k in zip(out, kernel))]
    # (N, o1, k1, ..., on, kn, C): the window axes are every second one
    blocks = xt.reshape(x.shape[:1] + tuple(v for o, k in zip(out, kernel) for v in (o, k)) + x.shape[1:2])
    return backends.to_channels_first(jnp.sum(blocks, axis=tuple(2 + 2 * i for i in range(n))))


@compiled
def _avg_pool(input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, n, where):
    x, unbatched = pool_input(input, n, where)
    kernel, stride, padding, dilation = pool_args(kernel_size, stride, padding, 1, n, where)
    ceil_mode = _checks.boolean(ceil_mode, "ceil_mode", where)
    count_include_pad = _checks.boolean(count_include_pad, "count_include_pad", where)
    out = checked_output_size(x, kernel, stride, padding, dilation, ceil_mode, where)
    pads = _pads(x.shape[2:], out, kernel, stride, padding, dilation)
    geom = _Windows(kernel, stride, padding, dilation, out, pads, False)
    p = backends.policy()
    if p.avg_pool_tiles and p.channels_last(x.shape) and _tiles(geom, x.shape[2:]):
        total = _tiled_sum(x, kernel, out)
    else:
        total = _window_sum(x, kernel, stride, out, pads)
    if divisor_override is not None:
        if isinstance(divisor_override, bool) or not isinstance(divisor_override, (int, np.integer)):
            raise TypeError(f"{where}: divisor_override must be an int or None, got {divisor_override!r}")
        if divisor_override == 0:
            raise ValueError(f"{where}: divisor must be not zero (divisor_override=0)")
        y = total / jnp.asarray(divisor_override, x.dtype)
    else:
        div = _avg_divisor(x.shape[2:], out, kernel, stride, padding, count_include_pad)
        y = total / jnp.asarray(div, x.dtype)
    return y[0] if unbatched else y


_AVG_POOL_DOC = """{n}-D average pooling over ``{shape}`` or unbatched; same as ``torch.nn.functional.avg_pool{n}d``.

    Args:
      kernel_size, stride (default ``kernel_size``), padding (zeros, at most half the kernel):
        int or {n}-tuple.
      ceil_mode: round the output size up (the last window must start inside
        the input or the left padding).
      count_include_pad: divide by the window size clipped to ``input + padding``
        (True) or by the number of input elements in the window (False).{extra}

    Returns:
      ``L_out = floor((L + 2p − k [+ s − 1]) / s) + 1`` per spatial dimension.
    """


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    return _avg_pool(input, kernel_size, stride, padding, ceil_mode, count_include_pad, None, 1, "avg_pool1d")


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    return _avg_pool(input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, 2,
                     "avg_pool2d")


def avg_pool3d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    return _avg_pool(input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, 3,
                     "avg_pool3d")


_OVERRIDE = "\n      divisor_override: if given, divide every window sum by this int instead."
avg_pool1d.__doc__ = _AVG_POOL_DOC.format(n=1, shape="(N, C, L)", extra="\n      (torch's avg_pool1d has no divisor_override.)")
avg_pool2d.__doc__ = _AVG_POOL_DOC.format(n=2, shape="(N, C, H, W)", extra=_OVERRIDE)
avg_pool3d.__doc__ = _AVG_POOL_DOC.format(n=3, shape="(N, C, D, H, W)", extra=_OVERRIDE)


# --------------------------------------------------------------------------------------------
# adaptive pooling


def adaptive_output_size(output_size, spatial, n: int, where: str) -> tuple[int, ...]:
    """Normalise ``output_size`` (int or n-tuple; ``None`` keeps that input size)."""
    if output_size is None or isinstance(output_size, (int, np.integer)):
        output_size = (output_size,) * n
    if not isinstance(output_size, Sequence) or len(output_size) != n:
        raise ValueError(f"{where}: output_size must be an int or a tuple of {n} ints/None, got {output_size!r}")
    out = []
    for v, length in zip(output_size, spatial if spatial is not None else (None,) * n):
        if v is None:
            out.append(length)
            continue
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{where}: output_size must contain ints or None, got {tuple(output_size)!r}")
        if v <= 0:
            raise ValueError(f"{where}: output_size must be positive, got {tuple(output_size)!r}")
        out.append(int(v))
    return tuple(out)


def _bins(length, o):
    i = np.arange(o)
    start = (i * length) // o
    end = -((-(i + 1) * length) // o)
    return start, end


@compiled
def _adaptive_avg(input, output_size, n, where):
    x, unbatched = pool_input(input, n, where)
    out = adaptive_output_size(output_size, x.shape[2:], n, where)
    # Dimensions with equal, non-overlapping bins: one reshape and one sum over
    # all of them together (a single pass over the input), then the division.
    tiled = [i for i, (length, o) in enumerate(zip(x.shape[2:], out)) if length % o == 0 and o != length]
    y = x
    if tiled:
        shape, axes, count = list(x.shape[:2]), [], 1
        for i, (length, o) in enumerate(zip(x.shape[2:], out)):
            if i in tiled:
                shape += [o, length // o]
                axes.append(len(shape) - 1)
                count *= length // o
            else:
                shape.append(length)
        y = x.reshape(shape).sum(axis=tuple(axes)) / jnp.asarray(count, x.dtype)
    for i, (length, o) in enumerate(zip(x.shape[2:], out)):
        axis = 2 + i
        if o == length or i in tiled:
            continue
        # Overlapping / uneven bins: a gather per bin element, summed and divided by the bin sizes
        # (a 0/1 bin matrix would multiply an inf by the zeros of every other bin).
        y = _upsample._apply_taps(y, _upsample._area_taps(length, o), axis)
    return y[0] if unbatched else y


@compiled
def _adaptive_max(input, output_size, return_indices, n, where):
    x, unbatched = pool_input(input, n, where)
    return_indices = _checks.boolean(return_indices, "return_indices", where)
    spatial = x.shape[2:]
    out = adaptive_output_size(output_size, spatial, n, where)
    if all(length % o == 0 for length, o in zip(spatial, out)):
        # Equal bins are exactly max pooling with kernel = stride = L / out.
        k = tuple(length // o for length, o in zip(spatial, out))
        res = _max_pool(x, k, k, 0, 1, False, return_indices, n, where)
    else:
        res = _adaptive_max_gather(x, spatial, out, return_indices)
    if unbatched:
        res = tuple(r[0] for r in res) if return_indices else res[0]
    return res


def _adaptive_max_gather(x, spatial, out, return_indices):
    """Uneven bins: gather each bin (padded by repeating its last element) and scan it."""
    n = len(spatial)
    idxs = []
    w = x
    for i, (length, o) in enumerate(zip(spatial, out)):
        start, end = _bins(length, o)
        kmax = int((end - start).max())
        # Repeating the bin's last element never changes torch's first-maximum choice.
        idx = np.minimum(start[:, None] + np.arange(kmax)[None, :], end[:, None] - 1)
        idxs.append(idx)
        axis = 2 + 2 * i
        w = jnp.take(w, jnp.asarray(idx.reshape(-1)), axis=axis)
        w = w.reshape(w.shape[:axis] + (o, kmax) + w.shape[axis + 1:])
    perm = (0, 1) + tuple(2 + 2 * i for i in range(n)) + tuple(3 + 2 * i for i in range(n))
    w = w.transpose(perm)
    kshape = w.shape[2 + n:]
    w = w.reshape(w.shape[:2 + n] + (math.prod(w.shape[2 + n:]),))
    # One variadic reduce over the bin axis (small to compile, whatever the bin
    # size); the value is then gathered at the arg-max, so that the gradient
    # reaches that element only.
    pos = lax.broadcasted_iota(jnp.int32, w.shape, w.ndim - 1)
    inits = (np.array(-np.inf, x.dtype), np.array(np.iinfo(np.int32).max, np.int32))
    _, arg = lax.reduce((lax.stop_gradient(w), pos), inits, _torch_max_reducer, (w.ndim - 1,))
    best = jnp.take_along_axis(w, arg[..., None], axis=-1)[..., 0]
    if not return_indices:
        return best

    def position(i, j):
        shape = [1] * (n + 2)
        shape[2 + i] = out[i]
        table = jnp.asarray(idxs[i], jnp.int32)  # (o, kmax): input position of bin element j
        return table[jnp.arange(out[i]).reshape(shape), j]

    return best, _flat_index(arg, kshape, spatial, position)


_ADAPTIVE_DOC = """{n}-D adaptive {kind} pooling; same as ``torch.nn.functional.adaptive_{kind}_pool{n}d``.

    Output bin ``i`` of a dimension of size ``L`` covers ``floor(i·L/out) … ceil((i+1)·L/out) − 1``,
    torch's bins, so sizes that do not divide ``L`` match torch too.

    Args:
      input: ``{shape}`` or unbatched.
      output_size: int or {n}-tuple; ``None`` keeps that input size.{extra}
    """


def adaptive_avg_pool1d(input, output_size):
    return _adaptive_avg(input, output_size, 1, "adaptive_avg_pool1d")


def adaptive_avg_pool2d(input, output_size):
    return _adaptive_avg(input, output_size, 2, "adaptive_avg_pool2d")


def adaptive_avg_pool3d(input, output_size):
    return _adaptive_avg(input, output_size, 3, "adaptive_avg_pool3d")


def adaptive_max_pool1d(input, output_size, return_indices=False):
    return _adaptive_max(input, output_size, return_indices, 1, "adaptive_max_pool1d")


def adaptive_max_pool2d(input, output_size, return_indices=False):
    return _adaptive_max(input, output_size, return_indices, 2, "adaptive_max_pool2d")


def adaptive_max_pool3d(input, output_size, return_indices=False):
    return _adaptive_max(input, output_size, return_indices, 3, "adaptive_max_pool3d")


_RI = ("\n      return_indices: also return int32 flat indices of the maxima (as :func:`max_pool2d`);"
       "\n        the gradient flows to the first maximum of each bin.")
for _n, _shape in ((1, "(N, C, L)"), (2, "(N, C, H, W)"), (3, "(N, C, D, H, W)")):
    globals()[f"adaptive_avg_pool{_n}d"].__doc__ = _ADAPTIVE_DOC.format(n=_n, kind="avg", shape=_shape, extra="")
    globals()[f"adaptive_max_pool{_n}d"].__doc__ = _ADAPTIVE_DOC.format(n=_n, kind="max", shape=_shape, extra=_RI)


# --------------------------------------------------------------------------------------------
# power-average pooling


@compiled
def _lp_pool(input, norm_type, kernel_size, stride, ceil_mode, n, where):
    if isinstance(norm_type, bool) or not isinstance(norm_type, (int, float, np.integer, np.floating)):
        raise TypeError(f"{where}: norm_type must be a number, got {norm_type!r}")
    norm_type = float(norm_type)
    if norm_type == 0:
        raise ValueError(f"{where}: norm_type must be non-zero, got {norm_type!r}")
    kernel = _checks.ntuple(kernel_size, n, "kernel_size", where)
    if math.isinf(norm_type):
        x = _checks.as_array(input, "input", where)
        x = x * jnp.sign(x)  # |x| with torch's zero gradient at 0 (jnp.abs has 1)
        y = _max_pool(x if norm_type > 0 else -x, kernel, stride, 0, 1, ceil_mode, False, n, where)
        return y if norm_type > 0 else -y
    x = _checks.as_array(input, "input", where)
    out = _avg_pool(x ** norm_type, kernel, stride, 0, ceil_mode, True, None, n, where)
    # torch's formula: the window mean times the kernel volume (not the clipped
    # window size), a sign-preserving clamp at 0, then the 1/p power.
    out = jnp.sign(out) * jnp.where(out != 0, jnp.abs(out), 0) * math.prod(kernel)
    return out ** (1.0 / norm_type)


_LP_DOC = """{n}-D power-average pooling ``(Σ x^p)^(1/p)``; same as ``torch.nn.functional.lp_pool{n}d``.

    Args:
      norm_type: ``p`` (``inf`` gives max pooling of ``|x|``).
      kernel_size, stride (default ``kernel_size``): int or {n}-tuple; no padding.
      ceil_mode: round the output size up.

    As in torch, a window that overhangs the input in ``ceil_mode`` is scaled
    by the full kernel volume over the number of elements it covers.
    """


def lp_pool1d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    return _lp_pool(input, norm_type, kernel_size, stride, ceil_mode, 1, "lp_pool1d")


def lp_pool2d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    return _lp_pool(input, norm_type, kernel_size, stride, ceil_mode, 2, "lp_pool2d")


def lp_pool3d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    return _lp_pool(input, norm_type, kernel_size, stride, ceil_mode, 3, "lp_pool3d")


lp_pool1d.__doc__ = _LP_DOC.format(n=1)
lp_pool2d.__doc__ = _LP_DOC.format(n=2)
lp_pool3d.__doc__ = _LP_DOC.format(n=3)
