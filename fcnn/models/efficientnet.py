"""EfficientNet B0–B7 (Tan & Le, 2019) and EfficientNetV2-S/M/L (Tan & Le, 2021) as torchvision's
``efficientnet_b0`` … ``efficientnet_v2_l``, with its state_dict keys (``features.2.0.block.1.0.weight``,
``features.2.0.block.2.fc1.bias``, ``classifier.1.weight``)."""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence


from fcnn import _checks, nn
from fcnn.functional.elementwise import add
from fcnn.models._util import batched, config_tuple, flatten, make_divisible, reinitialised


class Stage(NamedTuple):
    """One stage of blocks: ``fused`` (FusedMBConv) or MBConv, expansion ratio, kernel, stride of its first
    block, input and output channels, number of blocks."""

    fused: bool
    expand_ratio: float
    kernel: int
    stride: int
    input_channels: int
    out_channels: int
    num_layers: int


def _conv_bn_act(cin, cout, kernel_size, norm, stride=1, groups=1, activation=nn.SiLU):
    return nn.Conv2dNormActivation(cin, cout, kernel_size, stride, groups=groups, norm_layer=norm,
                                   activation_layer=activation)


class _ResidualBlock(nn.Module):
    """``block``, then stochastic depth and a residual sum when the block keeps the shape."""

    def forward(self, ctx, x):
        out = ctx.block(x)
        if not self.use_res_connect:
            return out
        return add(ctx.stochastic_depth(out), x)


class MBConv(_ResidualBlock):
    """Inverted residual with squeeze-and-excitation: [1×1 expansion →] depthwise ``kernel`` conv → SE → 1×1
    projection, SiLU activations; stochastic depth and a residual sum when the shape is kept."""

    def __init__(self, cfg: Stage, stochastic_depth_prob: float, norm):
        super().__init__()
        self.use_res_connect = cfg.stride == 1 and cfg.input_channels == cfg.out_channels
        expanded = make_divisible(cfg.input_channels * cfg.expand_ratio, 8)
        layers = [] if expanded == cfg.input_channels else [_conv_bn_act(cfg.input_channels, expanded, 1, norm)]
        layers += [_conv_bn_act(expanded, expanded, cfg.kernel, norm, cfg.stride, groups=expanded),
                   nn.SqueezeExcitation(expanded, max(1, cfg.input_channels // 4), activation=nn.SiLU),
                   _conv_bn_act(expanded, cfg.out_channels, 1, norm, activation=None)]
        self.block = nn.Sequential(*layers)
        self.stochastic_depth = nn.StochasticDepth(stochastic_depth_prob, "row")


class FusedMBConv(_ResidualBlock):
    """EfficientNetV2's fused block: a full ``kernel`` conv in place of expansion + depthwise conv, no SE."""

    def __init__(self, cfg: Stage, stochastic_depth_prob: float, norm):
        super().__init__()
        self.use_res_connect = cfg.stride == 1 and cfg.input_channels == cfg.out_channels
        expanded = make_divisible(cfg.input_channels * cfg.expand_ratio, 8)
        if expanded == cfg.input_channels:
            layers = [_conv_bn_act(cfg.input_channels, cfg.out_channels, cfg.kernel, norm, cfg.stride)]
        else:
            layers = [_conv_bn_act(cfg.input_channels, expanded, cfg.kernel, norm, cfg.stride),
                      _conv_bn_act(expanded, cfg.out_channels, 1, norm, activation=None)]
        self.block = nn.Sequential(*layers)
        self.stochastic_depth = nn.StochasticDepth(stochastic_depth_prob, "row")


class EfficientNet(nn.Module):
    """torchvision's ``EfficientNet`` (V1 and V2): stem, stages of (Fused)MBConv blocks, 1×1 head conv, pool, classifier.

    Args:
        stages: the :class:`Stage` s (channels already scaled).
        dropout: probability of the Dropout before ``classifier.1``.
        stochastic_depth_prob: the last block's stochastic-depth probability;
            block ``i`` of ``n`` drops its branch with ``p · i / n``.
        num_classes: outputs of ``classifier.1``.
        norm_eps, norm_momentum: the BatchNorm layers' (B5–B7: 0.001 and 0.01; V2: eps 0.001).
        last_channel: channels of the head conv (default 4 × the last stage's).
        in_channels: image channels (torchvision: 3).

    Initialisation as torchvision's: convolutions ``kaiming_normal(fan_out)``,
    Linear ``U(±1/√out_features)``, biases zero. Shape: ``(N, in_channels, H, W)``
    → ``(N, num_classes)``.
    """

    def __init__(self, stages: Sequence[Stage], dropout: float, stochastic_depth_prob: float = 0.2,
                 num_classes: int = 1000, norm_eps: float = 1e-5, norm_momentum: float = 0.1,
                 last_channel: int | None = None, in_channels: int = 3):
        super().__init__()
        where = "EfficientNet"
        p = _checks.probability(dropout, "dropout", where)
        sd = _checks.probability(stochastic_depth_prob, "stochastic_depth_prob", where)
        _checks.positive_int(num_classes, "num_classes", where)
        _checks.positive_int(in_channels, "in_channels", where)
        stages = config_tuple(stages, Stage, "stages", where)

        def norm(c):
            return nn.BatchNorm2d(c, eps=norm_eps, momentum=norm_momentum)

        layers = [_conv_bn_act(in_channels, stages[0].input_channels, 3, norm, stride=2)]
        total, index = sum(s.num_layers for s in stages), 0
        for s in stages:
            block = FusedMBConv if s.fused else MBConv
            blocks = []
            for i in range(s.num_layers):
                cfg = s if i == 0 else s._replace(input_channels=s.out_channels, stride=1)
                blocks.append(block(cfg, sd * index / total, norm))
                index += 1
            layers.append(nn.Sequential(*blocks))
        last = last_channel if last_channel is not None else 4 * stages[-1].out_channels
        layers.append(_conv_bn_act(stages[-1].out_channels, last, 1, norm))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(p), nn.Linear(last, num_classes))

    def init(self, key):
        params, state = super().init(key)

        def linear(key, shape, dtype):
            bound = 1.0 / math.sqrt(shape[0])
            return nn.init.uniform(-bound, bound)(key, shape, dtype)

        rules = {nn.Conv2d: (nn.init.kaiming_normal(mode="fan_out"), nn.init.zeros), nn.Linear: (linear, nn.init.zeros)}
        return reinitialised(self, params, key, rules), state

    def forward(self, ctx, x):
        x, unbatched = batched(x, "EfficientNet")
        x = ctx.classifier(flatten(ctx.avgpool(ctx.features(x))))
        return x[0] if unbatched else x


# B0's stages: (expand_ratio, kernel, stride, input_channels, out_channels, num_layers), scaled per variant
_B0 = ((1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3),
       (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4), (6, 3, 1, 192, 320, 1))


def _v1(width_mult: float, depth_mult: float) -> tuple[Stage, ...]:
    return tuple(Stage(False, e, k, s, make_divisible(cin * width_mult, 8), make_divisible(cout * width_mult, 8),
                       int(math.ceil(n * depth_mult))) for e, k, s, cin, cout, n in _B0)


def _v2(*stages) -> tuple[Stage, ...]:
    return tuple(Stage(*s) for s in stages)


F, M = True, False  # FusedMBConv, MBConv stages of V2
# torchvision builder name -> (stages, dropout, last_channel, BatchNorm eps, BatchNorm momentum)
ARCHITECTURES = {
    "efficientnet_b0": (_v1(1.0, 1.0), 0.2, None, 1e-5, 0.1),
    "efficientnet_b1": (_v1(1.0, 1.1), 0.2, None, 1e-5, 0.1),
    "efficientnet_b2": (_v1(1.1, 1.2), 0.3, None, 1e-5, 0.1),
    "efficientnet_b3": (_v1(1.2, 1.4), 0.3, None, 1e-5, 0.1),
    "efficientnet_b4": (_v1(1.4, 1.8), 0.4, None, 1e-5, 0.1),
    "efficientnet_b5": (_v1(1.6, 2.2), 0.4, None, 1e-3, 0.01),
    "efficientnet_b6": (_v1(1.8, 2.6), 0.5, None, 1e-3, 0.01),
    "efficientnet_b7": (_v1(2.0, 3.1), 0.5, None, 1e-3, 0.01),
    "efficientnet_v2_s": (_v2((F, 1, 3, 1, 24, 24, 2), (F, 4, 3, 2, 24, 48, 4), (F, 4, 3, 2, 48, 64, 4),
                              (M, 4, 3, 2, 64, 128, 6), (M, 6, 3, 1, 128, 160, 9), (M, 6, 3, 2, 160, 256, 15)),
                          0.2, 1280, 1e-3, 0.1),
    "efficientnet_v2_m": (_v2((F, 1, 3, 1, 24, 24, 3), (F, 4, 3, 2, 24, 48, 5), (F, 4, 3, 2, 48, 80, 5),
                              (M, 4, 3, 2, 80, 160, 7), (M, 6, 3, 1, 160, 176, 14), (M, 6, 3, 2, 176, 304, 18),
                              (M, 6, 3, 1, 304, 512, 5)),
                          0.3, 1280, 1e-3, 0.1),
    "efficientnet_v2_l": (_v2((F, 1, 3, 1, 32, 32, 4), (F, 4, 3, 2, 32, 64, 7), (F, 4, 3, 2, 64, 96, 7),
                              (M, 4, 3, 2, 96, 192, 10), (M, 6, 3, 1, 192, 224, 19), (M, 6, 3, 2, 224, 384, 25),
                              (M, 6, 3, 1, 384, 640, 7)),
                          0.4, 1280, 1e-3, 0.1),
}
del F, M

# the layer whose outputs are the classes (the checkpoint loader reads num_classes from it)
CLASSIFIER = "classifier.1"


def build(name: str, **kwargs) -> EfficientNet:
    """One of torchvision's EfficientNet builders by name (:data:`ARCHITECTURES`); ``kwargs`` as
    :class:`EfficientNet` (``dropout`` defaults to the variant's)."""
    _checks.one_of(name, list(ARCHITECTURES), "name", "efficientnet.build")
    stages, dropout, last_channel, eps, momentum = ARCHITECTURES[name]
    kwargs.setdefault("dropout", dropout)
    return EfficientNet(stages, last_channel=last_channel, norm_eps=eps, norm_momentum=momentum, **kwargs)
