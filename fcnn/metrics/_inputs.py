"""Argument and input checks shared by the metrics, and the conversions of scores into labels.

Argument checks run in plain Python before anything is traced. Value checks
(labels in range, ``{0, 1}`` targets) need concrete data, so they run on
concrete arrays only: under ``jax.jit`` there is nothing to look at, and
out-of-range labels then count for no class.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from fcnn import _checks

TASKS = ("binary", "multiclass", "multilabel")
AVERAGES = ("micro", "macro", "weighted", "none", None)
MULTIDIM_AVERAGES = ("global", "samplewise")


def concrete(*arrays) -> bool:
    """Whether every array holds values (is not being traced)."""
    return not any(isinstance(a, jax.core.Tracer) for a in arrays)


def array(x, name: str, where: str):
    """``x`` as an array; torch tensors are refused with a hint rather than converted silently."""
    if type(x).__module__.startswith("torch"):
        raise TypeError(f"{where}: {name} must be a JAX or NumPy array, got a torch tensor (use .numpy())")
    return _checks.as_array(x, name, where)


def is_float(x) -> bool:
    return jnp.issubdtype(x.dtype, jnp.floating)


def task(value, where: str) -> str:
    return _checks.one_of(value, TASKS, "task", where)


def threshold(value, where: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{where}: threshold must be a float in [0, 1], got {value!r}")
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{where}: threshold must be a float in [0, 1], got {value!r}")
    return float(value)


def count(value, name: str, where: str) -> int:
    """``num_classes`` / ``num_labels``: an int >= 2."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{where}: {name} must be an int >= 2, got {value!r}")
    if value < 2:
        raise ValueError(f"{where}: {name} must be an int >= 2, got {value!r}")
    return int(value)


def optional_int(value, name: str, where: str):
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{where}: {name} must be None or an int, got {value!r}")
    return int(value)


def zero_division(value, where: str) -> float:
    if isinstance(value, bool) or value not in (0, 1):
        raise ValueError(f"{where}: zero_division must be 0 or 1, got {value!r}")
    return float(value)


def top_k(value, num_classes: int, where: str) -> int:
    value = _checks.positive_int(value, "top_k", where)
    if value > num_classes:
        raise ValueError(f"{where}: top_k must be <= num_classes ({num_classes}), got {value}")
    return value


def _values(x) -> np.ndarray:
    return np.unique(np.asarray(x))


def check_binary_values(x, name: str, ignore_index, where: str) -> None:
    """``x`` holds only 0 and 1 (and ``ignore_index``), on concrete arrays."""
    if not concrete(x):
        return
    allowed = {0, 1} if ignore_index is None else {0, 1, ignore_index}
    bad = [v for v in _values(x).tolist() if v not in allowed]
    if bad:
        raise ValueError(f"{where}: {name} may only hold the values {sorted(allowed)}, found {bad[:10]}")


def check_labels(x, name: str, num_classes: int, ignore_index, where: str) -> None:
    """``x`` holds class indices in ``[0, num_classes)`` (or ``ignore_index``), on concrete arrays."""
    if not concrete(x):
        return
    if is_float(x):
        raise TypeError(f"{where}: {name} must hold integer class indices, got dtype {x.dtype}")
    bad = [v for v in _values(x).tolist() if not (0 <= v < num_classes or v == ignore_index)]
    if bad:
        allowed = f"[0, {num_classes})" + ("" if ignore_index is None else f" or ignore_index={ignore_index}")
        raise ValueError(f"{where}: {name} must hold class indices in {allowed}, found {bad[:10]}")


def same_shape(preds, target, where: str) -> None:
    if preds.shape != target.shape:
        raise ValueError(f"{where}: preds and target must have the same shape, got preds {tuple(preds.shape)} "
                         f"and target {tuple(target.shape)}")


def multiclass_shapes(preds, target, num_classes: int, where: str) -> None:
    """Scores ``(N, C, ...)`` with labels ``(N, ...)``, or labels and labels of one shape."""
    if preds.ndim == target.ndim + 1:
        if not is_float(preds):
            raise TypeError(f"{where}: preds with one more dimension than target must be floating-point scores, "
                            f"got dtype {preds.dtype}")
        if preds.shape[1] != num_classes or preds.shape[:1] + preds.shape[2:] != target.shape:
            raise ValueError(f"{where}: scores must have shape (N, num_classes={num_classes}, ...) for target "
                             f"(N, ...), got preds {tuple(preds.shape)} and target {tuple(target.shape)}")
    elif preds.ndim == target.ndim:
        same_shape(preds, target, where)
    else:
        raise ValueError(f"{where}: preds must be labels of target's shape or scores (N, C, ...) for target "
                         f"(N, ...), got preds {tuple(preds.shape)} and target {tuple(target.shape)}")
    if target.ndim < 1:
        raise ValueError(f"{where}: target must have a batch dimension, got shape {tuple(target.shape)}")


def multilabel_shapes(preds, target, num_labels: int, where: str) -> None:
    same_shape(preds, target, where)
    if preds.ndim < 2 or preds.shape[1] != num_labels:
        raise ValueError(f"{where}: multilabel inputs must have shape (N, num_labels={num_labels}, ...), "
                         f"got {tuple(preds.shape)}")


def probabilities(preds, normalization: str, kept=None):
    """torchmetrics' rule: floating ``preds`` with any value outside ``[0, 1]`` are logits.

    Logits go through ``sigmoid`` (element-wise) or ``softmax`` (over axis 1);
    ``kept`` restricts the "any value outside" test to the entries a metric keeps
    (those whose target is not ``ignore_index``), where torchmetrics drops the
    others first.
    """
    outside = (preds < 0) | (preds > 1)
    if kept is not None:
        outside = outside & kept
    normalized = jax.nn.sigmoid(preds) if normalization == "sigmoid" else jax.nn.softmax(preds, axis=1)
    return jnp.where(jnp.any(outside), normalized, preds)


def kept(target, ignore_index):
    """The entries of ``target`` that count: all but those equal to ``ignore_index``."""
    if ignore_index is None:
        return jnp.ones(target.shape, bool)
    return target != ignore_index


def binarize(preds, threshold: float, kept_for_check=None):
    """Binary predictions: labels as given, scores thresholded after :func:`probabilities` (``p > threshold``)."""
    if is_float(preds):
        return probabilities(preds, "sigmoid", kept_for_check) > threshold
    return preds == 1


def multiclass_labels(preds, target, top_k: int):
    """Predicted class per entry; for ``top_k > 1`` the target when it is among the top k, else the arg-max.

    That is torchmetrics' top-k rule: each entry still predicts one class, so
    the statistics stay those of a confusion matrix.
    """
    if preds.ndim != target.ndim + 1:
        return preds
    if top_k == 1:
        return jnp.argmax(preds, axis=1)
    _, top = jax.lax.top_k(jnp.moveaxis(preds, 1, -1), top_k)
    hit = jnp.any(top == target[..., None], axis=-1)
    return jnp.where(hit, target, top[..., 0])
