"""Small helpers shared by the model definitions."""

from __future__ import annotations

from fcnn import _checks


def batched(x, where: str):
    """``(x, unbatched)`` with a batch axis added to a ``(C, H, W)`` input.

    Lets a model run on one image, e.g. under ``jax.vmap`` (torchvision's
    models require a batch axis; fcnn's accept both, like its layers).
    """
    return _checks.spatial_input(x, 2, where)


def flatten(x):
    """``torch.flatten(x, 1)``."""
    return x.reshape(x.shape[0], -1)
