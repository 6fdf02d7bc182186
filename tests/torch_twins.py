"""Torch twins of fcnn.models shared by several test files (same module names → same state_dict keys)."""

import torch
from torch import nn as T


class TDoubleConv(T.Sequential):
    def __init__(self, cin, cout):
        super().__init__(T.Conv2d(cin, cout, 3, padding=1, bias=False), T.BatchNorm2d(cout), T.ReLU(),
                         T.Conv2d(cout, cout, 3, padding=1, bias=False), T.BatchNorm2d(cout), T.ReLU())


class TUp(T.Module):
    def __init__(self, cin, cskip, cout, bilinear):
        super().__init__()
        if bilinear:
            self.up, cup = T.Upsample(scale_factor=2, mode="bilinear", align_corners=True), cin
        else:
            self.up, cup = T.ConvTranspose2d(cin, cin // 2, 2, stride=2), cin // 2
        self.conv = TDoubleConv(cup + cskip, cout)

    def forward(self, x, skip):
        x = self.up(x)
        dh, dw = skip.shape[2] - x.shape[2], skip.shape[3] - x.shape[3]
        x = T.functional.pad(x, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2))
        return self.conv(torch.cat([skip, x], 1))


class TUNet(T.Module):
    """fcnn.models.UNet(in_channels, num_classes, base_channels, depth, bilinear)."""

    def __init__(self, in_channels=1, num_classes=2, base_channels=16, depth=3, bilinear=False):
        super().__init__()
        w = [base_channels * 2 ** i for i in range(depth + 1)]
        self.inc = TDoubleConv(in_channels, base_channels)
        self.down = T.ModuleList([T.Sequential(T.MaxPool2d(2), TDoubleConv(w[i], w[i + 1])) for i in range(depth)])
        self.up = T.ModuleList([TUp(w[i + 1], w[i], w[i], bilinear) for i in reversed(range(depth))])
        self.outc = T.Conv2d(base_channels, num_classes, 1)

    def forward(self, x):
        skips = [self.inc(x)]
        for down in self.down:
            skips.append(down(skips[-1]))
        x = skips.pop()
        for up in self.up:
            x = up(x, skips.pop())
        return self.outc(x)
