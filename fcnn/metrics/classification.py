"""Classification metrics: ``fcnn.metrics.<name>`` mirrors ``torchmetrics.functional.<name>``.

Same names, positional order, keywords and defaults as torchmetrics 1.9
(``accuracy(preds, target, task='multiclass', num_classes=5, top_k=2, average='macro')``),
and the task-specific forms (``binary_accuracy``, ``multiclass_f1_score``, …).
Inputs follow torchmetrics' rules:

* ``binary``: ``preds`` and ``target`` of one shape ``(N, ...)``; integer
  ``preds`` are labels in ``{0, 1}``, floating ``preds`` are probabilities, or
  logits when any value lies outside ``[0, 1]`` (then ``sigmoid``), and
  ``preds > threshold`` is positive.
* ``multiclass``: labels ``(N, ...)`` for target ``(N, ...)``, or scores
  ``(N, C, ...)`` (logits or probabilities; the arg-max is taken).
  ``top_k=k`` counts an entry as predicting its target when the target is
  among the ``k`` highest scores, else as predicting the arg-max.
* ``multilabel``: ``(N, L, ...)`` for both, each label a binary problem.
* ``ignore_index``: entries whose target equals it count nowhere.
* ``multidim_average='samplewise'`` scores each sample over its extra
  dimensions (output ``(N, ...)``) instead of over everything.

Averages: ``'micro'`` pools the statistics of all classes, ``'macro'`` is the
mean of per-class scores (classes that never occur in target or prediction
are left out, as in torchmetrics; for multilabel all labels count),
``'weighted'`` weighs classes by their support, ``'none'``/``None`` returns
the per-class scores. Divisions by zero give ``zero_division`` (0 or 1).

Everything is ``jnp`` code with static shapes given ``num_classes`` /
``num_labels``, so the metrics run under ``jax.jit`` and on device; called
eagerly, each configuration runs as one compiled XLA program
(``fcnn.functional._compiled``). Argument checks always run first; value
checks (labels in range, binary targets) run on concrete arrays.

Deliberate differences from torchmetrics: counts (``stat_scores``, an
unnormalised ``confusion_matrix``) are int32 unless JAX's x64 mode is on;
``num_classes`` is required for every multiclass average (shapes must be
static); multiclass labels outside ``[0, num_classes)`` raise ``ValueError``
on concrete arrays (torchmetrics only counts the distinct values).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from fcnn import _checks
from fcnn.functional._compiled import compiled
from fcnn.metrics import _inputs

CONFUSION_NORMALIZE = ("true", "pred", "all", "none", None)


# ---------------------------------------------------------------- statistics

def _binary_stats(preds, target, threshold, ignore_index, samplewise, multilabel):
    """``(tp, fp, tn, fn)`` of binary / multilabel inputs; per label for multilabel, per sample if asked."""
    lead = 2 if multilabel else 1
    shape = preds.shape[:lead] + (-1,)
    p = _inputs.binarize(preds, threshold).reshape(shape)
    target = target.reshape(shape)
    valid = _inputs.kept(target, ignore_index)
    pos, neg = (target == 1) & valid, (target == 0) & valid
    axes = (lead,) if samplewise else (0, lead)
    total = lambda m: jnp.sum(m, axis=axes, dtype=jnp.int32)
    return total(p & pos), total(p & neg), total(~p & neg), total(~p & pos)


def _confmat(labels, target, valid, num_classes: int):
    """``(C, C)`` counts, rows = target, columns = prediction, over the ``valid`` entries.

    Labels outside ``[0, C)`` (possible only under ``jit``, where values are not checked) count nowhere.
    """
    valid = valid & (target >= 0) & (target < num_classes) & (labels >= 0) & (labels < num_classes)
    idx = jnp.where(valid, target * num_classes + labels, 0).reshape(-1)
    counts = jnp.zeros(num_classes * num_classes, jnp.int32).at[idx].add(valid.reshape(-1).astype(jnp.int32))
    return counts.reshape(num_classes, num_classes)


def _multiclass_stats(preds, target, num_classes, top_k, ignore_index, samplewise):
    """Per-class ``(tp, fp, tn, fn)``, shape ``(C,)`` or ``(N, C)`` for ``samplewise``."""
    labels = _inputs.multiclass_labels(preds, target, top_k).astype(jnp.int32)
    target = target.astype(jnp.int32)
    valid = _inputs.kept(target, ignore_index)
    if not samplewise:
        cm = _confmat(labels, target, valid, num_classes)
        tp = jnp.diagonal(cm)
        fp, fn = cm.sum(0) - tp, cm.sum(1) - tp
        return tp, fp, cm.sum() - tp - fp - fn, fn
    n = target.shape[0]
    valid = valid & (target >= 0) & (target < num_classes)
    p = jnp.eye(num_classes, dtype=jnp.int32)[jnp.clip(labels.reshape(n, -1), 0, num_classes - 1)]
    t = (target.reshape(n, -1, 1) == jnp.arange(num_classes)).astype(jnp.int32)
    v = valid.reshape(n, -1, 1).astype(jnp.int32)
    total = lambda m: jnp.sum(m * v, axis=1)
    return total(p * t), total(p * (1 - t)), total((1 - p) * (1 - t)), total((1 - p) * t)


def _stats(preds, target, task, threshold, num_classes, top_k, ignore_index, multidim_average):
    samplewise = multidim_average == "samplewise"
    if task == "multiclass":
        return _multiclass_stats(preds, target, num_classes, top_k, ignore_index, samplewise)
    return _binary_stats(preds, target, threshold, ignore_index, samplewise, task == "multilabel")


# ---------------------------------------------------------------- reductions

def _divide(num, den, zero_division=0.0):
    num, den = jnp.asarray(num, jnp.float32), jnp.asarray(den, jnp.float32)
    return jnp.where(den != 0, num / jnp.where(den != 0, den, 1.0), jnp.float32(zero_division))


def _average(score, average, multilabel, tp, fp, fn, top_k=1):
    """Average per-class scores over the last axis; macro leaves out classes absent from target and prediction."""
    if average in ("none", None):
        return score
    if average == "weighted":
        weights = (tp + fn).astype(jnp.float32)
    else:
        weights = jnp.ones_like(score)
        if not multilabel:
            absent = (tp + fp + fn == 0) if top_k == 1 else (tp + fn == 0)
            weights = jnp.where(absent, 0.0, weights)
    return _divide(jnp.sum(weights * score, -1), jnp.sum(weights, -1))


def _reduce_accuracy(tp, fp, tn, fn, average, multilabel, top_k, beta, zero_division):
    if average == "binary":
        return _divide(tp + tn, tp + tn + fp + fn)
    if average == "micro":
        tp, fp, tn, fn = (s.sum(-1) for s in (tp, fp, tn, fn))
        return _divide(tp + tn, tp + tn + fp + fn) if multilabel else _divide(tp, tp + fn)
    score = _divide(tp + tn, tp + tn + fp + fn) if multilabel else _divide(tp, tp + fn)
    return _average(score, average, multilabel, tp, fp, fn, top_k)


def _precision_recall(stat):
    def reduce(tp, fp, tn, fn, average, multilabel, top_k, beta, zero_division):
        other = fp if stat == "precision" else fn
        if average == "micro":
            tp, other = tp.sum(-1), other.sum(-1)
        score = _divide(tp, tp + other, zero_division)
        if average in ("binary", "micro"):
            return score
        return _average(score, average, multilabel, tp, fp, fn, top_k)

    return reduce


def _reduce_fbeta(tp, fp, tn, fn, average, multilabel, top_k, beta, zero_division):
    b2 = beta ** 2
    if average == "micro":
        tp, fp, fn = tp.sum(-1), fp.sum(-1), fn.sum(-1)
    score = _divide((1 + b2) * tp, (1 + b2) * tp + b2 * fn + fp, zero_division)
    if average in ("binary", "micro"):
        return score
    # torchmetrics' F-beta leaves out absent classes by the top-1 rule whatever top_k is
    return _average(score, average, multilabel, tp, fp, fn)


def _reduce_stat_scores(tp, fp, tn, fn, average, multilabel, top_k, beta, zero_division):
    res = jnp.stack([tp, fp, tn, fn, tp + fn], axis=-1)
    if average == "binary" or average in ("none", None):
        return res
    class_axis = res.ndim - 2
    if average == "micro":
        return res.sum(class_axis)
    if average == "macro":
        return res.astype(jnp.float32).mean(class_axis)
    weight = (tp + fn).astype(jnp.float32)
    # torchmetrics normalises multilabel weights over all samples and labels, multiclass ones per sample
    weight = weight / (weight.sum() if multilabel else weight.sum(-1, keepdims=True))
    return (res * weight[..., None]).sum(class_axis)


_REDUCE = {"accuracy": _reduce_accuracy, "precision": _precision_recall("precision"),
           "recall": _precision_recall("recall"), "fbeta": _reduce_fbeta, "stat_scores": _reduce_stat_scores}


@compiled
def stats(preds, target, *, task, threshold, num_classes, top_k, ignore_index, multidim_average):
    """``(tp, fp, tn, fn)``: scalars (binary), per class ``(C,)`` or label ``(L,)``; ``(N, ...)`` if samplewise."""
    return _stats(preds, target, task, threshold, num_classes, top_k, ignore_index, multidim_average)


def reduce(tp, fp, tn, fn, *, metric, task, average, top_k=1, beta=1.0, zero_division=0.0):
    """A metric (``'accuracy'``, ``'precision'``, ``'recall'``, ``'fbeta'``, ``'stat_scores'``) from the statistics."""
    if task == "binary":
        average = "binary"
    return _REDUCE[metric](tp, fp, tn, fn, average, task == "multilabel", top_k, beta, zero_division)


@compiled
def _stat_metric(preds, target, *, metric, task, threshold, num_classes, top_k, ignore_index, multidim_average,
                 average, beta, zero_division):
    tp, fp, tn, fn = _stats(preds, target, task, threshold, num_classes, top_k, ignore_index, multidim_average)
    return reduce(tp, fp, tn, fn, metric=metric, task=task, average=average, top_k=top_k, beta=beta,
                  zero_division=zero_division)


def config(where, task, threshold=0.5, num_classes=None, num_labels=None, average="micro",
           multidim_average="global", top_k=1, ignore_index=None, averages=_inputs.AVERAGES):
    """Check the arguments that do not depend on the data; returns the statistics' configuration."""
    task = _inputs.task(task, where)
    threshold = _inputs.threshold(threshold, where)
    ignore_index = _inputs.optional_int(ignore_index, "ignore_index", where)
    _checks.one_of(multidim_average, _inputs.MULTIDIM_AVERAGES, "multidim_average", where)
    n = None
    if task != "binary":
        _checks.one_of(average, averages, "average", where)
        n = _inputs.count(num_classes if task == "multiclass" else num_labels,
                          "num_classes" if task == "multiclass" else "num_labels", where)
    top_k = _inputs.top_k(1 if top_k is None else top_k, n, where) if task == "multiclass" else 1
    return dict(task=task, threshold=threshold, num_classes=n, top_k=top_k, ignore_index=ignore_index,
                multidim_average=multidim_average)


def check_inputs(where, preds, target, cfg, validate_args=True):
    """Check ``preds`` and ``target`` against a :func:`config`; returns them as arrays."""
    preds, target = _inputs.array(preds, "preds", where), _inputs.array(target, "target", where)
    task, n, ignore_index = cfg["task"], cfg["num_classes"], cfg["ignore_index"]
    samplewise = cfg["multidim_average"] == "samplewise"
    if task == "multiclass":
        _inputs.multiclass_shapes(preds, target, n, where)
        if cfg["top_k"] > 1 and preds.ndim != target.ndim + 1:
            raise ValueError(f"{where}: top_k={cfg['top_k']} needs scores (N, C, ...), got labels of shape "
                             f"{tuple(preds.shape)}")
        if samplewise and target.ndim < 2:
            raise ValueError(f"{where}: multidim_average='samplewise' needs targets (N, ...) with extra dimensions, "
                             f"got target of shape {tuple(target.shape)}")
        if validate_args:
            _inputs.check_labels(target, "target", n, ignore_index, where)
            if not _inputs.is_float(preds):
                _inputs.check_labels(preds, "preds", n, None, where)
        return preds, target
    if task == "binary":
        _inputs.same_shape(preds, target, where)
        if preds.ndim < (2 if samplewise else 1):
            raise ValueError(f"{where}: binary inputs need a batch dimension (and extra dimensions for "
                             f"multidim_average='samplewise'), got shape {tuple(preds.shape)}")
    else:
        _inputs.multilabel_shapes(preds, target, n, where)
        if samplewise and preds.ndim < 3:
            raise ValueError(f"{where}: multidim_average='samplewise' needs multilabel inputs (N, L, ...) with extra "
                             f"dimensions, got shape {tuple(preds.shape)}")
    if validate_args:
        _inputs.check_binary_values(target, "target", ignore_index, where)
        if not _inputs.is_float(preds):
            _inputs.check_binary_values(preds, "preds", None, where)
    return preds, target


def _stat_call(where, metric, preds, target, task, threshold, num_classes, num_labels, average, multidim_average,
               top_k, ignore_index, validate_args, beta=1.0, zero_division=0):
    cfg = config(where, task, threshold, num_classes, num_labels, average, multidim_average, top_k, ignore_index)
    if metric == "fbeta" and (isinstance(beta, bool) or not isinstance(beta, (int, float)) or not beta > 0):
        raise ValueError(f"{where}: beta must be a float > 0, got {beta!r}")
    zero_division = _inputs.zero_division(zero_division, where)
    preds, target = check_inputs(where, preds, target, cfg, validate_args)
    return _stat_metric(preds, target, metric=metric, average=average, beta=float(beta), zero_division=zero_division,
                        **cfg)


# ---------------------------------------------------------------- public functions (torchmetrics' signatures)

def accuracy(preds, target, task, threshold=0.5, num_classes=None, num_labels=None, average="micro",
             multidim_average="global", top_k=1, ignore_index=None, validate_args=True):
    """Accuracy, as ``torchmetrics.functional.accuracy``.

    Binary: ``(tp + tn) / all``. Multiclass: per-class recall ``tp / (tp + fn)``
    averaged (``'micro'`` = the fraction of correct entries, top-k with
    ``top_k``). Multilabel: ``(tp + tn) / all`` per label, averaged.

    Args:
        preds: labels, probabilities or logits (see the module docstring for the shapes).
        target: integer labels.
        task: ``'binary'``, ``'multiclass'`` or ``'multilabel'``.
        threshold: probability above which a binary/multilabel prediction is positive.
        num_classes, num_labels: for the multiclass / multilabel tasks.
        average: ``'micro'``, ``'macro'``, ``'weighted'``, ``'none'`` or ``None``.
        multidim_average: ``'global'`` or ``'samplewise'``.
        top_k: multiclass only.
        ignore_index: target value that is ignored.
        validate_args: check label values (on concrete arrays).

    Returns:
        A float32 scalar, ``(C,)`` for ``average='none'``, ``(N, ...)`` for ``'samplewise'``.
    """
    return _stat_call("accuracy", "accuracy", preds, target, task, threshold, num_classes, num_labels, average,
                      multidim_average, top_k, ignore_index, validate_args)


def precision(preds, target, task, threshold=0.5, num_classes=None, num_labels=None, average="micro",
              multidim_average="global", top_k=1, ignore_index=None, validate_args=True, zero_division=0):
    """Precision ``tp / (tp + fp)``, as ``torchmetrics.functional.precision`` (arguments as :func:`accuracy`)."""
    return _stat_call("precision", "precision", preds, target, task, threshold, num_classes, num_labels, average,
                      multidim_average, top_k, ignore_index, validate_args, zero_division=zero_division)


def recall(preds, target, task, threshold=0.5, num_classes=None, num_labels=None, average="micro",
           multidim_average="global", top_k=1, ignore_index=None, validate_args=True, zero_division=0):
    """Recall ``tp / (tp + fn)``, as ``torchmetrics.functional.recall`` (arguments as :func:`accuracy`)."""
    return _stat_call("recall", "recall", preds, target, task, threshold, num_classes, num_labels, average,
                      multidim_average, top_k, ignore_index, validate_args, zero_division=zero_division)


def fbeta_score(preds, target, task, beta=1.0, threshold=0.5, num_classes=None, num_labels=None, average="micro",
                multidim_average="global", top_k=1, ignore_index=None, validate_args=True, zero_division=0):
    """F-beta ``(1 + β²) tp / ((1 + β²) tp + β² fn + fp)``, as ``torchmetrics.functional.fbeta_score``."""
    return _stat_call("fbeta_score", "fbeta", preds, target, task, threshold, num_classes, num_labels, average,
                      multidim_average, top_k, ignore_index, validate_args, beta=beta, zero_division=zero_division)


def f1_score(preds, target, task, threshold=0.5, num_classes=None, num_labels=None, average="micro",
             multidim_average="global", top_k=1, ignore_index=None, validate_args=True, zero_division=0):
    """F1 (F-beta with β = 1), as ``torchmetrics.functional.f1_score`` (arguments as :func:`accuracy`)."""
    return _stat_call("f1_score", "fbeta", preds, target, task, threshold, num_classes, num_labels, average,
                      multidim_average, top_k, ignore_index, validate_args, beta=1.0, zero_division=zero_division)


def stat_scores(preds, target, task, threshold=0.5, num_classes=None, num_labels=None, average="micro",
                multidim_average="global", top_k=1, ignore_index=None, validate_args=True):
    """``[tp, fp, tn, fn, support]`` on the last axis, as ``torchmetrics.functional.stat_scores``.

    Shape ``(5,)``; ``(C, 5)`` per class for ``average='none'``; a leading
    ``N`` for ``'samplewise'``. Integer counts except for ``'macro'`` and
    ``'weighted'`` (float means).
    """
    return _stat_call("stat_scores", "stat_scores", preds, target, task, threshold, num_classes, num_labels,
                      average, multidim_average, top_k, ignore_index, validate_args)


# ---------------------------------------------------------------- confusion matrix and Jaccard index

@compiled
def confusion(preds, target, task, threshold, num_classes, ignore_index):
    """Unnormalised counts: ``(2, 2)`` binary, ``(C, C)`` multiclass, ``(L, 2, 2)`` multilabel; rows = target."""
    if task == "multiclass":
        labels = _inputs.multiclass_labels(preds, target, 1).astype(jnp.int32)
        target = target.astype(jnp.int32)
        return _confmat(labels, target, _inputs.kept(target, ignore_index), num_classes)
    if task == "binary":
        valid = _inputs.kept(target, ignore_index)
        # torchmetrics drops ignored entries before deciding whether the scores are logits
        p = _inputs.binarize(preds, threshold, kept_for_check=valid).astype(jnp.int32)
        return _confmat(p, target.astype(jnp.int32), valid, 2)
    lead = preds.shape[:2] + (-1,)
    p = _inputs.binarize(preds, threshold).reshape(lead).astype(jnp.int32)
    t = target.reshape(lead).astype(jnp.int32)
    valid = _inputs.kept(t, ignore_index)
    per_label = lambda pl, tl, vl: _confmat(pl, tl, vl, 2)
    return jax.vmap(per_label, in_axes=1)(p, t, valid)


def normalize_confusion(cm, normalize):
    """``cm`` normalised over rows (``'true'``), columns (``'pred'``) or all; 0 where a sum is 0."""
    if normalize in ("none", None):
        return cm
    cm = cm.astype(jnp.float32)
    axes = {"true": (-1,), "pred": (-2,), "all": (-2, -1)}[normalize]
    out = cm / jnp.sum(cm, axis=axes, keepdims=True)
    return jnp.where(jnp.isnan(out), 0.0, out)


@compiled
def _confusion_matrix(preds, target, *, task, threshold, num_classes, ignore_index, normalize):
    return normalize_confusion(confusion(preds, target, task, threshold, num_classes, ignore_index), normalize)


def jaccard_reduce(cm, average, ignore_index, zero_division):
    """The Jaccard index from confusion counts (``(2, 2)`` with ``average='binary'``, ``(C, C)``, ``(L, 2, 2)``)."""
    cm = cm.astype(jnp.float32)
    if average == "binary":
        return _divide(cm[1, 1], cm[0, 1] + cm[1, 0] + cm[1, 1], zero_division)
    # torchmetrics applies the ignore_index rule below to the first axis, labels too for multilabel
    drop = ignore_index is not None and 0 <= ignore_index < cm.shape[0]
    multilabel = cm.ndim == 3
    if multilabel:
        num, den = cm[:, 1, 1], cm[:, 1, 1] + cm[:, 0, 1] + cm[:, 1, 0]
    else:
        num = jnp.diagonal(cm)
        den = cm.sum(0) + cm.sum(1) - num
    if average == "micro":
        num, den = num.sum(), den.sum() - (den[ignore_index] if drop else 0.0)
    score = _divide(num, den, zero_division)
    if average in ("none", None, "micro"):
        return score
    if average == "weighted":
        weights = cm[:, 1, 1] + cm[:, 1, 0] if multilabel else cm.sum(1)
    else:
        weights = jnp.ones_like(score)
        if drop:
            weights = weights.at[ignore_index].set(0.0)
        if not multilabel:
            weights = jnp.where(cm.sum(1) + cm.sum(0) == 0, 0.0, weights)
    return jnp.sum(weights * score / jnp.sum(weights))


@compiled
def _jaccard_index(preds, target, *, task, threshold, num_classes, ignore_index, average, zero_division):
    cm = confusion(preds, target, task, threshold, num_classes, ignore_index)
    return jaccard_reduce(cm, "binary" if task == "binary" else average, ignore_index, zero_division)


def _confusion_check(where, preds, target, task, threshold, num_classes, num_labels, ignore_index, validate_args,
                     average="micro"):
    cfg = config(where, task, threshold, num_classes, num_labels, average, ignore_index=ignore_index)
    preds, target = check_inputs(where, preds, target, cfg, validate_args)
    del cfg["top_k"], cfg["multidim_average"]
    return preds, target, cfg


def confusion_matrix(preds, target, task, threshold=0.5, num_classes=None, num_labels=None, normalize=None,
                     ignore_index=None, validate_args=True):
    """Confusion matrix (rows = target, columns = prediction), as ``torchmetrics.functional.confusion_matrix``.

    Shape ``(2, 2)`` binary, ``(C, C)`` multiclass, ``(L, 2, 2)`` multilabel.
    ``normalize``: ``'true'`` (rows sum to 1), ``'pred'`` (columns), ``'all'``,
    or ``None``/``'none'`` (int32 counts); empty rows/columns give zeros.
    """
    where = "confusion_matrix"
    _checks.one_of(normalize, CONFUSION_NORMALIZE, "normalize", where)
    preds, target, cfg = _confusion_check(where, preds, target, task, threshold, num_classes, num_labels,
                                          ignore_index, validate_args)
    return _confusion_matrix(preds, target, normalize=normalize, **cfg)


def jaccard_index(preds, target, task, threshold=0.5, num_classes=None, num_labels=None, average="macro",
                  ignore_index=None, validate_args=True, zero_division=0.0):
    """Jaccard index (intersection over union ``tp / (tp + fp + fn)``), as ``torchmetrics.functional.jaccard_index``.

    ``'macro'`` leaves out classes absent from target and prediction and, when
    ``ignore_index`` is a class index, that class (as torchmetrics does).
    """
    where = "jaccard_index"
    preds, target, cfg = _confusion_check(where, preds, target, task, threshold, num_classes, num_labels,
                                          ignore_index, validate_args, average)
    zero_division = _inputs.zero_division(zero_division, where)
    return _jaccard_index(preds, target, average=average, zero_division=zero_division, **cfg)


# ---------------------------------------------------------------- task-specific forms

def _binary_form(fn):
    def form(preds, target, threshold=0.5, multidim_average="global", ignore_index=None, validate_args=True,
             zero_division=0):
        return fn(preds, target, "binary", threshold, multidim_average=multidim_average, ignore_index=ignore_index,
                  validate_args=validate_args, zero_division=zero_division)

    return form


def _multiclass_form(fn):
    def form(preds, target, num_classes, average="macro", top_k=1, multidim_average="global", ignore_index=None,
             validate_args=True, zero_division=0):
        return fn(preds, target, "multiclass", num_classes=num_classes, average=average, top_k=top_k,
                  multidim_average=multidim_average, ignore_index=ignore_index, validate_args=validate_args,
                  zero_division=zero_division)

    return form


def _multilabel_form(fn):
    def form(preds, target, num_labels, threshold=0.5, average="macro", multidim_average="global", ignore_index=None,
             validate_args=True, zero_division=0):
        return fn(preds, target, "multilabel", threshold, num_labels=num_labels, average=average,
                  multidim_average=multidim_average, ignore_index=ignore_index, validate_args=validate_args,
                  zero_division=zero_division)

    return form


def _counting_forms(fn):
    """The task-specific forms of a metric without ``zero_division`` (accuracy, stat scores)."""
    def binary(preds, target, threshold=0.5, multidim_average="global", ignore_index=None, validate_args=True):
        return fn(preds, target, "binary", threshold, multidim_average=multidim_average, ignore_index=ignore_index,
                  validate_args=validate_args)

    def multiclass(preds, target, num_classes, average="macro", top_k=1, multidim_average="global",
                   ignore_index=None, validate_args=True):
        return fn(preds, target, "multiclass", num_classes=num_classes, average=average, top_k=top_k,
                  multidim_average=multidim_average, ignore_index=ignore_index, validate_args=validate_args)

    def multilabel(preds, target, num_labels, threshold=0.5, average="macro", multidim_average="global",
                   ignore_index=None, validate_args=True):
        return fn(preds, target, "multilabel", threshold, num_labels=num_labels, average=average,
                  multidim_average=multidim_average, ignore_index=ignore_index, validate_args=validate_args)

    return binary, multiclass, multilabel


_TASK_NAMES = ("binary", "multiclass", "multilabel")


def _named(form, name: str, base: str):
    form.__name__ = form.__qualname__ = name
    form.__doc__ = f"``{base}(..., task='{name.split('_')[0]}')``, as ``torchmetrics.functional.{name}``."
    return form


binary_accuracy, multiclass_accuracy, multilabel_accuracy = (
    _named(form, f"{task}_accuracy", "accuracy")
    for form, task in zip(_counting_forms(accuracy), _TASK_NAMES))
binary_stat_scores, multiclass_stat_scores, multilabel_stat_scores = (
    _named(form, f"{task}_stat_scores", "stat_scores")
    for form, task in zip(_counting_forms(stat_scores), _TASK_NAMES))
binary_precision = _named(_binary_form(precision), "binary_precision", "precision")
multiclass_precision = _named(_multiclass_form(precision), "multiclass_precision", "precision")
multilabel_precision = _named(_multilabel_form(precision), "multilabel_precision", "precision")
binary_recall = _named(_binary_form(recall), "binary_recall", "recall")
multiclass_recall = _named(_multiclass_form(recall), "multiclass_recall", "recall")
multilabel_recall = _named(_multilabel_form(recall), "multilabel_recall", "recall")
binary_f1_score = _named(_binary_form(f1_score), "binary_f1_score", "f1_score")
multiclass_f1_score = _named(_multiclass_form(f1_score), "multiclass_f1_score", "f1_score")
multilabel_f1_score = _named(_multilabel_form(f1_score), "multilabel_f1_score", "f1_score")


def binary_fbeta_score(preds, target, beta, threshold=0.5, multidim_average="global", ignore_index=None,
                       validate_args=True, zero_division=0):
    """``fbeta_score(..., task='binary')``."""
    return fbeta_score(preds, target, "binary", beta, threshold, multidim_average=multidim_average,
                       ignore_index=ignore_index, validate_args=validate_args, zero_division=zero_division)


def multiclass_fbeta_score(preds, target, beta, num_classes, average="macro", top_k=1, multidim_average="global",
                           ignore_index=None, validate_args=True, zero_division=0):
    """``fbeta_score(..., task='multiclass')``."""
    return fbeta_score(preds, target, "multiclass", beta, num_classes=num_classes, average=average, top_k=top_k,
                       multidim_average=multidim_average, ignore_index=ignore_index, validate_args=validate_args,
                       zero_division=zero_division)


def multilabel_fbeta_score(preds, target, beta, num_labels, threshold=0.5, average="macro", multidim_average="global",
                           ignore_index=None, validate_args=True, zero_division=0):
    """``fbeta_score(..., task='multilabel')``."""
    return fbeta_score(preds, target, "multilabel", beta, threshold, num_labels=num_labels, average=average,
                       multidim_average=multidim_average, ignore_index=ignore_index, validate_args=validate_args,
                       zero_division=zero_division)


def binary_confusion_matrix(preds, target, threshold=0.5, normalize=None, ignore_index=None, validate_args=True):
    """``confusion_matrix(..., task='binary')``."""
    return confusion_matrix(preds, target, "binary", threshold, normalize=normalize, ignore_index=ignore_index,
                            validate_args=validate_args)


def multiclass_confusion_matrix(preds, target, num_classes, normalize=None, ignore_index=None, validate_args=True):
    """``confusion_matrix(..., task='multiclass')``."""
    return confusion_matrix(preds, target, "multiclass", num_classes=num_classes, normalize=normalize,
                            ignore_index=ignore_index, validate_args=validate_args)


def multilabel_confusion_matrix(preds, target, num_labels, threshold=0.5, normalize=None, ignore_index=None,
                                validate_args=True):
    """``confusion_matrix(..., task='multilabel')``."""
    return confusion_matrix(preds, target, "multilabel", threshold, num_labels=num_labels, normalize=normalize,
                            ignore_index=ignore_index, validate_args=validate_args)


def binary_jaccard_index(preds, target, threshold=0.5, ignore_index=None, validate_args=True, zero_division=0.0):
    """``jaccard_index(..., task='binary')``."""
    return jaccard_index(preds, target, "binary", threshold, ignore_index=ignore_index, validate_args=validate_args,
                         zero_division=zero_division)


def multiclass_jaccard_index(preds, target, num_classes, average="macro", ignore_index=None, validate_args=True,
                             zero_division=0.0):
    """``jaccard_index(..., task='multiclass')``."""
    return jaccard_index(preds, target, "multiclass", num_classes=num_classes, average=average,
                         ignore_index=ignore_index, validate_args=validate_args, zero_division=zero_division)


def multilabel_jaccard_index(preds, target, num_labels, threshold=0.5, average="macro", ignore_index=None,
                             validate_args=True, zero_division=0.0):
    """``jaccard_index(..., task='multilabel')``."""
    return jaccard_index(preds, target, "multilabel", threshold, num_labels=num_labels, average=average,
                         ignore_index=ignore_index, validate_args=validate_args, zero_division=zero_division)
