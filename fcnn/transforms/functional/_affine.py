"""``affine`` and ``rotate``: warps by an affine map, sampled as torchvision's tensor kernels.

torchvision maps every output pixel back into the input with the inverse of
the map (a 2 × 3 matrix ``theta``, in pixels about the image's centre), turns
that into ``grid_sample``'s normalised grid and samples with zero padding;
``fill`` goes where the sample fell outside the image. The same float32 steps
are taken here, so nearest samples equal torchvision's. :func:`warp` takes
``theta`` as an array, so a traced matrix (one per image under ``vmap``:
:class:`fcnn.transforms.RandAugment`) warps without recompiling.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import jax.numpy as jnp
import numpy as np

from fcnn.functional._compiled import compiled
from fcnn.transforms.functional._color import _divide
from fcnn.transforms.functional._utils import InterpolationMode, image, interpolation_mode, is_float

_f32 = jnp.float32


def inverse_affine_matrix(center: Sequence[float], angle: float, translate: Sequence[float], scale: float,
                          shear: Sequence[float]) -> np.ndarray:
    """The 2 × 3 matrix taking output pixels back to input pixels (float64, about ``center``).

    The forward map is ``T(translate) · C · R(angle) · Sh(shear) · S(scale) · C⁻¹``:
    rotation by ``angle`` degrees clockwise, shear angles in degrees along x
    then y, about the point ``center`` (relative to the image's centre).
    """
    rot, sx, sy = math.radians(angle), math.radians(shear[0]), math.radians(shear[1])
    cx, cy = center
    tx, ty = translate
    # forward linear part [[a, b], [c, d]] of R · Sh (before scaling)
    a = math.cos(rot - sy) / math.cos(sy)
    b = -(a * math.tan(sx) + math.sin(rot))
    c = math.sin(rot - sy) / math.cos(sy)
    d = math.cos(rot) - c * math.tan(sx)
    # its inverse (determinant 1) divided by the scale, then the translation taken back through it
    m = [d / scale, -b / scale, 0.0, -c / scale, a / scale, 0.0]
    m[2] += cx - m[0] * (cx + tx) - m[1] * (cy + ty)
    m[5] += cy - m[3] * (cx + tx) - m[4] * (cy + ty)
    return np.asarray(m, np.float64).reshape(2, 3)


def fill_values(fill, channels: int, where: str):
    """``None`` (zero padding, no mask) or one float per channel."""
    if fill is None:
        return None
    values = np.asarray(fill, np.float64).reshape(-1)
    if isinstance(fill, bool) or values.size not in (1, channels):
        raise ValueError(f"{where}: fill must be a number or one value per channel ({channels}), got {fill!r}")
    return np.broadcast_to(values, (channels,)).astype(np.float32)


def warp(x, theta, interpolation: str = "nearest", fill=None):
    """Sample ``x (..., C, H, W)`` at ``theta (2, 3)`` (float32, maybe traced) applied to each output pixel.

    The output pixel ``(i, j)`` at ``(j − (W−1)/2, i − (H−1)/2)`` from the centre
    maps to ``theta @ (x, y, 1)``, normalised by half the size as torchvision's
    affine grid; ``nearest`` rounds half to even, ``bilinear`` weighs the four
    neighbours; outside the image: zero, or ``fill`` (a float32 per channel).
    """
    h, w = x.shape[-2:]
    dtype = x.dtype if is_float(x) else _f32
    theta = jnp.asarray(theta, dtype)
    half = jnp.asarray([0.5 * w, 0.5 * h], dtype)
    r = _divide(theta.T, half)                                    # (3, 2): rows for x, y and 1
    xs = jnp.arange(w).astype(dtype) - jnp.asarray(0.5 * (w - 1), dtype)
    ys = jnp.arange(h).astype(dtype) - jnp.asarray(0.5 * (h - 1), dtype)
    gx = xs[None, :] * r[0, 0] + ys[:, None] * r[1, 0] + r[2, 0]
    gy = xs[None, :] * r[0, 1] + ys[:, None] * r[1, 1] + r[2, 1]
    # grid_sample's unnormalisation (align_corners=False), as its CPU kernel computes it
    ix = (gx + 1) * jnp.asarray(0.5 * w, dtype) - jnp.asarray(0.5, dtype)
    iy = (gy + 1) * jnp.asarray(0.5 * h, dtype) - jnp.asarray(0.5, dtype)
    xf = jnp.asarray(x).astype(dtype)

    def tap(col, row):
        inside = (col >= 0) & (col < w) & (row >= 0) & (row < h)
        values = xf[..., jnp.clip(row, 0, h - 1), jnp.clip(col, 0, w - 1)]
        return jnp.where(inside, values, 0), inside.astype(dtype)

    if interpolation == "nearest":
        out, mask = tap(jnp.round(ix).astype(jnp.int32), jnp.round(iy).astype(jnp.int32))
        if fill is not None:
            out = jnp.where(mask < 0.5, jnp.asarray(fill, dtype).reshape(-1, 1, 1), out)
    else:
        x0, y0 = jnp.floor(ix), jnp.floor(iy)
        wx1, wy1 = ix - x0, iy - y0
        wx0, wy0 = (x0 + 1) - ix, (y0 + 1) - iy
        x0, y0 = x0.astype(jnp.int32), y0.astype(jnp.int32)
        out, mask = 0, 0
        for col, row, weight in ((x0, y0, wx0 * wy0), (x0 + 1, y0, wx1 * wy0), (x0, y0 + 1, wx0 * wy1),
                                 (x0 + 1, y0 + 1, wx1 * wy1)):
            v, m = tap(col, row)
            out, mask = out + v * weight, mask + m * weight
        if fill is not None:
            f = jnp.asarray(fill, dtype).reshape(-1, 1, 1)
            out = (out - f) * mask + f
    return out if is_float(x) else jnp.round(out).astype(x.dtype)


def _number(value, name: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{where}: {name} must be a number, got {value!r}")
    return float(value)


def _pair(value, name: str, where: str) -> list[float]:
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return [float(value), 0.0]
    if isinstance(value, (list, tuple)) and len(value) in (1, 2):
        v = [_number(a, name, where) for a in value]
        return v * 2 if len(v) == 1 else v
    raise TypeError(f"{where}: {name} must be a number or a sequence of 1 or 2 numbers, got {value!r}")


def _warp_mode(interpolation, where: str) -> str:
    mode = interpolation_mode(interpolation, where)
    if mode not in ("nearest", "bilinear"):
        raise ValueError(f"{where}: tensors support interpolation 'nearest' and 'bilinear' only, got {mode!r}")
    return mode


def _center(center, h: int, w: int, where: str) -> list[float]:
    if center is None:
        return [0.0, 0.0]
    if not isinstance(center, (list, tuple)) or len(center) != 2:
        raise TypeError(f"{where}: center must be a sequence of 2 numbers, got {center!r}")
    return [_number(center[0], "center", where) - 0.5 * w, _number(center[1], "center", where) - 0.5 * h]


@compiled
def affine(inpt, angle, translate, scale, shear, interpolation: Any = InterpolationMode.NEAREST, fill=None,
           center=None):
    """Rotate by ``angle`` degrees, translate, scale and shear, as ``torchvision.transforms.v2.functional.affine``.

    Args:
        angle: degrees, clockwise.
        translate: ``[tx, ty]`` pixels (fractions allowed for tensors, as torchvision).
        scale: positive factor.
        shear: degrees: one number (along x) or ``[sx, sy]``.
        interpolation: ``nearest`` or ``bilinear``.
        fill: value(s) outside the image (``None``: zero).
        center: ``[x, y]`` in pixels from the top-left (default: the image's centre).
    """
    where = "affine"
    x = image(inpt, where)
    angle = _number(angle, "angle", where)
    scale = _number(scale, "scale", where)
    if scale <= 0:
        raise ValueError(f"{where}: scale must be positive, got {scale}")
    if not isinstance(translate, (list, tuple)) or len(translate) != 2:
        raise TypeError(f"{where}: translate must be a sequence of length 2, got {translate!r}")
    translate = [_number(t, "translate", where) for t in translate]
    shear = _pair(shear, "shear", where)
    mode = _warp_mode(interpolation, where)
    h, w = x.shape[-2:]
    theta = inverse_affine_matrix(_center(center, h, w, where), angle, translate, scale, shear)
    return warp(x, theta.astype(np.float32), mode, fill_values(fill, x.shape[-3], where))


@compiled
def rotate(inpt, angle, interpolation: Any = InterpolationMode.NEAREST, expand: bool = False, center=None,
           fill=None):
    """Rotate by ``angle`` degrees counter-clockwise, as ``torchvision.transforms.v2.functional.rotate``.

    Multiples of 180° (and of 90° on square images) are exact flips and
    transposes, as torchvision's. ``expand=True`` (enlarging the output to hold
    the whole rotated image) is not supported.
    """
    where = "rotate"
    x = image(inpt, where)
    angle = _number(angle, "angle", where) % 360
    if expand:
        raise ValueError(f"{where}: expand=True is not supported (the output keeps the input's size)")
    mode = _warp_mode(interpolation, where)
    h, w = x.shape[-2:]
    if center is None and (angle == 0 or angle == 180 or (h == w and angle in (90, 270))):
        return jnp.rot90(x, k=int(angle) // 90, axes=(-2, -1))
    theta = inverse_affine_matrix(_center(center, h, w, where), -angle, [0.0, 0.0], 1.0, [0.0, 0.0])
    return warp(x, theta.astype(np.float32), mode, fill_values(fill, x.shape[-3], where))
