"""Input checks and dtype rules shared by the image ops."""

from __future__ import annotations

import enum
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


class InterpolationMode(str, enum.Enum):
    """Resampling modes, named and valued as ``torchvision.transforms.InterpolationMode``.

    Every op taking ``interpolation`` also accepts the plain strings
    (``'bilinear'``) and torchvision's own enum members.
    """

    NEAREST = "nearest"
    NEAREST_EXACT = "nearest-exact"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"


def interpolation_mode(value: Any, where: str) -> str:
    """The mode's string value; torchvision's enum, fcnn's enum or a string."""
    mode = getattr(value, "value", value)
    if isinstance(mode, str) and mode in {m.value for m in InterpolationMode}:
        return mode
    raise ValueError(f"{where}: interpolation must be one of {[m.value for m in InterpolationMode]} "
                     f"(or InterpolationMode), got {value!r}")


def image(inpt: Any, where: str, name: str = "inpt") -> jnp.ndarray:
    """An image array ``(..., C, H, W)`` of dtype uint8 or floating point."""
    if not isinstance(inpt, (jax.Array, np.ndarray)) and not hasattr(inpt, "__jax_array__"):
        raise TypeError(f"{where}: {name} must be a jax or numpy array of shape (..., C, H, W), "
                        f"got {type(inpt).__name__}")
    x = jnp.asarray(inpt)
    if x.ndim < 3:
        raise ValueError(f"{where}: {name} must have shape (..., C, H, W), got shape {tuple(x.shape)}")
    if x.dtype != jnp.uint8 and not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"{where}: {name} must be uint8 or floating point, got dtype {x.dtype}")
    return x


def max_value(dtype) -> float:
    """The largest intensity: 255 for uint8, 1.0 for floating point (torchvision's ``_max_value``)."""
    return 255.0 if jnp.dtype(dtype) == jnp.uint8 else 1.0


def is_float(x) -> bool:
    return jnp.issubdtype(x.dtype, jnp.floating)


def compute_dtype(x):
    """The dtype arithmetic runs in: the input's for floating inputs, float32 for uint8 (as torch promotes)."""
    return x.dtype if is_float(x) else jnp.float32


def to_input_dtype(y, dtype):
    """``y`` cast back to the image dtype; to uint8 by truncation, as torch's ``.to(torch.uint8)``."""
    return y.astype(dtype)


def is_concrete(value) -> bool:
    """A Python/NumPy number (checked eagerly), as opposed to a traced or device value."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def factor(value, name: str, where: str, low: float = 0.0, high: float = float("inf")):
    """A blending factor: Python numbers are range-checked here, arrays are traced as given."""
    if isinstance(value, bool):
        raise TypeError(f"{where}: {name} must be a number or a scalar array, got {value!r}")
    if is_concrete(value):
        if not low <= float(value) <= high:
            bounds = f"non-negative" if high == float("inf") else f"in [{low}, {high}]"
            raise ValueError(f"{where}: {name} ({value}) is not {bounds}")
        return float(value)
    if not isinstance(value, (jax.Array, np.ndarray)) or jnp.ndim(value) != 0:
        raise TypeError(f"{where}: {name} must be a number or a scalar array, got {value!r}")
    return value


def rgb_or_gray(x, where: str) -> int:
    c = x.shape[-3]
    if c not in (1, 3):
        raise TypeError(f"{where}: the image must have 1 or 3 channels, got {c} (shape {tuple(x.shape)})")
    return c


def size_pair(size, name: str, where: str) -> tuple[int, int]:
    """``int`` or ``[int]`` → ``(s, s)``; ``[h, w]`` → ``(h, w)``; positive."""
    if isinstance(size, (list, tuple)) and len(size) == 1:
        size = size[0]
    from fcnn import _checks

    pair = _checks.ntuple(size, 2, name, where)
    _checks.positive(pair, name, where)
    return pair
