"""VGG (Simonyan & Zisserman, 2015): torchvision's ``vgg11``…``vgg19_bn``, and a small VGG-style net.

* :class:`ImageNetVGG` and the builders ``vgg11``, ``vgg11_bn``, … ``vgg19_bn``
  (:data:`ARCHITECTURES`) have torchvision's structure and state_dict keys:
  ``features.<i>`` (3×3 conv [→ BatchNorm] → ReLU blocks and 2×2 max-pools),
  ``avgpool`` (adaptive, 7×7), ``classifier.0/3/6`` (Linear–ReLU–Dropout ×2 →
  Linear).
* :class:`VGG` (``get("vgg")``) is a small VGG-style classifier for 8×8 to
  32×32 images (``fcnn train``'s default). Its ``features`` are built the same
  way; its classifier is ``Dropout–Linear–ReLU–Dropout–Linear``, so its keys
  are ``classifier.1`` and ``classifier.4`` — not torchvision's layout.
"""

from __future__ import annotations

from typing import Sequence

from fcnn import _checks, nn
from fcnn.models._util import batched, flatten

# Channels per conv layer, "M" = 2×2 max-pool. Sized for 8×8 to 32×32 inputs.
CONFIGS = {
    "small": (32, 32, "M", 64, 64, "M"),
    "medium": (32, 32, "M", 64, 64, "M", 128, 128, "M"),
}

# The paper's configurations A, B, D and E (11, 13, 16 and 19 weight layers).
_A = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")
_B = (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")
_D = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
_E = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M")

# torchvision builder name -> (configuration, batch_norm)
ARCHITECTURES = {
    "vgg11": (_A, False), "vgg11_bn": (_A, True),
    "vgg13": (_B, False), "vgg13_bn": (_B, True),
    "vgg16": (_D, False), "vgg16_bn": (_D, True),
    "vgg19": (_E, False), "vgg19_bn": (_E, True),
}

# the layer whose outputs are the classes (the checkpoint loader reads num_classes from it)
CLASSIFIER = "classifier.6"

# torchvision's initialisation of its VGGs
_CONV_INIT = nn.init.kaiming_normal(mode="fan_out", nonlinearity="relu")
_LINEAR_INIT = nn.init.normal(0.0, 0.01)


def _check_cfg(cfg, where: str) -> tuple:
    cfg = tuple(cfg)
    if not cfg or any(v != "M" and (isinstance(v, bool) or not isinstance(v, int) or v <= 0) for v in cfg):
        raise ValueError(f"{where}: cfg must be positive ints and 'M', got {cfg!r}")
    return cfg


def make_features(cfg: Sequence, in_channels: int, batch_norm: bool, bias: bool, weight_init=None,
                  bias_init=None) -> tuple[nn.Sequential, int]:
    """``(features, out_channels)``: a 3×3 conv (padding 1) [→ BatchNorm2d] → ReLU per int of ``cfg``,
    a 2×2 stride-2 max-pool per ``"M"`` (torchvision's ``make_layers``)."""
    layers, c = [], in_channels
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
            continue
        layers.append(nn.Conv2d(c, v, 3, padding=1, bias=bias, weight_init=weight_init, bias_init=bias_init))
        if batch_norm:
            layers.append(nn.BatchNorm2d(v))
        layers.append(nn.ReLU())
        c = v
    return nn.Sequential(*layers), c


class ImageNetVGG(nn.Module):
    """torchvision's ``VGG``: ``features``, a 7×7 adaptive average pool, a 4096-wide two-hidden-layer classifier.

    Args:
        cfg: ints (3×3 conv, padding 1, with that many output channels) and
            ``"M"`` (2×2 max-pool, stride 2); :data:`ARCHITECTURES` has the paper's.
        batch_norm: BatchNorm2d after every convolution (the ``_bn`` builders;
            the conv keeps its bias, as torchvision's).
        num_classes: outputs of ``classifier.6``.
        dropout: probability of the two Dropout layers in the classifier.
        in_channels: image channels (torchvision: 3).

    Initialisation as torchvision's: convolutions ``kaiming_normal(fan_out, relu)``
    with zero bias, Linear ``N(0, 0.01)`` with zero bias.

    Shape: ``(N, in_channels, H, W)`` → ``(N, num_classes)``; ``H, W ≥ 32`` for
    the five-pool configurations (``min_size`` of torchvision's weights).
    """

    def __init__(self, cfg: Sequence, batch_norm: bool = False, num_classes: int = 1000, dropout: float = 0.5,
                 in_channels: int = 3):
        super().__init__()
        where = "ImageNetVGG"
        cfg = _check_cfg(cfg, where)
        _checks.boolean(batch_norm, "batch_norm", where)
        _checks.positive_int(num_classes, "num_classes", where)
        p = _checks.probability(dropout, "dropout", where)
        _checks.positive_int(in_channels, "in_channels", where)
        self.features, c = make_features(cfg, in_channels, batch_norm, bias=True, weight_init=_CONV_INIT,
                                         bias_init=nn.init.zeros)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        linear = dict(weight_init=_LINEAR_INIT, bias_init=nn.init.zeros)
        self.classifier = nn.Sequential(
            nn.Linear(c * 7 * 7, 4096, **linear), nn.ReLU(), nn.Dropout(p),
            nn.Linear(4096, 4096, **linear), nn.ReLU(), nn.Dropout(p),
            nn.Linear(4096, num_classes, **linear))

    def forward(self, ctx, x):
        x, unbatched = batched(x, "ImageNetVGG")
        x = ctx.classifier(flatten(ctx.avgpool(ctx.features(x))))
        return x[0] if unbatched else x


def build(name: str, **kwargs) -> ImageNetVGG:
    """torchvision's ``vgg11``…``vgg19_bn`` by name (see :data:`ARCHITECTURES`); ``kwargs`` as :class:`ImageNetVGG`."""
    _checks.one_of(name, list(ARCHITECTURES), "name", "vgg.build")
    cfg, batch_norm = ARCHITECTURES[name]
    return ImageNetVGG(cfg, batch_norm, **kwargs)


class VGG(nn.Module):
    """A small VGG-style classifier (not torchvision's layout; see the module docstring).

    Args:
        cfg: a name in :data:`CONFIGS` or a sequence of ints (3×3 conv, padding 1,
            with that many output channels) and ``"M"`` (max-pool 2, stride 2).
        in_channels: image channels.
        num_classes: outputs.
        batch_norm: BatchNorm2d after every convolution (conv bias dropped then,
            as it is redundant — torchvision keeps it; ``conv_bias=True`` does too).
        hidden: width of the hidden classifier layer.
        dropout: dropout probability before each of the two classifier Linear layers.
        pool_size: output side of ``avgpool`` (adaptive average pooling).

    Shape: ``(N, in_channels, H, W)`` → ``(N, num_classes)``; ``H, W`` at least
    ``2^(number of "M")``. Keys: ``features.<i>``, ``classifier.1``, ``classifier.4``.
    """

    def __init__(self, cfg: str | Sequence = "small", in_channels: int = 3, num_classes: int = 10,
                 batch_norm: bool = True, hidden: int = 256, dropout: float = 0.5, pool_size: int = 1,
                 conv_bias: bool | None = None):
        super().__init__()
        where = "VGG"
        if isinstance(cfg, str):
            _checks.one_of(cfg, list(CONFIGS), "cfg", where)
            cfg = CONFIGS[cfg]
        cfg = _check_cfg(cfg, where)
        c = _checks.positive_int(in_channels, "in_channels", where)
        _checks.positive_int(num_classes, "num_classes", where)
        _checks.positive_int(hidden, "hidden", where)
        p = _checks.probability(dropout, "dropout", where)
        ps = _checks.positive_int(pool_size, "pool_size", where)
        bias = (not batch_norm) if conv_bias is None else conv_bias
        self.cfg = cfg
        self.features, c = make_features(cfg, c, batch_norm, bias)
        self.avgpool = nn.AdaptiveAvgPool2d(ps)
        self.classifier = nn.Sequential(
            nn.Dropout(p), nn.Linear(c * ps * ps, hidden), nn.ReLU(), nn.Dropout(p), nn.Linear(hidden, num_classes))

    def forward(self, ctx, x):
        x, unbatched = batched(x, "VGG")
        x = ctx.avgpool(ctx.features(x))
        x = ctx.classifier(flatten(x))
        return x[0] if unbatched else x
