"""ResNet-18/34/50 (He et al., 2016) with torchvision's exact structure and state_dict names.

``resnet18().init(key)`` gives params/state whose joined keys and shapes are
those of ``torchvision.models.resnet18().state_dict()`` (``conv1.weight``,
``bn1.running_mean``, ``layer1.0.conv1.weight``, ``layer2.0.downsample.0.weight``,
``fc.bias``, …), so torchvision checkpoints load directly.
"""

from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp

from fcnn import _checks, nn, xla
from fcnn.models._util import batched, flatten

# torchvision's conv init: kaiming_normal_(mode="fan_out", nonlinearity="relu").
_CONV_INIT = nn.init.kaiming_normal(mode="fan_out", nonlinearity="relu")


def conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False, weight_init=_CONV_INIT)


def conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=False, weight_init=_CONV_INIT)


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with a residual connection (ResNet-18/34)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Layer | None = None):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        if downsample is not None:
            self.downsample = downsample

    def forward(self, ctx, x):
        out = ctx.relu(ctx.bn1(ctx.conv1(x)))
        out = ctx.bn2(ctx.conv2(out))
        identity = ctx.downsample(x) if "downsample" in self.children() else x
        # the sum is written channels-last, like the convolutions around it (fcnn.xla.pointwise says why)
        return ctx.relu(xla.pointwise(jnp.add, out, identity))


class Bottleneck(nn.Module):
    """1×1 → 3×3 (strided, torchvision's "v1.5") → 1×1 ×4 with a residual connection (ResNet-50)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Layer | None = None):
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU()
        if downsample is not None:
            self.downsample = downsample

    def forward(self, ctx, x):
        out = ctx.relu(ctx.bn1(ctx.conv1(x)))
        out = ctx.relu(ctx.bn2(ctx.conv2(out)))
        out = ctx.bn3(ctx.conv3(out))
        identity = ctx.downsample(x) if "downsample" in self.children() else x
        return ctx.relu(xla.pointwise(jnp.add, out, identity))


class ResNet(nn.Module):
    """torchvision's ``ResNet``: stem, four stages of residual blocks, global pool, ``fc``.

    Args:
        block: :class:`BasicBlock` or :class:`Bottleneck`.
        layers: blocks per stage, e.g. ``(2, 2, 2, 2)`` for ResNet-18.
        num_classes: outputs of ``fc``.
        in_channels: image channels (torchvision: 3).
        small_input: for 32×32-and-smaller images (CIFAR, digits): ``conv1`` is
            3×3 stride 1 and ``maxpool`` is an identity. Same keys; only
            ``conv1.weight``'s shape differs from torchvision's.

    Shape: ``(N, in_channels, H, W)`` → ``(N, num_classes)``; the stem divides
    H, W by 4 and stages 2–4 by 2 each: output stride 32 (8 with ``small_input``).
    """

    def __init__(self, block: type, layers: Sequence[int], num_classes: int = 1000, in_channels: int = 3,
                 small_input: bool = False):
        super().__init__()
        where = "ResNet"
        if block not in (BasicBlock, Bottleneck):
            raise TypeError(f"{where}: block must be BasicBlock or Bottleneck, got {block!r}")
        layers = tuple(layers)
        if len(layers) != 4:
            raise ValueError(f"{where}: layers must give the number of blocks of 4 stages, got {layers!r}")
        _checks.positive(tuple(_checks.positive_int(n, "layers", where) for n in layers), "layers", where)
        _checks.positive_int(num_classes, "num_classes", where)
        _checks.positive_int(in_channels, "in_channels", where)
        self.inplanes = 64
        if small_input:
            self.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False, weight_init=_CONV_INIT)
        else:
            self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False, weight_init=_CONV_INIT)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.Identity() if small_input else nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)

    def _make_layer(self, block, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(conv1x1(self.inplanes, planes * block.expansion, stride),
                                       nn.BatchNorm2d(planes * block.expansion))
        out = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        out += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*out)

    def forward(self, ctx, x):
        x, unbatched = batched(x, "ResNet")
        x = ctx.maxpool(ctx.relu(ctx.bn1(ctx.conv1(x))))
        x = ctx.layer4(ctx.layer3(ctx.layer2(ctx.layer1(x))))
        x = ctx.fc(flatten(ctx.avgpool(x)))
        return x[0] if unbatched else x


def resnet18(num_classes: int = 1000, **kwargs) -> ResNet:
    """ResNet-18: BasicBlock × (2, 2, 2, 2); 11.7 M parameters at 1000 classes."""
    return ResNet(BasicBlock, (2, 2, 2, 2), num_classes, **kwargs)


def resnet34(num_classes: int = 1000, **kwargs) -> ResNet:
    """ResNet-34: BasicBlock × (3, 4, 6, 3)."""
    return ResNet(BasicBlock, (3, 4, 6, 3), num_classes, **kwargs)


def resnet50(num_classes: int = 1000, **kwargs) -> ResNet:
    """ResNet-50: Bottleneck × (3, 4, 6, 3)."""
    return ResNet(Bottleneck, (3, 4, 6, 3), num_classes, **kwargs)
