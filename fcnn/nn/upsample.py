"""Resampling layers: ``Upsample``, ``UpsamplingNearest2d``, ``UpsamplingBilinear2d``,
``PixelShuffle``, ``PixelUnshuffle`` (torch.nn names, arguments and attributes)."""

from __future__ import annotations

import math

import numpy as np

from fcnn import _checks
# (``fcnn.functional.upsample`` is the function, as in torch; import from the module by name)
from fcnn.functional.upsample import MODES, interpolate, pixel_shuffle, pixel_unshuffle
from fcnn.nn.module import Layer


class Upsample(Layer):
    """``torch.nn.Upsample``: :func:`fcnn.functional.interpolate` with fixed arguments.

    Args: ``size=None, scale_factor=None, mode='nearest', align_corners=None,
    recompute_scale_factor=None`` as torch. Exactly one of ``size`` and
    ``scale_factor`` must be given. Attributes keep torch's names and
    normalisation (``scale_factor`` as float or tuple of floats).

    Shape: ``(N, C, *in)`` → ``(N, C, *out)`` with ``out = size`` or
    ``out = floor(in · scale_factor)``. As in torch the batch dimension is
    required (a 3-D input is a batch of 1-D signals, so unbatched images are
    not recognised): to ``jax.vmap`` over examples keep a batch axis of 1.

    Example::

        up = nn.Upsample(scale_factor=2, mode='bilinear')
        y, _ = up.apply({}, {}, jnp.ones((8, 16, 14, 14)))   # (8, 16, 28, 28)
    """

    def __init__(self, size=None, scale_factor=None, mode="nearest", align_corners=None,
                 recompute_scale_factor=None):
        where = type(self).__name__
        self.name = where
        if size is None and scale_factor is None:
            raise ValueError(f"{where}: either size or scale_factor should be defined")
        if size is not None and scale_factor is not None:
            raise ValueError(f"{where}: only one of size or scale_factor should be defined")
        self.size = tuple(size) if isinstance(size, list) else size
        if size is not None:
            for v in size if isinstance(size, tuple) else (size,):
                _checks.positive_int(v, "size", where)
        factors = scale_factor if isinstance(scale_factor, (tuple, list)) else (scale_factor,)
        if scale_factor is not None:
            # refused here, not at the first apply (torch takes a 0 for "no scale_factor" and fails later)
            for f in factors:
                if isinstance(f, (bool, np.bool_)) or not isinstance(f, (int, float, np.integer, np.floating)):
                    raise TypeError(f"{where}: scale_factor must be a number or a tuple of numbers, got {scale_factor!r}")
                if not (math.isfinite(f) and f > 0):
                    raise ValueError(f"{where}: scale_factor must be positive and finite, got {scale_factor!r}")
        if isinstance(scale_factor, (tuple, list)):
            self.scale_factor = tuple(float(f) for f in scale_factor)
        else:
            self.scale_factor = None if scale_factor is None else float(scale_factor)
        self.mode = _checks.one_of(mode, MODES, "mode", where)
        if mode in ("nearest", "area", "nearest-exact") and align_corners is not None:
            raise ValueError(
                f"{where}: align_corners option can only be set with the "
                "interpolating modes: linear | bilinear | bicubic | trilinear"
            )
        self.align_corners = align_corners
        self.recompute_scale_factor = recompute_scale_factor

    def apply(self, params, state, x, *, train=False, rng=None):
        y = interpolate(x, self.size, self.scale_factor, self.mode, self.align_corners,
                           self.recompute_scale_factor)
        return y, state

    def extra_repr(self) -> str:
        if self.scale_factor is not None:
            info = f"scale_factor={self.scale_factor!r}"
        else:
            info = f"size={self.size!r}"
        return f"{info}, mode={self.mode!r}"


class UpsamplingNearest2d(Upsample):
    """``torch.nn.UpsamplingNearest2d``: ``Upsample(size, scale_factor, mode='nearest')`` on ``(N, C, H, W)``."""

    def __init__(self, size=None, scale_factor=None):
        super().__init__(size, scale_factor, mode="nearest")


class UpsamplingBilinear2d(Upsample):
    """``torch.nn.UpsamplingBilinear2d``: ``Upsample(size, scale_factor, mode='bilinear', align_corners=True)``."""

    def __init__(self, size=None, scale_factor=None):
        super().__init__(size, scale_factor, mode="bilinear", align_corners=True)


class PixelShuffle(Layer):
    """``torch.nn.PixelShuffle(upscale_factor)``: ``(*, C·r², H, W)`` → ``(*, C, H·r, W·r)``.

    Accepts any number of leading dimensions (unbatched ``(C·r², H, W)`` included).
    """

    def __init__(self, upscale_factor):
        self.upscale_factor = _checks.positive_int(upscale_factor, "upscale_factor", type(self).__name__)

    def apply(self, params, state, x, *, train=False, rng=None):
        return pixel_shuffle(x, self.upscale_factor), state

    def extra_repr(self) -> str:
        return f"upscale_factor={self.upscale_factor}"


class PixelUnshuffle(Layer):
    """``torch.nn.PixelUnshuffle(downscale_factor)``: ``(*, C, H·r, W·r)`` → ``(*, C·r², H, W)``."""

    def __init__(self, downscale_factor):
        self.downscale_factor = _checks.positive_int(downscale_factor, "downscale_factor", type(self).__name__)

    def apply(self, params, state, x, *, train=False, rng=None):
        return pixel_unshuffle(x, self.downscale_factor), state

    def extra_repr(self) -> str:
        return f"downscale_factor={self.downscale_factor}"
