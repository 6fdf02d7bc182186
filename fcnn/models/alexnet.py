"""AlexNet (Krizhevsky et al., 2012) as torchvision's ``alexnet`` — the one-tower variant of
"One weird trick" (Krizhevsky, 2014), with torchvision's state_dict keys."""

from __future__ import annotations

from fcnn import _checks, nn
from fcnn.models._util import batched, flatten


class AlexNet(nn.Module):
    """Five convolutions with three max-pools, a 6×6 adaptive average pool, three Linear layers.

    Args:
        num_classes: outputs of ``classifier.6``.
        dropout: probability of the two Dropout layers (``classifier.0``, ``classifier.3``).
        in_channels: image channels (torchvision: 3).

    Keys: ``features.{0,3,6,8,10}``, ``classifier.{1,4,6}``; torch's default
    initialisation. Shape: ``(N, in_channels, H, W)`` → ``(N, num_classes)``,
    ``H, W ≥ 63`` (torchvision's weights say 63×63).
    """

    def __init__(self, num_classes: int = 1000, dropout: float = 0.5, in_channels: int = 3):
        super().__init__()
        where = "AlexNet"
        _checks.positive_int(num_classes, "num_classes", where)
        p = _checks.probability(dropout, "dropout", where)
        _checks.positive_int(in_channels, "in_channels", where)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 64, 11, stride=4, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2))
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(p), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(),
            nn.Dropout(p), nn.Linear(4096, 4096), nn.ReLU(),
            nn.Linear(4096, num_classes))

    def forward(self, ctx, x):
        x, unbatched = batched(x, "AlexNet")
        x = ctx.classifier(flatten(ctx.avgpool(ctx.features(x))))
        return x[0] if unbatched else x


ARCHITECTURES = {"alexnet": {}}

# the layer whose outputs are the classes (the checkpoint loader reads num_classes from it)
CLASSIFIER = "classifier.6"


def build(name: str, **kwargs) -> AlexNet:
    """torchvision's ``alexnet``; ``kwargs`` as :class:`AlexNet`."""
    _checks.one_of(name, list(ARCHITECTURES), "name", "alexnet.build")
    return AlexNet(**kwargs)
