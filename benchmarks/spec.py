"""The benchmarked networks, described once; every implementation builds exactly these.

All use torch's conventions: NCHW inputs, cross-entropy on logits, and the
same SGD step (lr 0.01, momentum 0.9, torch's momentum form ``buf = m·buf + g``).
"""

from __future__ import annotations

import numpy as np

LR = 0.01
MOMENTUM = 0.9
NUM_CLASSES = 10

# name -> (input shape (C, H, W), description)
MODELS = {
    "lenet": ((1, 28, 28), "LeNet-5: conv5(6, pad 2)-relu-maxpool2-conv5(16)-relu-maxpool2-fc120-relu-fc84-relu-fc10"),
    "bncnn": ((3, 32, 32), "BN-CNN: 2x[conv3x3(32, no bias)-BN-relu], maxpool2, 2x[conv3x3(64)-BN-relu], maxpool2, fc10"),
    "resnet18": ((3, 224, 224), "ResNet-18 (torchvision layout), 1000 classes"),
}

# (model, batch) cases; the CPU default keeps ResNet-18 tiny.
CASES_FULL = [("lenet", 128), ("lenet", 1), ("bncnn", 64), ("resnet18", 4)]
CASES_QUICK = [("lenet", 128), ("lenet", 1), ("bncnn", 64)]

BNCNN_CHANNELS = ((3, 32), (32, 32), "pool", (32, 64), (64, 64), "pool")


def num_classes(model: str) -> int:
    return 1000 if model == "resnet18" else NUM_CLASSES


def data(model: str, batch: int, seed: int = 0):
    """A fixed batch: float32 images (N, C, H, W) and int32 labels."""
    rs = np.random.RandomState(seed)
    shape = MODELS[model][0]
    x = rs.standard_normal((batch,) + shape).astype(np.float32)
    y = rs.randint(0, num_classes(model), size=(batch,)).astype(np.int32)
    return x, y
