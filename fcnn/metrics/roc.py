"""Area under the ROC curve: ``fcnn.metrics.auroc`` mirrors ``torchmetrics.functional.auroc``.

``thresholds=None`` is the exact curve: one point per distinct score (tied
scores form one step, so ties count one half, as in the Mann-Whitney
statistic), starting at ``(0, 0)``. An int ``T`` (``T`` thresholds evenly
spaced in ``[0, 1]``, see :func:`linspace_thresholds`), a list or
a 1-D array of ascending thresholds gives torchmetrics' binned curve: a
prediction is positive at threshold ``t`` when its score is ``>= t``.

The binned form needs only a histogram per class: how many positive and
negative entries fall between consecutive thresholds. That fixed-size state is
what :func:`fcnn.metrics.AUROC` accumulates (and sums across devices); the
exact form needs every score.

Scores follow torchmetrics' rules: binary and multilabel scores with any value
outside ``[0, 1]`` are logits (``sigmoid``), multiclass ones go through a
``softmax`` over the class axis. A class with no positive (or no negative)
entries has an exact AUROC of 0, and torchmetrics' macro average counts it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from fcnn import _checks
from fcnn.functional._compiled import compiled
from fcnn.metrics import _inputs


def linspace_thresholds(steps: int) -> np.ndarray:
    """``steps`` float32 thresholds evenly spaced from 0 to 1, each the float32 nearest to ``i / (steps - 1)``.

    ``torch.linspace`` (which torchmetrics uses) rounds some of them one float32
    step differently, so a score lying exactly on such a threshold can fall on
    the other side of it.
    """
    return (np.arange(steps, dtype=np.float64) / (steps - 1)).astype(np.float32)


def thresholds_array(thresholds, where: str):
    """``None`` or a float32 array of ascending thresholds from torchmetrics' ``thresholds`` argument."""
    if thresholds is None:
        return None
    if isinstance(thresholds, (int, np.integer)) and not isinstance(thresholds, bool):
        if thresholds < 2:
            raise ValueError(f"{where}: thresholds must be None, an int > 1, or a list of floats in [0, 1], "
                             f"got {thresholds!r}")
        return linspace_thresholds(int(thresholds))
    if isinstance(thresholds, (list, tuple)):
        if not thresholds or not all(isinstance(t, (float, int)) and not isinstance(t, bool) and 0 <= t <= 1
                                     for t in thresholds):
            raise ValueError(f"{where}: a thresholds list must hold floats in [0, 1], got {thresholds!r}")
        values = np.asarray(thresholds, np.float32)
    else:
        values = np.asarray(_inputs.array(thresholds, "thresholds", where), np.float32)
        if values.ndim != 1 or values.size == 0:
            raise ValueError(f"{where}: thresholds must be a non-empty 1-D array, got shape {values.shape}")
    if np.any(np.diff(values) < 0):
        raise ValueError(f"{where}: thresholds must be in ascending order, got {values.tolist()}")
    return values


# ---------------------------------------------------------------- curves

def _trapezoid(fpr, tpr):
    return jnp.sum((fpr[1:] - fpr[:-1]) * (tpr[1:] + tpr[:-1]) / 2)


def exact_curve(scores, positive, valid):
    """``(fpr, tpr)`` of the exact ROC curve of 1-D ``scores``; ``len(scores) + 1`` points.

    Static shapes: instead of keeping one point per distinct score, every entry
    of a run of tied scores takes the run's last point, so the duplicates add
    trapezoids of zero width.
    """
    order = jnp.argsort(-scores)
    ascending = -scores[order]
    pos = (positive & valid)[order].astype(jnp.int32)
    neg = (~positive & valid)[order].astype(jnp.int32)
    run_end = jnp.searchsorted(ascending, ascending, side="right") - 1
    zero = jnp.zeros(1, jnp.int32)
    tps = jnp.concatenate([zero, jnp.cumsum(pos)[run_end]])
    fps = jnp.concatenate([zero, jnp.cumsum(neg)[run_end]])
    # no positives (negatives): torchmetrics returns an all-zero tpr (fpr)
    fpr = jnp.where(fps[-1] > 0, fps / jnp.maximum(fps[-1], 1), 0.0).astype(jnp.float32)
    tpr = jnp.where(tps[-1] > 0, tps / jnp.maximum(tps[-1], 1), 0.0).astype(jnp.float32)
    return fpr, tpr


def histogram(scores, positive, valid, thresholds):
    """``(T + 1, 2)`` counts of (negative, positive) entries per bin; bin ``b`` = the number of thresholds <= score."""
    bins = jnp.searchsorted(jnp.asarray(thresholds), scores, side="right")
    label = positive.astype(jnp.int32)
    out = jnp.zeros((len(thresholds) + 1, 2), jnp.int32)
    return out.at[bins, label].add(valid.astype(jnp.int32))


def binned_curve(hist):
    """``(fpr, tpr)`` at the thresholds, highest first, from a :func:`histogram`."""
    # entries with score >= thresholds[t] are those in bins t + 1, ..., T
    above = jnp.cumsum(hist[::-1], axis=0)[::-1][1:]
    total = hist.sum(0)
    fps, tps = above[:, 0], above[:, 1]
    divide = lambda a, b: jnp.where(b > 0, a / jnp.maximum(b, 1), 0.0).astype(jnp.float32)
    return divide(fps, total[0])[::-1], divide(tps, total[1])[::-1]


def _partial_auc(fpr, tpr, max_fpr: float):
    """McClish-standardised area over ``fpr in [0, max_fpr]``, the curve cut at ``max_fpr`` by interpolation."""
    stop = jnp.clip(jnp.searchsorted(fpr, max_fpr, side="right"), 1, fpr.shape[0] - 1)
    x0, x1, y0, y1 = fpr[stop - 1], fpr[stop], tpr[stop - 1], tpr[stop]
    y_cut = y0 + (max_fpr - x0) / (x1 - x0) * (y1 - y0)
    segments = (fpr[1:] - fpr[:-1]) * (tpr[1:] + tpr[:-1]) / 2
    inside = jnp.arange(segments.shape[0]) < stop - 1
    area = jnp.sum(jnp.where(inside, segments, 0.0)) + (max_fpr - x0) * (y0 + y_cut) / 2
    min_area = 0.5 * max_fpr ** 2
    return 0.5 * (1 + (area - min_area) / (max_fpr - min_area))


def area(fpr, tpr, max_fpr=None):
    """Area under ``(fpr, tpr)``; with ``max_fpr`` the standardised partial area (full area for degenerate curves)."""
    full = _trapezoid(fpr, tpr)
    if max_fpr is None or max_fpr == 1:
        return full
    degenerate = (jnp.sum(fpr) == 0) | (jnp.sum(tpr) == 0)
    return jnp.where(degenerate, full, _partial_auc(fpr, tpr, max_fpr))


def curve(scores, positive, valid, thresholds):
    if thresholds is None:
        return exact_curve(scores, positive, valid)
    return binned_curve(histogram(scores, positive, valid, thresholds))


# ---------------------------------------------------------------- tasks

def columns(preds, target, task: str, num_classes, ignore_index):
    """Scores ``(M, K)``, positives ``(M, K)`` and kept entries ``(M, K)``, with torchmetrics' normalisation.

    One column per class (multiclass) or label (multilabel), one column for binary.
    """
    if task == "binary":
        scores, target = preds.reshape(-1, 1), target.reshape(-1, 1)
        valid = _inputs.kept(target, ignore_index)
        return _inputs.probabilities(scores, "sigmoid", valid), target == 1, valid
    k = preds.shape[1]
    scores = jnp.moveaxis(preds, 1, -1).reshape(-1, k)
    if task == "multiclass":
        target = target.reshape(-1, 1)
        # labels outside [0, C) (unchecked under jit) count nowhere
        valid = _inputs.kept(target, ignore_index) & (target >= 0) & (target < num_classes)
        scores = _inputs.probabilities(scores, "softmax", valid)
        return scores, target == jnp.arange(num_classes), jnp.broadcast_to(valid, scores.shape)
    target = jnp.moveaxis(target, 1, -1).reshape(-1, k)
    return _inputs.probabilities(scores, "sigmoid"), target == 1, _inputs.kept(target, ignore_index)


def reduce(per_class, support, average):
    """torchmetrics' reduction of per-class areas: mean, support-weighted mean, or none."""
    if average in ("none", None):
        return per_class
    keep = ~jnp.isnan(per_class)
    if average == "macro":
        return jnp.sum(jnp.where(keep, per_class, 0.0)) / jnp.sum(keep)
    weights = jnp.where(keep, support, 0.0).astype(jnp.float32)
    total = jnp.sum(weights)
    weights = jnp.where(total != 0, weights / jnp.where(total != 0, total, 1.0), 0.0)
    return jnp.sum(jnp.where(keep, per_class, 0.0) * weights)


def areas(scores, positive, valid, task, average, thresholds, max_fpr):
    """AUROC from the columns of :func:`columns`."""
    if task == "binary" or average == "micro":
        fpr, tpr = curve(scores.reshape(-1), positive.reshape(-1), valid.reshape(-1), thresholds)
        return area(fpr, tpr, max_fpr)
    per_column = jax.vmap(lambda s, p, v: area(*curve(s, p, v, thresholds)), in_axes=1)
    return reduce(per_column(scores, positive, valid), jnp.sum(positive & valid, axis=0), average)


@compiled
def histograms(preds, target, *, task, num_classes, ignore_index, thresholds):
    """``(K, T + 1, 2)``: a :func:`histogram` per column (class / label; one for binary), over ``thresholds``."""
    scores, positive, valid = columns(preds, target, task, num_classes, ignore_index)
    grid = np.asarray(thresholds, np.float32)
    return jax.vmap(lambda s, p, v: histogram(s, p, v, grid), in_axes=1)(scores, positive, valid)


def area_from_histograms(hist, task, average, max_fpr):
    """AUROC of :func:`histograms` summed over batches."""
    if task == "binary" or average == "micro":
        return area(*binned_curve(hist.sum(0)), max_fpr)
    per_class = jax.vmap(lambda h: area(*binned_curve(h)))(hist)
    return reduce(per_class, hist[:, :, 1].sum(1), average)


@compiled
def _auroc(preds, target, *, task, num_classes, average, thresholds, max_fpr, ignore_index):
    scores, positive, valid = columns(preds, target, task, num_classes, ignore_index)
    thresholds = None if thresholds is None else np.asarray(thresholds, np.float32)
    return areas(scores, positive, valid, task, average, thresholds, max_fpr)


def config(where, task, thresholds, num_classes, num_labels, average, max_fpr, ignore_index):
    """Check the arguments that do not depend on the data; returns the computation's configuration."""
    task = _inputs.task(task, where)
    ignore_index = _inputs.optional_int(ignore_index, "ignore_index", where)
    if max_fpr is not None:
        if task != "binary":
            raise ValueError(f"{where}: max_fpr applies to task='binary' only, got task={task!r}")
        if isinstance(max_fpr, bool) or not isinstance(max_fpr, (int, float)) or not 0 < max_fpr <= 1:
            raise ValueError(f"{where}: max_fpr must be a float in (0, 1], got {max_fpr!r}")
        max_fpr = float(max_fpr)
    n = None
    if task == "multiclass":
        n = _inputs.count(num_classes, "num_classes", where)
        _checks.one_of(average, ("macro", "weighted", "none", None), "average", where)
    elif task == "multilabel":
        n = _inputs.count(num_labels, "num_labels", where)
        _checks.one_of(average, ("micro", "macro", "weighted", "none", None), "average", where)
    grid = thresholds_array(thresholds, where)
    return dict(task=task, num_classes=n, average=None if task == "binary" else average,
                thresholds=None if grid is None else tuple(grid.tolist()), max_fpr=max_fpr,
                ignore_index=ignore_index)


def check_inputs(where, preds, target, cfg, validate_args=True):
    """Check ``preds`` and ``target`` against a :func:`config`; returns them as arrays."""
    preds, target = _inputs.array(preds, "preds", where), _inputs.array(target, "target", where)
    task, n, ignore_index = cfg["task"], cfg["num_classes"], cfg["ignore_index"]
    if not _inputs.is_float(preds):
        raise TypeError(f"{where}: preds must be floating-point scores (probabilities or logits), "
                        f"got dtype {preds.dtype}")
    if _inputs.is_float(target):
        raise TypeError(f"{where}: target must hold integer labels, got dtype {target.dtype}")
    if task == "multiclass":
        _inputs.multiclass_shapes(preds, target, n, where)
        if preds.ndim != target.ndim + 1:
            raise ValueError(f"{where}: multiclass preds must be scores (N, C, ...), got shape {tuple(preds.shape)}")
        if validate_args:
            _inputs.check_labels(target, "target", n, ignore_index, where)
        return preds, target
    if task == "binary":
        _inputs.same_shape(preds, target, where)
    else:
        _inputs.multilabel_shapes(preds, target, n, where)
    if validate_args:
        _inputs.check_binary_values(target, "target", ignore_index, where)
    return preds, target


def auroc(preds, target, task, thresholds=None, num_classes=None, num_labels=None, average="macro", max_fpr=None,
          ignore_index=None, validate_args=True):
    """Area under the ROC curve, as ``torchmetrics.functional.auroc``.

    Args:
        preds: float scores: ``(N, ...)`` binary, ``(N, C, ...)`` multiclass
            (probabilities or logits), ``(N, L, ...)`` multilabel.
        target: integer labels: ``(N, ...)`` (binary: 0/1; multiclass: class
            indices) or ``(N, L, ...)`` (multilabel, 0/1).
        task: ``'binary'``, ``'multiclass'`` or ``'multilabel'``.
        thresholds: ``None`` (exact), an int, a list or a 1-D array (binned).
        num_classes, num_labels: for the multiclass / multilabel tasks.
        average: ``'macro'``, ``'weighted'``, ``'none'``/``None``; ``'micro'``
            too for multilabel (all labels pooled into one binary problem).
        max_fpr: binary only: the standardised partial AUC over
            ``fpr <= max_fpr`` (McClish correction).
        ignore_index: target value whose entries are left out.
        validate_args: check label values (on concrete arrays).

    Returns:
        A float32 scalar, or ``(C,)`` per class for ``average='none'``.
    """
    cfg = config("auroc", task, thresholds, num_classes, num_labels, average, max_fpr, ignore_index)
    preds, target = check_inputs("auroc", preds, target, cfg, validate_args)
    return _auroc(preds, target, **cfg)


def binary_auroc(preds, target, max_fpr=None, thresholds=None, ignore_index=None, validate_args=True):
    """``auroc(..., task='binary')``."""
    return auroc(preds, target, "binary", thresholds, max_fpr=max_fpr, ignore_index=ignore_index,
                 validate_args=validate_args)


def multiclass_auroc(preds, target, num_classes, average="macro", thresholds=None, ignore_index=None,
                     validate_args=True):
    """``auroc(..., task='multiclass')``."""
    return auroc(preds, target, "multiclass", thresholds, num_classes=num_classes, average=average,
                 ignore_index=ignore_index, validate_args=validate_args)


def multilabel_auroc(preds, target, num_labels, average="macro", thresholds=None, ignore_index=None,
                     validate_args=True):
    """``auroc(..., task='multilabel')``."""
    return auroc(preds, target, "multilabel", thresholds, num_labels=num_labels, average=average,
                 ignore_index=ignore_index, validate_args=validate_args)
