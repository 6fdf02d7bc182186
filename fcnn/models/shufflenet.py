"""ShuffleNetV2 (Ma et al., 2018) as torchvision's ``shufflenet_v2_x0_5/x1_0/x1_5/x2_0``, with its state_dict keys
(``conv1.0.weight``, ``stage2.0.branch1.2.weight``, ``stage3.1.branch2.3.weight``, ``fc.bias``)."""

from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp

from fcnn import _checks, nn
from fcnn.functional import channel_shuffle
from fcnn.models._util import batched


def _conv1x1_bn_relu(cin: int, cout: int) -> list:
    return [nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


def _depthwise_bn(c: int, stride: int) -> list:
    return [nn.Conv2d(c, c, 3, stride, 1, groups=c, bias=False), nn.BatchNorm2d(c)]


class InvertedResidual(nn.Module):
    """ShuffleNetV2's unit: the channels split in two (stride 1) or the input taken twice (stride 2); one half
    through 1×1 → depthwise 3×3 → 1×1, the halves concatenated and shuffled (2 groups).

    ``branch1`` (depthwise 3×3 → 1×1, down-sampling units only) and ``branch2`` as torchvision's.
    """

    def __init__(self, inp: int, oup: int, stride: int):
        super().__init__()
        if stride not in (1, 2, 3):
            raise ValueError(f"InvertedResidual: stride must be 1, 2 or 3, got {stride}")
        half = oup // 2
        if stride == 1 and inp != 2 * half:
            raise ValueError(f"InvertedResidual: with stride 1, inp must equal oup // 2 * 2, got inp={inp}, oup={oup}")
        self.stride = stride
        if stride > 1:
            self.branch1 = nn.Sequential(*_depthwise_bn(inp, stride), *_conv1x1_bn_relu(inp, half))
        self.branch2 = nn.Sequential(*_conv1x1_bn_relu(inp if stride > 1 else half, half),
                                     *_depthwise_bn(half, stride), *_conv1x1_bn_relu(half, half))

    def forward(self, ctx, x):
        if self.stride == 1:
            x1, x2 = jnp.split(x, 2, axis=1)
            out = jnp.concatenate([x1, ctx.branch2(x2)], axis=1)
        else:
            out = jnp.concatenate([ctx.branch1(x), ctx.branch2(x)], axis=1)
        return channel_shuffle(out, 2)


class ShuffleNetV2(nn.Module):
    """torchvision's ``ShuffleNetV2``: 3×3/2 conv, max-pool, three stages of units, 1×1 ``conv5``, mean, ``fc``.

    Args:
        stages_repeats: units in ``stage2``, ``stage3``, ``stage4``.
        stages_out_channels: channels of ``conv1``, the three stages and ``conv5``.
        num_classes: outputs of ``fc``.
        in_channels: image channels (torchvision: 3).

    torch's default initialisation (as torchvision's). Shape:
    ``(N, in_channels, H, W)`` → ``(N, num_classes)``.
    """

    def __init__(self, stages_repeats: Sequence[int], stages_out_channels: Sequence[int], num_classes: int = 1000,
                 in_channels: int = 3):
        super().__init__()
        where = "ShuffleNetV2"
        repeats = tuple(_checks.positive_int(n, "stages_repeats", where) for n in stages_repeats)
        channels = tuple(_checks.positive_int(c, "stages_out_channels", where) for c in stages_out_channels)
        if len(repeats) != 3:
            raise ValueError(f"{where}: stages_repeats must be 3 positive ints, got {stages_repeats!r}")
        if len(channels) != 5:
            raise ValueError(f"{where}: stages_out_channels must be 5 positive ints, got {stages_out_channels!r}")
        _checks.positive_int(num_classes, "num_classes", where)
        _checks.positive_int(in_channels, "in_channels", where)
        self.conv1 = nn.Sequential(nn.Conv2d(in_channels, channels[0], 3, 2, 1, bias=False),
                                   nn.BatchNorm2d(channels[0]), nn.ReLU())
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        c = channels[0]
        for i, (n, out) in enumerate(zip(repeats, channels[1:4])):
            self.add_module(f"stage{i + 2}", nn.Sequential(
                InvertedResidual(c, out, 2), *(InvertedResidual(out, out, 1) for _ in range(n - 1))))
            c = out
        self.conv5 = nn.Sequential(*_conv1x1_bn_relu(c, channels[4]))
        self.fc = nn.Linear(channels[4], num_classes)

    def forward(self, ctx, x):
        x, unbatched = batched(x, "ShuffleNetV2")
        x = ctx.stage4(ctx.stage3(ctx.stage2(ctx.maxpool(ctx.conv1(x)))))
        x = ctx.fc(ctx.conv5(x).mean(axis=(2, 3)))
        return x[0] if unbatched else x


# torchvision builder name -> channels of conv1, stage2-4 and conv5 (the stages repeat 4, 8 and 4 units)
ARCHITECTURES = {
    "shufflenet_v2_x0_5": (24, 48, 96, 192, 1024),
    "shufflenet_v2_x1_0": (24, 116, 232, 464, 1024),
    "shufflenet_v2_x1_5": (24, 176, 352, 704, 1024),
    "shufflenet_v2_x2_0": (24, 244, 488, 976, 2048),
}

# the layer whose outputs are the classes (the checkpoint loader reads num_classes from it)
CLASSIFIER = "fc"


def build(name: str, **kwargs) -> ShuffleNetV2:
    """One of torchvision's ShuffleNetV2 builders by name (:data:`ARCHITECTURES`); ``kwargs`` as :class:`ShuffleNetV2`."""
    _checks.one_of(name, list(ARCHITECTURES), "name", "shufflenet.build")
    return ShuffleNetV2((4, 8, 4), ARCHITECTURES[name], **kwargs)
