"""Torch twins of fcnn.models shared by several test files (same module names → same state_dict keys).

torchvision is not a dependency: its ResNet and vgg*_bn are restated here with
the same attribute names, which is what fixes the state_dict keys.
"""

import torch
from torch import nn as T


# ---------------------------------------------------------------- ResNet

class TBasicBlock(T.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = T.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = T.BatchNorm2d(planes)
        self.relu = T.ReLU(inplace=True)
        self.conv2 = T.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = T.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class TBottleneck(T.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = T.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = T.BatchNorm2d(planes)
        self.conv2 = T.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = T.BatchNorm2d(planes)
        self.conv3 = T.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = T.BatchNorm2d(planes * 4)
        self.relu = T.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class TResNet(T.Module):
    """torchvision.models.ResNet(block, layers, num_classes); the defaults give ResNet-18."""

    def __init__(self, block=TBasicBlock, layers=(2, 2, 2, 2), num_classes=1000):
        super().__init__()
        self.inplanes = 64
        self.conv1 = T.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = T.BatchNorm2d(64)
        self.relu = T.ReLU(inplace=True)
        self.maxpool = T.MaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], 2)
        self.layer3 = self._make_layer(block, 256, layers[2], 2)
        self.layer4 = self._make_layer(block, 512, layers[3], 2)
        self.avgpool = T.AdaptiveAvgPool2d((1, 1))
        self.fc = T.Linear(512 * block.expansion, num_classes)

    def _make_layer(self, block, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = T.Sequential(T.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                                      T.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return T.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


# ---------------------------------------------------------------- LeNet-5 and VGG

class TLeNet5(T.Module):
    """fcnn.models.LeNet5; the defaults give ``input_size=28`` (tanh, average pooling, conv1 padded by 2).

    ``pad1``/``pad2`` pad conv1/conv2, ``s2`` is the side after the second pooling;
    ``act`` and ``pool`` are torch module classes.
    """

    def __init__(self, num_classes=10, in_channels=1, pad1=2, pad2=0, s2=5, act=T.Tanh, pool=T.AvgPool2d):
        super().__init__()
        self.conv1 = T.Conv2d(in_channels, 6, 5, padding=pad1)
        self.pool1 = pool(2)
        self.conv2 = T.Conv2d(6, 16, 5, padding=pad2)
        self.pool2 = pool(2)
        self.fc1 = T.Linear(16 * s2 * s2, 120)
        self.fc2 = T.Linear(120, 84)
        self.fc3 = T.Linear(84, num_classes)
        self.act = act()

    def forward(self, x):
        x = self.pool1(self.act(self.conv1(x)))
        x = self.pool2(self.act(self.conv2(x)))
        x = self.act(self.fc1(torch.flatten(x, 1)))
        return self.fc3(self.act(self.fc2(x)))


class TVGG(T.Module):
    """fcnn.models.VGG(cfg, in_channels, num_classes, batch_norm=True, hidden, dropout, pool_size),
    laid out like torchvision's vgg*_bn."""

    def __init__(self, cfg, in_channels=3, num_classes=10, hidden=256, dropout=0.5, pool_size=1):
        super().__init__()
        layers, c = [], in_channels
        for v in cfg:
            if v == "M":
                layers.append(T.MaxPool2d(2, 2))
            else:
                layers += [T.Conv2d(c, v, 3, padding=1, bias=False), T.BatchNorm2d(v), T.ReLU()]
                c = v
        self.features = T.Sequential(*layers)
        self.avgpool = T.AdaptiveAvgPool2d(pool_size)
        self.classifier = T.Sequential(T.Dropout(dropout), T.Linear(c * pool_size * pool_size, hidden), T.ReLU(),
                                       T.Dropout(dropout), T.Linear(hidden, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


# ---------------------------------------------------------------- U-Net

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
