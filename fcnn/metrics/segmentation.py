"""Segmentation metrics: ``fcnn.metrics.dice_score`` / ``mean_iou`` mirror ``torchmetrics.functional.segmentation``.

torchmetrics 1.9 has no ``torchmetrics.functional.dice`` any more (it was the
classification-style Dice); the Dice score lives in
``torchmetrics.functional.segmentation.dice_score``, with per-sample scores by
default, and that is what fcnn mirrors. ``fcnn.metrics.jaccard_index`` is the
classification-style IoU over all pixels.

Input formats (``input_format``): ``'one-hot'`` — both ``(N, C, ...)``, either
0/1 masks or float scores (arg-max over ``C``, then one-hot); ``'index'`` —
both class indices ``(N, ...)``; ``'mixed'`` — one of each.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from fcnn import _checks
from fcnn.functional._compiled import compiled
from fcnn.metrics import _inputs

INPUT_FORMATS = ("one-hot", "index", "mixed")


def _one_hot(x, num_classes: int, index: bool):
    """``(N, C, ...)`` 0/1 masks from indices (``index``), float scores (arg-max) or masks (as given)."""
    if index:
        return jnp.moveaxis(jax.nn.one_hot(x, num_classes, dtype=jnp.int32), -1, 1)
    if _inputs.is_float(x):
        return jnp.moveaxis(jax.nn.one_hot(jnp.argmax(x, axis=1), num_classes, dtype=jnp.int32), -1, 1)
    return x.astype(jnp.int32)


def _masks(preds, target, num_classes, include_background, input_format):
    mixed = input_format == "mixed"
    p_index = input_format == "index" or (mixed and preds.ndim < target.ndim)
    t_index = input_format == "index" or (mixed and target.ndim < preds.ndim)
    p, t = _one_hot(preds, num_classes, p_index), _one_hot(target, num_classes, t_index)
    if not include_background:
        p, t = (p[:, 1:] if p.shape[1] > 1 else p), (t[:, 1:] if t.shape[1] > 1 else t)
    return p, t


def check(where, preds, target, num_classes, include_background, input_format):
    """Validate a call; returns ``(preds, target, num_classes)``."""
    preds, target = _inputs.array(preds, "preds", where), _inputs.array(target, "target", where)
    _checks.one_of(input_format, INPUT_FORMATS, "input_format", where)
    if not isinstance(include_background, bool):
        raise TypeError(f"{where}: include_background must be a bool, got {include_background!r}")
    if input_format == "mixed":
        if abs(preds.ndim - target.ndim) != 1:
            raise ValueError(f"{where}: input_format='mixed' needs one (N, C, ...) and one (N, ...) input, got "
                             f"preds {tuple(preds.shape)} and target {tuple(target.shape)}")
        scores, labels = (preds, target) if preds.ndim > target.ndim else (target, preds)
        if scores.shape[:1] + scores.shape[2:] != labels.shape:
            raise ValueError(f"{where}: shapes of preds {tuple(preds.shape)} and target {tuple(target.shape)} "
                             "do not match")
    else:
        _inputs.same_shape(preds, target, where)
    if num_classes is None:
        if input_format == "index":
            raise ValueError(f"{where}: num_classes is needed for input_format='index'")
        num_classes = (preds if preds.ndim >= target.ndim else target).shape[1]
    num_classes = _checks.positive_int(num_classes, "num_classes", where)
    one_hot_ndim = max(preds.ndim, target.ndim) + (1 if input_format == "index" else 0)
    if one_hot_ndim < 3:
        raise ValueError(f"{where}: inputs need at least 3 dimensions (N, C, ...) once one-hot, got preds "
                         f"{tuple(preds.shape)} and target {tuple(target.shape)}")
    for x, name, index in ((preds, "preds", preds.ndim < target.ndim), (target, "target", target.ndim < preds.ndim)):
        if input_format == "index" or (input_format == "mixed" and index):
            _inputs.check_labels(x, name, num_classes, None, where)
        elif x.shape[1] != num_classes:
            raise ValueError(f"{where}: {name} has {x.shape[1]} channels, expected num_classes={num_classes}")
    return preds, target, num_classes


def nan_divide(num, den):
    """``num / den`` in float32, ``nan`` where ``den`` is 0."""
    num, den = num.astype(jnp.float32), den.astype(jnp.float32)
    return jnp.where(den != 0, num / jnp.where(den != 0, den, 1.0), jnp.nan)


@compiled
def overlaps(preds, target, *, num_classes, include_background, input_format):
    """Per sample and class ``(N, C)``: ``|P ∩ T|``, ``|P|`` and ``|T|`` (pixel counts)."""
    p, t = _masks(preds, target, num_classes, include_background, input_format)
    axes = tuple(range(2, t.ndim))
    return jnp.sum(p * t, axis=axes), jnp.sum(p, axis=axes), jnp.sum(t, axis=axes)


def dice_from_counts(num, den, support, average, aggregation_level):
    """The Dice score from per-sample ``2|P ∩ T|``, ``|P| + |T|`` and ``|T|`` (``(N, C)``)."""
    if aggregation_level == "global":
        num, den, support = num.sum(0, keepdims=True), den.sum(0, keepdims=True), support.sum(0)
    if average == "micro":
        return nan_divide(num.sum(-1), den.sum(-1))
    dice = nan_divide(num, den)
    if average == "macro":
        return jnp.nanmean(dice, axis=-1)
    if average == "weighted":
        weights = nan_divide(support, jnp.sum(support, axis=-1, keepdims=True))
        out = jnp.nansum(dice * weights, axis=-1)
        return jnp.where(jnp.all(jnp.isnan(dice), axis=-1), jnp.nan, out)
    return dice


@compiled
def _dice_score(preds, target, *, num_classes, include_background, average, input_format, aggregation_level):
    inter, p_sum, t_sum = overlaps(preds, target, num_classes=num_classes, include_background=include_background,
                                   input_format=input_format)
    return dice_from_counts(2 * inter, p_sum + t_sum, t_sum, average, aggregation_level)


def dice_score(preds, target, num_classes, include_background=True, average="macro", input_format="one-hot",
               aggregation_level="samplewise"):
    """Dice score ``2|P ∩ T| / (|P| + |T|)``, as ``torchmetrics.functional.segmentation.dice_score``.

    Args:
        preds, target: see the module docstring (``input_format``).
        num_classes: number of classes ``C``.
        include_background: keep class 0.
        average: ``'micro'`` (pool the classes' counts), ``'macro'`` (mean over
            classes present in either input), ``'weighted'`` (by target pixels),
            ``'none'``/``None`` (per class).
        aggregation_level: ``'samplewise'`` (one score per sample) or
            ``'global'`` (counts pooled over the batch).

    Returns:
        float32 ``(N,)`` (``samplewise``) or ``(1,)`` (``global``); ``(…, C)``
        for ``average='none'``. A class absent from both inputs is ``nan``.
    """
    where = "dice_score"
    _checks.one_of(average, ("micro", "macro", "weighted", "none", None), "average", where)
    _checks.one_of(aggregation_level, ("samplewise", "global"), "aggregation_level", where)
    preds, target, num_classes = check(where, preds, target, num_classes, include_background, input_format)
    return _dice_score(preds, target, num_classes=num_classes, include_background=include_background,
                       average=average, input_format=input_format, aggregation_level=aggregation_level)


@compiled
def _mean_iou(preds, target, *, num_classes, include_background, per_class, input_format):
    intersection, p_sum, t_sum = overlaps(preds, target, num_classes=num_classes,
                                          include_background=include_background, input_format=input_format)
    union = p_sum + t_sum - intersection
    scores = nan_divide(intersection, union)
    if per_class:
        return jnp.where(jnp.isnan(scores), -1.0, scores)
    return jnp.nansum(scores, axis=-1) / jnp.sum(union > 0, axis=-1)


def mean_iou(preds, target, num_classes=None, include_background=True, per_class=False, input_format="one-hot"):
    """Mean intersection over union per sample, as ``torchmetrics.functional.segmentation.mean_iou``.

    Classes absent from both inputs are left out of the mean (``-1`` in the
    ``per_class=True`` output). Index inputs of 1 or 2 dimensions are taken as
    one sample, as torchmetrics does.

    Returns:
        float32 ``(N,)``, or ``(N, C)`` with ``per_class=True``.
    """
    where = "mean_iou"
    if not isinstance(per_class, bool):
        raise TypeError(f"{where}: per_class must be a bool, got {per_class!r}")
    if input_format in ("index", "mixed"):
        preds, target = (_inputs.array(x, name, where) for x, name in ((preds, "preds"), (target, "target")))
        preds, target = (x.reshape((1,) * (3 - x.ndim) + x.shape) if x.ndim < 3 else x for x in (preds, target))
    preds, target, num_classes = check(where, preds, target, num_classes, include_background, input_format)
    return _mean_iou(preds, target, num_classes=num_classes, include_background=include_background,
                     per_class=per_class, input_format=input_format)
