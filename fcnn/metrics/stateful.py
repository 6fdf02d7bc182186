"""Metrics over many batches: pure ``init`` / ``update`` / ``compute`` on a plain pytree state.

``fcnn.metrics.Accuracy(task='multiclass', num_classes=10)`` (and the other
torchmetrics class names below) returns a :class:`Metric`, an ``optax``-style
named tuple of pure functions::

    metric = fcnn.metrics.F1Score(task="multiclass", num_classes=10, average="macro")
    state = metric.init()
    for x, y in batches:
        state = metric.update(state, model_output(x), y)     # jit-able
    f1 = metric.compute(state)                                 # == torchmetrics' F1Score over the same batches

Every state is a dict of **sufficient statistics that add up**: per-class
``tp/fp/tn/fn`` counts for the stat-score metrics, a confusion matrix for
``ConfusionMatrix`` / ``JaccardIndex``, pixel counts or sums of per-sample
scores with their counts for ``DiceScore`` / ``MeanIoU``, and for ``AUROC`` a histogram of the
positive and negative scores between the thresholds (torchmetrics' binned
mode, which needs ``thresholds``; the exact mode keeps every score and has no
fixed-size state). So two states combine with :func:`merge` (``+`` per leaf),
and across devices with ``jax.lax.psum(state, axis_name)`` inside
``shard_map``/``pmap``: ``compute`` of the summed state is the metric of all
devices' batches. Counts are int32 (int64 with JAX's x64 mode), so one state
holds at most 2**31 - 1 entries per count.

``multidim_average='samplewise'`` is not offered here: its per-sample scores
are a list that grows with the data, not a sum.
"""

from __future__ import annotations

import operator
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from fcnn import _checks
from fcnn.metrics import _inputs, classification as _cls, roc as _auroc, segmentation as _seg


class Metric(NamedTuple):
    """A metric as pure functions of a pytree ``state`` (a dict of arrays).

    Attributes:
        init: ``() -> state``, the state of no data.
        update: ``(state, preds, target) -> state``, adding one batch (jit-able;
            argument checks run at trace time, value checks on concrete arrays).
        compute: ``state -> value``, the metric of everything added.
    """

    init: Callable[[], Any]
    update: Callable[..., Any]
    compute: Callable[[Any], Any]


def merge(a, b):
    """The state of the data of both ``a`` and ``b`` (states are sums)."""
    return jax.tree.map(operator.add, a, b)


def _zeros(shape):
    return jnp.zeros(shape, jnp.int32)


def _stat_scores_metric(where, metric, task, threshold, num_classes, num_labels, average, top_k, ignore_index,
                        validate_args, beta=1.0, zero_division=0):
    cfg = _cls.config(where, task, threshold, num_classes, num_labels, average, "global", top_k, ignore_index)
    zero_division = _inputs.zero_division(zero_division, where)
    if metric == "fbeta" and (isinstance(beta, bool) or not isinstance(beta, (int, float)) or not beta > 0):
        raise ValueError(f"{where}: beta must be a float > 0, got {beta!r}")
    shape = () if cfg["task"] == "binary" else (cfg["num_classes"],)

    def init():
        return {k: _zeros(shape) for k in ("tp", "fp", "tn", "fn")}

    def update(state, preds, target):
        preds, target = _cls.check_inputs(where, preds, target, cfg, validate_args)
        batch = dict(zip(("tp", "fp", "tn", "fn"), _cls.stats(preds, target, **cfg)))
        return merge(state, batch)

    def compute(state):
        return _cls.reduce(state["tp"], state["fp"], state["tn"], state["fn"], metric=metric, task=cfg["task"],
                           average=average, top_k=cfg["top_k"], beta=float(beta), zero_division=zero_division)

    return Metric(init, update, compute)


def Accuracy(task, threshold=0.5, num_classes=None, num_labels=None, average="micro", top_k=1, ignore_index=None,
             validate_args=True):
    """Accumulating :func:`fcnn.metrics.accuracy` (``torchmetrics.Accuracy``)."""
    return _stat_scores_metric("Accuracy", "accuracy", task, threshold, num_classes, num_labels, average, top_k,
                               ignore_index, validate_args)


def Precision(task, threshold=0.5, num_classes=None, num_labels=None, average="micro", top_k=1, ignore_index=None,
              validate_args=True, zero_division=0):
    """Accumulating :func:`fcnn.metrics.precision` (``torchmetrics.Precision``)."""
    return _stat_scores_metric("Precision", "precision", task, threshold, num_classes, num_labels, average, top_k,
                               ignore_index, validate_args, zero_division=zero_division)


def Recall(task, threshold=0.5, num_classes=None, num_labels=None, average="micro", top_k=1, ignore_index=None,
           validate_args=True, zero_division=0):
    """Accumulating :func:`fcnn.metrics.recall` (``torchmetrics.Recall``)."""
    return _stat_scores_metric("Recall", "recall", task, threshold, num_classes, num_labels, average, top_k,
                               ignore_index, validate_args, zero_division=zero_division)


def FBetaScore(task, beta=1.0, threshold=0.5, num_classes=None, num_labels=None, average="micro", top_k=1,
               ignore_index=None, validate_args=True, zero_division=0):
    """Accumulating :func:`fcnn.metrics.fbeta_score` (``torchmetrics.FBetaScore``)."""
    return _stat_scores_metric("FBetaScore", "fbeta", task, threshold, num_classes, num_labels, average, top_k,
                               ignore_index, validate_args, beta=beta, zero_division=zero_division)


def F1Score(task, threshold=0.5, num_classes=None, num_labels=None, average="micro", top_k=1, ignore_index=None,
            validate_args=True, zero_division=0):
    """Accumulating :func:`fcnn.metrics.f1_score` (``torchmetrics.F1Score``)."""
    return _stat_scores_metric("F1Score", "fbeta", task, threshold, num_classes, num_labels, average, top_k,
                               ignore_index, validate_args, zero_division=zero_division)


def StatScores(task, threshold=0.5, num_classes=None, num_labels=None, average="micro", top_k=1, ignore_index=None,
               validate_args=True):
    """Accumulating :func:`fcnn.metrics.stat_scores` (``torchmetrics.StatScores``)."""
    return _stat_scores_metric("StatScores", "stat_scores", task, threshold, num_classes, num_labels, average, top_k,
                               ignore_index, validate_args)


def _confusion_metric(where, task, threshold, num_classes, num_labels, ignore_index, validate_args, finish):
    cfg = _cls.config(where, task, threshold, num_classes, num_labels, ignore_index=ignore_index)
    n = cfg["num_classes"]
    shape = {"binary": (2, 2), "multiclass": (n, n), "multilabel": (n, 2, 2)}[cfg["task"]]

    def update(state, preds, target):
        preds, target = _cls.check_inputs(where, preds, target, cfg, validate_args)
        return state + _cls.confusion(preds, target, cfg["task"], cfg["threshold"], n, cfg["ignore_index"])

    return Metric(lambda: _zeros(shape), update, finish)


def ConfusionMatrix(task, threshold=0.5, num_classes=None, num_labels=None, normalize=None, ignore_index=None,
                    validate_args=True):
    """Accumulating :func:`fcnn.metrics.confusion_matrix` (``torchmetrics.ConfusionMatrix``); the state: counts."""
    where = "ConfusionMatrix"
    _checks.one_of(normalize, _cls.CONFUSION_NORMALIZE, "normalize", where)
    return _confusion_metric(where, task, threshold, num_classes, num_labels, ignore_index, validate_args,
                             lambda cm: _cls.normalize_confusion(cm, normalize))


def JaccardIndex(task, threshold=0.5, num_classes=None, num_labels=None, average="macro", ignore_index=None,
                 validate_args=True, zero_division=0):
    """Accumulating :func:`fcnn.metrics.jaccard_index` (``torchmetrics.JaccardIndex``); the state is the counts."""
    where = "JaccardIndex"
    cfg = _cls.config(where, task, threshold, num_classes, num_labels, average, ignore_index=ignore_index)
    zero_division = _inputs.zero_division(zero_division, where)
    binary = cfg["task"] == "binary"
    return _confusion_metric(where, task, threshold, num_classes, num_labels, ignore_index, validate_args,
                             lambda cm: _cls.jaccard_reduce(cm, "binary" if binary else average,
                                                            cfg["ignore_index"], zero_division))


def AUROC(task, thresholds=None, num_classes=None, num_labels=None, average="macro", max_fpr=None, ignore_index=None,
          validate_args=True):
    """Accumulating :func:`fcnn.metrics.auroc` (``torchmetrics.AUROC``) in its binned form.

    ``thresholds`` (an int, a list or a 1-D array) is required: the state is a
    histogram of positive and negative scores between the thresholds, equal to
    torchmetrics' binned AUROC over the same batches. ``thresholds=None``
    (exact) would have to keep every score; use :func:`fcnn.metrics.auroc` on
    the gathered scores for that.
    """
    where = "AUROC"
    if thresholds is None:
        raise ValueError(f"{where}: thresholds=None (exact AUROC) keeps every score and has no summable state; pass "
                         "thresholds (an int such as 200, a list or a 1-D array) for the binned AUROC, or call "
                         "fcnn.metrics.auroc on all scores")
    cfg = _auroc.config(where, task, thresholds, num_classes, num_labels, average, max_fpr, ignore_index)
    task, avg, steps = cfg["task"], cfg["average"], len(cfg["thresholds"])
    k = 1 if task == "binary" else cfg["num_classes"]

    def update(state, preds, target):
        preds, target = _auroc.check_inputs(where, preds, target, cfg, validate_args)
        return state + _auroc.histograms(preds, target, task=task, num_classes=cfg["num_classes"],
                                         ignore_index=cfg["ignore_index"], thresholds=cfg["thresholds"])

    compute = jax.jit(lambda hist: _auroc.area_from_histograms(hist, task, avg, cfg["max_fpr"]))
    return Metric(lambda: _zeros((k, steps + 1, 2)), update, compute)


def _segmentation_args(where, num_classes, include_background, input_format):
    if not isinstance(include_background, bool):
        raise TypeError(f"{where}: include_background must be a bool, got {include_background!r}")
    _checks.one_of(input_format, _seg.INPUT_FORMATS, "input_format", where)
    num_classes = _checks.positive_int(num_classes, "num_classes", where)
    kept = num_classes - 1 if not include_background and num_classes > 1 else num_classes
    return num_classes, kept


def DiceScore(num_classes, include_background=True, average="macro", aggregation_level="samplewise",
              input_format="one-hot"):
    """Accumulating :func:`fcnn.metrics.dice_score` (``torchmetrics.segmentation.DiceScore``).

    ``'global'``: the state sums the pixel counts ``2|P ∩ T|``, ``|P| + |T|``
    and ``|T|`` per class, and the score is that of all samples pooled.
    ``'samplewise'``: the state sums the samples' scores (those that are not
    ``nan``) and counts them, and the result is their mean, as torchmetrics'
    ``nanmean`` over all samples.
    """
    where = "DiceScore"
    num_classes, kept = _segmentation_args(where, num_classes, include_background, input_format)
    _checks.one_of(average, ("micro", "macro", "weighted", "none", None), "average", where)
    _checks.one_of(aggregation_level, ("samplewise", "global"), "aggregation_level", where)
    per_class = average in ("none", None)
    config = dict(num_classes=num_classes, include_background=include_background, input_format=input_format)

    def init():
        if aggregation_level == "global":
            return {k: _zeros((kept,)) for k in ("numerator", "denominator", "support")}
        shape = (kept,) if per_class else ()
        return {"total": jnp.zeros(shape, jnp.float32), "count": _zeros(shape)}

    def update(state, preds, target):
        preds, target, _ = _seg.check(where, preds, target, num_classes, include_background, input_format)
        inter, p_sum, t_sum = _seg.overlaps(preds, target, **config)
        if aggregation_level == "global":
            batch = {"numerator": 2 * inter.sum(0), "denominator": (p_sum + t_sum).sum(0), "support": t_sum.sum(0)}
        else:
            dice = _seg.dice_from_counts(2 * inter, p_sum + t_sum, t_sum, average, "samplewise")
            seen = ~jnp.isnan(dice)
            batch = {"total": jnp.where(seen, dice, 0.0).sum(0), "count": seen.sum(0, dtype=jnp.int32)}
        return merge(state, batch)

    def compute(state):
        if aggregation_level == "global":
            out = _seg.dice_from_counts(state["numerator"][None], state["denominator"][None], state["support"][None],
                                        average, "samplewise")
            return out[0]
        return _seg.nan_divide(state["total"], state["count"])

    return Metric(init, update, compute)


def MeanIoU(num_classes, include_background=True, per_class=False, input_format="one-hot"):
    """Accumulating :func:`fcnn.metrics.mean_iou` (``torchmetrics.segmentation.MeanIoU``).

    The state sums the IoU of every (sample, class) pair present in either
    input and counts those pairs (per class with ``per_class=True``); the result
    is their mean (``-1`` for a class never present). ``num_classes`` is
    required: the state's shape depends on it.
    """
    where = "MeanIoU"
    num_classes, kept = _segmentation_args(where, num_classes, include_background, input_format)
    if not isinstance(per_class, bool):
        raise TypeError(f"{where}: per_class must be a bool, got {per_class!r}")
    shape = (kept,) if per_class else ()
    config = dict(num_classes=num_classes, include_background=include_background, input_format=input_format)

    def update(state, preds, target):
        preds, target, _ = _seg.check(where, preds, target, num_classes, include_background, input_format)
        inter, p_sum, t_sum = _seg.overlaps(preds, target, **config)
        union = p_sum + t_sum - inter
        present = union > 0
        score = jnp.where(present, inter / jnp.where(present, union, 1), 0.0).astype(jnp.float32)
        axes = 0 if per_class else None
        return merge(state, {"total": score.sum(axes), "count": present.sum(axes, dtype=jnp.int32)})

    def compute(state):
        mean = _seg.nan_divide(state["total"], state["count"])
        return jnp.where(jnp.isnan(mean), -1.0, mean) if per_class else mean

    return Metric(lambda: {"total": jnp.zeros(shape, jnp.float32), "count": _zeros(shape)}, update, compute)


def Collection(metrics: dict[str, Metric]) -> Metric:
    """Several metrics updated together: the state and the result are dicts keyed like ``metrics``."""
    if not isinstance(metrics, dict) or not all(isinstance(m, Metric) for m in metrics.values()):
        raise TypeError(f"Collection: metrics must be a dict of name -> Metric, got {metrics!r}")
    items = dict(metrics)
    return Metric(lambda: {k: m.init() for k, m in items.items()},
                  lambda state, preds, target: {k: m.update(state[k], preds, target) for k, m in items.items()},
                  lambda state: {k: m.compute(state[k]) for k, m in items.items()})


CLASSIFICATION_NAMES = ("top<k>", "balanced_accuracy", "precision", "recall", "f1", "auroc", "iou",
                        "confusion_matrix")


def classification_metrics(names, num_classes: int) -> dict[str, Metric]:
    """Accumulators for a classifier's logits by short name (``fcnn train --metrics top1,top5,f1``).

    ``top<k>``: top-k accuracy (micro: the fraction of samples whose label is
    among the k highest scores); ``balanced_accuracy``: macro-averaged
    accuracy (mean per-class recall); ``precision``, ``recall``, ``f1``, ``iou``
    (Jaccard index): macro averages; ``auroc``: macro one-vs-rest AUROC of the
    softmax, binned over 200 thresholds; ``confusion_matrix``: the counts (rows
    = target). Target entries outside ``[0, num_classes)`` (e.g. ``-100``) count nowhere.
    """
    where = "classification_metrics"
    num_classes = _inputs.count(num_classes, "num_classes", where)
    common = dict(task="multiclass", num_classes=num_classes, validate_args=False)
    makers = {
        "balanced_accuracy": lambda: Accuracy(average="macro", **common),
        "precision": lambda: Precision(average="macro", **common),
        "recall": lambda: Recall(average="macro", **common),
        "f1": lambda: F1Score(average="macro", **common),
        "auroc": lambda: AUROC(thresholds=200, average="macro", **common),
        "iou": lambda: JaccardIndex(average="macro", **common),
        "confusion_matrix": lambda: ConfusionMatrix(**common),
    }
    out = {}
    for name in names:
        if name.startswith("top") and name[3:].isdigit():
            k = int(name[3:])
            if not 1 <= k <= num_classes:
                raise ValueError(f"{where}: {name} needs 1 <= k <= num_classes ({num_classes})")
            out[name] = Accuracy(top_k=k, average="micro", **common)
        elif name in makers:
            out[name] = makers[name]()
        else:
            raise ValueError(f"{where}: unknown metric {name!r}; known: {', '.join(CLASSIFICATION_NAMES)}")
    return out
