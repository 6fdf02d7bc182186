"""Helpers shared by the model definitions."""

from __future__ import annotations

import jax
import jax.numpy as jnp

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


def make_divisible(value: float, divisor: int, min_value: int | None = None) -> int:
    """``value`` rounded to the nearest multiple of ``divisor``, never below ``min_value`` (default
    ``divisor``) nor 10 % below ``value`` — the channel rounding of the MobileNet/EfficientNet papers'
    reference code, which torchvision's ``_make_divisible`` follows."""
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


# ImageNet's per-channel normalisation constants (torchvision's ``ImageClassification`` transform).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def imagenet_to_half_range(x):
    """Re-normalise ImageNet-normalised RGB ``(N, 3, H, W)`` to ``(x_raw - 0.5) / 0.5`` per channel.

    The checkpoints of GoogLeNet and Inception-v3 were ported from TensorFlow, which scaled pixels
    to ``[-1, 1]``; torchvision's ``transform_input=True`` undoes its own normalisation this way.
    """
    # the constants in Python floats first, then rounded once to x's dtype, as torchvision's
    scale = jnp.asarray([s / 0.5 for s in IMAGENET_STD], x.dtype).reshape(1, 3, 1, 1)
    shift = jnp.asarray([(m - 0.5) / 0.5 for m in IMAGENET_MEAN], x.dtype).reshape(1, 3, 1, 1)
    return x * scale + shift


def reinitialised(model, params: dict, key, rules: dict) -> dict:
    """``params`` with the weights and biases of ``model``'s layers re-drawn by type.

    ``rules`` maps a layer type (``nn.Conv2d``, ``nn.Linear``) to ``(weight_init, bias_init)``, initialisers
    ``(key, shape, dtype) -> array``; ``None`` keeps the layer's own. This is the loop over ``self.modules()``
    that ends torchvision's newer model constructors, for models built from blocks
    (``Conv2dNormActivation``, ``SqueezeExcitation``) that take no initialisers of their own.
    """
    params = jax.tree_util.tree_map(lambda a: a, params)  # a copy of the dicts; the arrays are shared
    for i, (path, layer) in enumerate(model.named_layers()):
        inits = next((r for t, r in rules.items() if isinstance(layer, t)), None)
        if inits is None:
            continue
        node = params
        for part in path.split("."):
            node = node[part]
        for j, (name, init) in enumerate(zip(("weight", "bias"), inits)):
            if init is not None and name in node:
                node[name] = init(jax.random.fold_in(key, 2 * i + j), node[name].shape, node[name].dtype)
    return params


def config_tuple(values, kind: type, name: str, where: str) -> tuple:
    """``tuple(values)``, checked to be a non-empty sequence of ``kind`` (a family's per-stage NamedTuple)."""
    values = tuple(values)
    if not values or not all(isinstance(v, kind) for v in values):
        raise TypeError(f"{where}: {name} must be a non-empty sequence of {kind.__name__}, got {values!r}")
    return values
