"""Colour transforms: Grayscale, ColorJitter, Normalize, ToDtype."""

from __future__ import annotations

import numbers
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from fcnn.transforms import functional as F
from fcnn.transforms._base import Transform
from fcnn.transforms.functional._color import _blend, _blend_gray
from fcnn.transforms.functional._utils import compute_dtype as _compute_dtype, rgb_or_gray


class Grayscale(Transform):
    """RGB → luma with ``num_output_channels`` (1 or 3) channels."""

    def __init__(self, num_output_channels: int = 1) -> None:
        if num_output_channels not in (1, 3) or isinstance(num_output_channels, bool):
            raise ValueError(f"Grayscale: num_output_channels must be 1 or 3, got {num_output_channels!r}")
        self.num_output_channels = num_output_channels

    def transform(self, inpt, params):
        return F.rgb_to_grayscale(inpt, self.num_output_channels)


class Normalize(Transform):
    """``(x − mean[c]) / std[c]`` on floating images (``inplace`` accepted and ignored)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], inplace: bool = False) -> None:
        self.mean = [float(v) for v in np.asarray(mean, np.float64).reshape(-1)]
        self.std = [float(v) for v in np.asarray(std, np.float64).reshape(-1)]
        if not all(self.std):
            raise ValueError(f"Normalize: std evaluated to zero, leading to division by zero (std={std!r})")
        self.inplace = inplace

    def transform(self, inpt, params):
        return F.normalize(inpt, self.mean, self.std)


class ToDtype(Transform):
    """Cast to ``dtype``, mapping the value range with ``scale=True`` (uint8 0…255 ↔ float 0…1)."""

    def __init__(self, dtype=jnp.float32, scale: bool = False) -> None:
        try:
            self.dtype = jnp.dtype(dtype)
        except TypeError:
            raise TypeError(f"ToDtype: dtype must be a numpy/jax dtype, got {dtype!r}") from None
        if not isinstance(scale, bool):
            raise TypeError(f"ToDtype: scale must be a bool, got {scale!r}")
        self.scale = scale

    def transform(self, inpt, params):
        return F.to_dtype(inpt, self.dtype, self.scale)


def _jitter_range(value, name: str, center: float = 1.0, bound=(0.0, float("inf")), clip_first_on_zero=True):
    """torchvision's ``ColorJitter._check_input``: a number ``v`` → ``[center − v, center + v]``."""
    if value is None:
        return None
    if isinstance(value, numbers.Number) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"ColorJitter: if {name} is a single number, it must be non negative, got {value}")
        value = [center - value, center + value]
        if clip_first_on_zero:
            value[0] = max(value[0], 0.0)
    elif isinstance(value, (list, tuple)) and len(value) == 2:
        value = [float(v) for v in value]
    else:
        raise TypeError(f"ColorJitter: {name}={value!r} should be a single number or a sequence with length 2")
    if not bound[0] <= value[0] <= value[1] <= bound[1]:
        raise ValueError(f"ColorJitter: {name} values should be between {bound} and increasing, but got {value}")
    return None if value[0] == value[1] == center else (float(value[0]), float(value[1]))


class ColorJitter(Transform):
    """Random brightness, contrast, saturation and hue, in a random order (torchvision's ``ColorJitter``).

    Each argument is a number ``v`` (a factor drawn from ``[1 − v, 1 + v]``, hue
    from ``[−v, v]``) or a ``(min, max)`` range; ``None`` leaves that property
    alone. ``make_params`` draws ``{'fn_idx'}`` (a permutation of 0…3: brightness,
    contrast, saturation, hue) and the four factors uniformly; the ones not
    asked for are drawn but unused.
    """

    random = True

    def __init__(self, brightness=None, contrast=None, saturation=None, hue=None) -> None:
        self.brightness = _jitter_range(brightness, "brightness")
        self.contrast = _jitter_range(contrast, "contrast")
        self.saturation = _jitter_range(saturation, "saturation")
        self.hue = _jitter_range(hue, "hue", center=0.0, bound=(-0.5, 0.5), clip_first_on_zero=False)

    def check_shape(self, shape):
        rgb_or_gray(np.empty(shape[-3:] if len(shape) >= 3 else shape, np.uint8), "ColorJitter")

    def make_params(self, key, shape):
        k_perm, *ks = jax.random.split(key, 5)
        params = {"fn_idx": jax.random.permutation(k_perm, 4)}
        for k, name in zip(ks, ("brightness", "contrast", "saturation", "hue")):
            lo, hi = getattr(self, name) or (0.0, 0.0)
            params[f"{name}_factor"] = jax.random.uniform(k, (), minval=lo, maxval=hi)
        return params

    def transform(self, inpt, params):
        """The four adjustments in ``params['fn_idx']``'s order, each equal to torchvision's functional op.

        Brightness, contrast and saturation are each a blend ``r · x + (1 − r) · other``
        (``other``: zero, the gray mean, the gray image), so every position of the
        order is one blend whose ratio and ``other`` are selected by the position's
        operation: under ``vmap`` (a different order per image) that costs one
        blend per position, where a branch per operation would compute all of
        them. Hue, the expensive one, runs once: the blends before its position,
        then hue, then those after.
        """
        enabled = jnp.asarray([getattr(self, n) is not None for n in ("brightness", "contrast", "saturation")])
        ratios = jnp.stack([params[f"{n}_factor"] for n in ("brightness", "contrast", "saturation")])
        fn_idx = params["fn_idx"]
        hue_at = jnp.argmax(fn_idx == 3) if self.hue is not None else 4

        def blends(x, positions):
            for position in range(4):
                op = fn_idx[position]
                cheap = jnp.minimum(op, 2)
                gray = _blend_gray(x) if x.shape[-3] == 3 else x.astype(_compute_dtype(x))
                other = jnp.where(op == 0, 0.0, jnp.where(op == 1, jnp.mean(gray, axis=(-3, -2, -1), keepdims=True),
                                                           gray))
                apply = (op < 3) & enabled[cheap] & positions(position)
                if x.shape[-3] == 1:
                    apply = apply & (op != 2)            # saturation leaves one-channel images alone
                x = jnp.where(apply, _blend(x, other, ratios[cheap]), x)
            return x

        x = blends(inpt, lambda position: position < hue_at)
        if self.hue is None:
            return x
        x = F.adjust_hue(x, params["hue_factor"])
        return blends(x, lambda position: position > hue_at)
