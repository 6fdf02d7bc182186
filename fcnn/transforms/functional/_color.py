"""Colour: grayscale and the brightness/contrast/saturation/hue adjustments of torchvision.

Arithmetic follows torchvision's kernels step by step, so uint8 results match
its rounding: uint8 images are computed in float32 and truncated back (torch's
``.to(torch.uint8)``), intermediate grays are floored, and hue goes through
float32 HSV and back with torchvision's ``to_dtype(scale=True)``. Factors may be
Python numbers (range-checked) or traced scalars (``ColorJitter`` under ``jit``).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from fcnn.transforms.functional._misc import to_dtype
from fcnn.functional._compiled import compiled
from fcnn.transforms.functional._utils import (compute_dtype, factor, image, is_concrete, is_float, max_value,
                                               rgb_or_gray)


def _split(a):
    """Veltkamp's split of a float32 into two halves of 12 significant bits (``a == hi + lo``)."""
    t = a * 4097.0
    hi = t - (t - a)
    return hi, a - hi


def _fma(a, b, c):
    """``a · b + c`` rounded once, as torch's ``add(c, b, alpha=a)`` (a fused multiply-add on CPU).

    XLA has no fused multiply-add primitive, and rounding the product first
    changes the last bit of about a third of the results, which uint8 outputs
    (truncated) turn into off-by-one pixels. The exact product is split into
    two floats (Dekker's two-product), added to ``c`` exactly (Knuth's
    two-sum) and rounded once; the sum of the error terms rounds separately,
    so a result can still differ in the rare double-rounding case.
    """
    p = a * b
    a_hi, a_lo = _split(a)
    b_hi, b_lo = _split(b)
    p_err = ((a_hi * b_hi - p) + a_hi * b_lo + a_lo * b_hi) + a_lo * b_lo
    s = p + c
    bb = s - p
    s_err = (p - (s - bb)) + (c - bb)
    return s + (s_err + p_err)


def _divide(a, b):
    """``a / b`` rounded correctly, as torch's division.

    XLA's CPU division can be one unit in the last place off, which uint8
    results (truncated) turn into off-by-one pixels; of the quotient and its two
    float neighbours, the one with the smallest exact remainder ``a − q · b``
    (Dekker's two-product) is the correctly rounded one.
    """
    b = jnp.asarray(b, a.dtype)

    def remainder(q):
        p = q * b
        q_hi, q_lo = _split(q)
        b_hi, b_lo = _split(b)
        p_err = ((q_hi * b_hi - p) + q_hi * b_lo + q_lo * b_hi) + q_lo * b_lo
        return jnp.abs((a - p) - p_err)

    best = a / b
    best_r = remainder(best)
    for candidate in (jnp.nextafter(best, -jnp.inf), jnp.nextafter(best, jnp.inf)):
        r = remainder(candidate)
        best, best_r = jnp.where(r < best_r, candidate, best), jnp.minimum(r, best_r)
    return best


def _gray(x):
    """Luma ``0.2989 R + 0.587 G + 0.114 B`` in the compute dtype, ``(..., 1, H, W)``, rounded as torch."""
    xf = x.astype(compute_dtype(x))
    r, g, b = xf[..., 0, :, :], xf[..., 1, :, :], xf[..., 2, :, :]
    c = [jnp.asarray(v, xf.dtype) for v in (0.2989, 0.587, 0.114)]
    return _fma(b, c[2], _fma(g, c[1], r * c[0]))[..., None, :, :]


def _blend_gray(x):
    """The gray that saturation and contrast blend with: floored for integer images, as torchvision."""
    gray = _gray(x)
    return gray if is_float(x) else jnp.floor(gray)


@compiled
def rgb_to_grayscale(inpt, num_output_channels: int = 1):
    """RGB → luma (ITU-R 601-2 weights), 1 or 3 identical channels; 1-channel inputs are copied."""
    where = "rgb_to_grayscale"
    x = image(inpt, where)
    if num_output_channels not in (1, 3) or isinstance(num_output_channels, bool):
        raise ValueError(f"{where}: num_output_channels must be 1 or 3, got {num_output_channels!r}")
    c = x.shape[-3]
    if c == 1:
        return jnp.repeat(x, num_output_channels, axis=-3)
    if c != 3:
        raise TypeError(f"{where}: the image must have 1 or 3 channels, got {c} (shape {tuple(x.shape)})")
    gray = _gray(x).astype(x.dtype)
    return jnp.broadcast_to(gray, x.shape) if num_output_channels == 3 else gray


to_grayscale = rgb_to_grayscale


@compiled
def grayscale_to_rgb(inpt):
    """1 channel → 3 identical channels; images with 3 or more channels are returned as they are."""
    x = image(inpt, "grayscale_to_rgb")
    return x if x.shape[-3] >= 3 else jnp.repeat(x, 3, axis=-3)


def _image_and_factor(inpt, value, name: str, where: str, low: float = 0.0, high: float = float("inf")):
    x = image(inpt, where)
    f = factor(value, name, where, low, high)
    rgb_or_gray(x, where)
    return x, f


def _ratio_pair(ratio):
    """``(ratio, 1 - ratio)`` as torch forms them: in double for Python numbers, else in float32."""
    if is_concrete(ratio):
        return np.float32(ratio), np.float32(1.0 - float(ratio))
    r = jnp.asarray(ratio, jnp.float32)
    return r, 1.0 - r


def _blend(x, other, ratio, one_minus_ratio=None):
    """``ratio · x + (1 − ratio) · other``, clamped to the intensity range and cast back (torchvision's ``_blend``).

    ``one_minus_ratio``, when given, is used as it is (a float32 table entry formed as torch forms it).
    """
    r, one_minus_r = _ratio_pair(ratio) if one_minus_ratio is None else (ratio, one_minus_ratio)
    xf = x.astype(compute_dtype(x))
    out = jnp.clip(_fma(other, jnp.asarray(one_minus_r, xf.dtype), xf * jnp.asarray(r, xf.dtype)), 0,
                   max_value(x.dtype))
    return out.astype(x.dtype)


@compiled
def adjust_brightness(inpt, brightness_factor):
    """Multiply intensities by ``brightness_factor`` (≥ 0), clamped to the range."""
    x, f = _image_and_factor(inpt, brightness_factor, "brightness_factor", "adjust_brightness")
    xf = x.astype(compute_dtype(x))
    return jnp.clip(xf * jnp.asarray(f, xf.dtype), 0, max_value(x.dtype)).astype(x.dtype)


@compiled
def adjust_saturation(inpt, saturation_factor):
    """Blend with the image's grayscale (0: gray, 1: unchanged, 2: doubled saturation); 1-channel: unchanged."""
    x, f = _image_and_factor(inpt, saturation_factor, "saturation_factor", "adjust_saturation")
    if x.shape[-3] == 1:
        return x
    return _blend(x, _blend_gray(x), f)


@compiled
def adjust_contrast(inpt, contrast_factor):
    """Blend with the mean of the image's grayscale (0: flat gray, 1: unchanged)."""
    x, f = _image_and_factor(inpt, contrast_factor, "contrast_factor", "adjust_contrast")
    if x.shape[-3] == 3:
        gray = _blend_gray(x)
    else:
        gray = x.astype(compute_dtype(x))
    return _blend(x, jnp.mean(gray, axis=(-3, -2, -1), keepdims=True), f)


def _rgb_to_hsv(x):
    r, g = x[..., 0, :, :], x[..., 1, :, :]
    maxc, minc = jnp.max(x, axis=-3), jnp.min(x, axis=-3)
    eqc = maxc == minc
    span = maxc - minc
    ones = jnp.ones_like(maxc)
    s = span / jnp.where(eqc, ones, maxc)
    divisor = jnp.where(eqc, ones, span)[..., None, :, :]
    d = (maxc[..., None, :, :] - x) / divisor
    rc, gc, bc = d[..., 0, :, :], d[..., 1, :, :], d[..., 2, :, :]
    max_is_r = maxc == r
    max_is_g = (maxc == g) & ~max_is_r
    max_is_b = ~max_is_r & ~(maxc == g)
    # each hue term is multiplied by its 0/1 mask, as torchvision does (not selected): -0.0 terms included
    h = (bc - gc) * max_is_r + (rc + 2.0 - bc) * max_is_g + (gc + 4.0 - rc) * max_is_b
    h = jnp.fmod(h * (1.0 / 6.0) + 1.0, 1.0)
    return h, s, maxc


def _hsv_to_rgb(h, s, v):
    h6 = h * 6
    i = jnp.floor(h6)
    f = h6 - i
    i = jnp.remainder(i.astype(jnp.int32), 6)
    sxf = s * f
    one_minus_s = 1.0 - s
    q = jnp.clip((1.0 - sxf) * v, 0.0, 1.0)
    t = jnp.clip((sxf + one_minus_s) * v, 0.0, 1.0)
    p = jnp.clip(one_minus_s * v, 0.0, 1.0)
    # sector i of the hue circle: which of v/p/q/t each channel takes (selects, no gather)
    def pick(*by_sector):
        out = by_sector[5]
        for sector in range(4, -1, -1):
            out = jnp.where(i == sector, by_sector[sector], out)
        return out

    return jnp.stack((pick(v, q, p, p, t, v), pick(t, v, v, q, p, p), pick(p, p, t, v, v, q)), axis=-3)


@compiled
def adjust_hue(inpt, hue_factor):
    """Rotate the hue by ``hue_factor`` turns (in [-0.5, 0.5]) in HSV space; 1-channel images unchanged."""
    x, f = _image_and_factor(inpt, hue_factor, "hue_factor", "adjust_hue", low=-0.5, high=0.5)
    if x.shape[-3] == 1 or x.size == 0:
        return x
    xf = to_dtype(x, jnp.float32, scale=True)
    h, s, v = _rgb_to_hsv(xf)
    h = jnp.remainder(h + jnp.asarray(f, jnp.float32), 1.0)
    return to_dtype(_hsv_to_rgb(h, s, v), x.dtype, scale=True)


# ----------------------------------------------------------------------------- RandAugment's colour ops


def _sharpen(x, one_minus_factor):
    """Blend the interior with its 3 × 3 blur (weights 1/13, centre 5/13): ``x + (1 − f) · (blur − x)``."""
    h, w = x.shape[-2:]
    if x.size == 0 or h <= 2 or w <= 2:
        return x
    xf = x.astype(compute_dtype(x))
    a, b = (jnp.asarray(v, xf.dtype) for v in (1.0 / 13.0, 5.0 / 13.0))
    blur = 0
    for dy in range(3):
        for dx in range(3):
            blur = blur + xf[..., dy:dy + h - 2, dx:dx + w - 2] * (b if dy == dx == 1 else a)
    if not is_float(x):
        blur = jnp.round(blur)
    inner = xf[..., 1:-1, 1:-1]
    inner = _fma(blur - inner, jnp.asarray(one_minus_factor, xf.dtype), inner)
    out = jnp.clip(xf.at[..., 1:-1, 1:-1].set(inner), 0, max_value(x.dtype))
    return out.astype(x.dtype)


@compiled
def adjust_sharpness(inpt, sharpness_factor):
    """Sharpen (factor > 1) or blur (< 1) the image's interior; 0 gives the 3 × 3 blur, 1 the image itself."""
    x, f = _image_and_factor(inpt, sharpness_factor, "sharpness_factor", "adjust_sharpness")
    return _sharpen(x, np.float32(1.0 - f) if is_concrete(f) else 1.0 - jnp.asarray(f, jnp.float32))


@compiled
def invert(inpt):
    """``max − x``: ``255 − x`` for uint8, ``1 − x`` for floating images."""
    x = image(inpt, "invert")
    return 1.0 - x if is_float(x) else jnp.bitwise_not(x)


def _posterize(x, bits):
    """``posterize`` with ``bits`` maybe traced (an int32 scalar in 0…8)."""
    if is_float(x):
        levels = jnp.left_shift(1, jnp.asarray(bits, jnp.int32)).astype(x.dtype)
        return jnp.clip(jnp.floor(x * levels), 0, levels - 1) * (1.0 / levels)
    mask = jnp.left_shift(255, 8 - jnp.asarray(bits, jnp.int32)) & 255
    return x & mask.astype(jnp.uint8)


@compiled
def posterize(inpt, bits: int):
    """Keep the ``bits`` (0…8) most significant bits of each intensity (float images: ``2**bits`` levels)."""
    x = image(inpt, "posterize")
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 0 <= bits <= 8:
        raise TypeError(f"posterize: bits must be an int in the range [0, 8], got {bits!r}")
    return _posterize(x, int(bits))


def _solarize(x, threshold):
    """``solarize`` with a threshold maybe traced (compared in float32 for uint8 images, as torch promotes)."""
    xc = x.astype(compute_dtype(x))
    return jnp.where(xc >= jnp.asarray(threshold, xc.dtype), invert(x), x)


@compiled
def solarize(inpt, threshold):
    """Invert the intensities at or above ``threshold`` (at most 255 for uint8, 1 for floating images)."""
    where = "solarize"
    x = image(inpt, where)
    if is_concrete(threshold):
        if threshold > max_value(x.dtype):
            raise TypeError(f"{where}: threshold should be less or equal the maximum value of the dtype "
                            f"({max_value(x.dtype):g}), got {threshold}")
    else:
        factor(threshold, "threshold", where, -float("inf"))
    return _solarize(x, threshold)


@compiled
def autocontrast(inpt):
    """Stretch each channel's intensities to the full range (a constant channel is left alone)."""
    where = "autocontrast"
    x = image(inpt, where)
    rgb_or_gray(x, where)
    if x.size == 0:
        return x
    bound = max_value(x.dtype)
    xf = x.astype(compute_dtype(x))
    lo = jnp.min(xf, axis=(-2, -1), keepdims=True)
    hi = jnp.max(xf, axis=(-2, -1), keepdims=True)
    flat = hi == lo
    inv_scale = jnp.where(flat, 1.0, (hi - lo) * jnp.asarray(1.0 / bound, xf.dtype))
    lo = jnp.where(flat, 0.0, lo)
    return jnp.clip(_divide(xf - lo, inv_scale), 0, bound).astype(x.dtype)


@compiled
def equalize(inpt):
    """Histogram equalisation per channel with Pillow's lookup table (floating images through uint8)."""
    x = image(inpt, "equalize")
    if x.size == 0:
        return x
    u8 = to_dtype(x, jnp.uint8, scale=True)
    flat = u8.reshape(u8.shape[:-2] + (-1,)).astype(jnp.int32)
    hist = jnp.sum(flat[..., :, None] == jnp.arange(256), axis=-2, dtype=jnp.int32)
    cum = jnp.cumsum(hist, axis=-1)
    top = jnp.take_along_axis(hist, jnp.argmax(cum, axis=-1)[..., None], axis=-1)
    step = (flat.shape[-1] - top) // 255                               # pixels below the image's maximum / 255
    lut = jnp.clip((cum[..., :-1] + step // 2) // jnp.maximum(step, 1), 0, 255)
    lut = jnp.concatenate([jnp.zeros_like(lut[..., :1]), lut], axis=-1)
    out = jnp.take_along_axis(lut, flat, axis=-1).astype(jnp.uint8).reshape(u8.shape)
    return to_dtype(jnp.where(step[..., None] != 0, out, u8), x.dtype, scale=True)
