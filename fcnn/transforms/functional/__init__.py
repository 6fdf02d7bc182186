"""Image ops with the names, argument order and keywords of ``torchvision.transforms.v2.functional``.

Inputs are jax (or numpy) arrays ``(..., C, H, W)``, uint8 or floating point;
outputs equal torchvision's on tensors (tests compare them over generated
configurations). Every op is a pure function that ``jit`` and ``vmap`` compose
with; the ops that take a box or a factor also accept traced scalars, which is
how the random transforms of :mod:`fcnn.transforms` run on the device.
"""

from fcnn.transforms.functional._affine import affine, rotate
from fcnn.transforms.functional._color import (adjust_brightness, adjust_contrast, adjust_hue, adjust_saturation,
                                               adjust_sharpness, autocontrast, equalize, grayscale_to_rgb, invert,
                                               posterize, rgb_to_grayscale, solarize, to_grayscale)
from fcnn.transforms.functional._geometry import (center_crop, crop, hflip, horizontal_flip, pad, resize,
                                                  resized_crop, vertical_flip, vflip)
from fcnn.transforms.functional._misc import erase, normalize, to_dtype
from fcnn.transforms.functional._utils import InterpolationMode

__all__ = ["InterpolationMode", "adjust_brightness", "adjust_contrast", "adjust_hue", "adjust_saturation",
           "adjust_sharpness", "affine", "autocontrast", "center_crop", "crop", "equalize", "erase",
           "grayscale_to_rgb", "hflip", "horizontal_flip", "invert", "normalize", "pad", "posterize", "resize",
           "resized_crop", "rgb_to_grayscale", "rotate", "solarize", "to_dtype", "to_grayscale", "vertical_flip",
           "vflip"]
