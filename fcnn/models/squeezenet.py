"""SqueezeNet 1.0 and 1.1 (Iandola et al., 2016) as torchvision's ``squeezenet1_0`` / ``squeezenet1_1``."""

from __future__ import annotations

import jax.numpy as jnp

from fcnn import _checks, nn
from fcnn.models._util import batched, flatten

# torchvision's SqueezeNet init: kaiming_uniform_ (fan_in, gain √2) and zero biases; the final conv N(0, 0.01).
_CONV = dict(weight_init=nn.init.kaiming_uniform(), bias_init=nn.init.zeros)


class Fire(nn.Module):
    """A 1×1 "squeeze" convolution feeding 1×1 and 3×3 "expand" convolutions, concatenated; ReLU after each."""

    def __init__(self, inplanes: int, squeeze_planes: int, expand1x1_planes: int, expand3x3_planes: int):
        super().__init__()
        self.squeeze = nn.Conv2d(inplanes, squeeze_planes, 1, **_CONV)
        self.squeeze_activation = nn.ReLU()
        self.expand1x1 = nn.Conv2d(squeeze_planes, expand1x1_planes, 1, **_CONV)
        self.expand1x1_activation = nn.ReLU()
        self.expand3x3 = nn.Conv2d(squeeze_planes, expand3x3_planes, 3, padding=1, **_CONV)
        self.expand3x3_activation = nn.ReLU()

    def forward(self, ctx, x):
        x = ctx.squeeze_activation(ctx.squeeze(x))
        return jnp.concatenate([ctx.expand1x1_activation(ctx.expand1x1(x)),
                                ctx.expand3x3_activation(ctx.expand3x3(x))], axis=1)


# torchvision builder name -> (stem conv (channels, kernel), features: "M" a 3×3/2 ceil-mode max-pool,
# (squeeze, expand) a Fire module with two expand convolutions of `expand` channels each)
ARCHITECTURES = {
    "squeezenet1_0": ((96, 7), ("M", (16, 64), (16, 64), (32, 128), "M", (32, 128), (48, 192), (48, 192),
                                (64, 256), "M", (64, 256))),
    "squeezenet1_1": ((64, 3), ("M", (16, 64), (16, 64), "M", (32, 128), (32, 128), "M", (48, 192), (48, 192),
                                (64, 256), (64, 256))),
}

# the layer whose outputs are the classes (the checkpoint loader reads num_classes from it)
CLASSIFIER = "classifier.1"


class SqueezeNet(nn.Module):
    """torchvision's ``SqueezeNet``: a stride-2 stem, Fire modules and max-pools, a 1×1 conv classifier.

    Args:
        version: ``"1_0"`` or ``"1_1"`` (1.1 has 2.4× fewer FLOPs at the same accuracy).
        num_classes: channels of the final 1×1 convolution (``classifier.1``).
        dropout: probability of the Dropout before it (``classifier.0``).
        in_channels: image channels (torchvision: 3).

    Shape: ``(N, in_channels, H, W)`` → ``(N, num_classes)``; ``H, W ≥ 21`` (1.0) or 17 (1.1).
    """

    def __init__(self, version: str = "1_0", num_classes: int = 1000, dropout: float = 0.5, in_channels: int = 3):
        super().__init__()
        where = "SqueezeNet"
        _checks.one_of(version, ["1_0", "1_1"], "version", where)
        _checks.positive_int(num_classes, "num_classes", where)
        p = _checks.probability(dropout, "dropout", where)
        _checks.positive_int(in_channels, "in_channels", where)
        (stem, kernel), cfg = ARCHITECTURES[f"squeezenet{version}"]
        layers, c = [nn.Conv2d(in_channels, stem, kernel, stride=2, **_CONV), nn.ReLU()], stem
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(3, stride=2, ceil_mode=True))
            else:
                squeeze, expand = v
                layers.append(Fire(c, squeeze, expand, expand))
                c = 2 * expand
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Dropout(p), nn.Conv2d(c, num_classes, 1, weight_init=nn.init.normal(0.0, 0.01), bias_init=nn.init.zeros),
            nn.ReLU(), nn.AdaptiveAvgPool2d((1, 1)))

    def forward(self, ctx, x):
        x, unbatched = batched(x, "SqueezeNet")
        x = flatten(ctx.classifier(ctx.features(x)))
        return x[0] if unbatched else x


def build(name: str, **kwargs) -> SqueezeNet:
    """``squeezenet1_0`` or ``squeezenet1_1``; ``kwargs`` as :class:`SqueezeNet`."""
    _checks.one_of(name, list(ARCHITECTURES), "name", "squeezenet.build")
    return SqueezeNet(name[len("squeezenet"):], **kwargs)
