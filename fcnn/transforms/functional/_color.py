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


def _blend(x, other, ratio):
    """``ratio · x + (1 − ratio) · other``, clamped to the intensity range and cast back (torchvision's ``_blend``)."""
    r, one_minus_r = _ratio_pair(ratio)
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
