"""Ready-made models, written as ``nn.Module`` subclasses; ``get(name, **kwargs)`` builds one by name.

=============  ======================================================
``lenet5``     :class:`LeNet5` (LeCun 1998; 8×8, 28×28, 32×32 inputs)
``vgg``        :class:`VGG`, small VGG-style net with BatchNorm/Dropout
``resnet18``   torchvision's ResNet-18 structure and state_dict names
``resnet34``   … ResNet-34
``resnet50``   … ResNet-50 (Bottleneck blocks)
``unet``       :class:`UNet`, a small U-Net for segmentation
=============  ======================================================
"""

from __future__ import annotations

from typing import Callable

from fcnn.models.lenet import LeNet5
from fcnn.models.resnet import BasicBlock, Bottleneck, ResNet, resnet18, resnet34, resnet50
from fcnn.models.unet import UNet
from fcnn.models.vgg import VGG

_REGISTRY: dict[str, Callable] = {
    "lenet5": LeNet5,
    "vgg": VGG,
    "resnet18": resnet18,
    "resnet34": resnet34,
    "resnet50": resnet50,
    "unet": UNet,
}


def register(name: str, factory: Callable) -> None:
    """Make ``get(name, **kwargs)`` call ``factory(**kwargs)``."""
    if name in _REGISTRY:
        raise ValueError(f"fcnn.models.register: model {name!r} is already registered")
    _REGISTRY[name] = factory


def names() -> list[str]:
    """The registered model names, sorted."""
    return sorted(_REGISTRY)


def get(name: str, **kwargs):
    """Build the model registered as ``name`` with ``kwargs`` (e.g. ``num_classes=10``)."""
    try:
        factory = _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"fcnn.models.get: unknown model {name!r}; known models: {', '.join(names())}") from None
    return factory(**kwargs)
