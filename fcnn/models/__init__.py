"""Ready-made models, written as ``nn.Module`` subclasses; ``get(name, **kwargs)`` builds one by name.

torchvision's classification models, under its builder names, with its
state_dict keys and shapes (so its checkpoints load with :func:`load_torchvision`):

=====================================================  =====================
``alexnet``                                            :mod:`~fcnn.models.alexnet`
``vgg11``, ``vgg13``, ``vgg16``, ``vgg19`` (+ ``_bn``)   :mod:`~fcnn.models.vgg`
``resnet18/34/50/101/152``, ``resnext50_32x4d``,       :mod:`~fcnn.models.resnet`
``resnext101_32x8d``, ``resnext101_64x4d``,
``wide_resnet50_2``, ``wide_resnet101_2``
``densenet121/161/169/201``                            :mod:`~fcnn.models.densenet`
``squeezenet1_0``, ``squeezenet1_1``                   :mod:`~fcnn.models.squeezenet`
``googlenet``                                          :mod:`~fcnn.models.googlenet`
``inception_v3``                                       :mod:`~fcnn.models.inception`
``mnasnet0_5``, ``mnasnet0_75``, ``mnasnet1_0``,       :mod:`~fcnn.models.mnasnet`
``mnasnet1_3``
``mobilenet_v2``, ``mobilenet_v3_small/large``         :mod:`~fcnn.models.mobilenet`
``shufflenet_v2_x0_5/x1_0/x1_5/x2_0``                  :mod:`~fcnn.models.shufflenet`
``efficientnet_b0`` … ``efficientnet_b7``,             :mod:`~fcnn.models.efficientnet`
``efficientnet_v2_s/m/l``
``regnet_x_400mf`` … ``regnet_x_32gf``,                :mod:`~fcnn.models.regnet`
``regnet_y_400mf`` … ``regnet_y_128gf``
``convnext_tiny/small/base/large``                     :mod:`~fcnn.models.convnext`
=====================================================  =====================

and small models of fcnn's own:

=============  ======================================================
``lenet5``     :class:`LeNet5` (LeCun 1998; 8×8, 28×28, 32×32 inputs)
``vgg``        :class:`VGG`, small VGG-style net with BatchNorm/Dropout
``unet``       :class:`UNet`, a small U-Net for segmentation
=============  ======================================================

Every builder takes ``num_classes`` and ``in_channels`` besides the
arguments of torchvision's class (``dropout``, ``aux_logits``, …).
"""

from __future__ import annotations

import functools
from typing import Callable

from fcnn.models import (
    alexnet, convnext, densenet, efficientnet, googlenet, inception, mnasnet, mobilenet, regnet, resnet, shufflenet,
    squeezenet, vgg,
)
from fcnn.models.alexnet import AlexNet
from fcnn.models.densenet import DenseNet
from fcnn.models.googlenet import GoogLeNet, GoogLeNetOutputs
from fcnn.models.inception import Inception3, InceptionOutputs
from fcnn.models.lenet import LeNet5
from fcnn.models.mnasnet import MNASNet
from fcnn.models.resnet import BasicBlock, Bottleneck, ResNet, resnet18, resnet34, resnet50
from fcnn.models.squeezenet import SqueezeNet
from fcnn.models.checkpoints import load_torchvision
from fcnn.models.convnext import ConvNeXt
from fcnn.models.efficientnet import EfficientNet
from fcnn.models.mobilenet import MobileNetV2, MobileNetV3
from fcnn.models.regnet import RegNet
from fcnn.models.shufflenet import ShuffleNetV2
from fcnn.models.unet import UNet
from fcnn.models.vgg import VGG, ImageNetVGG

# The modules of torchvision's families: each has ARCHITECTURES (builder name -> configuration)
# and build(name, **kwargs).
FAMILIES = (alexnet, vgg, resnet, densenet, squeezenet, googlenet, inception, mobilenet, mnasnet, shufflenet,
            efficientnet, regnet, convnext)

_REGISTRY: dict[str, Callable] = {
    "lenet5": LeNet5,
    "vgg": VGG,
    "unet": UNet,
}
for _family in FAMILIES:
    for _name in _family.ARCHITECTURES:
        _REGISTRY[_name] = functools.partial(_family.build, _name)
del _family, _name


def torchvision_names() -> list[str]:
    """The torchvision builder names fcnn has, sorted."""
    return sorted(name for family in FAMILIES for name in family.ARCHITECTURES)


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
