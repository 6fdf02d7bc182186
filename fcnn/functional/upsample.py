"""Resampling: ``interpolate``, ``upsample*``, ``pixel_shuffle``, ``pixel_unshuffle`` as in torch.nn.functional.

Every mode of ``interpolate`` is separable, so it is computed one spatial
axis at a time. For each axis the source indices and weights are built in
NumPy at trace time with torch's own float32 formulas (its
``area_pixel_compute_scale`` / ``area_pixel_compute_source_index``, the index
clamping of the cubic taps, the antialias filter, the adaptive-pooling bins),
so the weights are the very numbers torch uses. They are applied as torch's
kernels apply them, one product per tap (:class:`_Taps`), including taps of
weight zero and border taps that read the same pixel twice, so that an
``inf`` or ``NaN`` in the input reaches exactly the outputs it reaches in torch
(a dense ``(out, in)`` matrix would multiply it by the zeros of every row):

* linear, bicubic and antialiased modes and area (adaptive average pooling):
  one gather per tap (or one gather of all taps of wide downsampling
  windows) and the weighted sum, linear in the axis length. The tangent is
  the same map as the dense ``(out, in)`` matrix while that is moderate
  (``_DENSE_TANGENT_MAX``), so that its transpose, the gradient, is a
  contraction rather than a scatter-add (slow on CPU); for longer axes it is
  the taps themselves;
* nearest: a broadcast when every pixel repeats the same number of times
  (gradient: a sum of strided slices, far faster than XLA's reduce), a
  gather otherwise.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fcnn import _checks
from fcnn.functional._compiled import compiled

MODES = ("nearest", "nearest-exact", "linear", "bilinear", "bicubic", "trilinear", "area")
# Interpolating modes only work for one input rank each, as in torch.
_MODE_DIMS = {"linear": 1, "bilinear": 2, "bicubic": 2, "trilinear": 3}
_CUBIC_A = -0.75  # torch's bicubic (not antialiased) coefficient
_CUBIC_AA_A = -0.5  # torch's antialiased bicubic filter (Keys / PIL)

_f32 = np.float32


class InterpolateModeError(ValueError, NotImplementedError):
    """Wrong input rank for an interpolation mode.

    torch raises ``NotImplementedError`` here; this error is also a
    ``ValueError`` so it is caught like every other bad-argument error of fcnn.
    """


# ---------------------------------------------------------------------------
# Torch's coordinate rules (aten/src/ATen/native/UpSample.h), in float32.
# ---------------------------------------------------------------------------


def _scale_value(scale: float | None, in_size: int, out_size: int) -> np.float32:
    """``compute_scales_value``: 1/scale_factor when one was given, else in/out."""
    if scale is not None and scale > 0:
        return _f32(1.0 / scale)
    return _f32(in_size) / _f32(out_size)


def _area_scale(in_size: int, out_size: int, align_corners: bool, scale: float | None) -> np.float32:
    """``area_pixel_compute_scale``: the source step per output pixel."""
    if align_corners:
        return _f32(in_size - 1) / _f32(out_size - 1) if out_size > 1 else _f32(0)
    return _scale_value(scale, in_size, out_size)


def _source_index(scale: np.float32, out_size: int, align_corners: bool, cubic: bool) -> np.ndarray:
    """``area_pixel_compute_source_index`` for every output index (float32)."""
    dst = np.arange(out_size, dtype=_f32)
    if align_corners:
        return scale * dst
    src = scale * (dst + _f32(0.5)) - _f32(0.5)
    # linear clamps negative coordinates to the first pixel; cubic keeps them
    # (its taps are clamped instead)
    return src if cubic else np.maximum(src, _f32(0))


def _nearest_indices(in_size: int, out_size: int, scale: float | None, exact: bool, shortcut: bool) -> np.ndarray:
    dst = np.arange(out_size)
    if exact:
        s = _scale_value(scale, in_size, out_size)
        # (dst + 0.5) is a double in torch, the product is rounded to float before floorf
        src = np.floor(((dst + 0.5) * np.float64(s)).astype(_f32))
    elif shortcut and out_size == in_size:
        return dst
    elif shortcut and out_size == 2 * in_size:
        return dst >> 1
    else:
        s = _scale_value(scale, in_size, out_size)
        src = np.floor(dst.astype(_f32) * s)
    return np.minimum(src.astype(np.int64), in_size - 1)


class _Taps(NamedTuple):
    """Torch's computation of one output axis: ``out[i] = Σ_k weight[k, i] · x[index[k, i]]``.

    Every product torch forms is a tap, also those of weight zero and those
    that read the same pixel twice (a clamped border), so that an ``inf`` or a
    ``NaN`` reaches exactly the outputs it reaches in torch (``0 · inf`` is
    ``NaN`` there too). ``valid`` (or ``None``: all) marks the taps of windows
    shorter than ``K``; ``weight`` ``None`` means a plain sum divided by ``count``
    (area mode: adaptive average pooling's bins).
    """

    index: np.ndarray           # (K, out) int
    weight: np.ndarray | None   # (K, out) float32
    valid: np.ndarray | None    # (K, out) bool
    count: np.ndarray | None    # (out,) window sizes, the divisor of a plain sum

    def matrix(self, in_size: int) -> np.ndarray:
        """The ``(out, in)`` matrix of the map, repeated taps accumulated (what torch's backward applies)."""
        k, out = self.index.shape
        w = np.broadcast_to(self.weight if self.weight is not None else _f32(1) / self.count.astype(_f32), (k, out))
        keep = self.valid if self.valid is not None else np.ones((k, out), bool)
        m = np.zeros((out, in_size), _f32)
        np.add.at(m, (np.broadcast_to(np.arange(out), (k, out))[keep], self.index[keep]), w[keep].astype(_f32))
        return m


def _window_taps(start: np.ndarray, end: np.ndarray, weights=None) -> _Taps:
    """Taps of the windows ``start[i] … end[i] − 1`` (``weights[i]``: their weights, or a plain sum)."""
    size = end - start
    k = max(int(size.max()), 1)
    j = np.arange(k)[:, None]
    valid = j < size[None, :]
    index = np.where(valid, start[None, :] + j, start[None, :])
    weight = None
    if weights is not None:
        weight = np.zeros(index.shape, _f32)
        for i, w in enumerate(weights):
            weight[: len(w), i] = w
    return _Taps(index, weight, None if valid.all() else valid, None if weights is not None else size)


def _linear_taps(in_size: int, out_size: int, align_corners: bool, scale: float | None) -> _Taps:
    if out_size == in_size:
        # torch's linear kernels treat an axis whose size does not change as a
        # copy, even when a scale_factor (say 1.1 on 3 pixels) would place the
        # samples elsewhere: both taps at the pixel itself, weights 1 and 0.
        i = np.arange(in_size)
        return _Taps(np.stack([i, i]), np.stack([np.ones(in_size, _f32), np.zeros(in_size, _f32)]), None, None)
    s = _area_scale(in_size, out_size, align_corners, scale)
    real = _source_index(s, out_size, align_corners, cubic=False)
    i0 = np.minimum(np.floor(real).astype(np.int64), in_size - 1)
    lam = np.clip(real - i0.astype(_f32), _f32(0), _f32(1))
    i1 = np.where(i0 < in_size - 1, i0 + 1, i0)
    return _Taps(np.stack([i0, i1]), np.stack([_f32(1) - lam, lam]), None, None)


def _linear_matrix(in_size: int, out_size: int, align_corners: bool, scale: float | None) -> np.ndarray:
    return _linear_taps(in_size, out_size, align_corners, scale).matrix(in_size)


def _cubic1(x, a):
    return ((a + 2) * x - (a + 3)) * x * x + 1


def _cubic2(x, a):
    return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a


def _cubic_taps(in_size: int, out_size: int, align_corners: bool, scale: float | None) -> _Taps:
    s = _area_scale(in_size, out_size, align_corners, scale)
    real = _source_index(s, out_size, align_corners, cubic=True)
    i0 = np.minimum(np.floor(real).astype(np.int64), in_size - 1)
    t = np.clip(real - i0.astype(_f32), _f32(0), _f32(1))
    a = _f32(_CUBIC_A)
    one = _f32(1)
    coeffs = [_cubic2(t + one, a), _cubic1(t, a), _cubic1(one - t, a), _cubic2(one - t + one, a)]
    # taps outside the input read the border pixel (torch's upsample_get_value_bounded)
    cols = [np.clip(i0 - 1 + j, 0, in_size - 1) for j in range(4)]
    return _Taps(np.stack(cols), np.stack(coeffs).astype(_f32), None, None)


def _aa_taps(in_size: int, out_size: int, align_corners: bool, scale: float | None, cubic: bool) -> _Taps:
    """torch's separable antialias resampling (``_upsample_{bilinear,bicubic}2d_aa``).

    When downsampling, the filter is stretched by the downsampling factor
    (support ``interp_size/2 · scale``) and each row of weights is normalised
    to sum to one; windows are truncated at the borders (no clamping).
    """
    s = _area_scale(in_size, out_size, align_corners, scale)
    interp_size = 4 if cubic else 2
    support = _f32(interp_size * 0.5) * s if s >= 1.0 else _f32(interp_size * 0.5)
    invscale = _f32(1.0) / s if s >= 1.0 else _f32(1.0)
    starts, ends, weights = [], [], []
    for i in range(out_size):
        center = s * _f32(i + 0.5)
        xmin = max(int(center - support + _f32(0.5)), 0)
        xmax = min(int(center + support + _f32(0.5)), in_size)
        x = np.abs((np.arange(xmin, xmax, dtype=_f32) - center + _f32(0.5)) * invscale)
        if cubic:
            a = _f32(_CUBIC_AA_A)
            w = np.where(x < 1, _cubic1(x, a), np.where(x < 2, _cubic2(x, a), _f32(0)))
        else:
            w = np.where(x < 1, _f32(1) - x, _f32(0))
        w = w.astype(_f32)
        total = w.sum(dtype=_f32)
        if total != 0:
            w = w / total
        starts.append(xmin)
        ends.append(xmax)
        weights.append(w)
    return _window_taps(np.array(starts), np.array(ends), weights)


def _area_taps(in_size: int, out_size: int) -> _Taps:
    """adaptive_avg_pool bins: ``floor(i·in/out)`` … ``ceil((i+1)·in/out) − 1``, each summed and averaged."""
    i = np.arange(out_size)
    return _window_taps((i * in_size) // out_size, -((-(i + 1) * in_size) // out_size))


# ---------------------------------------------------------------------------
# Applying one axis.
# ---------------------------------------------------------------------------

_LETTERS = "abcdefgh"
# Up to this many (out × in) entries, the tangent of a resampled axis is its
# dense matrix, whose transpose (the gradient) is one fast contraction; beyond
# it the matrix would cost more than the data (a 20,000-pixel axis: 3 GB), and
# the tangent is the taps themselves, linear in the size (their transpose is a
# scatter-add).
_DENSE_TANGENT_MAX = 1 << 22
# Up to this many taps per output, one gather per tap; more (wide downsampling
# windows) are gathered at once and summed over a window axis.
_UNROLLED_TAPS = 8


def _matmul_axis(x: jnp.ndarray, m, axis: int) -> jnp.ndarray:
    idx = _LETTERS[: x.ndim]
    out = idx[:axis] + "z" + idx[axis + 1:]
    return jnp.einsum(f"{idx},z{idx[axis]}->{out}", x, jnp.asarray(m, x.dtype))


def _taps_sum(x, taps: _Taps, axis: int):
    """``Σ_k weight[k] · x[index[k]]`` along ``axis`` (a gather per tap), torch's order of terms."""
    k, out = taps.index.shape
    shape = [1] * x.ndim
    shape[axis] = out
    zero = np.zeros((), x.dtype)
    if k <= _UNROLLED_TAPS:
        y = None
        for j in range(k):
            v = jnp.take(x, np.asarray(taps.index[j], np.int32), axis=axis)
            if taps.weight is not None:
                v = v * np.asarray(taps.weight[j].reshape(shape), x.dtype)
            if taps.valid is not None and not taps.valid[j].all():
                v = jnp.where(taps.valid[j].reshape(shape), v, zero)
            y = v if y is None else y + v
    else:
        v = jnp.take(x, np.asarray(taps.index.T.reshape(-1), np.int32), axis=axis)
        v = v.reshape(x.shape[:axis] + (out, k) + x.shape[axis + 1:])
        wshape = shape[: axis + 1] + [k] + shape[axis + 1:]
        if taps.weight is not None:
            v = v * np.asarray(taps.weight.T.reshape(wshape), x.dtype)
        if taps.valid is not None:
            v = jnp.where(taps.valid.T.reshape(wshape), v, zero)
        y = jnp.sum(v, axis=axis + 1)
    if taps.count is not None:
        y = y / np.asarray(taps.count.reshape(shape), x.dtype)
    return y


def _apply_taps(x: jnp.ndarray, taps: _Taps, axis: int) -> jnp.ndarray:
    """One resampled axis: the taps forward; the tangent as the dense matrix for moderate sizes.

    The gradient of the gathers would be a scatter-add, slow on CPU; with the
    tangent written as the ``(out, in)`` matrix its transpose, the gradient, is
    a contraction with that matrix (torch's backward accumulates the same
    weights). The forward stays the taps: a dense matrix would multiply every
    ``inf`` in the input by the zeros of its row.
    """
    in_size = x.shape[axis]
    if taps.index.shape[1] * in_size > _DENSE_TANGENT_MAX:
        return _taps_sum(x, taps, axis)
    m = taps.matrix(in_size)

    # NumPy constants only: a custom_jvp function may not close over (jit) tracers.
    @jax.custom_jvp
    def resample(a):
        return _taps_sum(a, taps, axis)

    @resample.defjvp
    def resample_jvp(primals, tangents):
        return resample(primals[0]), _matmul_axis(tangents[0], m, axis)

    return resample(x)


def _apply_nearest(x: jnp.ndarray, src: np.ndarray, grad_src: np.ndarray, axis: int) -> jnp.ndarray:
    in_size, out_size = x.shape[axis], len(src)
    if not np.array_equal(src, grad_src):
        return _take_with_other_grad(x, src, grad_src, axis)
    if out_size % in_size == 0 and np.array_equal(src, np.arange(out_size) // (out_size // in_size)):
        if out_size == in_size:
            return x
        return _repeat(x, axis, out_size // in_size)
    return jnp.take(x, jnp.asarray(src, jnp.int32), axis=axis)


@functools.partial(jax.custom_jvp, nondiff_argnums=(1, 2))
def _repeat(x, axis: int, r: int):
    """Every pixel repeated ``r`` times along ``axis`` (a broadcast + reshape)."""
    y = jnp.broadcast_to(jnp.expand_dims(x, axis + 1), x.shape[: axis + 1] + (r,) + x.shape[axis + 1:])
    return y.reshape(x.shape[:axis] + (x.shape[axis] * r,) + x.shape[axis + 1:])


@_repeat.defjvp
def _repeat_jvp(axis, r, primals, tangents):
    # The tangent is the same repetition written as r stacked copies, so that
    # its transpose, the gradient, is a sum of r strided slices: the transpose
    # of the broadcast, a reduce over an inner axis of size r, runs ~40x slower
    # on XLA's CPU backend. (Copies interleaved by interior padding give the
    # same gradient but a 2x slower tangent.)
    t = tangents[0]
    dy = jnp.stack([t] * r, axis=axis + 1)
    return _repeat(primals[0], axis, r), dy.reshape(t.shape[:axis] + (t.shape[axis] * r,) + t.shape[axis + 1:])


def _take_with_other_grad(x, src, grad_src, axis):
    """Gather ``src`` but send the gradient through ``grad_src`` (torch's nearest quirk, see _resize_axis).

    The tangent is therefore the gather at ``grad_src`` (the transpose of the
    gradient), not at ``src``: forward and reverse mode agree with each other,
    and with torch's gradient.
    """
    # NumPy constants: a custom_jvp function may not close over (jit) tracers.
    src, grad_src = np.asarray(src, np.int32), np.asarray(grad_src, np.int32)

    @jax.custom_jvp
    def take(a):
        return jnp.take(a, src, axis=axis)

    @take.defjvp
    def take_jvp(primals, tangents):
        return take(primals[0]), jnp.take(tangents[0], grad_src, axis=axis)

    return take(x)


def _resize_axis(x, axis, out_size, mode, align_corners, scale, antialias):
    in_size = x.shape[axis]
    if mode in ("nearest", "nearest-exact"):
        exact = mode == "nearest-exact"
        # torch's 'nearest' has a ×1 / ×2 shortcut (index = dst, dst >> 1) that
        # ignores scale_factor; its 2-D forward kernel and every backward kernel
        # take it, its 1-D and 3-D forward kernels do not. That only matters
        # for scale_factors like 1.1 or 2.1 whose output is exactly 1× or 2× the
        # input; fcnn reproduces torch's outputs and gradients there too.
        src = _nearest_indices(in_size, out_size, scale, exact, shortcut=x.ndim == 4)
        grad_src = _nearest_indices(in_size, out_size, scale, exact, shortcut=True)
        return _apply_nearest(x, src, grad_src, axis)
    if mode == "area":
        if out_size == in_size:
            return x
        taps = _area_taps(in_size, out_size)
    elif antialias:
        if out_size == in_size:
            return x  # torch's separable antialias kernel skips an axis whose size does not change
        taps = _aa_taps(in_size, out_size, align_corners, scale, cubic=mode == "bicubic")
    elif mode == "bicubic":
        taps = _cubic_taps(in_size, out_size, align_corners, scale)
    else:
        taps = _linear_taps(in_size, out_size, align_corners, scale)
    return _apply_taps(x, taps, axis)


# ---------------------------------------------------------------------------
# Public ops.
# ---------------------------------------------------------------------------


def _per_axis(value, spatial, where, words) -> tuple:
    """``value`` per spatial axis: a list or tuple as given (of the input's rank), anything else repeated.

    ``words`` name ``value`` in torch's message for a wrong length: (the other side of
    "Input and ...", what precedes the value, its name in the format advice, its letter).
    """
    if not isinstance(value, (list, tuple)):
        return (value,) * len(spatial)
    if len(value) != len(spatial):
        other, got, name, letter = words
        raise ValueError(
            f"{where}: Input and {other} must have the same number of spatial dimensions, but got "
            f"input with spatial dimensions of {list(spatial)} and {got} {value}. "
            "Please provide input tensor in (N, C, d1, d2, ...,dK) format and "
            f"{name} in ({letter}1, {letter}2, ...,{letter}K) format."
        )
    return tuple(value)


def _output_geometry(spatial, size, scale_factor, recompute_scale_factor, mode, where):
    """Return ``(output sizes, per-axis scale_factor or None)`` as torch's interpolate derives them."""
    n = len(spatial)
    if size is not None and scale_factor is not None:
        raise ValueError(f"{where}: only one of size or scale_factor should be defined")
    if size is not None:
        if recompute_scale_factor:
            raise ValueError(f"{where}: recompute_scale_factor is not meaningful with an explicit size.")
        sizes = _per_axis(size, spatial, where, ("output", "output size of", "output size", "o"))
        if not all(_checks.is_int(s) for s in sizes):
            raise TypeError(
                f"{where}: expected size to be one of int or Tuple[int] or Tuple[int, int] or "
                f"Tuple[int, int, int], but got size={size!r}"
            )
        return tuple(int(s) for s in sizes), (None,) * n
    if scale_factor is None:
        raise ValueError(f"{where}: either size or scale_factor should be defined")
    scales = _per_axis(scale_factor, spatial, where, ("scale_factor", "scale_factor of shape", "scale_factor", "s"))
    if not all(_checks.is_number(s) for s in scales):
        raise TypeError(f"{where}: scale_factor must be a float or a tuple of floats, got {scale_factor!r}")
    scales = tuple(float(s) for s in scales)
    if not all(math.isfinite(s) for s in scales):
        raise ValueError(f"{where}: scale_factor must be finite, got {scale_factor!r}")
    # both in double precision, truncated, as torch's compute_output_size
    sizes = tuple(int(math.floor(float(i) * s)) for i, s in zip(spatial, scales))
    if recompute_scale_factor or mode == "area":
        scales = (None,) * n
    return sizes, scales


@compiled
def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None,
                recompute_scale_factor=None, antialias=False):
    """Resize ``(N, C, *spatial)`` inputs; same as ``torch.nn.functional.interpolate``.

    Args:
      input: ``(N, C, L)``, ``(N, C, H, W)`` or ``(N, C, D, H, W)``. As in torch
        the batch dimension is required (a 3-D input is a batch of 1-D signals).
      size: output spatial size (int or one int per spatial dim).
      scale_factor: multiplier per spatial dim (float or tuple); the output
        size is ``floor(in · scale_factor)``.
      mode: ``'nearest'`` (source ``floor(dst · scale)``, torch's legacy rule),
        ``'nearest-exact'`` (``floor((dst + 0.5) · scale)``), ``'linear'`` (3-D),
        ``'bilinear'`` / ``'bicubic'`` (4-D), ``'trilinear'`` (5-D), ``'area'``
        (adaptive average pooling).
      align_corners: for the interpolating modes only; ``None`` means ``False``.
        ``True`` maps the corner pixel centres onto each other
        (``scale = (in − 1)/(out − 1)``), ``False`` maps pixel areas
        (``src = scale·(dst + 0.5) − 0.5``).
      recompute_scale_factor: when ``True`` (only with ``scale_factor``), the
        coordinate scale is ``in/out`` of the computed output size; otherwise
        ``1/scale_factor`` is used, as torch does.
      antialias: bilinear/bicubic on 4-D inputs only: when downsampling,
        stretch the filter by the downsampling factor (torch/PIL's antialias).

    Returns:
      ``(N, C, *size)``. Bicubic uses ``a = −0.75`` and reads border pixels
      for taps outside the input; antialiased bicubic uses ``a = −0.5``, as torch.

    Differences from torch: only floating-point inputs are accepted by the
    interpolating modes (torch also resizes uint8 images with rounding);
    ``'lanczos'`` is not implemented. Wrong-rank errors are
    :class:`InterpolateModeError` (both ``ValueError`` and torch's ``NotImplementedError``).
    """
    where = "interpolate"
    x = _checks.as_array(input, "input", where)
    _checks.one_of(mode, MODES, "mode", where)
    if mode in ("nearest", "area", "nearest-exact"):
        if align_corners is not None:
            raise ValueError(
                f"{where}: align_corners option can only be set with the "
                "interpolating modes: linear | bilinear | bicubic | trilinear"
            )
    elif align_corners is None:
        align_corners = False
    if not isinstance(align_corners, (bool, type(None))):
        raise TypeError(f"{where}: align_corners must be a bool or None, got {align_corners!r}")
    if x.ndim not in (3, 4, 5):
        raise InterpolateModeError(
            f"{where}: Input Error: Only 3D, 4D and 5D input Tensors supported (got {x.ndim}D) for the modes: "
            f"nearest | linear | bilinear | bicubic | trilinear | area | nearest-exact (got {mode})"
        )
    n = x.ndim - 2
    sizes, scales = _output_geometry(x.shape[2:], size, scale_factor, recompute_scale_factor, mode, where)
    if antialias and not (mode in ("bilinear", "bicubic") and x.ndim == 4):
        raise ValueError(
            f"{where}: Anti-alias option is restricted to bilinear and bicubic modes and requires a 4-D tensor as input"
        )
    if mode in _MODE_DIMS and _MODE_DIMS[mode] != n:
        raise InterpolateModeError(f"{where}: Got {x.ndim}D input, but {mode} mode needs {_MODE_DIMS[mode] + 2}D input")
    # torch's area mode is adaptive_avg_pool, which accepts an empty output
    min_out = 0 if mode == "area" else 1
    if any(s < min_out for s in sizes) or any(s <= 0 for s in x.shape[2:]):
        raise ValueError(
            f"{where}: Input and output sizes should be greater than 0, but got input "
            f"{tuple(x.shape[2:])} output {sizes}"
        )
    if mode not in ("nearest", "nearest-exact"):
        _checks.floating(x, "input", where)
    # shrink first, then grow: the intermediate stays as small as possible
    order = sorted(range(n), key=lambda i: sizes[i] / x.shape[2 + i])
    for i in order:
        x = _resize_axis(x, 2 + i, sizes[i], mode, align_corners, scales[i], antialias)
    return x


def upsample(input, size=None, scale_factor=None, mode="nearest", align_corners=None):
    """``torch.nn.functional.upsample`` (deprecated there): :func:`interpolate` without recomputation."""
    return interpolate(input, size, scale_factor, mode, align_corners)


def upsample_nearest(input, size=None, scale_factor=None):
    """``torch.nn.functional.upsample_nearest``: ``interpolate(..., mode='nearest')``."""
    return interpolate(input, size, scale_factor, mode="nearest")


def upsample_bilinear(input, size=None, scale_factor=None):
    """``torch.nn.functional.upsample_bilinear``: ``interpolate(..., mode='bilinear', align_corners=True)`` on 4-D input."""
    return interpolate(input, size, scale_factor, mode="bilinear", align_corners=True)


def _shuffle_checks(x, factor, name, where):
    x = _checks.as_array(x, "input", where)
    if isinstance(factor, (bool, np.bool_)) or not isinstance(factor, (int, np.integer)):
        raise TypeError(f"{where}: {name} must be an int, got {factor!r}")
    if factor <= 0:
        raise ValueError(f"{where} expects a positive {name}, but got {factor}")
    if x.ndim < 3:
        raise ValueError(
            f"{where} expects input to have at least 3 dimensions, but got input with {x.ndim} dimension(s)"
        )
    return x, int(factor)


@compiled
def pixel_shuffle(input, upscale_factor):
    """Rearrange ``(*, C·r², H, W)`` into ``(*, C, H·r, W·r)``; same as ``torch.nn.functional.pixel_shuffle``.

    Output channel ``c`` at ``(h·r + i, w·r + j)`` is input channel ``c·r² + i·r + j`` at ``(h, w)``.
    Any number of leading dimensions (including none) is accepted.
    """
    where = "pixel_shuffle"
    x, r = _shuffle_checks(input, upscale_factor, "upscale_factor", where)
    *batch, c, h, w = x.shape
    if c % (r * r) != 0:
        raise ValueError(
            f"{where} expects its input's 'channel' dimension to be divisible by the square of "
            f"upscale_factor, but input.size(-3)={c} is not divisible by {r * r}"
        )
    b = len(batch)
    y = x.reshape(*batch, c // (r * r), r, r, h, w)
    y = y.transpose(*range(b), b, b + 3, b + 1, b + 4, b + 2)
    return y.reshape(*batch, c // (r * r), h * r, w * r)


@compiled
def pixel_unshuffle(input, downscale_factor):
    """Rearrange ``(*, C, H·r, W·r)`` into ``(*, C·r², H, W)``; the inverse of :func:`pixel_shuffle`,
    same as ``torch.nn.functional.pixel_unshuffle``.

    Deliberate difference: an empty input (a zero-size batch) gives the shape
    above too, ``(0, C·r², H, W)``; torch returns such an input unchanged.
    """
    where = "pixel_unshuffle"
    x, r = _shuffle_checks(input, downscale_factor, "downscale_factor", where)
    *batch, c, h, w = x.shape
    for dim, size, label in ((-2, h, "height"), (-1, w, "width")):
        if size % r != 0:
            raise ValueError(
                f"{where} expects {label} to be divisible by downscale_factor, but input.size({dim})={size} "
                f"is not divisible by {r}"
            )
    b = len(batch)
    y = x.reshape(*batch, c, h // r, r, w // r, r)
    y = y.transpose(*range(b), b, b + 2, b + 4, b + 1, b + 3)
    return y.reshape(*batch, c * r * r, h // r, w // r)
