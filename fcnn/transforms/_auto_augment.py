"""RandAugment and TrivialAugmentWide, as ``torchvision.transforms.v2``."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fcnn.transforms._base import Transform
from fcnn.transforms.functional import _color as C
from fcnn.transforms.functional._affine import fill_values, inverse_affine_matrix, warp
from fcnn.transforms.functional._utils import (InterpolationMode, compute_dtype, interpolation_mode, max_value,
                                               rgb_or_gray)

#: The operations, in torchvision's order (an op index is a position here).
OPS = ("Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color", "Contrast",
       "Sharpness", "Posterize", "Solarize", "AutoContrast", "Equalize")
_OP = {name: i for i, name in enumerate(OPS)}
_GEOMETRIC = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")
_BLENDS = ("Brightness", "Color", "Contrast")
_UNSIGNED = ("Posterize", "Solarize")


def _fma32(a, b, c):
    """``a · b + c`` in float32 rounded once (the exact product fits a float64)."""
    return np.float32(np.float64(np.float32(a)) * np.float64(np.float32(b)) + np.float64(np.float32(c)))


def linspace32(start: float, end: float, steps: int) -> np.ndarray:
    """``torch.linspace(start, end, steps)`` in float32 as torch's CPU kernel forms it.

    The first half counts up from ``start``, the second down from ``end``, each
    value one fused multiply-add of the float32 step.
    """
    s, e = np.float32(start), np.float32(end)
    if steps == 1:
        return np.asarray([s])
    step = np.float32((e - s) / np.float32(steps - 1))
    return np.asarray([_fma32(step, i, s) if i < steps // 2 else _fma32(-step, steps - 1 - i, e)
                       for i in range(steps)], np.float32)


def _posterize_bits(num_bins: int, levels: int) -> np.ndarray:
    """``round(8 − i / ((num_bins − 1) / levels))`` in float32, half to even (torchvision's posterize bins)."""
    q = np.arange(num_bins).astype(np.float32) / np.float32((num_bins - 1) / levels)
    return np.round(np.float32(8) - q).astype(np.int32)


class _AutoAugmentBase(Transform):
    """An operation of :data:`OPS` with a magnitude from a table of bins, applied by an op index.

    ``make_params`` draws op indices, magnitude bins and signs; ``transform``
    applies them. Every operation's arguments (the affine matrix of a shear,
    translation or rotation, blend ratios, bits, a threshold) are tabulated per
    op, bin and sign in float64 and cast to float32 as torchvision forms them,
    and the image passes through each kind of operation once, the op index
    selecting the result: under ``vmap`` every image has its own op and the
    program stays one.
    """

    random = True

    def __init__(self, *, interpolation: Any = InterpolationMode.NEAREST, fill=None) -> None:
        where = type(self).__name__
        self.interpolation = interpolation_mode(interpolation, where)
        if self.interpolation not in ("nearest", "bilinear"):
            raise ValueError(f"{where}: interpolation must be 'nearest' or 'bilinear' for arrays, "
                             f"got {interpolation!r}")
        if fill is not None:
            fill_values(fill, len(fill) if isinstance(fill, (list, tuple)) else 1, where)
        self.fill = fill

    def check_shape(self, shape):
        rgb_or_gray(np.empty(shape[-3:], np.uint8), type(self).__name__)
        if self.fill is not None:
            fill_values(self.fill, shape[-3], type(self).__name__)

    def _magnitudes(self, num_bins: int, height: int, width: int) -> dict:
        """Op name → its magnitude of each bin (float32, or int32 bits), for the ops that have one."""
        raise NotImplementedError

    def op_magnitude(self, op: int, bin: int, negate: bool, height: int, width: int, magnitudes=None) -> float:
        """The magnitude torchvision applies for op ``op``, bin ``bin`` and sign draw ``negate`` (a Python number)."""
        if magnitudes is None:
            magnitudes = self._magnitudes(self.num_magnitude_bins, height, width)
        table = magnitudes.get(OPS[op])
        if table is None:
            return 0.0
        m = table[bin].item()
        return -float(m) if negate and OPS[op] not in _UNSIGNED else m

    def _tables(self, shape, dtype) -> dict:
        """Per op, bin and sign (``[op, bin, negate]``): the arguments each operation takes."""
        _, h, w = shape
        n = self.num_magnitude_bins
        size = (len(OPS), n, 2)
        theta = np.broadcast_to(np.eye(2, 3, dtype=np.float32), size + (2, 3)).copy()
        rot90 = np.full(size, -1, np.int32)
        ratio, one_minus = np.ones(size, np.float32), np.zeros(size, np.float32)
        bits, threshold = np.full(size, 8, np.int32), np.zeros(size, np.float32)
        magnitudes = self._magnitudes(n, h, w)
        for op, name in enumerate(OPS):
            for b in range(n):
                for neg in (0, 1):
                    m = self.op_magnitude(op, b, bool(neg), h, w, magnitudes)
                    i = (op, b, neg)
                    if name in ("ShearX", "ShearY"):
                        shear = math.degrees(math.atan(m))
                        theta[i] = inverse_affine_matrix([-0.5 * w, -0.5 * h], 0.0, [0.0, 0.0], 1.0,
                                                         [shear, 0.0] if name == "ShearX" else [0.0, shear])
                    elif name in ("TranslateX", "TranslateY"):
                        t = float(int(m))
                        theta[i] = inverse_affine_matrix([0.0, 0.0], 0.0, [t, 0.0] if name == "TranslateX"
                                                         else [0.0, t], 1.0, [0.0, 0.0])
                    elif name == "Rotate":
                        angle = m % 360
                        theta[i] = inverse_affine_matrix([0.0, 0.0], -angle, [0.0, 0.0], 1.0, [0.0, 0.0])
                        if angle in (0, 180) or (h == w and angle in (90, 270)):
                            rot90[i] = int(angle) // 90          # torchvision's exact rotations
                    elif name in _BLENDS or name == "Sharpness":
                        ratio[i], one_minus[i] = np.float32(1.0 + m), np.float32(1.0 - (1.0 + m))
                    elif name == "Posterize":
                        bits[i] = int(m)
                    elif name == "Solarize":
                        threshold[i] = np.float32(max_value(dtype) * m)
        return {"theta": theta, "rot90": rot90, "ratio": ratio, "one_minus": one_minus, "bits": bits,
                "threshold": threshold}

    def apply_op(self, image, op, bin, negate, tables=None):
        """Operation ``op`` (index into :data:`OPS`) at magnitude bin ``bin``, negated if ``negate`` (maybe traced)."""
        x = jnp.asarray(image)
        t = self._tables(x.shape[-3:], x.dtype) if tables is None else tables
        at = lambda name: jnp.asarray(t[name])[op, bin, jnp.asarray(negate, jnp.int32)]
        is_op = lambda *names: jnp.any(jnp.asarray([op == _OP[n] for n in names]))
        # geometry: one warp, or one of torchvision's exact quarter turns
        geo = warp(x, at("theta"), self.interpolation, fill_values(self.fill, x.shape[-3], type(self).__name__))
        quarter = at("rot90")
        for k in sorted({int(k) for k in np.unique(t["rot90"]) if k >= 0}):
            geo = jnp.where(quarter == k, jnp.rot90(x, k, axes=(-2, -1)), geo)
        # brightness, colour (saturation) and contrast: one blend with the other image selected
        if x.shape[-3] == 3:
            gray = C._blend_gray(x)
        else:
            gray = x.astype(compute_dtype(x))
        mean = jnp.mean(gray, axis=(-3, -2, -1), keepdims=True)
        other = jnp.where(op == _OP["Brightness"], 0.0, jnp.where(op == _OP["Contrast"], mean, gray))
        blend = C._blend(x, other, at("ratio"), at("one_minus"))
        if x.shape[-3] == 1:
            blend = jnp.where(op == _OP["Color"], x, blend)      # saturation leaves one-channel images alone
        results = [
            (is_op(*_GEOMETRIC), geo),
            (is_op(*_BLENDS), blend),
            (op == _OP["Sharpness"], C._sharpen(x, at("one_minus"))),
            (op == _OP["Posterize"], C._posterize(x, at("bits"))),
            (op == _OP["Solarize"], C._solarize(x, at("threshold"))),
            (op == _OP["AutoContrast"], C.autocontrast(x)),
            (op == _OP["Equalize"], C.equalize(x)),
        ]
        out = x
        for chosen, value in reversed(results):
            out = jnp.where(chosen, value, out)
        return out

    def _draw_op(self, key):
        k_op, k_bin, k_sign = jax.random.split(key, 3)
        return (jax.random.randint(k_op, (), 0, len(OPS)), self._draw_bin(k_bin),
                jax.random.uniform(k_sign) <= 0.5)

    def transform(self, inpt, params):
        tables = self._tables(inpt.shape[-3:], inpt.dtype)
        x = inpt
        for i in range(params["op"].shape[0]):
            x = self.apply_op(x, params["op"][i], params["bin"][i], params["negate"][i], tables)
        return x


def _check_bins(num_magnitude_bins, where: str) -> int:
    if isinstance(num_magnitude_bins, bool) or not isinstance(num_magnitude_bins, int) or num_magnitude_bins < 2:
        raise ValueError(f"{where}: num_magnitude_bins must be an int of at least 2, got {num_magnitude_bins!r}")
    return num_magnitude_bins


class RandAugment(_AutoAugmentBase):
    """RandAugment (Cubuk et al. 2020): ``num_ops`` operations drawn uniformly from :data:`OPS`, each at ``magnitude``.

    Args:
        num_ops: operations applied one after another.
        magnitude: the bin (``0 … num_magnitude_bins − 1``) of every operation's magnitude.
        num_magnitude_bins: bins from no change to the strongest.
        interpolation: ``nearest`` (default) or ``bilinear``, for shears, translations and rotations.
        fill: value(s) for the pixels they bring in (``None``: zero).

    Magnitudes are torchvision's: shear 0…0.3, translation 0…150/331 of the
    image's size, rotation 0…30°, brightness/colour/contrast/sharpness factors
    1 ± 0…0.9 (each negated with probability ½), posterize 8…4 bits, solarize
    threshold 1…0 of the range. ``make_params`` draws ``{'op', 'bin', 'negate'}``
    (``num_ops`` of each).
    """

    def __init__(self, num_ops: int = 2, magnitude: int = 9, num_magnitude_bins: int = 31,
                 interpolation: Any = InterpolationMode.NEAREST, fill=None) -> None:
        super().__init__(interpolation=interpolation, fill=fill)
        where = "RandAugment"
        if isinstance(num_ops, bool) or not isinstance(num_ops, int) or num_ops < 0:
            raise ValueError(f"{where}: num_ops should be a non-negative integer, got {num_ops!r}")
        self.num_magnitude_bins = _check_bins(num_magnitude_bins, where)
        if isinstance(magnitude, bool) or not isinstance(magnitude, int) or not 0 <= magnitude < num_magnitude_bins:
            raise ValueError(f"{where}: magnitude must be an int in [0, num_magnitude_bins) = "
                             f"[0, {num_magnitude_bins}), got {magnitude!r}")
        self.num_ops, self.magnitude = num_ops, magnitude

    def _magnitudes(self, num_bins, height, width):
        lin = lambda hi: linspace32(0.0, hi, num_bins)
        return {"ShearX": lin(0.3), "ShearY": lin(0.3), "TranslateX": lin(150.0 / 331.0 * width),
                "TranslateY": lin(150.0 / 331.0 * height), "Rotate": lin(30.0), "Brightness": lin(0.9),
                "Color": lin(0.9), "Contrast": lin(0.9), "Sharpness": lin(0.9),
                "Posterize": _posterize_bits(num_bins, 4), "Solarize": linspace32(1.0, 0.0, num_bins)}

    def _draw_bin(self, key):
        return jnp.asarray(self.magnitude, jnp.int32)

    def make_params(self, key, shape):
        ops = [self._draw_op(k) for k in jax.random.split(key, self.num_ops)] if self.num_ops else []
        if not ops:
            return {"op": jnp.zeros((0,), jnp.int32), "bin": jnp.zeros((0,), jnp.int32),
                    "negate": jnp.zeros((0,), bool)}
        return {name: jnp.stack(column) for name, column in zip(("op", "bin", "negate"), zip(*ops))}


class TrivialAugmentWide(_AutoAugmentBase):
    """TrivialAugment Wide (Müller & Hutter 2021): one operation of :data:`OPS` at a uniformly drawn magnitude bin.

    Args:
        num_magnitude_bins: bins from no change to the strongest.
        interpolation, fill: as :class:`RandAugment`.

    Magnitudes are torchvision's wide ranges: shear 0…0.99, translation 0…32
    pixels, rotation 0…135°, brightness/colour/contrast/sharpness factors
    1 ± 0…0.99, posterize 8…2 bits, solarize threshold 1…0 of the range.
    ``make_params`` draws ``{'op', 'bin', 'negate'}`` (one of each).
    """

    def __init__(self, num_magnitude_bins: int = 31, interpolation: Any = InterpolationMode.NEAREST,
                 fill=None) -> None:
        super().__init__(interpolation=interpolation, fill=fill)
        self.num_magnitude_bins = _check_bins(num_magnitude_bins, "TrivialAugmentWide")

    def _magnitudes(self, num_bins, height, width):
        lin = lambda hi: linspace32(0.0, hi, num_bins)
        return {"ShearX": lin(0.99), "ShearY": lin(0.99), "TranslateX": lin(32.0), "TranslateY": lin(32.0),
                "Rotate": lin(135.0), "Brightness": lin(0.99), "Color": lin(0.99), "Contrast": lin(0.99),
                "Sharpness": lin(0.99), "Posterize": _posterize_bits(num_bins, 6),
                "Solarize": linspace32(1.0, 0.0, num_bins)}

    def _draw_bin(self, key):
        return jax.random.randint(key, (), 0, self.num_magnitude_bins)

    def make_params(self, key, shape):
        op, b, negate = self._draw_op(key)
        return {"op": op[None], "bin": b[None], "negate": negate[None]}
