"""A small U-Net (Ronneberger et al., 2015) for per-pixel classification.

Encoder: double 3×3 conv blocks and 2×2 max-pools; decoder: 2× up-sampling
(transposed convolution, or bilinear interpolation), concatenation with the
encoder's feature map of the same scale (the skip connection) and a double
conv block; a 1×1 conv gives the class scores. Inputs of any size work: when
an odd size was halved, the up-sampled map is zero-padded to its skip's size.
"""

from __future__ import annotations

from fcnn import _checks, nn
from fcnn import functional as F
from fcnn.functional import pad
from fcnn.models._util import batched


class DoubleConv(nn.Sequential):
    """(3×3 conv → BatchNorm → ReLU) × 2; keys ``0.weight``, ``1.running_mean``, ``3.weight`` …"""

    def __init__(self, cin: int, cout: int):
        super().__init__(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                         nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class Up(nn.Module):
    """Up-sample ×2, concatenate the skip connection, :class:`DoubleConv`."""

    def __init__(self, cin: int, cskip: int, cout: int, bilinear: bool):
        super().__init__()
        if bilinear:
            self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
            cup = cin
        else:
            self.up = nn.ConvTranspose2d(cin, cin // 2, 2, stride=2)
            cup = cin // 2
        self.conv = DoubleConv(cup + cskip, cout)

    def forward(self, ctx, x, skip):
        x = ctx.up(x)
        dh, dw = skip.shape[2] - x.shape[2], skip.shape[3] - x.shape[3]
        if dh or dw:
            x = pad(x, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2))
        return ctx.conv(F.cat([skip, x], 1))


class Stages(nn.ModuleList):
    """A list of stages; ``ctx.stages(*inputs, index=i)`` runs stage ``i``."""

    def forward(self, ctx, *inputs, index: int):
        return ctx(str(index), *inputs)


class UNet(nn.Module):
    """U-Net with ``depth`` down/up stages.

    Args:
        in_channels: image channels.
        num_classes: output channels (class scores per pixel).
        base_channels: channels of the first block; doubled at every stage.
        depth: number of 2× down-samplings (the input needs ``H, W ≥ 2**depth``).
        bilinear: up-sample by bilinear interpolation (``align_corners=True``)
            instead of a 2×2 stride-2 transposed convolution.

    Shape: ``(N, in_channels, H, W)`` → ``(N, num_classes, H, W)`` (unbatched
    ``(C, H, W)`` too). Train with ``CrossEntropyLoss`` on ``(N, H, W)`` targets.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 2, base_channels: int = 16, depth: int = 3,
                 bilinear: bool = False):
        super().__init__()
        where = "UNet"
        _checks.positive_int(in_channels, "in_channels", where)
        _checks.positive_int(num_classes, "num_classes", where)
        c = _checks.positive_int(base_channels, "base_channels", where)
        self.depth = _checks.positive_int(depth, "depth", where)
        if not isinstance(bilinear, bool):
            raise TypeError(f"{where}: bilinear must be a bool, got {bilinear!r}")
        if not bilinear and c % 2:
            raise ValueError(f"{where}: base_channels must be even with transposed-conv up-sampling, got {c}")
        self.inc = DoubleConv(in_channels, c)
        widths = [c * 2 ** i for i in range(self.depth + 1)]
        self.down = Stages([nn.Sequential(nn.MaxPool2d(2), DoubleConv(widths[i], widths[i + 1]))
                                   for i in range(self.depth)])
        self.up = Stages([Up(widths[i + 1], widths[i], widths[i], bilinear)
                                 for i in reversed(range(self.depth))])
        self.outc = nn.Conv2d(c, num_classes, 1)

    def forward(self, ctx, x):
        x, unbatched = batched(x, "UNet")
        if min(x.shape[2:]) < 2 ** self.depth:
            raise ValueError(f"UNet: input of size {tuple(x.shape[2:])} is too small for depth={self.depth} "
                             f"(needs H, W >= {2 ** self.depth})")
        skips = [ctx.inc(x)]
        for i in range(self.depth):
            skips.append(ctx.down(skips[-1], index=i))
        x = skips.pop()
        for i in range(self.depth):
            x = ctx.up(x, skips.pop(), index=i)
        out = ctx.outc(x)
        return out[0] if unbatched else out
