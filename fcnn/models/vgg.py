"""A small VGG-style network (Simonyan & Zisserman, 2015) with BatchNorm and Dropout.

Laid out like torchvision's ``vgg*_bn``: ``features`` (conv3×3–BN–ReLU blocks
and 2×2 max-pools), ``avgpool`` (adaptive), ``classifier`` (Linear–ReLU–Dropout
… Linear), so state_dict keys read ``features.0.weight``, ``classifier.3.bias``.
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


class VGG(nn.Module):
    """VGG-style classifier.

    Args:
        cfg: a name in :data:`CONFIGS` or a sequence of ints (3×3 conv, padding 1,
            with that many output channels) and ``"M"`` (max-pool 2, stride 2).
        in_channels: image channels.
        num_classes: outputs.
        batch_norm: BatchNorm2d after every convolution (conv bias dropped then,
            as it is redundant — torchvision keeps it; ``conv_bias=True`` does too).
        hidden: width of the hidden classifier layer.
        dropout: dropout probability before each classifier Linear after the first.
        pool_size: output side of ``avgpool`` (adaptive average pooling).

    Shape: ``(N, in_channels, H, W)`` → ``(N, num_classes)``; ``H, W`` at least
    ``2^(number of "M")``.
    """

    def __init__(self, cfg: str | Sequence = "small", in_channels: int = 3, num_classes: int = 10,
                 batch_norm: bool = True, hidden: int = 256, dropout: float = 0.5, pool_size: int = 1,
                 conv_bias: bool | None = None):
        super().__init__()
        where = "VGG"
        if isinstance(cfg, str):
            _checks.one_of(cfg, list(CONFIGS), "cfg", where)
            cfg = CONFIGS[cfg]
        cfg = tuple(cfg)
        if not cfg or any(v != "M" and (isinstance(v, bool) or not isinstance(v, int) or v <= 0) for v in cfg):
            raise ValueError(f"{where}: cfg must be positive ints and 'M', got {cfg!r}")
        c = _checks.positive_int(in_channels, "in_channels", where)
        _checks.positive_int(num_classes, "num_classes", where)
        _checks.positive_int(hidden, "hidden", where)
        p = _checks.probability(dropout, "dropout", where)
        ps = _checks.positive_int(pool_size, "pool_size", where)
        bias = (not batch_norm) if conv_bias is None else conv_bias
        layers = []
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
                continue
            layers.append(nn.Conv2d(c, v, 3, padding=1, bias=bias))
            if batch_norm:
                layers.append(nn.BatchNorm2d(v))
            layers.append(nn.ReLU())
            c = v
        self.cfg = cfg
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(ps)
        self.classifier = nn.Sequential(
            nn.Dropout(p), nn.Linear(c * ps * ps, hidden), nn.ReLU(), nn.Dropout(p), nn.Linear(hidden, num_classes))

    def forward(self, ctx, x):
        x, unbatched = batched(x, "VGG")
        x = ctx.avgpool(ctx.features(x))
        x = ctx.classifier(flatten(x))
        return x[0] if unbatched else x
