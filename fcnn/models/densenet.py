"""DenseNet (Huang et al., 2017) as torchvision's ``densenet121/161/169/201``, with its state_dict keys
(``features.denseblock1.denselayer1.norm1.weight``, ``features.transition1.conv.weight``, ``classifier.bias``)."""

from __future__ import annotations

import re
from collections import OrderedDict
from typing import Mapping, Sequence

from fcnn import _checks, backends, nn
from fcnn.backends.xla_cpu.buffers import gradient_buffer
from fcnn import functional as F
from fcnn.models._util import batched, flatten

# torchvision's DenseNet init: kaiming_normal_ with its defaults (fan_in, gain √2), Linear bias 0.
_CONV_INIT = nn.init.kaiming_normal()


class DenseLayer(nn.Module):
    """BN → ReLU → 1×1 conv (``bn_size · growth_rate``) → BN → ReLU → 3×3 conv (``growth_rate``) [→ dropout].

    Reads the concatenation of every feature map before it in its block.
    """

    def __init__(self, num_input_features: int, growth_rate: int, bn_size: int, drop_rate: float):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(num_input_features)
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(num_input_features, bn_size * growth_rate, 1, bias=False, weight_init=_CONV_INIT)
        self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
        self.relu2 = nn.ReLU()
        self.conv2 = nn.Conv2d(bn_size * growth_rate, growth_rate, 3, padding=1, bias=False, weight_init=_CONV_INIT)
        if drop_rate > 0:  # torchvision calls F.dropout; a child without params leaves the keys as they are
            self.dropout = nn.Dropout(drop_rate)

    def forward(self, ctx, features: list):
        out = ctx.conv1(ctx.relu1(ctx.norm1(F.cat(features, 1))))
        out = ctx.conv2(ctx.relu2(ctx.norm2(out)))
        return ctx.dropout(out) if "dropout" in self.children() else out


class DenseBlock(nn.Module):
    """``num_layers`` :class:`DenseLayer` s named ``denselayer1``…; returns every map concatenated.

    Where the backend's :attr:`fcnn.backends.Policy.dense_gradient_buffers`
    holds, each map passes through the identity
    :func:`~fcnn.backends.xla_cpu.buffers.gradient_buffer`, which changes only
    how XLA:CPU computes the sum of its gradients.
    """

    def __init__(self, num_layers: int, num_input_features: int, bn_size: int, growth_rate: int, drop_rate: float):
        super().__init__()
        for i in range(num_layers):
            self.add_module(f"denselayer{i + 1}",
                            DenseLayer(num_input_features + i * growth_rate, growth_rate, bn_size, drop_rate))

    def forward(self, ctx, x):
        p = backends.policy()
        buffered = gradient_buffer if p.xla_cpu and p.dense_gradient_buffers else _unchanged
        features = [buffered(x)]
        for name in self.children():
            features.append(buffered(ctx(name, features)))
        return F.cat(features, 1)


def _unchanged(x):
    return x


class Transition(nn.Sequential):
    """BN → ReLU → 1×1 conv → 2×2 average pool, halving the channels and the resolution.

    Where the backend's :attr:`fcnn.backends.Policy.transition_pool_first`
    holds, the pool runs before the convolution: both are linear and the
    convolution has no bias, so only the float rounding differs, and the
    convolution sees a quarter of the pixels.
    """

    def __init__(self, num_input_features: int, num_output_features: int):
        super().__init__(OrderedDict(
            norm=nn.BatchNorm2d(num_input_features), relu=nn.ReLU(),
            conv=nn.Conv2d(num_input_features, num_output_features, 1, bias=False, weight_init=_CONV_INIT),
            pool=nn.AvgPool2d(2, 2)))

    def forward(self, ctx, x):
        p = backends.policy()
        if not (p.xla_cpu and p.transition_pool_first):
            return super().forward(ctx, x)
        return ctx.conv(ctx.pool(ctx.relu(ctx.norm(x))))


class DenseNet(nn.Module):
    """torchvision's ``DenseNet``: a 7×7 stem, dense blocks joined by transitions, BN, global pool, ``classifier``.

    Args:
        growth_rate: channels each dense layer adds (``k`` in the paper).
        block_config: dense layers per block.
        num_init_features: channels of the stem convolution.
        bn_size: the bottleneck's width, in multiples of ``growth_rate``.
        drop_rate: dropout after each dense layer (training only).
        num_classes: outputs of ``classifier``.
        in_channels: image channels (torchvision: 3).

    Initialisation as torchvision's: convolutions ``kaiming_normal`` (fan_in,
    gain √2), BatchNorm 1/0, ``classifier`` weight torch's default, bias 0.
    Shape: ``(N, in_channels, H, W)`` → ``(N, num_classes)``; ``H, W ≥ 29``.
    """

    def __init__(self, growth_rate: int = 32, block_config: Sequence[int] = (6, 12, 24, 16),
                 num_init_features: int = 64, bn_size: int = 4, drop_rate: float = 0.0, num_classes: int = 1000,
                 in_channels: int = 3):
        super().__init__()
        where = "DenseNet"
        for value, name in ((growth_rate, "growth_rate"), (num_init_features, "num_init_features"),
                            (bn_size, "bn_size"), (num_classes, "num_classes"), (in_channels, "in_channels")):
            _checks.positive_int(value, name, where)
        block_config = tuple(_checks.positive_int(n, "block_config", where) for n in block_config)
        drop_rate = _checks.probability(drop_rate, "drop_rate", where)
        stages = OrderedDict(
            conv0=nn.Conv2d(in_channels, num_init_features, 7, stride=2, padding=3, bias=False, weight_init=_CONV_INIT),
            norm0=nn.BatchNorm2d(num_init_features), relu0=nn.ReLU(), pool0=nn.MaxPool2d(3, stride=2, padding=1))
        c = num_init_features
        for i, num_layers in enumerate(block_config):
            stages[f"denseblock{i + 1}"] = DenseBlock(num_layers, c, bn_size, growth_rate, drop_rate)
            c += num_layers * growth_rate
            if i != len(block_config) - 1:
                stages[f"transition{i + 1}"] = Transition(c, c // 2)
                c //= 2
        stages["norm5"] = nn.BatchNorm2d(c)
        self.features = nn.Sequential(stages)
        self.relu = nn.ReLU()
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.classifier = nn.Linear(c, num_classes, bias_init=nn.init.zeros)

    def forward(self, ctx, x):
        x, unbatched = batched(x, "DenseNet")
        x = ctx.avgpool(ctx.relu(ctx.features(x)))
        x = ctx.classifier(flatten(x))
        return x[0] if unbatched else x


# torchvision builder name -> (growth_rate, block_config, num_init_features)
ARCHITECTURES = {
    "densenet121": (32, (6, 12, 24, 16), 64),
    "densenet161": (48, (6, 12, 36, 24), 96),
    "densenet169": (32, (6, 12, 32, 32), 64),
    "densenet201": (32, (6, 12, 48, 32), 64),
}

# the layer whose outputs are the classes (the checkpoint loader reads num_classes from it)
CLASSIFIER = "classifier"


def build(name: str, **kwargs) -> DenseNet:
    """One of torchvision's DenseNet builders by name (:data:`ARCHITECTURES`); ``kwargs`` as :class:`DenseNet`."""
    _checks.one_of(name, list(ARCHITECTURES), "name", "densenet.build")
    growth_rate, block_config, num_init_features = ARCHITECTURES[name]
    return DenseNet(growth_rate, block_config, num_init_features, **kwargs)


# torchvision's published DenseNet files predate its module names: "denselayer1.norm.1.weight"
# there is "denselayer1.norm1.weight" here (torchvision renames them the same way when loading; the
# counters, absent from those files, are renamed too should a file in that naming hold them).
_LEGACY_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var|num_batches_tracked))$")


def rename_legacy_keys(state_dict: Mapping) -> "OrderedDict":
    """A state_dict with the published checkpoints' old dense-layer names (``norm.1``) renamed (``norm1``)."""
    out = OrderedDict()
    for key, value in state_dict.items():
        m = _LEGACY_KEY.match(key)
        out[m.group(1) + m.group(2) if m else key] = value
    return out
