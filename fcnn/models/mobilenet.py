"""MobileNetV2 (Sandler et al., 2018) and MobileNetV3-Small/Large (Howard et al., 2019) as torchvision's
``mobilenet_v2``, ``mobilenet_v3_small`` and ``mobilenet_v3_large``, with its state_dict keys
(``features.2.conv.1.0.weight``, ``features.4.block.2.fc1.bias``, ``classifier.3.weight``)."""

from __future__ import annotations

from typing import NamedTuple, Sequence


from fcnn import _checks, nn
from fcnn import functional as F
from fcnn.models._util import batched, config_tuple, flatten, make_divisible, reinitialised

# torchvision's MobileNet init: convolutions kaiming_normal(fan_out), Linear N(0, 0.01), biases zero.
_INIT = {nn.Conv2d: (nn.init.kaiming_normal(mode="fan_out"), nn.init.zeros),
         nn.Linear: (nn.init.normal(0.0, 0.01), nn.init.zeros)}


class _ResidualBlock(nn.Module):
    """A block whose ``forward`` adds its input to ``block_name``'s output when the shape is kept."""

    block_name = "block"

    def forward(self, ctx, x):
        out = ctx(self.block_name, x)
        return F.add(out, x) if self.use_res_connect else out


class InvertedResidualV2(_ResidualBlock):
    """MobileNetV2's block: [1×1 expansion →] depthwise 3×3 → linear 1×1 projection, ReLU6; keys ``conv.<i>``."""

    block_name = "conv"

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int):
        super().__init__()
        hidden = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers = [] if expand_ratio == 1 else [
            nn.Conv2dNormActivation(inp, hidden, 1, activation_layer=nn.ReLU6)]
        layers += [nn.Conv2dNormActivation(hidden, hidden, 3, stride, groups=hidden, activation_layer=nn.ReLU6),
                   nn.Conv2d(hidden, oup, 1, bias=False), nn.BatchNorm2d(oup)]
        self.conv = nn.Sequential(*layers)


# MobileNetV2's stages: (expansion t, channels c, blocks n, first stride s), the paper's Table 2
_V2_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
              (6, 320, 1, 1))


class MobileNetV2(nn.Module):
    """torchvision's ``MobileNetV2``.

    Args:
        num_classes: outputs of ``classifier.1``.
        width_mult: channel multiplier (channels rounded to multiples of ``round_nearest``).
        round_nearest: the channel rounding.
        dropout: probability of the Dropout before ``classifier.1``.
        in_channels: image channels (torchvision: 3).

    Initialisation as torchvision's. Shape: ``(N, in_channels, H, W)`` → ``(N, num_classes)``.
    """

    def __init__(self, num_classes: int = 1000, width_mult: float = 1.0, round_nearest: int = 8,
                 dropout: float = 0.2, in_channels: int = 3):
        super().__init__()
        where = "MobileNetV2"
        _checks.positive_int(num_classes, "num_classes", where)
        if isinstance(width_mult, bool) or not isinstance(width_mult, (int, float)) or not width_mult > 0:
            raise ValueError(f"{where}: width_mult must be a positive number, got {width_mult!r}")
        _checks.positive_int(round_nearest, "round_nearest", where)
        p = _checks.probability(dropout, "dropout", where)
        _checks.positive_int(in_channels, "in_channels", where)
        c = make_divisible(32 * width_mult, round_nearest)
        last = make_divisible(1280 * max(1.0, width_mult), round_nearest)
        layers = [nn.Conv2dNormActivation(in_channels, c, 3, 2, activation_layer=nn.ReLU6)]
        for t, channels, n, s in _V2_STAGES:
            out = make_divisible(channels * width_mult, round_nearest)
            for i in range(n):
                layers.append(InvertedResidualV2(c, out, s if i == 0 else 1, t))
                c = out
        layers.append(nn.Conv2dNormActivation(c, last, 1, activation_layer=nn.ReLU6))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(p), nn.Linear(last, num_classes))

    def init(self, key):
        params, state = super().init(key)
        return reinitialised(self, params, key, _INIT), state

    def forward(self, ctx, x):
        x, unbatched = batched(x, "MobileNetV2")
        x = ctx.classifier(flatten(F.adaptive_avg_pool2d(ctx.features(x), (1, 1))))
        return x[0] if unbatched else x


class BlockV3(NamedTuple):
    """One MobileNetV3 block: input, kernel, expanded and output channels, squeeze-and-excitation, hard-swish
    (else ReLU), stride."""

    input_channels: int
    kernel: int
    expanded_channels: int
    out_channels: int
    use_se: bool
    use_hs: bool
    stride: int


class InvertedResidualV3(_ResidualBlock):
    """MobileNetV3's block: [1×1 expansion →] depthwise conv [→ SE with hard-sigmoid gate] → linear 1×1
    projection; keys ``block.<i>``."""

    def __init__(self, cfg: BlockV3, norm):
        super().__init__()
        self.use_res_connect = cfg.stride == 1 and cfg.input_channels == cfg.out_channels
        act = nn.Hardswish if cfg.use_hs else nn.ReLU
        mid = cfg.expanded_channels
        layers = [] if mid == cfg.input_channels else [
            nn.Conv2dNormActivation(cfg.input_channels, mid, 1, norm_layer=norm, activation_layer=act)]
        layers.append(nn.Conv2dNormActivation(mid, mid, cfg.kernel, cfg.stride, groups=mid, norm_layer=norm,
                                              activation_layer=act))
        if cfg.use_se:
            layers.append(nn.SqueezeExcitation(mid, make_divisible(mid // 4, 8), scale_activation=nn.Hardsigmoid))
        layers.append(nn.Conv2dNormActivation(mid, cfg.out_channels, 1, norm_layer=norm, activation_layer=None))
        self.block = nn.Sequential(*layers)


class MobileNetV3(nn.Module):
    """torchvision's ``MobileNetV3``: a hard-swish stem, :class:`InvertedResidualV3` blocks, a 1×1 conv to 6× the
    last block's channels, pooling, and ``classifier`` Linear → Hardswish → Dropout → Linear.

    Args:
        blocks: the :class:`BlockV3` s (:data:`ARCHITECTURES` has the paper's Small and Large).
        last_channel: width of the classifier's hidden layer.
        num_classes: outputs of ``classifier.3``.
        dropout: probability of ``classifier.2``.
        in_channels: image channels (torchvision: 3).

    BatchNorm eps 0.001, momentum 0.01; initialisation as torchvision's.
    Shape: ``(N, in_channels, H, W)`` → ``(N, num_classes)``.
    """

    def __init__(self, blocks: Sequence[BlockV3], last_channel: int, num_classes: int = 1000, dropout: float = 0.2,
                 in_channels: int = 3):
        super().__init__()
        where = "MobileNetV3"
        blocks = config_tuple(blocks, BlockV3, "blocks", where)
        _checks.positive_int(last_channel, "last_channel", where)
        _checks.positive_int(num_classes, "num_classes", where)
        p = _checks.probability(dropout, "dropout", where)
        _checks.positive_int(in_channels, "in_channels", where)

        def norm(c):
            return nn.BatchNorm2d(c, eps=0.001, momentum=0.01)

        layers = [nn.Conv2dNormActivation(in_channels, blocks[0].input_channels, 3, 2, norm_layer=norm,
                                          activation_layer=nn.Hardswish)]
        layers += [InvertedResidualV3(b, norm) for b in blocks]
        head = 6 * blocks[-1].out_channels
        layers.append(nn.Conv2dNormActivation(blocks[-1].out_channels, head, 1, norm_layer=norm,
                                              activation_layer=nn.Hardswish))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Linear(head, last_channel), nn.Hardswish(), nn.Dropout(p),
                                        nn.Linear(last_channel, num_classes))

    def init(self, key):
        params, state = super().init(key)
        return reinitialised(self, params, key, _INIT), state

    def forward(self, ctx, x):
        x, unbatched = batched(x, "MobileNetV3")
        x = ctx.classifier(flatten(ctx.avgpool(ctx.features(x))))
        return x[0] if unbatched else x


RE, HS = False, True  # ReLU or hard-swish
# the paper's Tables 1 and 2: (in, kernel, expanded, out, SE, hard-swish, stride)
_LARGE = tuple(BlockV3(*b) for b in (
    (16, 3, 16, 16, False, RE, 1), (16, 3, 64, 24, False, RE, 2), (24, 3, 72, 24, False, RE, 1),
    (24, 5, 72, 40, True, RE, 2), (40, 5, 120, 40, True, RE, 1), (40, 5, 120, 40, True, RE, 1),
    (40, 3, 240, 80, False, HS, 2), (80, 3, 200, 80, False, HS, 1), (80, 3, 184, 80, False, HS, 1),
    (80, 3, 184, 80, False, HS, 1), (80, 3, 480, 112, True, HS, 1), (112, 3, 672, 112, True, HS, 1),
    (112, 5, 672, 160, True, HS, 2), (160, 5, 960, 160, True, HS, 1), (160, 5, 960, 160, True, HS, 1)))
_SMALL = tuple(BlockV3(*b) for b in (
    (16, 3, 16, 16, True, RE, 2), (16, 3, 72, 24, False, RE, 2), (24, 3, 88, 24, False, RE, 1),
    (24, 5, 96, 40, True, HS, 2), (40, 5, 240, 40, True, HS, 1), (40, 5, 240, 40, True, HS, 1),
    (40, 5, 120, 48, True, HS, 1), (48, 5, 144, 48, True, HS, 1), (48, 5, 288, 96, True, HS, 2),
    (96, 5, 576, 96, True, HS, 1), (96, 5, 576, 96, True, HS, 1)))
del RE, HS

# torchvision builder name -> MobileNetV3's (blocks, last_channel); None for MobileNetV2
ARCHITECTURES = {"mobilenet_v2": None, "mobilenet_v3_large": (_LARGE, 1280), "mobilenet_v3_small": (_SMALL, 1024)}

# the layer whose outputs are the classes (the checkpoint loader reads num_classes from it)
CLASSIFIER = {"mobilenet_v2": "classifier.1", "mobilenet_v3_large": "classifier.3",
              "mobilenet_v3_small": "classifier.3"}


def build(name: str, **kwargs) -> MobileNetV2 | MobileNetV3:
    """``mobilenet_v2`` (kwargs as :class:`MobileNetV2`) or ``mobilenet_v3_small/large`` (as :class:`MobileNetV3`)."""
    _checks.one_of(name, list(ARCHITECTURES), "name", "mobilenet.build")
    if ARCHITECTURES[name] is None:
        return MobileNetV2(**kwargs)
    return MobileNetV3(*ARCHITECTURES[name], **kwargs)
