"""Geometric transforms: Resize, CenterCrop, Pad, RandomCrop, flips, RandomResizedCrop."""

from __future__ import annotations

import math
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from fcnn import _checks
from fcnn.transforms import functional as F
from fcnn.transforms._base import Transform
from fcnn.transforms.functional._geometry import _resized_output_size, check_fill, parse_padding
from fcnn.transforms.functional._utils import InterpolationMode, interpolation_mode, size_pair


class Resize(Transform):
    """:func:`fcnn.transforms.functional.resize` with fixed arguments (torchvision's ``Resize``)."""

    def __init__(self, size, interpolation: Any = InterpolationMode.BILINEAR, max_size: int | None = None,
                 antialias: bool | None = True) -> None:
        self.size = size
        self.interpolation = interpolation_mode(interpolation, "Resize")
        self.max_size = max_size
        self.antialias = antialias
        _resized_output_size((64, 48), size, max_size, "Resize")  # checks size/max_size now

    def transform(self, inpt, params):
        return F.resize(inpt, self.size, self.interpolation, self.max_size, self.antialias)


class CenterCrop(Transform):
    """The central ``size`` window (zero-padded where the image is smaller)."""

    def __init__(self, size) -> None:
        self.size = size_pair(size, "size", "CenterCrop")

    def transform(self, inpt, params):
        return F.center_crop(inpt, self.size)


class Pad(Transform):
    """:func:`fcnn.transforms.functional.pad` with fixed arguments."""

    def __init__(self, padding, fill=0, padding_mode: str = "constant") -> None:
        self.padding = parse_padding(padding, "Pad")
        self.fill = check_fill(fill, "Pad")
        self.padding_mode = _checks.one_of(padding_mode, ("constant", "edge", "reflect", "symmetric"),
                                           "padding_mode", "Pad")

    def transform(self, inpt, params):
        return F.pad(inpt, list(self.padding), self.fill, self.padding_mode)


class _Flip(Transform):
    random = True
    _op = None

    def __init__(self, p: float = 0.5) -> None:
        self.p = _checks.probability(p, "p", type(self).__name__)

    def make_params(self, key, shape):
        """``{'flip': bool}``: true with probability ``p`` (torchvision: ``torch.rand(1) < p``)."""
        return {"flip": jax.random.uniform(key) < self.p}

    def transform(self, inpt, params):
        return jnp.where(params["flip"], type(self)._op(inpt), inpt)


class RandomHorizontalFlip(_Flip):
    """Mirror left ↔ right with probability ``p``."""

    _op = staticmethod(F.horizontal_flip)


class RandomVerticalFlip(_Flip):
    """Mirror top ↔ bottom with probability ``p``."""

    _op = staticmethod(F.vertical_flip)


class RandomCrop(Transform):
    """A random ``size`` window, after optional padding, as torchvision's ``RandomCrop``.

    Args:
        size: ``int`` or ``[h, w]``.
        padding: added first on every image (``p``, ``[lr, tb]`` or ``[l, t, r, b]``).
        pad_if_needed: pad images smaller than ``size`` (by the shortfall on both sides, as torchvision).
        fill, padding_mode: as :func:`fcnn.transforms.functional.pad`.

    ``make_params`` draws ``{'top', 'left'}`` in the padded image, uniformly over
    every position (``torch.randint``); the padding depends only on the shape.
    """

    random = True

    def __init__(self, size, padding=None, pad_if_needed: bool = False, fill=0,
                 padding_mode: str = "constant") -> None:
        where = "RandomCrop"
        self.size = size_pair(size, "size", where)
        self.padding = parse_padding(padding, where) if padding else None
        if not isinstance(pad_if_needed, bool):
            raise TypeError(f"{where}: pad_if_needed must be a bool, got {pad_if_needed!r}")
        self.pad_if_needed = pad_if_needed
        self.fill = check_fill(fill, where)
        self.padding_mode = _checks.one_of(padding_mode, ("constant", "edge", "reflect", "symmetric"),
                                           "padding_mode", where)

    def padding_for(self, shape) -> tuple[int, int, int, int]:
        """``(left, top, right, bottom)`` padding of an image of ``shape`` (torchvision's rule)."""
        h, w = shape[-2:]
        left, top, right, bottom = self.padding or (0, 0, 0, 0)
        ch, cw = self.size
        if self.pad_if_needed:
            if h + top + bottom < ch:
                diff = ch - (h + top + bottom)
                top, bottom = top + diff, bottom + diff
            if w + left + right < cw:
                diff = cw - (w + left + right)
                left, right = left + diff, right + diff
        if h + top + bottom < ch or w + left + right < cw:
            raise ValueError(f"RandomCrop: required crop size {self.size} is larger than the "
                             f"{'padded ' if self.padding else ''}input image size "
                             f"{(h + top + bottom, w + left + right)}")
        return left, top, right, bottom

    def check_shape(self, shape):
        self.padding_for(shape)

    def make_params(self, key, shape):
        left, top, right, bottom = self.padding_for(shape)
        h, w = shape[-2] + top + bottom, shape[-1] + left + right
        k1, k2 = jax.random.split(key)
        return {"top": jax.random.randint(k1, (), 0, h - self.size[0] + 1),
                "left": jax.random.randint(k2, (), 0, w - self.size[1] + 1)}

    def transform(self, inpt, params):
        padding = self.padding_for(inpt.shape)
        x = F.pad(inpt, list(padding), self.fill, self.padding_mode) if any(padding) else inpt
        start = (0,) * (x.ndim - 2) + (params["top"], params["left"])
        return jax.lax.dynamic_slice(x, start, x.shape[:-2] + self.size)


def _first_valid(valid, *candidates):
    """The entries of ``candidates`` at the first true ``valid`` (torchvision's up-to-10-tries loop)."""
    idx = jnp.argmax(valid)
    return tuple(c[idx] for c in candidates)


class RandomResizedCrop(Transform):
    """A random box of random area and aspect ratio, resized to ``size`` (torchvision's ``RandomResizedCrop``).

    Args:
        size: output ``int`` or ``[h, w]``.
        scale: range of the box's area as a fraction of the image's.
        ratio: range of its aspect ratio (width / height), sampled log-uniformly.
        interpolation, antialias: as :func:`fcnn.transforms.functional.resized_crop`.

    ``make_params`` draws ``{'top', 'left', 'height', 'width'}`` as torchvision:
    up to 10 tries of (area, ratio), the first whose box fits, then a uniform
    position; the central-crop fallback otherwise. The 10 tries are drawn at
    once (fixed shapes under ``jit``), with the same distribution. The box is
    resampled with traced weights (:func:`~fcnn.transforms.functional.resized_crop`),
    equal to torchvision's crop-then-resize up to float32 rounding.
    """

    random = True

    def __init__(self, size, scale: Sequence[float] = (0.08, 1.0),
                 ratio: Sequence[float] = (3.0 / 4.0, 4.0 / 3.0),
                 interpolation: Any = InterpolationMode.BILINEAR, antialias: bool | None = True) -> None:
        where = "RandomResizedCrop"
        self.size = size_pair(size, "size", where)
        for name, v in (("scale", scale), ("ratio", ratio)):
            if not isinstance(v, (list, tuple)) or len(v) != 2 or not all(
                    isinstance(a, (int, float)) and not isinstance(a, bool) for a in v):
                raise TypeError(f"{where}: {name} must be a sequence of two numbers, got {v!r}")
            if v[0] > v[1]:
                raise ValueError(f"{where}: {name} should be of kind (min, max), got {v!r}")
        if scale[0] < 0 or ratio[0] <= 0:
            raise ValueError(f"{where}: scale must be non-negative and ratio positive, got {scale!r}, {ratio!r}")
        self.scale, self.ratio = tuple(map(float, scale)), tuple(map(float, ratio))
        self.interpolation = interpolation_mode(interpolation, where)
        self.antialias = antialias
        if self.interpolation == "bicubic" and not antialias:
            raise ValueError(f"{where}: bicubic needs antialias=True (random boxes are resampled with traced weights)")

    def _fallback(self, h: int, w: int) -> tuple[int, int, int, int]:
        in_ratio = w / h
        if in_ratio < min(self.ratio):
            cw, ch = w, int(round(w / min(self.ratio)))
        elif in_ratio > max(self.ratio):
            ch, cw = h, int(round(h * max(self.ratio)))
        else:
            ch, cw = h, w
        return (h - ch) // 2, (w - cw) // 2, ch, cw

    def make_params(self, key, shape):
        h, w = shape[-2:]
        k_area, k_ratio, k_top, k_left = jax.random.split(key, 4)
        area = h * w
        target = area * jax.random.uniform(k_area, (10,), minval=self.scale[0], maxval=self.scale[1])
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        aspect = jnp.exp(jax.random.uniform(k_ratio, (10,), minval=log_ratio[0], maxval=log_ratio[1]))
        cw = jnp.round(jnp.sqrt(target * aspect)).astype(jnp.int32)
        ch = jnp.round(jnp.sqrt(target / aspect)).astype(jnp.int32)
        valid = (cw > 0) & (cw <= w) & (ch > 0) & (ch <= h)
        ch, cw = _first_valid(valid, ch, cw)
        top = jax.random.randint(k_top, (), 0, h - ch + 1)
        left = jax.random.randint(k_left, (), 0, w - cw + 1)
        fb = self._fallback(h, w)
        found = jnp.any(valid)
        pick = lambda a, b: jnp.where(found, a, b).astype(jnp.int32)
        return {"top": pick(top, fb[0]), "left": pick(left, fb[1]), "height": pick(ch, fb[2]),
                "width": pick(cw, fb[3])}

    def transform(self, inpt, params):
        return F.resized_crop(inpt, params["top"], params["left"], params["height"], params["width"], self.size,
                              self.interpolation, self.antialias)
