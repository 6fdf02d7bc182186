"""Import torchvision beside the CPU build of torch, for tests that use its models.

torchvision's wheel on the package index is built against a CUDA torch, so with
the CPU torch its C extension (the detection ops: ``nms``, ``roi_align``, …)
does not load. ``import torchvision`` then fails in
``torchvision/_meta_registrations.py``, which registers fake (shape-only)
kernels for ``torchvision::nms`` and ``torchvision::qnms`` unconditionally and
so needs those two operators to exist. The classification models use none of
the C ops; declaring the two schemas (no kernel, so calling them still fails
loudly) lets the pure-Python part of torchvision import. Nothing installed is
modified, and nothing is declared when the extension did load.
"""

from __future__ import annotations

import importlib

_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
_LIBRARY = None  # kept alive: a torch.library.Library's definitions end with it


def import_torchvision():
    """Return the ``torchvision`` module, declaring the missing op schemas first if needed."""
    global _LIBRARY
    import torch

    missing = [name for name in _SCHEMAS if not _has_op(torch, name)]
    if missing and _LIBRARY is None and not _extension_loads():
        _LIBRARY = torch.library.Library("torchvision", "FRAGMENT")
        for name in missing:
            _LIBRARY.define(_SCHEMAS[name])
    return importlib.import_module("torchvision")


def _has_op(torch, name: str) -> bool:
    try:
        torch._C._dispatch_find_schema_or_throw(f"torchvision::{name}", "")
    except RuntimeError:
        return False
    return True


def _extension_loads() -> bool:
    """Whether torchvision's compiled ops load with this torch (never true for the CPU torch + CUDA wheel)."""
    import importlib.util
    import torch

    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return False
    import glob
    import os

    for path in glob.glob(os.path.join(spec.submodule_search_locations[0], "_C*.so")):
        try:
            torch.ops.load_library(path)
        except (OSError, RuntimeError):
            return False
        return True
    return False
