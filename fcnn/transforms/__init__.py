"""Image transforms with ``torchvision.transforms.v2``'s names, arguments and numbers, as pure JAX functions.

:mod:`fcnn.transforms.functional` holds the ops (``resize``, ``crop``,
``adjust_hue``, …) with torchvision's signatures; the classes here bind their
arguments and, for the random ones, draw their parameters from an explicit
key::

    import jax
    from fcnn import transforms as T

    augment = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(),
                         T.ToDtype(jax.numpy.float32, scale=True), T.Normalize(mean, std)])
    x = augment(jax.random.key(0), uint8_batch)        # (N, 3, 32, 32) float32, each image its own crop/flip

Every transform works on one image ``(C, H, W)`` or a batch ``(..., C, H, W)``
(each image its own parameters), under ``jit`` and on the device, so it can
run inside the compiled train step (``fcnn.train.fit(..., augment=...)``).
``make_params(key, shape)`` and ``transform(image, params)`` are separate, as in
torchvision, so given parameters can be checked against torchvision's ops.
"""

from fcnn.transforms import functional
from fcnn.transforms._augment import CutMix, MixUp, RandomErasing
from fcnn.transforms._auto_augment import RandAugment, TrivialAugmentWide
from fcnn.transforms._base import Compose, Transform
from fcnn.transforms._color import ColorJitter, Grayscale, Normalize, ToDtype
from fcnn.transforms._geometry import (CenterCrop, Pad, RandomCrop, RandomHorizontalFlip, RandomResizedCrop,
                                       RandomVerticalFlip, Resize)
from fcnn.transforms.functional import InterpolationMode

__all__ = ["CenterCrop", "ColorJitter", "Compose", "CutMix", "Grayscale", "InterpolationMode", "MixUp", "Normalize",
           "Pad", "RandAugment", "RandomCrop", "RandomErasing", "RandomHorizontalFlip", "RandomResizedCrop",
           "RandomVerticalFlip", "Resize", "ToDtype", "Transform", "TrivialAugmentWide", "functional"]
