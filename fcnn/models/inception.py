"""Inception-v3 (Szegedy et al., 2016) as torchvision's ``inception_v3``, with its state_dict keys
(``Conv2d_1a_3x3.conv.weight``, ``Mixed_5b.branch5x5_1.bn.running_var``, ``AuxLogits.fc.bias``, ``fc.weight``)."""

from __future__ import annotations

from typing import NamedTuple

import jax

from fcnn import _checks, nn
from fcnn import functional as F
from fcnn.models._util import batched, flatten, imagenet_to_half_range


class BasicConv2d(nn.Module):
    """Convolution without bias → BatchNorm (eps 0.001) → ReLU, keys ``conv`` and ``bn`` (GoogLeNet, Inception-v3).

    ``conv_kwargs`` are :class:`fcnn.nn.Conv2d`'s (``kernel_size``, ``stride``,
    ``padding``, ``weight_init``).
    """

    def __init__(self, in_channels: int, out_channels: int, **conv_kwargs):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **conv_kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)
        self.relu = nn.ReLU()

    def forward(self, ctx, x):
        return ctx.relu(ctx.bn(ctx.conv(x)))


def check_head_arguments(num_classes, aux_logits, transform_input, in_channels, where: str) -> None:
    """The argument checks GoogLeNet and Inception-v3 share."""
    _checks.positive_int(num_classes, "num_classes", where)
    _checks.boolean(aux_logits, "aux_logits", where)
    _checks.boolean(transform_input, "transform_input", where)
    _checks.positive_int(in_channels, "in_channels", where)
    if transform_input and in_channels != 3:
        raise ValueError(f"{where}: transform_input=True needs in_channels=3 (RGB), got {in_channels}")


def prepared_input(x, transform_input: bool, where: str):
    """``(x, unbatched)``: a batch axis added to a ``(C, H, W)`` input, and with ``transform_input`` ImageNet's
    normalisation turned into ``[-1, 1]`` scaling (GoogLeNet, Inception-v3)."""
    x, unbatched = batched(x, where)
    return (imagenet_to_half_range(x) if transform_input else x), unbatched


class InceptionOutputs(NamedTuple):
    """What :class:`Inception3` returns when training with ``aux_logits=True`` (torchvision's namedtuple)."""

    logits: jax.Array
    aux_logits: jax.Array


# torchvision initialises Inception-v3's convolutions and Linear layers with N(0, 0.1²) truncated to
# [-2, 2], except the auxiliary classifier's fc, N(0, 0.001²); every bias that exists is torch's default.
_INIT = nn.init.trunc_normal(0.0, 0.1, -2.0, 2.0)


def _conv(cin: int, cout: int, kernel_size, **kwargs) -> BasicConv2d:
    return BasicConv2d(cin, cout, kernel_size=kernel_size, weight_init=_INIT, **kwargs)


def _cat(*branches):
    return F.cat(branches, 1)


class InceptionA(nn.Module):
    """35×35 block: 1×1, 5×5, double 3×3 and pooled 1×1 branches."""

    def __init__(self, in_channels: int, pool_features: int):
        super().__init__()
        self.branch1x1 = _conv(in_channels, 64, 1)
        self.branch5x5_1 = _conv(in_channels, 48, 1)
        self.branch5x5_2 = _conv(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = _conv(in_channels, 64, 1)
        self.branch3x3dbl_2 = _conv(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = _conv(96, 96, 3, padding=1)
        self.branch_pool = _conv(in_channels, pool_features, 1)

    def forward(self, ctx, x):
        b5 = ctx.branch5x5_2(ctx.branch5x5_1(x))
        b3 = ctx.branch3x3dbl_3(ctx.branch3x3dbl_2(ctx.branch3x3dbl_1(x)))
        pool = ctx.branch_pool(F.avg_pool2d(x, 3, stride=1, padding=1))
        return _cat(ctx.branch1x1(x), b5, b3, pool)


class InceptionB(nn.Module):
    """Grid reduction 35→17: strided 3×3, strided double 3×3 and max-pool branches."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.branch3x3 = _conv(in_channels, 384, 3, stride=2)
        self.branch3x3dbl_1 = _conv(in_channels, 64, 1)
        self.branch3x3dbl_2 = _conv(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = _conv(96, 96, 3, stride=2)

    def forward(self, ctx, x):
        b3 = ctx.branch3x3dbl_3(ctx.branch3x3dbl_2(ctx.branch3x3dbl_1(x)))
        return _cat(ctx.branch3x3(x), b3, F.max_pool2d(x, 3, stride=2))


class InceptionC(nn.Module):
    """17×17 block with factorised 7×7 convolutions (1×7 and 7×1) of ``channels_7x7`` channels."""

    def __init__(self, in_channels: int, channels_7x7: int):
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = _conv(in_channels, 192, 1)
        self.branch7x7_1 = _conv(in_channels, c7, 1)
        self.branch7x7_2 = _conv(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = _conv(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = _conv(in_channels, c7, 1)
        self.branch7x7dbl_2 = _conv(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = _conv(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = _conv(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = _conv(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = _conv(in_channels, 192, 1)

    def forward(self, ctx, x):
        b7 = ctx.branch7x7_3(ctx.branch7x7_2(ctx.branch7x7_1(x)))
        b7dbl = x
        for i in range(1, 6):
            b7dbl = ctx(f"branch7x7dbl_{i}", b7dbl)
        pool = ctx.branch_pool(F.avg_pool2d(x, 3, stride=1, padding=1))
        return _cat(ctx.branch1x1(x), b7, b7dbl, pool)


class InceptionD(nn.Module):
    """Grid reduction 17→8: 1×1 → strided 3×3, 1×1 → 1×7 → 7×1 → strided 3×3, and max-pool branches."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.branch3x3_1 = _conv(in_channels, 192, 1)
        self.branch3x3_2 = _conv(192, 320, 3, stride=2)
        self.branch7x7x3_1 = _conv(in_channels, 192, 1)
        self.branch7x7x3_2 = _conv(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = _conv(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = _conv(192, 192, 3, stride=2)

    def forward(self, ctx, x):
        b3 = ctx.branch3x3_2(ctx.branch3x3_1(x))
        b7 = x
        for i in range(1, 5):
            b7 = ctx(f"branch7x7x3_{i}", b7)
        return _cat(b3, b7, F.max_pool2d(x, 3, stride=2))


class InceptionE(nn.Module):
    """8×8 block whose 3×3 branches end in parallel 1×3 and 3×1 convolutions, concatenated."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.branch1x1 = _conv(in_channels, 320, 1)
        self.branch3x3_1 = _conv(in_channels, 384, 1)
        self.branch3x3_2a = _conv(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = _conv(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = _conv(in_channels, 448, 1)
        self.branch3x3dbl_2 = _conv(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = _conv(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = _conv(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = _conv(in_channels, 192, 1)

    def forward(self, ctx, x):
        b3 = ctx.branch3x3_1(x)
        b3 = _cat(ctx.branch3x3_2a(b3), ctx.branch3x3_2b(b3))
        b3dbl = ctx.branch3x3dbl_2(ctx.branch3x3dbl_1(x))
        b3dbl = _cat(ctx.branch3x3dbl_3a(b3dbl), ctx.branch3x3dbl_3b(b3dbl))
        pool = ctx.branch_pool(F.avg_pool2d(x, 3, stride=1, padding=1))
        return _cat(ctx.branch1x1(x), b3, b3dbl, pool)


class InceptionAux(nn.Module):
    """The auxiliary classifier on the 17×17 grid: 5×5/3 average pool → 1×1 conv → 5×5 conv → pool → ``fc``."""

    def __init__(self, in_channels: int, num_classes: int):
        super().__init__()
        self.conv0 = _conv(in_channels, 128, 1)
        self.conv1 = _conv(128, 768, 5)
        self.fc = nn.Linear(768, num_classes, weight_init=nn.init.trunc_normal(0.0, 0.001, -2.0, 2.0))

    def forward(self, ctx, x):
        x = ctx.conv1(ctx.conv0(F.avg_pool2d(x, 5, stride=3)))
        return ctx.fc(flatten(F.adaptive_avg_pool2d(x, (1, 1))))


class Inception3(nn.Module):
    """torchvision's ``Inception3``.

    Args:
        num_classes: outputs of ``fc`` (and of ``AuxLogits.fc``).
        aux_logits: build the auxiliary classifier ``AuxLogits``; when training,
            the model then returns :class:`InceptionOutputs` ``(logits, aux_logits)``
            (torchvision's default, True). In eval mode it returns the logits only.
        transform_input: re-normalise ImageNet-normalised input to ``[-1, 1]``
            first, as torchvision's published weights expect (see
            :func:`fcnn.models.load_torchvision`).
        dropout: probability of the Dropout before ``fc``.
        in_channels: image channels (torchvision: 3; ``transform_input`` needs 3).

    Initialisation as torchvision's ``init_weights=True``. Shape:
    ``(N, in_channels, H, W)`` → ``(N, num_classes)``; ``H, W ≥ 75`` (the
    auxiliary classifier, run only in training, needs ``H, W ≥ 299``: its
    5×5 convolution reads the 17×17 grid pooled 5×5 with stride 3).
    """

    def __init__(self, num_classes: int = 1000, aux_logits: bool = True, transform_input: bool = False,
                 dropout: float = 0.5, in_channels: int = 3):
        super().__init__()
        check_head_arguments(num_classes, aux_logits, transform_input, in_channels, "Inception3")
        self.aux_logits, self.transform_input = aux_logits, transform_input
        p = _checks.probability(dropout, "dropout", "Inception3")
        self.Conv2d_1a_3x3 = _conv(in_channels, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = _conv(32, 32, 3)
        self.Conv2d_2b_3x3 = _conv(32, 64, 3, padding=1)
        self.maxpool1 = nn.MaxPool2d(3, stride=2)
        self.Conv2d_3b_1x1 = _conv(64, 80, 1)
        self.Conv2d_4a_3x3 = _conv(80, 192, 3)
        self.maxpool2 = nn.MaxPool2d(3, stride=2)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        if aux_logits:
            self.AuxLogits = InceptionAux(768, num_classes)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280)
        self.Mixed_7c = InceptionE(2048)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p)
        self.fc = nn.Linear(2048, num_classes, weight_init=_INIT)

    def forward(self, ctx, x):
        x, unbatched = prepared_input(x, self.transform_input, "Inception3")
        for name in ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1",
                     "Conv2d_4a_3x3", "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b",
                     "Mixed_6c", "Mixed_6d", "Mixed_6e"):
            x = ctx(name, x)
        aux = ctx.AuxLogits(x) if self.aux_logits and ctx.train else None
        x = ctx.Mixed_7c(ctx.Mixed_7b(ctx.Mixed_7a(x)))
        x = ctx.fc(flatten(ctx.dropout(ctx.avgpool(x))))
        if unbatched:
            x, aux = x[0], None if aux is None else aux[0]
        return x if aux is None else InceptionOutputs(x, aux)


ARCHITECTURES = {"inception_v3": {}}

# the layer whose outputs are the classes (the checkpoint loader reads num_classes from it)
CLASSIFIER = "fc"


def build(name: str, **kwargs) -> Inception3:
    """torchvision's ``inception_v3``; ``kwargs`` as :class:`Inception3`."""
    _checks.one_of(name, list(ARCHITECTURES), "name", "inception.build")
    return Inception3(**kwargs)
