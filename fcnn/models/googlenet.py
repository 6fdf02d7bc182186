"""GoogLeNet (Inception-v1, Szegedy et al., 2015) as torchvision's ``googlenet``, with its state_dict keys
(``conv1.conv.weight``, ``inception3a.branch2.1.bn.running_mean``, ``aux1.fc2.bias``, ``fc.weight``)."""

from __future__ import annotations

from typing import NamedTuple

import jax

from fcnn import _checks, nn
from fcnn import functional as F
from fcnn.models._util import flatten
from fcnn.models.inception import BasicConv2d, check_head_arguments, prepared_input

# torchvision's GoogLeNet init: every conv and Linear weight N(0, 0.01²) truncated to [-2, 2].
_INIT = nn.init.trunc_normal(0.0, 0.01, -2.0, 2.0)


def _conv(cin: int, cout: int, kernel_size: int, **kwargs) -> BasicConv2d:
    return BasicConv2d(cin, cout, kernel_size=kernel_size, weight_init=_INIT, **kwargs)


class GoogLeNetOutputs(NamedTuple):
    """What :class:`GoogLeNet` returns when training with ``aux_logits=True`` (torchvision's namedtuple)."""

    logits: jax.Array
    aux_logits2: jax.Array
    aux_logits1: jax.Array


class Inception(nn.Module):
    """Four branches concatenated: 1×1; 1×1 → 3×3; 1×1 → 3×3; 3×3/1 max-pool → 1×1.

    The third branch is a 3×3 convolution where the paper has 5×5, as in
    torchvision (whose published weights were trained that way).
    """

    def __init__(self, in_channels: int, ch1x1: int, ch3x3red: int, ch3x3: int, ch5x5red: int, ch5x5: int,
                 pool_proj: int):
        super().__init__()
        self.branch1 = _conv(in_channels, ch1x1, 1)
        self.branch2 = nn.Sequential(_conv(in_channels, ch3x3red, 1), _conv(ch3x3red, ch3x3, 3, padding=1))
        self.branch3 = nn.Sequential(_conv(in_channels, ch5x5red, 1), _conv(ch5x5red, ch5x5, 3, padding=1))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True),
                                     _conv(in_channels, pool_proj, 1))

    def forward(self, ctx, x):
        return F.cat([ctx.branch1(x), ctx.branch2(x), ctx.branch3(x), ctx.branch4(x)], 1)


class InceptionAux(nn.Module):
    """An auxiliary classifier: 4×4 adaptive average pool → 1×1 conv (128) → ``fc1`` (1024) → ReLU → dropout → ``fc2``."""

    def __init__(self, in_channels: int, num_classes: int, dropout: float):
        super().__init__()
        self.conv = _conv(in_channels, 128, 1)
        self.fc1 = nn.Linear(2048, 1024, weight_init=_INIT)
        self.fc2 = nn.Linear(1024, num_classes, weight_init=_INIT)
        self.relu = nn.ReLU()
        self.dropout = nn.Dropout(dropout)

    def forward(self, ctx, x):
        x = ctx.conv(F.adaptive_avg_pool2d(x, (4, 4)))
        return ctx.fc2(ctx.dropout(ctx.relu(ctx.fc1(flatten(x)))))


# name -> (in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj) of the paper's Table 1
_INCEPTIONS = {
    "inception3a": (192, 64, 96, 128, 16, 32, 32),
    "inception3b": (256, 128, 128, 192, 32, 96, 64),
    "inception4a": (480, 192, 96, 208, 16, 48, 64),
    "inception4b": (512, 160, 112, 224, 24, 64, 64),
    "inception4c": (512, 128, 128, 256, 24, 64, 64),
    "inception4d": (512, 112, 144, 288, 32, 64, 64),
    "inception4e": (528, 256, 160, 320, 32, 128, 128),
    "inception5a": (832, 256, 160, 320, 32, 128, 128),
    "inception5b": (832, 384, 192, 384, 48, 128, 128),
}


class GoogLeNet(nn.Module):
    """torchvision's ``GoogLeNet``.

    Args:
        num_classes: outputs of ``fc`` (and of the auxiliary classifiers).
        aux_logits: build the auxiliary classifiers ``aux1`` (after
            ``inception4a``) and ``aux2`` (after ``inception4d``); when training,
            the model then returns :class:`GoogLeNetOutputs`
            ``(logits, aux_logits2, aux_logits1)`` (torchvision's default, True).
            In eval mode it returns the logits only.
        transform_input: re-normalise ImageNet-normalised input to ``[-1, 1]``
            first, as torchvision's published weights expect.
        dropout: probability of the Dropout before ``fc``.
        dropout_aux: probability of the auxiliary classifiers' Dropout.
        in_channels: image channels (torchvision: 3; ``transform_input`` needs 3).

    Initialisation as torchvision's ``init_weights=True``. Shape:
    ``(N, in_channels, H, W)`` → ``(N, num_classes)``; ``H, W ≥ 15``.
    """

    def __init__(self, num_classes: int = 1000, aux_logits: bool = True, transform_input: bool = False,
                 dropout: float = 0.2, dropout_aux: float = 0.7, in_channels: int = 3):
        super().__init__()
        check_head_arguments(num_classes, aux_logits, transform_input, in_channels, "GoogLeNet")
        self.aux_logits, self.transform_input = aux_logits, transform_input
        p = _checks.probability(dropout, "dropout", "GoogLeNet")
        p_aux = _checks.probability(dropout_aux, "dropout_aux", "GoogLeNet")
        self.conv1 = _conv(in_channels, 64, 7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = _conv(64, 64, 1)
        self.conv3 = _conv(64, 192, 3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        for name, channels in _INCEPTIONS.items():
            self.add_module(name, Inception(*channels))
            if name == "inception3b":
                self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
            elif name == "inception4e":
                self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        if aux_logits:
            self.aux1 = InceptionAux(512, num_classes, p_aux)
            self.aux2 = InceptionAux(528, num_classes, p_aux)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p)
        self.fc = nn.Linear(1024, num_classes, weight_init=_INIT)

    def forward(self, ctx, x):
        x, unbatched = prepared_input(x, self.transform_input, "GoogLeNet")
        x = ctx.maxpool2(ctx.conv3(ctx.conv2(ctx.maxpool1(ctx.conv1(x)))))
        x = ctx.maxpool3(ctx.inception3b(ctx.inception3a(x)))
        x = ctx.inception4a(x)
        training_aux = self.aux_logits and ctx.train
        aux1 = ctx.aux1(x) if training_aux else None
        x = ctx.inception4d(ctx.inception4c(ctx.inception4b(x)))
        aux2 = ctx.aux2(x) if training_aux else None
        x = ctx.maxpool4(ctx.inception4e(x))
        x = ctx.inception5b(ctx.inception5a(x))
        x = ctx.fc(ctx.dropout(flatten(ctx.avgpool(x))))
        if not training_aux:
            return x[0] if unbatched else x
        out = GoogLeNetOutputs(x, aux2, aux1)
        return GoogLeNetOutputs(*(y[0] for y in out)) if unbatched else out


ARCHITECTURES = {"googlenet": {}}

# the layer whose outputs are the classes (the checkpoint loader reads num_classes from it)
CLASSIFIER = "fc"


def build(name: str, **kwargs) -> GoogLeNet:
    """torchvision's ``googlenet``; ``kwargs`` as :class:`GoogLeNet`."""
    _checks.one_of(name, list(ARCHITECTURES), "name", "googlenet.build")
    return GoogLeNet(**kwargs)
