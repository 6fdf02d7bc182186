"""RandomErasing, MixUp and CutMix, as ``torchvision.transforms.v2``."""

from __future__ import annotations

import math
import numbers
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from fcnn import _checks
from fcnn.transforms import functional as F
from fcnn.transforms._base import Transform, as_key
from fcnn.transforms.functional._utils import image


class RandomErasing(Transform):
    """Erase a random box with probability ``p`` (torchvision's ``RandomErasing``).

    Args:
        p: probability of erasing.
        scale: range of the box's area as a fraction of the image's.
        ratio: range of its aspect ratio (height / width), log-uniform.
        value: a number, one value per channel, or ``'random'`` (standard normal noise).

    ``make_params`` draws ``{'apply', 'i', 'j', 'h', 'w', 'noise'}`` as torchvision:
    up to 10 tries of (area, ratio) until the box is strictly smaller than the
    image (none: no erasing), then a uniform position.
    """

    random = True

    def __init__(self, p: float = 0.5, scale: Sequence[float] = (0.02, 0.33), ratio: Sequence[float] = (0.3, 3.3),
                 value=0.0, inplace: bool = False) -> None:
        where = "RandomErasing"
        self.p = _checks.probability(p, "p", where)
        if not isinstance(scale, (list, tuple)) or len(scale) != 2 or not isinstance(ratio, (list, tuple)) or len(
                ratio) != 2:
            raise TypeError(f"{where}: scale and ratio must be sequences of two numbers, got {scale!r}, {ratio!r}")
        if scale[0] > scale[1] or ratio[0] > ratio[1]:
            raise ValueError(f"{where}: scale and ratio should be of kind (min, max), got {scale!r}, {ratio!r}")
        if scale[0] < 0 or scale[1] > 1:
            raise ValueError(f"{where}: scale should be between 0 and 1, got {scale!r}")
        if ratio[0] <= 0:
            raise ValueError(f"{where}: ratio must be positive, got {ratio!r}")
        if isinstance(value, str):
            if value != "random":
                raise ValueError(f"{where}: if value is a str, it should be 'random', got {value!r}")
            self.value = None
        elif isinstance(value, numbers.Number) and not isinstance(value, bool):
            self.value = [float(value)]
        elif isinstance(value, (list, tuple)) and value:
            self.value = [float(v) for v in value]
        else:
            raise TypeError(f"{where}: value should be a number, a sequence of numbers or 'random', got {value!r}")
        self.scale, self.ratio, self.inplace = tuple(map(float, scale)), tuple(map(float, ratio)), inplace

    def check_shape(self, shape):
        if self.value is not None and len(self.value) not in (1, shape[-3]):
            raise ValueError(f"RandomErasing: value has {len(self.value)} entries for images with "
                             f"{shape[-3]} channels; give one value or one per channel")

    def make_params(self, key, shape):
        c, h, w = shape
        k_apply, k_area, k_ratio, k_i, k_j, k_noise = jax.random.split(key, 6)
        area = h * w
        erase_area = area * jax.random.uniform(k_area, (10,), minval=self.scale[0], maxval=self.scale[1])
        aspect = jnp.exp(jax.random.uniform(k_ratio, (10,), minval=math.log(self.ratio[0]),
                                            maxval=math.log(self.ratio[1])))
        eh = jnp.round(jnp.sqrt(erase_area * aspect)).astype(jnp.int32)
        ew = jnp.round(jnp.sqrt(erase_area / aspect)).astype(jnp.int32)
        valid = (eh < h) & (ew < w)
        idx = jnp.argmax(valid)
        eh, ew = eh[idx], ew[idx]
        params = {"apply": (jax.random.uniform(k_apply) < self.p) & jnp.any(valid),
                  "i": jax.random.randint(k_i, (), 0, h - eh + 1), "j": jax.random.randint(k_j, (), 0, w - ew + 1),
                  "h": eh, "w": ew}
        if self.value is None:
            params["noise"] = jax.random.normal(k_noise, (c, h, w), jnp.float32)
        return params

    def transform(self, inpt, params):
        if self.value is None:
            v = params["noise"]
        else:
            v = jnp.asarray(self.value, jnp.float32).reshape(-1, 1, 1)
        erased = F.erase(inpt, params["i"], params["j"], params["h"], params["w"], v)
        return jnp.where(params["apply"], erased, inpt)


class _MixBase(Transform):
    """MixUp/CutMix: ``t(key, images, labels) -> (images, labels)`` on a batch ``(N, C, H, W)``.

    Labels are indices ``(N,)`` (one-hot encoded with ``num_classes``) or
    probabilities ``(N, num_classes)``; the result is float32 ``(N, num_classes)``,
    ``lam · label + (1 − lam) · label_of_previous_image`` (batch pairs are consecutive:
    image ``i`` mixes with image ``i − 1``, wrapping, as torchvision; shuffle the
    batch). One ``lam`` per batch, drawn from ``Beta(alpha, alpha)``.
    Images must be floating point (torchvision mixes uint8 images in place with
    truncation at each step; convert first with :class:`ToDtype`).
    """

    random = True

    def __init__(self, *, alpha: float = 1.0, num_classes: int | None = None) -> None:
        where = type(self).__name__
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha > 0:
            raise ValueError(f"{where}: alpha must be a positive number, got {alpha!r}")
        self.alpha = float(alpha)
        self.num_classes = None if num_classes is None else _checks.positive_int(num_classes, "num_classes", where)

    def _check(self, images, labels):
        where = type(self).__name__
        x = image(images, where, "images")
        if x.ndim != 4:
            raise ValueError(f"{where}: expected a batch of images (N, C, H, W), got shape {tuple(x.shape)}")
        if not jnp.issubdtype(x.dtype, jnp.floating):
            raise TypeError(f"{where}: images must be floating point (use ToDtype(jnp.float32, scale=True) "
                            f"first), got dtype {x.dtype}")
        y = jnp.asarray(labels)
        if y.ndim not in (1, 2):
            raise ValueError(f"{where}: labels should be indices (N,) or probabilities (N, num_classes), "
                             f"got shape {tuple(y.shape)}")
        if y.shape[0] != x.shape[0]:
            raise ValueError(f"{where}: the batch size of the images ({x.shape[0]}) does not match the labels' "
                             f"({y.shape[0]})")
        if y.ndim == 1:
            if self.num_classes is None:
                raise ValueError(f"{where}: num_classes must be passed if the labels are index-based (1D)")
            if not jnp.issubdtype(y.dtype, jnp.integer):
                raise TypeError(f"{where}: index labels must be integers, got dtype {y.dtype}")
            y = jax.nn.one_hot(y, self.num_classes, dtype=jnp.float32)
        elif self.num_classes is not None and y.shape[1] != self.num_classes:
            raise ValueError(f"{where}: 2-D labels have {y.shape[1]} columns, num_classes is {self.num_classes}")
        return x, y.astype(jnp.float32) if not jnp.issubdtype(y.dtype, jnp.floating) else y

    @staticmethod
    def mix_labels(labels, lam):
        return jnp.roll(labels, 1, axis=0) * (1.0 - lam) + labels * lam

    def __call__(self, key, images, labels=None, *rest):
        where = type(self).__name__
        if labels is None:
            raise ValueError(f"{where}: needs the labels: t(key, images, labels)")
        if key is None:
            raise ValueError(f"{where}: a random transform needs a PRNG key, got None")
        x, y = self._check(images, labels)
        params = self.make_params(as_key(key, where), x.shape[-3:])
        return (*self.apply(x, y, params), *rest)


class MixUp(_MixBase):
    """MixUp (Zhang et al. 2018): ``lam · x + (1 − lam) · x_previous``, labels alike. See :class:`_MixBase`."""

    def make_params(self, key, shape):
        """``{'lam'}`` drawn from ``Beta(alpha, alpha)``."""
        return {"lam": jax.random.beta(key, self.alpha, self.alpha)}

    def apply(self, images, labels, params):
        lam = params["lam"].astype(images.dtype)
        return jnp.roll(images, 1, axis=0) * (1.0 - lam) + images * lam, self.mix_labels(labels, lam)


class CutMix(_MixBase):
    """CutMix (Yun et al. 2019): a box of each image replaced by the previous image's. See :class:`_MixBase`.

    ``make_params`` draws ``lam ~ Beta(alpha, alpha)`` and a centre uniformly,
    and returns the box ``(x1, y1, x2, y2)`` of side ``√(1 − lam)`` × the image's,
    clipped to the image, and ``lam_adjusted``: one minus the box's area fraction,
    with which the labels are mixed (as torchvision).
    """

    def make_params(self, key, shape):
        h, w = shape[-2:]
        k_lam, k_x, k_y = jax.random.split(key, 3)
        lam = jax.random.beta(k_lam, self.alpha, self.alpha)
        rx, ry = jax.random.randint(k_x, (), 0, w), jax.random.randint(k_y, (), 0, h)
        r = 0.5 * jnp.sqrt(1.0 - lam)
        rw, rh = (r * w).astype(jnp.int32), (r * h).astype(jnp.int32)
        x1, y1 = jnp.maximum(rx - rw, 0), jnp.maximum(ry - rh, 0)
        x2, y2 = jnp.minimum(rx + rw, w), jnp.minimum(ry + rh, h)
        lam_adjusted = 1.0 - ((x2 - x1) * (y2 - y1)).astype(jnp.float32) / (w * h)
        return {"box": jnp.stack([x1, y1, x2, y2]), "lam_adjusted": lam_adjusted}

    def apply(self, images, labels, params):
        x1, y1, x2, y2 = params["box"]
        h, w = images.shape[-2:]
        rows, cols = jnp.arange(h), jnp.arange(w)
        inside = ((rows >= y1) & (rows < y2))[:, None] & ((cols >= x1) & (cols < x2))[None, :]
        mixed = jnp.where(inside, jnp.roll(images, 1, axis=0), images)
        return mixed, self.mix_labels(labels, params["lam_adjusted"].astype(labels.dtype))
