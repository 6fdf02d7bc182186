"""Small torch networks for the converter's tests: torch glue between modules, and things fcnn refuses.

``glue_net`` is also a builder for ``fcnn convert convert_nets:glue_net``.
"""

import torch
import torch.nn.functional as F
from torch import nn


class Branch(nn.Module):
    """A residual branch with a parameter of its own (a layer scale) and an in-place activation."""

    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1, groups=c)
        self.bn = nn.BatchNorm2d(c)
        self.scale = nn.Parameter(torch.linspace(0.5, 1.5, c).reshape(c, 1, 1))

    def forward(self, x):
        y = F.relu(self.bn(self.conv(x)), inplace=True)
        return x + self.scale * y


class GlueNet(nn.Module):
    """Tensor code between modules as CNNs write it: chunk, cat, permute, interpolate, pad, in-place +=, …"""

    def __init__(self, num_classes=5):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8),
                                  nn.ReLU(inplace=True))
        self.blocks = nn.ModuleList([Branch(4), Branch(4)])
        self.shuffle = nn.ChannelShuffle(2)
        self.mix = nn.Conv2d(8, 6, 1)
        self.heads = nn.ModuleDict({"a": nn.Linear(24, num_classes), "b": nn.Linear(12, num_classes)})
        self.relu = nn.ReLU()

    def forward(self, x):
        x = self.stem(x)
        a, b = x.chunk(2, dim=1)
        for blk in self.blocks:
            a = blk(a)
        x = self.shuffle(torch.cat([a, b], dim=1))
        x = x.permute(0, 2, 3, 1).contiguous().transpose(1, 2).permute(0, 3, 2, 1)
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        x = F.pad(x, (1, 0, 0, 1))
        x = self.relu(self.mix(x))
        gate = x.mean([2, 3], keepdim=True).sigmoid()
        x = x * gate
        x += 0.5
        x = F.adaptive_avg_pool2d(x, (2, 2))
        n = x.size(0)
        feats = x.contiguous().view(n, -1)
        first, second = torch.split(feats, [12, 12], dim=1)
        logits = self.heads["a"](torch.flatten(x, 1)) + self.relu(self.heads["b"](second - first))
        return logits.softmax(dim=1) * x.shape[1] + torch.sigmoid(logits)


def glue_net():
    return GlueNet()


class DropNet(nn.Module):
    """Dropout written as glue: ``F.dropout(x, p, training=self.training)``."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 64)

    def forward(self, x):
        return F.dropout(self.fc(x), 0.5, training=self.training)


class DataDependent(nn.Module):
    """Python control flow on a tensor's value: torch.fx cannot trace it."""

    def forward(self, x):
        if x.sum() > 0:
            return x
        return -x


class Unsupported(nn.Module):
    """Four things fcnn cannot convert, in different places."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.inner = nn.Sequential(nn.ReLU(), nn.Softmin(dim=1))
        self.gate = DataDependent()

    def forward(self, x):
        x = torch.roll(self.conv(x), 1, 2)
        x = self.gate(self.inner(x))
        return x.cumsum(1)


def tiny_net():
    """A small CNN for the command-line test."""
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, 3))
