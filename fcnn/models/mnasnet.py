"""MnasNet-B1 (Tan et al., 2019) as torchvision's ``mnasnet0_5``, ``mnasnet0_75``, ``mnasnet1_0`` and
``mnasnet1_3``, with its state_dict keys (``layers.8.0.layers.3.weight``, ``classifier.1.bias``)."""

from __future__ import annotations


from fcnn import _checks, nn
from fcnn import functional as F
from fcnn.models._util import batched, make_divisible

# The reference implementation's BatchNorm decay 0.9997, as a torch momentum.
_BN_MOMENTUM = 1 - 0.9997
_CONV = dict(bias=False, weight_init=nn.init.kaiming_normal(mode="fan_out", nonlinearity="relu"))


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, momentum=_BN_MOMENTUM)


class InvertedResidual(nn.Module):
    """1×1 expansion → depthwise ``kernel_size`` conv → 1×1 projection, each with BatchNorm (ReLU after the first
    two); a residual connection when the shape is kept. Keys ``layers.0`` … ``layers.7``."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int, expansion_factor: int):
        super().__init__()
        mid = in_ch * expansion_factor
        self.apply_residual = in_ch == out_ch and stride == 1
        self.layers = nn.Sequential(
            nn.Conv2d(in_ch, mid, 1, **_CONV), _bn(mid), nn.ReLU(),
            nn.Conv2d(mid, mid, kernel_size, stride=stride, padding=kernel_size // 2, groups=mid, **_CONV),
            _bn(mid), nn.ReLU(),
            nn.Conv2d(mid, out_ch, 1, **_CONV), _bn(out_ch))

    def forward(self, ctx, x):
        out = ctx.layers(x)
        return F.add(out, x) if self.apply_residual else out


# The B1 stacks: (kernel, stride, expansion, repeats); their output channels are _DEPTHS[2:8] × alpha.
_STACKS = ((3, 2, 3, 3), (5, 2, 3, 3), (5, 2, 6, 3), (3, 1, 6, 2), (5, 2, 6, 4), (3, 1, 6, 1))
_DEPTHS = (32, 16, 24, 40, 80, 96, 192, 320)


class MNASNet(nn.Module):
    """torchvision's ``MNASNet`` (the B1 variant) with width multiplier ``alpha``.

    Args:
        alpha: width multiplier (channels rounded to multiples of 8); the last
            convolution has 1280 channels for every ``alpha``.
        num_classes: outputs of ``classifier.1``.
        dropout: probability of the Dropout before it.
        in_channels: image channels (torchvision: 3).

    BatchNorm momentum 0.0003 (the reference's decay 0.9997). Initialisation
    as torchvision's. Shape: ``(N, in_channels, H, W)`` → ``(N, num_classes)``.
    """

    def __init__(self, alpha: float, num_classes: int = 1000, dropout: float = 0.2, in_channels: int = 3):
        super().__init__()
        where = "MNASNet"
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha > 0:
            raise ValueError(f"{where}: alpha must be a positive number, got {alpha!r}")
        _checks.positive_int(num_classes, "num_classes", where)
        p = _checks.probability(dropout, "dropout", where)
        _checks.positive_int(in_channels, "in_channels", where)
        depths = [make_divisible(d * alpha, 8) for d in _DEPTHS]
        layers = [
            nn.Conv2d(in_channels, depths[0], 3, stride=2, padding=1, **_CONV), _bn(depths[0]), nn.ReLU(),
            nn.Conv2d(depths[0], depths[0], 3, padding=1, groups=depths[0], **_CONV), _bn(depths[0]), nn.ReLU(),
            nn.Conv2d(depths[0], depths[1], 1, **_CONV), _bn(depths[1]),
        ]
        c = depths[1]
        for out, (kernel, stride, expansion, repeats) in zip(depths[2:], _STACKS):
            blocks = [InvertedResidual(c, out, kernel, stride, expansion)]
            blocks += [InvertedResidual(out, out, kernel, 1, expansion) for _ in range(1, repeats)]
            layers.append(nn.Sequential(*blocks))
            c = out
        layers += [nn.Conv2d(c, 1280, 1, **_CONV), _bn(1280), nn.ReLU()]
        self.layers = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Dropout(p), nn.Linear(1280, num_classes, bias_init=nn.init.zeros,
                                     weight_init=nn.init.kaiming_uniform(mode="fan_out", nonlinearity="sigmoid")))

    def forward(self, ctx, x):
        x, unbatched = batched(x, "MNASNet")
        x = ctx.classifier(ctx.layers(x).mean(axis=(2, 3)))
        return x[0] if unbatched else x


# torchvision builder name -> width multiplier
ARCHITECTURES = {"mnasnet0_5": 0.5, "mnasnet0_75": 0.75, "mnasnet1_0": 1.0, "mnasnet1_3": 1.3}

# the layer whose outputs are the classes (the checkpoint loader reads num_classes from it)
CLASSIFIER = "classifier.1"


def build(name: str, **kwargs) -> MNASNet:
    """One of torchvision's MnasNet builders by name (:data:`ARCHITECTURES`); ``kwargs`` as :class:`MNASNet`."""
    _checks.one_of(name, list(ARCHITECTURES), "name", "mnasnet.build")
    return MNASNet(ARCHITECTURES[name], **kwargs)
