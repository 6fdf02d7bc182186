"""LeNet-5 (LeCun et al., 1998), adaptable to 8×8, 28×28 and 32×32 inputs."""

from __future__ import annotations

from fcnn import _checks, nn
from fcnn.models._util import batched, flatten

_ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}
_POOLS = {"avg": nn.AvgPool2d, "max": nn.MaxPool2d}


class LeNet5(nn.Module):
    """conv5(6) → act → pool2 → conv5(16) → act → pool2 → fc120 → act → fc84 → act → fc10.

    The classic network read 32×32 images; for smaller ones the convolutions
    are zero-padded just enough to keep the architecture:

    * ``input_size ≥ 32``: no padding (the original);
    * ``input_size`` 28 (MNIST): ``conv1`` padding 2, so the rest sees the classic 28→14→10→5;
    * ``input_size`` 8 (digits): both convolutions padding 2: 8→8→4→4→2.

    Args:
        num_classes: outputs of the last layer.
        in_channels: image channels (1 for grey, 3 for RGB).
        input_size: height = width of the input images.
        activation: ``'tanh'`` (the original) or ``'relu'``.
        pool: ``'avg'`` (the original's sub-sampling) or ``'max'``.

    Shape: ``(N, in_channels, S, S)`` or ``(in_channels, S, S)`` → ``(N, num_classes)``
    or ``(num_classes,)``. Params: ``conv1``, ``conv2``, ``fc1``, ``fc2``, ``fc3``
    (``weight``/``bias`` each).
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, input_size: int = 28,
                 activation: str = "tanh", pool: str = "avg"):
        super().__init__()
        where = "LeNet5"
        _checks.positive_int(num_classes, "num_classes", where)
        _checks.positive_int(in_channels, "in_channels", where)
        size = _checks.positive_int(input_size, "input_size", where)
        if size < 5:
            raise ValueError(f"{where}: input_size must be at least 5, got {size}")
        _checks.one_of(activation, list(_ACTIVATIONS), "activation", where)
        _checks.one_of(pool, list(_POOLS), "pool", where)
        pad1 = 0 if size >= 32 else 2
        s1 = (size + 2 * pad1 - 4) // 2
        pad2 = 0 if s1 >= 10 else 2     # keep at least a 2×2 map before the classifier
        s2 = (s1 + 2 * pad2 - 4) // 2
        self.input_size = size
        self.conv1 = nn.Conv2d(in_channels, 6, 5, padding=pad1)
        self.pool1 = _POOLS[pool](2)
        self.conv2 = nn.Conv2d(6, 16, 5, padding=pad2)
        self.pool2 = _POOLS[pool](2)
        self.fc1 = nn.Linear(16 * s2 * s2, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)
        self.act = _ACTIVATIONS[activation]()

    def forward(self, ctx, x):
        x, unbatched = batched(x, "LeNet5")
        x = ctx.pool1(ctx.act(ctx.conv1(x)))
        x = ctx.pool2(ctx.act(ctx.conv2(x)))
        x = ctx.act(ctx.fc1(flatten(x)))
        x = ctx.act(ctx.fc2(x))
        x = ctx.fc3(x)
        return x[0] if unbatched else x
