"""ConvNeXt (Liu et al., 2022) as torchvision's ``convnext_tiny/small/base/large``, with its state_dict keys
(``features.0.0.weight``, ``features.1.0.layer_scale``, ``features.1.0.block.3.weight``, ``classifier.2.bias``)."""

from __future__ import annotations

from typing import NamedTuple, Sequence


from fcnn import _checks, nn
from fcnn import functional as F
from fcnn.models._util import batched, config_tuple, reinitialised


class StageConfig(NamedTuple):
    """One stage: its channels, the channels of the down-sampling layer after it (``None`` for the last), blocks."""

    input_channels: int
    out_channels: int | None
    num_layers: int


def _layer_norm_2d(c: int) -> nn.LayerNorm2d:
    return nn.LayerNorm2d(c, eps=1e-6)


class CNBlock(nn.Module):
    """Depthwise 7×7 conv → LayerNorm → Linear (4×) → GELU → Linear, channels-last between the two ``Permute`` s;
    scaled per channel by the learnt ``layer_scale`` ``(dim, 1, 1)``, stochastic depth, residual sum."""

    def __init__(self, dim: int, layer_scale: float, stochastic_depth_prob: float):
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv2d(dim, dim, 7, padding=3, groups=dim), nn.Permute([0, 2, 3, 1]), nn.LayerNorm(dim, eps=1e-6),
            nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim), nn.Permute([0, 3, 1, 2]))
        self.layer_scale = nn.Parameter((dim, 1, 1), nn.init.constant(layer_scale))
        self.stochastic_depth = nn.StochasticDepth(stochastic_depth_prob, "row")

    def forward(self, ctx, x):
        out = ctx.stochastic_depth(ctx.layer_scale * ctx.block(x))
        return F.add(out, x)


class ConvNeXt(nn.Module):
    """torchvision's ``ConvNeXt``: a 4×4/4 "patchify" stem with LayerNorm, stages of :class:`CNBlock` s joined by
    LayerNorm + 2×2/2 convolutions, global pool, ``classifier`` LayerNorm → Flatten → Linear.

    Args:
        stages: the :class:`StageConfig` s (:data:`ARCHITECTURES` has the paper's).
        stochastic_depth_prob: the last block's; block ``i`` of ``n`` uses ``p · i / (n − 1)``.
        layer_scale: initial value of every block's ``layer_scale``.
        num_classes: outputs of ``classifier.2``.
        in_channels: image channels (torchvision: 3).

    Initialisation as torchvision's: convolutions and Linear layers
    ``N(0, 0.02²)`` truncated to ``[-2, 2]``, zero biases. Shape:
    ``(N, in_channels, H, W)`` → ``(N, num_classes)``; ``H, W ≥ 32``.
    """

    def __init__(self, stages: Sequence[StageConfig], stochastic_depth_prob: float = 0.0, layer_scale: float = 1e-6,
                 num_classes: int = 1000, in_channels: int = 3):
        super().__init__()
        where = "ConvNeXt"
        stages = config_tuple(stages, StageConfig, "stages", where)
        sd = _checks.probability(stochastic_depth_prob, "stochastic_depth_prob", where)
        if isinstance(layer_scale, bool) or not isinstance(layer_scale, (int, float)):
            raise TypeError(f"{where}: layer_scale must be a number, got {layer_scale!r}")
        _checks.positive_int(num_classes, "num_classes", where)
        _checks.positive_int(in_channels, "in_channels", where)
        layers = [nn.Conv2dNormActivation(in_channels, stages[0].input_channels, 4, 4, padding=0,
                                          norm_layer=_layer_norm_2d, activation_layer=None, bias=True)]
        total, index = sum(s.num_layers for s in stages), 0
        for s in stages:
            blocks = []
            for _ in range(s.num_layers):
                blocks.append(CNBlock(s.input_channels, layer_scale, sd * index / (total - 1.0)))
                index += 1
            layers.append(nn.Sequential(*blocks))
            if s.out_channels is not None:
                layers.append(nn.Sequential(_layer_norm_2d(s.input_channels),
                                            nn.Conv2d(s.input_channels, s.out_channels, 2, stride=2)))
        last = stages[-1].out_channels or stages[-1].input_channels
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(_layer_norm_2d(last), nn.Flatten(1), nn.Linear(last, num_classes))

    def init(self, key):
        params, state = super().init(key)
        init = (nn.init.trunc_normal(0.0, 0.02), nn.init.zeros)
        return reinitialised(self, params, key, {nn.Conv2d: init, nn.Linear: init}), state

    def forward(self, ctx, x):
        x, unbatched = batched(x, "ConvNeXt")
        x = ctx.classifier(ctx.avgpool(ctx.features(x)))
        return x[0] if unbatched else x


def _stages(widths, depths) -> tuple[StageConfig, ...]:
    outs = tuple(widths[1:]) + (None,)
    return tuple(StageConfig(w, o, d) for w, o, d in zip(widths, outs, depths))


# torchvision builder name -> (stages, stochastic_depth_prob)
ARCHITECTURES = {
    "convnext_tiny": (_stages((96, 192, 384, 768), (3, 3, 9, 3)), 0.1),
    "convnext_small": (_stages((96, 192, 384, 768), (3, 3, 27, 3)), 0.4),
    "convnext_base": (_stages((128, 256, 512, 1024), (3, 3, 27, 3)), 0.5),
    "convnext_large": (_stages((192, 384, 768, 1536), (3, 3, 27, 3)), 0.5),
}

# the layer whose outputs are the classes (the checkpoint loader reads num_classes from it)
CLASSIFIER = "classifier.2"


def build(name: str, **kwargs) -> ConvNeXt:
    """One of torchvision's ConvNeXt builders by name (:data:`ARCHITECTURES`); ``kwargs`` as :class:`ConvNeXt`
    (``stochastic_depth_prob`` defaults to the variant's)."""
    _checks.one_of(name, list(ARCHITECTURES), "name", "convnext.build")
    stages, sd = ARCHITECTURES[name]
    kwargs.setdefault("stochastic_depth_prob", sd)
    return ConvNeXt(stages, **kwargs)
