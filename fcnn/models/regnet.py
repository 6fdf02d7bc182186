"""RegNetX and RegNetY (Radosavovic et al., 2020) as torchvision's ``regnet_x_400mf`` … ``regnet_y_128gf``, with
its state_dict keys (``stem.0.weight``, ``trunk_output.block1.block1-0.f.b.0.weight``,
``trunk_output.block2.block2-0.proj.1.running_mean``, ``…f.se.fc1.weight``, ``fc.bias``)."""

from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple, Sequence

import numpy as np

from fcnn import _checks, nn
from fcnn import functional as F
from fcnn.models._util import batched, config_tuple, flatten, make_divisible, reinitialised


class StageParams(NamedTuple):
    """One stage: output width, number of blocks, group width of the 3×3 convolutions (the first block strides 2)."""

    width: int
    depth: int
    group_width: int


def stages_from_design(depth: int, w_0: int, w_a: float, w_m: float, group_width: int) -> tuple[StageParams, ...]:
    """The stages of the RegNet design space's quantised linear rule (the paper's Section 3.3).

    Block ``j`` would have width ``w_0 + w_a·j``; widths are snapped to ``w_0·w_m^k`` (integer ``k``) and to
    multiples of 8, blocks of equal width form a stage, and widths are made divisible by the group width.
    Computed in float32, as torchvision computes it (with torch's default dtype), so the widths agree.
    """
    if w_a < 0 or w_0 <= 0 or w_m <= 1 or w_0 % 8 != 0:
        raise ValueError(f"RegNet: invalid design w_0={w_0}, w_a={w_a}, w_m={w_m} (need w_a ≥ 0, w_m > 1, "
                         f"w_0 a positive multiple of 8)")
    f32 = np.float32
    widths_cont = np.arange(depth).astype(f32) * f32(w_a) + f32(w_0)
    capacity = np.round(np.log(widths_cont / f32(w_0)) / f32(np.log(w_m)))
    widths = (np.round(f32(w_0) * np.power(f32(w_m), capacity) / f32(8)) * 8).astype(int).tolist()
    stages: list[list[int]] = []
    for w in widths:
        if stages and stages[-1][0] == w:
            stages[-1][1] += 1
        else:
            stages.append([w, 1])
    out = []
    for w, d in stages:
        g = min(group_width, w)
        out.append(StageParams(make_divisible(w, g), d, g))
    return tuple(out)


def _conv_bn(cin, cout, kernel_size, stride=1, groups=1, activation=nn.ReLU):
    return nn.Conv2dNormActivation(cin, cout, kernel_size, stride, groups=groups, activation_layer=activation)


class BottleneckTransform(nn.Sequential):
    """1×1 ``a`` → grouped 3×3 ``b`` [→ squeeze-and-excitation ``se``] → 1×1 ``c`` (no activation)."""

    def __init__(self, width_in: int, width_out: int, stride: int, group_width: int, se_ratio: float | None):
        layers = OrderedDict(a=_conv_bn(width_in, width_out, 1),
                             b=_conv_bn(width_out, width_out, 3, stride, groups=width_out // group_width))
        if se_ratio:
            layers["se"] = nn.SqueezeExcitation(width_out, int(round(se_ratio * width_in)))
        layers["c"] = _conv_bn(width_out, width_out, 1, activation=None)
        super().__init__(layers)


class ResBottleneckBlock(nn.Module):
    """``activation(proj(x) + f(x))``, ``proj`` a strided 1×1 conv + BN when the shape changes, else the identity."""

    def __init__(self, width_in: int, width_out: int, stride: int, group_width: int, se_ratio: float | None):
        super().__init__()
        if width_in != width_out or stride != 1:
            self.proj = _conv_bn(width_in, width_out, 1, stride, activation=None)
        self.f = BottleneckTransform(width_in, width_out, stride, group_width, se_ratio)
        self.activation = nn.ReLU()

    def forward(self, ctx, x):
        shortcut = ctx.proj(x) if "proj" in self.children() else x
        return ctx.activation(F.add(shortcut, ctx.f(x)))


class RegNet(nn.Module):
    """torchvision's ``RegNet``: a 3×3/2 ``stem`` (32 channels), stages ``trunk_output.block<i>`` of
    :class:`ResBottleneckBlock` s named ``block<i>-<j>``, global pool, ``fc``.

    Args:
        stages: the :class:`StageParams` (:func:`stages_from_design` computes them).
        se_ratio: squeeze-and-excitation width as a fraction of each block's input width (RegNetY: 0.25;
            ``None`` for RegNetX).
        num_classes: outputs of ``fc``.
        stem_width: channels of the stem.
        in_channels: image channels (torchvision: 3).

    Initialisation as torchvision's: convolutions ``N(0, 2/fan_out)``, ``fc``
    ``N(0, 0.01)`` with zero bias. Shape: ``(N, in_channels, H, W)`` → ``(N, num_classes)``.
    """

    def __init__(self, stages: Sequence[StageParams], se_ratio: float | None = None, num_classes: int = 1000,
                 stem_width: int = 32, in_channels: int = 3):
        super().__init__()
        where = "RegNet"
        stages = config_tuple(stages, StageParams, "stages", where)
        _checks.positive_int(num_classes, "num_classes", where)
        _checks.positive_int(stem_width, "stem_width", where)
        _checks.positive_int(in_channels, "in_channels", where)
        self.stem = _conv_bn(in_channels, stem_width, 3, 2)
        trunk, c = OrderedDict(), stem_width
        for i, s in enumerate(stages, start=1):
            stage = nn.Sequential()
            for j in range(s.depth):
                stage.add_module(f"block{i}-{j}", ResBottleneckBlock(c if j == 0 else s.width, s.width,
                                                                     2 if j == 0 else 1, s.group_width, se_ratio))
            trunk[f"block{i}"] = stage
            c = s.width
        self.trunk_output = nn.Sequential(trunk)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(c, num_classes)

    def init(self, key):
        params, state = super().init(key)
        rules = {nn.Conv2d: (nn.init.kaiming_normal(mode="fan_out", nonlinearity="relu"), None),
                 nn.Linear: (nn.init.normal(0.0, 0.01), nn.init.zeros)}
        return reinitialised(self, params, key, rules), state

    def forward(self, ctx, x):
        x, unbatched = batched(x, "RegNet")
        x = ctx.fc(flatten(ctx.avgpool(ctx.trunk_output(ctx.stem(x)))))
        return x[0] if unbatched else x


# torchvision builder name -> the design (depth, w_0, w_a, w_m, group_width) and the SE ratio
ARCHITECTURES = {
    "regnet_y_400mf": ((16, 48, 27.89, 2.09, 8), 0.25),
    "regnet_y_800mf": ((14, 56, 38.84, 2.4, 16), 0.25),
    "regnet_y_1_6gf": ((27, 48, 20.71, 2.65, 24), 0.25),
    "regnet_y_3_2gf": ((21, 80, 42.63, 2.66, 24), 0.25),
    "regnet_y_8gf": ((17, 192, 76.82, 2.19, 56), 0.25),
    "regnet_y_16gf": ((18, 200, 106.23, 2.48, 112), 0.25),
    "regnet_y_32gf": ((20, 232, 115.89, 2.53, 232), 0.25),
    "regnet_y_128gf": ((27, 456, 160.83, 2.52, 264), 0.25),
    "regnet_x_400mf": ((22, 24, 24.48, 2.54, 16), None),
    "regnet_x_800mf": ((16, 56, 35.73, 2.28, 16), None),
    "regnet_x_1_6gf": ((18, 80, 34.01, 2.25, 24), None),
    "regnet_x_3_2gf": ((25, 88, 26.31, 2.25, 48), None),
    "regnet_x_8gf": ((23, 80, 49.56, 2.88, 120), None),
    "regnet_x_16gf": ((22, 216, 55.59, 2.1, 128), None),
    "regnet_x_32gf": ((23, 320, 69.86, 2.0, 168), None),
}

# the layer whose outputs are the classes (the checkpoint loader reads num_classes from it)
CLASSIFIER = "fc"


def build(name: str, **kwargs) -> RegNet:
    """One of torchvision's RegNet builders by name (:data:`ARCHITECTURES`); ``kwargs`` as :class:`RegNet`."""
    _checks.one_of(name, list(ARCHITECTURES), "name", "regnet.build")
    design, se_ratio = ARCHITECTURES[name]
    return RegNet(stages_from_design(*design), se_ratio, **kwargs)
