"""Loading torchvision's published checkpoint files (and fine-tuned ones in its format) into fcnn's models."""

from __future__ import annotations

from collections import OrderedDict
from typing import Mapping

from fcnn.interop.torch import load_state_dict, read_checkpoint_file
from fcnn.models import densenet, googlenet, inception

# The auxiliary classifiers stored in the published GoogLeNet / Inception-v3 files, and whether torchvision's
# builder keeps them by default when it loads those weights.
_AUX_HEADS = {googlenet: (("aux1.", "aux2."), False), inception: (("AuxLogits.",), True)}


def _family(name: str):
    from fcnn import models

    for family in models.FAMILIES:
        if name in family.ARCHITECTURES:
            return family
    raise ValueError(f"load_torchvision: unknown torchvision model {name!r}; known: {', '.join(models.torchvision_names())}")


def _without(state_dict: Mapping, prefixes: tuple[str, ...]) -> "OrderedDict":
    return OrderedDict((k, v) for k, v in state_dict.items() if not k.startswith(prefixes))


def load_torchvision(name: str, path, *, strict: bool = True, **kwargs):
    """Build torchvision's model ``name`` and load a checkpoint file in torchvision's format into it.

    Args:
      name: a torchvision builder name (``"resnet50"``, ``"mobilenet_v2"``, …;
        :func:`fcnn.models.torchvision_names`).
      path: the file: ``.safetensors`` is read without torch; anything else
        (torchvision's ``.pth``) with ``torch.load(weights_only=True)``, which
        runs no pickled code. A ``{"state_dict": ...}`` wrapper is accepted.
      strict: as :func:`fcnn.interop.torch.load_state_dict`: missing or
        unexpected keys raise (shape mismatches always do).
      kwargs: the builder's arguments. ``num_classes`` defaults to the
        checkpoint's. As torchvision's builders do when given weights,
        ``googlenet`` and ``inception_v3`` default to ``transform_input=True``,
        and their auxiliary classifiers, stored in the published files, are
        dropped unless ``aux_logits=True`` (``inception_v3``'s default keeps them).

    Returns:
      ``(model, params, state)``.

    The published DenseNet files use older key names (``denselayer1.norm.1``),
    renamed here as torchvision renames them.
    """
    family = _family(name)
    state_dict = read_checkpoint_file(path)
    if family is densenet:
        state_dict = densenet.rename_legacy_keys(state_dict)
    if family in _AUX_HEADS:
        prefixes, keep_by_default = _AUX_HEADS[family]
        kwargs.setdefault("transform_input", True)
        kwargs.setdefault("aux_logits", keep_by_default)
        if not kwargs["aux_logits"]:
            state_dict = _without(state_dict, prefixes)
    classifier = family.CLASSIFIER if isinstance(family.CLASSIFIER, str) else family.CLASSIFIER[name]
    classifier = f"{classifier}.weight"
    if "num_classes" not in kwargs:
        if classifier not in state_dict:
            raise ValueError(f"load_torchvision: {path} has no {classifier!r}, so it does not hold a torchvision "
                             f"{name}; its first keys are {list(state_dict)[:5]}")
        kwargs["num_classes"] = int(state_dict[classifier].shape[0])
    model = family.build(name, **kwargs)
    params, state = load_state_dict(model, state_dict, strict=strict)
    return model, params, state
