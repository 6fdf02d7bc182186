"""Geometry: flips, crops, padding and resizing, as ``torchvision.transforms.v2.functional``.

Crop boxes may be Python ints (the output shape follows from them, as in
torchvision) or traced integer scalars under ``jit``/``vmap``. A traced box
cannot change the output's shape, so with traced offsets :func:`crop` gathers a
window of the static ``height × width``, and :func:`resized_crop` with a traced
box resamples the whole image with weights that are zero outside the box:
torch's resampling formulas evaluated for the box's size, so the values are
those of ``crop`` followed by ``resize``.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from fcnn import _checks
from fcnn import functional as F
from fcnn.functional._compiled import compiled
from fcnn.transforms.functional._utils import (InterpolationMode, compute_dtype, image, interpolation_mode,
                                               is_float, size_pair)

_f32 = jnp.float32


@compiled
def horizontal_flip(inpt):
    """Mirror the image left ↔ right (``(..., C, H, W)``, any dtype)."""
    return image(inpt, "horizontal_flip")[..., ::-1]


@compiled
def vertical_flip(inpt):
    """Mirror the image top ↔ bottom."""
    return image(inpt, "vertical_flip")[..., ::-1, :]


hflip = horizontal_flip
vflip = vertical_flip


# ----------------------------------------------------------------------------- resize


def _resized_output_size(hw: tuple[int, int], size, max_size, where: str) -> tuple[int, int]:
    """torchvision's output-size rule: ``size`` an int/[int] is the shorter edge, ``[h, w]`` exact,
    ``None`` with ``max_size`` fits the longer edge; ``max_size`` caps the longer edge."""
    h, w = hw
    short, long = (w, h) if w <= h else (h, w)
    if max_size is not None and (isinstance(max_size, bool) or not isinstance(max_size, (int, np.integer))
                                 or max_size <= 0):
        raise ValueError(f"{where}: max_size must be a positive int or None, got {max_size!r}")
    if size is None:
        if max_size is None:
            raise ValueError(f"{where}: size=None needs max_size (the longer edge's length)")
        new_short, new_long = int(max_size * short / long), max_size
        return (new_long, new_short) if w <= h else (new_short, new_long)
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        size = [size]
    if not isinstance(size, (list, tuple)) or len(size) not in (1, 2):
        raise ValueError(f"{where}: size must be an int or a sequence of 1 or 2 ints, got {size!r}")
    if len(size) == 2:
        if max_size is not None:
            raise ValueError(f"{where}: max_size applies only when size is an int (the shorter edge), "
                             f"got size={size!r}, max_size={max_size}")
        return size_pair(size, "size", where)
    requested = size_pair(size, "size", where)[0]
    new_short, new_long = requested, int(requested * long / short)
    if max_size is not None:
        if max_size <= requested:
            raise ValueError(f"{where}: max_size = {max_size} must be strictly greater than the requested "
                             f"size for the smaller edge size = {requested}")
        if new_long > max_size:
            new_short, new_long = int(max_size * new_short / new_long), max_size
    return (new_long, new_short) if w <= h else (new_short, new_long)


def _round_to(y, dtype):
    """Float resampling result back to the image dtype: uint8 rounded half to even and clamped."""
    if dtype == jnp.uint8:
        return jnp.clip(jnp.round(y), 0, 255).astype(jnp.uint8)
    return y.astype(dtype)


def _check_antialias(mode: str, antialias, where: str) -> bool:
    if antialias is not None and not isinstance(antialias, bool):
        raise TypeError(f"{where}: antialias must be a bool or None, got {antialias!r}")
    # torchvision antialiases only the linear and cubic filters
    return bool(antialias) and mode in ("bilinear", "bicubic")


@compiled
def resize(inpt, size, interpolation: Any = InterpolationMode.BILINEAR, max_size: int | None = None,
           antialias: bool | None = True):
    """Resize ``(..., C, H, W)`` images, as ``torchvision.transforms.v2.functional.resize`` on tensors.

    Args:
        inpt: uint8 or floating images.
        size: the shorter edge (``int`` or ``[int]``, keeping the aspect ratio),
            ``[h, w]``, or ``None`` with ``max_size``.
        interpolation: ``nearest``, ``nearest-exact``, ``bilinear`` or ``bicubic``.
        max_size: the longer edge's cap.
        antialias: low-pass filter when downsampling (bilinear/bicubic only, as
            torchvision; ``None`` means ``False``).

    Floating images are resampled in their dtype with torch's weights
    (:func:`fcnn.functional.interpolate`). uint8 images are resampled in float32
    and rounded (half to even) and clamped, the width first and stored as uint8,
    then the height, as torch's uint8 kernel does; that kernel's weights are
    fixed-point numbers, so bilinear/bicubic uint8 outputs may differ from
    torchvision's by 1 (nearest ones are equal).
    """
    where = "resize"
    x = image(inpt, where)
    mode = interpolation_mode(interpolation, where)
    aa = _check_antialias(mode, antialias, where)
    out_hw = _resized_output_size(x.shape[-2:], size, max_size, where)
    if out_hw == x.shape[-2:]:
        return x
    lead = x.shape[:-3]
    flat = x.reshape((-1,) + x.shape[-3:]).astype(compute_dtype(x))
    align = False if mode in ("bilinear", "bicubic") else None
    if x.dtype == jnp.uint8 and mode in ("bilinear", "bicubic"):
        # torch's uint8 kernel resamples the width, stores uint8, then resamples the height
        flat = _round_to(F.interpolate(flat, size=(flat.shape[-2], out_hw[1]), mode=mode, align_corners=align,
                                       antialias=aa), jnp.uint8).astype(jnp.float32)
    y = F.interpolate(flat, size=out_hw, mode=mode, align_corners=align, antialias=aa)
    return _round_to(y, x.dtype).reshape(lead + y.shape[1:])


# ----------------------------------------------------------------------------- crop and pad


def _is_static(*values) -> bool:
    return all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values)


def _int_scalar(value, name: str, where: str):
    if isinstance(value, bool):
        raise TypeError(f"{where}: {name} must be an int or an integer scalar array, got {value!r}")
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (jax.Array, np.ndarray)) and jnp.ndim(value) == 0 and jnp.issubdtype(
            jnp.asarray(value).dtype, jnp.integer):
        return value
    raise TypeError(f"{where}: {name} must be an int or an integer scalar array, got {value!r}")


@compiled
def crop(inpt, top, left, height: int, width: int):
    """The ``height × width`` window at ``(top, left)``; pixels outside the image are 0, as torchvision.

    ``top``/``left`` may be traced integer scalars; ``height``/``width`` are ints
    (they are the output's shape).
    """
    where = "crop"
    x = image(inpt, where)
    top, left = _int_scalar(top, "top", where), _int_scalar(left, "left", where)
    height, width = size_pair((height, width), "(height, width)", where)
    h, w = x.shape[-2:]
    if _is_static(top, left):
        bottom, right = top + height, left + width
        window = x[..., max(top, 0):max(bottom, 0), max(left, 0):max(right, 0)]
        before_h, before_w = min(max(-top, 0), height), min(max(-left, 0), width)
        after_h, after_w = height - before_h - window.shape[-2], width - before_w - window.shape[-1]
        pads = [(0, 0)] * (x.ndim - 2) + [(before_h, after_h), (before_w, after_w)]
        return jnp.pad(window, pads)
    rows, cols = top + jnp.arange(height), left + jnp.arange(width)
    inside = ((rows >= 0) & (rows < h))[:, None] & ((cols >= 0) & (cols < w))[None, :]
    window = x[..., jnp.clip(rows, 0, h - 1)[:, None], jnp.clip(cols, 0, w - 1)[None, :]]
    return jnp.where(inside, window, jnp.zeros((), x.dtype))


@compiled
def center_crop(inpt, output_size):
    """The central ``output_size`` window (zero-padded when larger than the image), as torchvision.

    ``output_size``: ``int``, ``[s]`` or ``[h, w]``.
    """
    where = "center_crop"
    x = image(inpt, where)
    ch, cw = size_pair(output_size, "output_size", where)
    h, w = x.shape[-2:]
    if ch > h or cw > w:
        pads = [(ch - h) // 2 if ch > h else 0, (ch - h + 1) // 2 if ch > h else 0,
                (cw - w) // 2 if cw > w else 0, (cw - w + 1) // 2 if cw > w else 0]
        x = jnp.pad(x, [(0, 0)] * (x.ndim - 2) + [tuple(pads[:2]), tuple(pads[2:])])
        h, w = x.shape[-2:]
    top, left = int(round((h - ch) / 2.0)), int(round((w - cw) / 2.0))
    return x[..., top:top + ch, left:left + cw]


_PAD_MODES = {"constant": "constant", "edge": "edge", "reflect": "reflect", "symmetric": "symmetric"}


def parse_padding(padding, where: str) -> tuple[int, int, int, int]:
    """torchvision's padding forms → ``(left, top, right, bottom)``: ``p``, ``[p]``, ``[lr, tb]``, ``[l, t, r, b]``."""
    if isinstance(padding, (int, np.integer)) and not isinstance(padding, bool):
        padding = [padding]
    if not isinstance(padding, (list, tuple)) or len(padding) not in (1, 2, 4) or not all(
            isinstance(p, (int, np.integer)) and not isinstance(p, bool) for p in padding):
        raise ValueError(f"{where}: padding must be an int or a 1, 2, or 4 element tuple or list of ints, "
                         f"got {padding!r}")
    p = [int(v) for v in padding]
    if len(p) == 1:
        p = p * 4
    elif len(p) == 2:
        p = [p[0], p[1], p[0], p[1]]
    if any(v < 0 for v in p):
        raise ValueError(f"{where}: padding must be non-negative, got {padding!r}")
    return tuple(p)


def check_fill(fill, where: str):
    """``None`` → 0; a number; or a sequence (one value, or one per channel)."""
    if fill is None:
        return 0
    if isinstance(fill, bool):
        raise TypeError(f"{where}: fill must be a number or a sequence of numbers, got {fill!r}")
    if isinstance(fill, (int, float, np.integer, np.floating)):
        return fill
    if isinstance(fill, (list, tuple)) and fill and all(
            isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) for v in fill):
        return fill[0] if len(fill) == 1 else tuple(fill)
    raise TypeError(f"{where}: fill must be a number or a sequence of numbers, got {fill!r}")


@compiled
def pad(inpt, padding, fill=None, padding_mode: str = "constant"):
    """Pad the borders, as ``torchvision.transforms.v2.functional.pad`` (note: ``[left, top, right, bottom]``).

    Args:
        padding: ``p``, ``[p]``, ``[left/right, top/bottom]`` or ``[left, top, right, bottom]``
            (non-negative; torchvision also accepts negative amounts in ``constant`` mode).
        fill: the constant (``None`` is 0), or one value per channel (``constant`` mode only);
            cast to the image dtype as torch does (uint8 truncates).
        padding_mode: ``constant``, ``edge`` (repeat the border), ``reflect``
            (mirror without repeating it), ``symmetric`` (mirror repeating it).
    """
    where = "pad"
    x = image(inpt, where)
    left, top, right, bottom = parse_padding(padding, where)
    _checks.one_of(padding_mode, tuple(_PAD_MODES), "padding_mode", where)
    fill = check_fill(fill, where)
    h, w = x.shape[-2:]
    if padding_mode == "reflect" and (max(top, bottom) >= h or max(left, right) >= w):
        raise ValueError(f"{where}: reflect padding must be smaller than the image's size {(h, w)}, "
                         f"got padding {padding!r}")
    widths = [(0, 0)] * (x.ndim - 2) + [(top, bottom), (left, right)]
    if padding_mode != "constant":
        if isinstance(fill, tuple):
            raise ValueError(f"{where}: padding mode {padding_mode!r} is not supported if fill is not scalar")
        return jnp.pad(x, widths, mode=_PAD_MODES[padding_mode])
    if not isinstance(fill, tuple):
        return jnp.pad(x, widths, constant_values=np.asarray(float(fill)).astype(x.dtype))
    c = x.shape[-3]
    if len(fill) != c:
        raise ValueError(f"{where}: fill has {len(fill)} values for {c} channels")
    values = jnp.asarray(np.asarray(fill, np.float32).astype(x.dtype)).reshape(c, 1, 1)
    padded = jnp.pad(x, widths)
    rows = (jnp.arange(h + top + bottom) >= top) & (jnp.arange(h + top + bottom) < top + h)
    cols = (jnp.arange(w + left + right) >= left) & (jnp.arange(w + left + right) < left + w)
    return jnp.where(rows[:, None] & cols[None, :], padded, values)


# ----------------------------------------------------------------------------- resized crop


def _box_weights(start, length, in_size: int, out_size: int, mode: str, antialias: bool):
    """``(out_size, in_size)`` resampling weights for the window ``[start, start + length)`` of an axis.

    torch's formulas (``upsample_*`` with ``align_corners=False``) evaluated in
    float32 for an input of ``length`` pixels, placed at ``start``; taps outside
    the image get weight 0, like the zero padding of an out-of-bounds crop.
    ``start`` and ``length`` may be traced; window indices outside
    ``[0, length)`` never get weight (torch's windows end at the input's edge).
    Boxes reaching more than one image length beyond the image are not supported.
    """
    length_f = jnp.asarray(length, _f32)
    scale = length_f / _f32(out_size)
    i = jnp.arange(out_size, dtype=_f32)[:, None]
    # window index of the image pixels, and of one image length of zero padding on either side (their
    # taps count in the antialias filter's normalisation, as after torchvision's zero-padded crop)
    j = (jnp.arange(-in_size, 2 * in_size) - start)[None, :]
    jf = j.astype(_f32)
    if mode in ("nearest", "nearest-exact"):
        offset = _f32(0.5) if mode == "nearest-exact" else _f32(0.0)
        src = jnp.minimum(jnp.floor((i + offset) * scale).astype(jnp.int32), jnp.asarray(length, jnp.int32) - 1)
        w = (j == src).astype(_f32)
    elif antialias:
        cubic = mode == "bicubic"
        half = _f32(2.0 if cubic else 1.0)
        down = scale >= 1.0
        support = jnp.where(down, half * scale, half)
        invscale = jnp.where(down, _f32(1.0) / scale, _f32(1.0))
        center = scale * (i + _f32(0.5))
        lo = jnp.maximum(jnp.trunc(center - support + _f32(0.5)), 0)
        hi = jnp.minimum(jnp.trunc(center + support + _f32(0.5)), length_f)
        t = jnp.abs((jf - center + _f32(0.5)) * invscale)
        if cubic:
            a = _f32(-0.5)
            near = ((a + 2) * t - (a + 3)) * t * t + 1
            far = ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
            f = jnp.where(t < 1, near, jnp.where(t < 2, far, _f32(0)))
        else:
            f = jnp.where(t < 1, _f32(1) - t, _f32(0))
        f = jnp.where((jf >= lo) & (jf < hi), f, _f32(0))
        total = jnp.sum(f, axis=1, keepdims=True)
        w = jnp.where(total != 0, f / jnp.where(total != 0, total, 1), f)
    else:  # bilinear without antialias (upsample_bilinear2d)
        src = jnp.maximum(scale * (i + _f32(0.5)) - _f32(0.5), _f32(0))
        i0 = jnp.trunc(src)
        l1 = src - i0
        i0 = i0.astype(jnp.int32)
        i1 = i0 + (i0 < jnp.asarray(length, jnp.int32) - 1)
        w = jnp.where(j == i0, _f32(1) - l1, _f32(0)) + jnp.where(j == i1, l1, _f32(0))
        w = jnp.where(i1 == i0, jnp.where(j == i0, _f32(1), _f32(0)), w)
    return w[:, in_size:2 * in_size]


@compiled
def resized_crop(inpt, top, left, height, width, size, interpolation: Any = InterpolationMode.BILINEAR,
                 antialias: bool | None = True):
    """Crop the box ``(top, left, height, width)`` and resize it to ``size``, as torchvision.

    With ints this is :func:`crop` then :func:`resize`. Any of the four may
    also be a traced integer scalar (a random box under ``jit``/``vmap``,
    :class:`fcnn.transforms.RandomResizedCrop`); ``size`` must then be
    ``[h, w]`` (or an int for a square), and the image is resampled with
    weights that are torch's for the box and zero outside it: the same values
    as the static path up to float32 rounding (weights built on the device
    instead of in NumPy), ``nearest`` exactly. Traced boxes support
    ``nearest``, ``nearest-exact``, ``bilinear`` and, with ``antialias``, ``bicubic``.
    """
    where = "resized_crop"
    x = image(inpt, where)
    box = [_int_scalar(v, n, where) for v, n in zip((top, left, height, width), ("top", "left", "height", "width"))]
    mode = interpolation_mode(interpolation, where)
    aa = _check_antialias(mode, antialias, where)
    if _is_static(*box):
        return resize(crop(x, *box), size, interpolation=mode, antialias=antialias)
    out_h, out_w = size_pair(size, "size", where)
    if mode == "bicubic" and not aa:
        raise ValueError(f"{where}: bicubic resampling of a traced box needs antialias=True")
    top, left, height, width = box
    wy = _box_weights(top, height, x.shape[-2], out_h, mode, aa)
    wx = _box_weights(left, width, x.shape[-1], out_w, mode, aa)
    xf = x.astype(compute_dtype(x))
    hi = jax.lax.Precision.HIGHEST
    y = jnp.einsum("...hw,pw->...hp", xf, wx.astype(xf.dtype), precision=hi)
    if x.dtype == jnp.uint8 and mode in ("bilinear", "bicubic"):
        y = _round_to(y, jnp.uint8).astype(jnp.float32)   # torch's uint8 kernel: width pass stored as uint8
    y = jnp.einsum("oh,...hp->...op", wy.astype(xf.dtype), y, precision=hi)
    return _round_to(y, x.dtype)
