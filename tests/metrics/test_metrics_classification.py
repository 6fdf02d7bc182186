"""fcnn.metrics' classification metrics against torchmetrics.functional on generated inputs.

Each group of static settings (task, multidim_average, top_k, ignore_index,
kind of preds) is compiled once: one jitted function computes every metric
for every average, and runs on several seeded data sets of one shape (with
empty classes, ties and ignored entries). The eager path, with its value
checks, is covered by a few calls outside jit and the error tests.
"""

import functools

import jax
import numpy as np
import pytest
from torchvision_cpu import import_torchvision

import_torchvision()
import torch  # noqa: E402
import torchmetrics.functional as TF  # noqa: E402

from fcnn import metrics as M  # noqa: E402

STAT_METRICS = ("accuracy", "precision", "recall", "f1_score", "fbeta_score", "stat_scores")
AVERAGES = ("micro", "macro", "weighted", "none")
N, C, D = 6, 4, 3


def _multiclass_data(seed, ignore_index, ties):
    rng = np.random.default_rng(seed)
    target = rng.integers(0, C, (N, D))
    scores = rng.normal(size=(N, C, D)).astype(np.float32)
    if seed % 3 == 0:  # an empty class: never a target, never predicted
        target[target == C - 1] = 0
        scores[:, C - 1] = -10.0
    if ties:  # few distinct values: arg-max ties resolved by the first index, as torch does
        scores = np.round(scores).astype(np.float32)
    if ignore_index is not None:
        target[rng.random((N, D)) < 0.25] = ignore_index
    return scores, target


def _binary_data(seed, kind, ignore_index, shape):
    rng = np.random.default_rng(seed)
    target = rng.integers(0, 2, shape)
    if seed % 3 == 0:
        target[:] = 0  # no positives: zero divisions
    preds = {"logits": rng.normal(size=shape) * 3, "probs": rng.random(shape),
             "labels": rng.integers(0, 2, shape)}[kind]
    preds = preds.astype(np.float32) if kind != "labels" else preds.astype(np.int32)
    if ignore_index is not None:
        target[rng.random(shape) < 0.25] = ignore_index
    return preds, target


def _torch(name, preds, target, **kw):
    return getattr(TF, name)(torch.from_numpy(np.asarray(preds)), torch.from_numpy(np.asarray(target)), **kw).numpy()


def _assert_equal(got, want, what):
    np.testing.assert_allclose(np.asarray(got, np.float64), want.astype(np.float64), rtol=1e-6, atol=1e-6,
                               equal_nan=True, err_msg=what)


def _kwargs(name, avg, **kw):
    if name == "fbeta_score":
        kw["beta"] = 0.5
    if kw["task"] != "binary":
        kw["average"] = avg
    return kw


def _compare_group(data_sets, task_kw, averages):
    """One compiled program per group: every metric and average; then each against torchmetrics."""
    calls = [(name, avg) for name in STAT_METRICS for avg in averages]

    @jax.jit
    def all_metrics(preds, target):
        return {f"{name}/{avg}": getattr(M, name)(preds, target, **_kwargs(name, avg, **task_kw))
                for name, avg in calls}

    for preds, target in data_sets:
        got = all_metrics(preds, target)
        for name, avg in calls:
            want = _torch(name, preds, target, **_kwargs(name, avg, **task_kw))
            _assert_equal(got[f"{name}/{avg}"], want, f"{name} average={avg} {task_kw}")


MULTICLASS_GROUPS = [  # (multidim_average, top_k, ignore_index, ties or "labels": arg-max labels as preds)
    ("global", 1, None, True), ("global", 2, -1, False), ("global", 1, 1, "labels"),
    ("samplewise", 1, -1, True), ("samplewise", 2, None, False), ("global", 3, 2, False),
]


@pytest.mark.parametrize("mda,top_k,ignore_index,ties", MULTICLASS_GROUPS)
def test_multiclass_equals_torchmetrics(mda, top_k, ignore_index, ties):
    data = [_multiclass_data(seed, ignore_index, ties is True) for seed in range(3)]
    if ties == "labels":
        data = [(scores.argmax(1), target) for scores, target in data]
    task_kw = dict(task="multiclass", num_classes=C, multidim_average=mda, top_k=top_k, ignore_index=ignore_index)
    _compare_group(data, task_kw, AVERAGES)


@pytest.mark.parametrize("task,mda,kind,ignore_index", [
    ("multilabel", "global", "logits", None), ("multilabel", "samplewise", "probs", -1),
    ("multilabel", "global", "labels", -1), ("binary", "global", "logits", -1),
    ("binary", "samplewise", "probs", None), ("binary", "global", "labels", None),
])
def test_binary_and_multilabel_equal_torchmetrics(task, mda, kind, ignore_index):
    shape = (N, C, D) if task == "multilabel" else (N, D)
    data = [_binary_data(seed, kind, ignore_index, shape) for seed in range(3)]
    task_kw = dict(task=task, multidim_average=mda, ignore_index=ignore_index, threshold=0.4)
    if task == "multilabel":
        task_kw["num_labels"] = C
    _compare_group(data, task_kw, AVERAGES if task == "multilabel" else ("micro",))


CONFUSION_CASES = [  # (task, kind, ignore_index)
    ("multiclass", "scores", None), ("multiclass", "labels", 1), ("multiclass", "scores", -100),
    ("binary", "logits", -1), ("binary", "probs", None), ("multilabel", "logits", -1), ("multilabel", "labels", None),
]


@pytest.mark.parametrize("task,kind,ignore_index", CONFUSION_CASES)
def test_confusion_matrix_and_jaccard_equal_torchmetrics(task, kind, ignore_index):
    kw = dict(task=task, ignore_index=ignore_index)
    if task == "multiclass":
        kw["num_classes"] = C
    if task == "multilabel":
        kw["num_labels"] = C
    normalizations = (None, "true", "pred", "all")
    averages = ("micro", "macro", "weighted", "none") if task != "binary" else ("macro",)

    @jax.jit
    def both(preds, target):
        return ([M.confusion_matrix(preds, target, normalize=n, **kw) for n in normalizations],
                [M.jaccard_index(preds, target, average=a, **kw) for a in averages])

    for seed in range(3):
        if task == "multiclass":
            preds, target = _multiclass_data(seed, ignore_index, ties=False)
            if kind == "labels":
                preds = preds.argmax(1)
        else:
            shape = (N, C, D) if task == "multilabel" else (N, D)
            preds, target = _binary_data(seed, kind, ignore_index, shape)
        cms, jaccards = both(preds, target)
        for n, got in zip(normalizations, cms):
            _assert_equal(got, _torch("confusion_matrix", preds, target, normalize=n, **kw), f"normalize={n} {kw}")
        for a, got in zip(averages, jaccards):
            _assert_equal(got, _torch("jaccard_index", preds, target, average=a, **kw), f"jaccard {a} {kw}")


def test_eager_calls_and_task_specific_forms():
    """Outside jit (one compiled program per configuration), and the task-specific names with their own defaults."""
    scores, target = _multiclass_data(1, None, ties=False)
    torch_s, torch_t = torch.from_numpy(scores), torch.from_numpy(target)
    import torchmetrics.functional.classification as TC

    for name in ("multiclass_accuracy", "multiclass_recall", "multiclass_jaccard_index", "multiclass_stat_scores"):
        _assert_equal(getattr(M, name)(scores, target, C), getattr(TC, name)(torch_s, torch_t, C).numpy(), name)
    _assert_equal(M.multiclass_fbeta_score(scores, target, 2.0, C, average="weighted"),
                  TC.multiclass_fbeta_score(torch_s, torch_t, 2.0, C, average="weighted").numpy(), "fbeta")
    preds, target = _binary_data(1, "logits", None, (N, C, D))
    tp, tt = torch.from_numpy(preds), torch.from_numpy(target)
    for name in ("f1_score", "confusion_matrix"):
        _assert_equal(getattr(M, f"multilabel_{name}")(preds, target, C),
                      getattr(TC, f"multilabel_{name}")(tp, tt, C).numpy(), name)
        _assert_equal(getattr(M, f"binary_{name}")(preds[:, 0], target[:, 0]),
                      getattr(TC, f"binary_{name}")(tp[:, 0], tt[:, 0]).numpy(), name)
    # the generic form with torchmetrics' positional order
    _assert_equal(M.accuracy(scores, _multiclass_data(1, None, False)[1], "multiclass", 0.5, C, None, "macro",
                             "global", 2),
                  TF.accuracy(torch_s, torch_t, "multiclass", 0.5, C, None, "macro", "global", 2).numpy(), "positional")


def test_zero_division_one():
    preds = np.zeros((4,), np.int32)
    target = np.zeros((4,), np.int32)
    for name in ("precision", "recall", "f1_score"):
        got = getattr(M, name)(preds, target, "binary", zero_division=1)
        _assert_equal(got, _torch(name, preds, target, task="binary", zero_division=1), name)


@pytest.mark.parametrize("call,match", [
    (lambda: M.accuracy(np.zeros((2, 3)), np.zeros(2, np.int32), "multiclass", num_classes=4), "num_classes=4"),
    (lambda: M.accuracy(np.zeros((2, 3)), np.array([0, 3]), "multiclass", num_classes=3), r"found \[3\]"),
    (lambda: M.accuracy(np.zeros(2), np.zeros(2, np.int32), "multiclass", num_classes=1), "num_classes"),
    (lambda: M.accuracy(np.zeros(2), np.zeros(2, np.int32), "tertiary"), "task"),
    (lambda: M.precision(np.zeros(2), np.array([0, 2]), "binary"), r"found \[2\]"),
    (lambda: M.f1_score(np.zeros((2, 3)), np.zeros(2, np.int32), "multiclass", num_classes=3, average="mean"),
     "average"),
    (lambda: M.accuracy(np.zeros((2, 3)), np.zeros(2, np.int32), "multiclass", num_classes=3, top_k=4), "top_k"),
    (lambda: M.recall(np.zeros(3), np.zeros(2, np.int32), "binary"), "same shape"),
    (lambda: M.recall(np.zeros(3), np.zeros(3, np.int32), "binary", threshold=1.5), "threshold"),
    (lambda: M.recall(np.zeros(3), np.zeros(3, np.int32), "binary", zero_division=0.5), "zero_division"),
    (lambda: M.fbeta_score(np.zeros(3), np.zeros(3, np.int32), "binary", beta=0.0), "beta"),
    (lambda: M.confusion_matrix(np.zeros(3), np.zeros(3, np.int32), "binary", normalize="rows"), "normalize"),
    (lambda: M.accuracy(np.zeros((2, 2)), np.zeros((2, 2), np.int32), "multilabel", num_labels=3), "num_labels=3"),
])
def test_bad_arguments_raise_clear_errors(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_planted_bug_is_caught(monkeypatch):
    """The comparison fails when the macro average forgets to leave out absent classes."""
    from fcnn.metrics import classification

    original = classification._average

    def buggy(score, average, multilabel, tp, fp, fn, top_k=1):
        return original(score, average, True, tp, fp, fn, top_k)  # multilabel=True: no class left out

    monkeypatch.setattr(classification, "_average", buggy)
    scores, target = _multiclass_data(0, None, ties=False)  # seed 0 has an empty class
    scores, target = scores[:, :, :2], target[:, :2]  # a shape no other test traces (jit caches traces)
    got = jax.jit(functools.partial(M.precision, task="multiclass", num_classes=C, average="macro"))(scores, target)
    want = _torch("precision", scores, target, task="multiclass", num_classes=C, average="macro")
    assert not np.allclose(np.asarray(got), want)
