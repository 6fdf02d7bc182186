"""ResNet (He et al., 2016), ResNeXt (Xie et al., 2017) and Wide ResNet (Zagoruyko & Komodakis, 2016)
with torchvision's exact structure and state_dict names.

``build("resnet50").init(key)`` gives params/state whose joined keys and shapes
are those of ``torchvision.models.resnet50().state_dict()`` (``conv1.weight``,
``bn1.running_mean``, ``layer1.0.conv1.weight``, ``layer2.0.downsample.0.weight``,
``fc.bias``, …), so torchvision checkpoints load directly. The nine torchvision
builders differ only in a row of :data:`ARCHITECTURES`.
"""

from __future__ import annotations

import functools
from typing import Sequence

import jax.numpy as jnp

from fcnn import _checks, nn
from fcnn import functional as F
from fcnn.models._util import batched, flatten

# torchvision's conv init: kaiming_normal_(mode="fan_out", nonlinearity="relu").
_CONV_INIT = nn.init.kaiming_normal(mode="fan_out", nonlinearity="relu")


def conv3x3(cin: int, cout: int, stride: int = 1, groups: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, groups=groups, bias=False,
                     weight_init=_CONV_INIT)


def conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=False, weight_init=_CONV_INIT)


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with a residual connection (ResNet-18/34)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Layer | None = None,
                 groups: int = 1, base_width: int = 64, dilation: int = 1):
        super().__init__()
        if groups != 1 or base_width != 64:
            raise ValueError(f"BasicBlock: only groups=1 and base_width=64 are supported, got groups={groups}, "
                             f"base_width={base_width}")
        if dilation > 1:
            raise ValueError(f"BasicBlock: dilation > 1 is not supported, got {dilation}")
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
        return ctx.relu(F.add(out, identity))


class Bottleneck(nn.Module):
    """1×1 → 3×3 (strided, grouped; torchvision's "v1.5") → 1×1 ×4 with a residual connection.

    The 3×3 convolution has ``width = planes · base_width / 64 · groups``
    channels: 64-wide per group for ResNet, ``groups × base_width`` for
    ResNeXt, twice ResNet's for Wide ResNet-…-2 (``base_width=128``).
    """

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Layer | None = None,
                 groups: int = 1, base_width: int = 64, dilation: int = 1):
        super().__init__()
        width = int(planes * (base_width / 64.0)) * groups
        self.conv1 = conv1x1(inplanes, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride, groups, dilation)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU()
        if downsample is not None:
            self.downsample = downsample

    def forward(self, ctx, x):
        out = ctx.relu(ctx.bn1(ctx.conv1(x)))
        out = ctx.relu(ctx.bn2(ctx.conv2(out)))
        out = ctx.bn3(ctx.conv3(out))
        identity = ctx.downsample(x) if "downsample" in self.children() else x
        return ctx.relu(F.add(out, identity))


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
        zero_init_residual: start each block's last BatchNorm weight at zero,
            so every block begins as the identity (torchvision's option).
        groups, width_per_group: the 3×3 convolutions' groups and channels per
            group in :class:`Bottleneck` (ResNeXt, Wide ResNet).
        replace_stride_with_dilation: three bools, for stages 2–4: keep the
            spatial size and dilate the convolutions instead of striding
            (torchvision's option for dense prediction; Bottleneck only).

    Initialisation as torchvision's: convolutions ``kaiming_normal(fan_out, relu)``,
    BatchNorm weight 1 and bias 0, ``fc`` torch's default.

    Shape: ``(N, in_channels, H, W)`` → ``(N, num_classes)``; the stem divides
    H, W by 4 and stages 2–4 by 2 each: output stride 32 (8 with ``small_input``).
    """

    def __init__(self, block: type, layers: Sequence[int], num_classes: int = 1000, in_channels: int = 3,
                 small_input: bool = False, zero_init_residual: bool = False, groups: int = 1,
                 width_per_group: int = 64, replace_stride_with_dilation: Sequence[bool] = (False, False, False)):
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
        self.groups = _checks.positive_int(groups, "groups", where)
        self.base_width = _checks.positive_int(width_per_group, "width_per_group", where)
        dilate = tuple(replace_stride_with_dilation)
        if len(dilate) != 3 or not all(isinstance(d, bool) for d in dilate):
            raise ValueError(f"{where}: replace_stride_with_dilation must be 3 bools, got {replace_stride_with_dilation!r}")
        self.zero_init_residual = _checks.boolean(zero_init_residual, "zero_init_residual", where)
        self.inplanes = 64
        self.dilation = 1
        if small_input:
            self.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False, weight_init=_CONV_INIT)
        else:
            self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False, weight_init=_CONV_INIT)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.Identity() if small_input else nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2, dilate=dilate[0])
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2, dilate=dilate[1])
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2, dilate=dilate[2])
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        self._last_bn = "bn3" if block is Bottleneck else "bn2"

    def _make_layer(self, block, planes: int, blocks: int, stride: int = 1, dilate: bool = False) -> nn.Sequential:
        downsample = None
        previous_dilation = self.dilation
        if dilate:
            self.dilation *= stride
            stride = 1
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(conv1x1(self.inplanes, planes * block.expansion, stride),
                                       nn.BatchNorm2d(planes * block.expansion))
        out = [block(self.inplanes, planes, stride, downsample, self.groups, self.base_width, previous_dilation)]
        self.inplanes = planes * block.expansion
        out += [block(self.inplanes, planes, groups=self.groups, base_width=self.base_width, dilation=self.dilation)
                for _ in range(1, blocks)]
        return nn.Sequential(*out)

    def init(self, key):
        params, state = super().init(key)
        if self.zero_init_residual:
            for stage in ("layer1", "layer2", "layer3", "layer4"):
                for block in params[stage].values():
                    block[self._last_bn]["weight"] = jnp.zeros_like(block[self._last_bn]["weight"])
        return params, state

    def forward(self, ctx, x):
        x, unbatched = batched(x, "ResNet")
        x = ctx.maxpool(ctx.relu(ctx.bn1(ctx.conv1(x))))
        x = ctx.layer4(ctx.layer3(ctx.layer2(ctx.layer1(x))))
        x = ctx.fc(flatten(ctx.avgpool(x)))
        return x[0] if unbatched else x


# torchvision builder name -> (block, blocks per stage, groups, width_per_group)
ARCHITECTURES = {
    "resnet18": (BasicBlock, (2, 2, 2, 2), 1, 64),
    "resnet34": (BasicBlock, (3, 4, 6, 3), 1, 64),
    "resnet50": (Bottleneck, (3, 4, 6, 3), 1, 64),
    "resnet101": (Bottleneck, (3, 4, 23, 3), 1, 64),
    "resnet152": (Bottleneck, (3, 8, 36, 3), 1, 64),
    "resnext50_32x4d": (Bottleneck, (3, 4, 6, 3), 32, 4),
    "resnext101_32x8d": (Bottleneck, (3, 4, 23, 3), 32, 8),
    "resnext101_64x4d": (Bottleneck, (3, 4, 23, 3), 64, 4),
    "wide_resnet50_2": (Bottleneck, (3, 4, 6, 3), 1, 128),
    "wide_resnet101_2": (Bottleneck, (3, 4, 23, 3), 1, 128),
}

# the layer whose outputs are the classes (the checkpoint loader reads num_classes from it)
CLASSIFIER = "fc"


def build(name: str, num_classes: int = 1000, **kwargs) -> ResNet:
    """One of torchvision's ResNet builders by name (:data:`ARCHITECTURES`); ``kwargs`` as :class:`ResNet`."""
    _checks.one_of(name, list(ARCHITECTURES), "name", "resnet.build")
    block, layers, groups, width = ARCHITECTURES[name]
    return ResNet(block, layers, num_classes, groups=groups, width_per_group=width, **kwargs)


resnet18 = functools.partial(build, "resnet18")
resnet34 = functools.partial(build, "resnet34")
resnet50 = functools.partial(build, "resnet50")
