"""fcnn.metrics.auroc (exact and binned, ties, max_fpr, ignore_index), dice_score and mean_iou against torchmetrics."""

import jax
import numpy as np
import pytest
from torchvision_cpu import import_torchvision

import_torchvision()
import torch  # noqa: E402
import torchmetrics.functional as TF  # noqa: E402
import torchmetrics.functional.segmentation as TS  # noqa: E402

from fcnn import metrics as M  # noqa: E402
from fcnn.metrics import roc  # noqa: E402

N, C = 40, 3


def _t(x):
    return torch.from_numpy(np.asarray(x))


def _close(got, want, what, tol=2e-6):
    np.testing.assert_allclose(np.asarray(got, np.float64), np.asarray(want, np.float64), rtol=tol, atol=tol,
                               equal_nan=True, err_msg=what)


@pytest.mark.parametrize("steps", [2, 3, 7, 10, 100, 101, 200])
def test_linspace_thresholds_within_one_float32_step_of_torchs(steps):
    ours, torchs = roc.linspace_thresholds(steps), torch.linspace(0, 1, steps).numpy()
    assert ours[0] == 0 and ours[-1] == 1 and ours.dtype == np.float32
    np.testing.assert_array_max_ulp(ours, torchs, maxulp=1)


def _scores(rng, shape, seed):
    # seed 0: a coarse grid of probabilities (many ties, and scores on thresholds); 1: logits; 2: distinct probabilities
    if seed == 0:
        return (rng.integers(0, 11, shape) / 10).astype(np.float32)
    if seed == 1:
        return (rng.normal(size=shape) * 2).astype(np.float32)
    return rng.random(shape).astype(np.float32)


@pytest.mark.parametrize("thresholds", [None, 11, [0.0, 0.25, 0.5, 0.8, 1.0]])
@pytest.mark.parametrize("ignore_index", [None, -1])
def test_binary_auroc_equals_torchmetrics(thresholds, ignore_index):
    max_fprs = (None, 0.3, 1.0)

    @jax.jit
    def areas(p, t):
        return [M.auroc(p, t, "binary", thresholds, max_fpr=mf, ignore_index=ignore_index) for mf in max_fprs]

    for seed in range(4):
        rng = np.random.default_rng(seed)
        preds, target = _scores(rng, (N, 2), seed % 3), rng.integers(0, 2, (N, 2))
        if seed == 3:
            target[:] = 1  # no negatives: torchmetrics' zero fpr
        if ignore_index is not None:
            target[rng.random((N, 2)) < 0.2] = ignore_index
        for mf, got in zip(max_fprs, areas(preds, target)):
            want = TF.auroc(_t(preds), _t(target), "binary", thresholds, max_fpr=mf, ignore_index=ignore_index)
            _close(got, want, f"seed={seed} max_fpr={mf}")


@pytest.mark.parametrize("task,thresholds,ignore_index", [
    ("multiclass", None, None), ("multiclass", 21, -1), ("multiclass", None, 0),
    ("multilabel", None, -1), ("multilabel", 9, None),
])
def test_multiclass_and_multilabel_auroc_equal_torchmetrics(task, thresholds, ignore_index):
    averages = ("macro", "weighted", "none") + (("micro",) if task == "multilabel" else ())
    kw = dict(num_classes=C) if task == "multiclass" else dict(num_labels=C)

    @jax.jit
    def all_averages(p, t):
        return [M.auroc(p, t, task, thresholds, average=a, ignore_index=ignore_index, **kw) for a in averages]

    for seed in range(3):
        rng = np.random.default_rng(seed)
        preds = _scores(rng, (N, C, 2), seed)
        if task == "multiclass":
            target = rng.integers(0, C, (N, 2))
            if seed == 2:
                target[target == 1] = 0  # class 1 never occurs: AUROC 0, still averaged
        else:
            target = rng.integers(0, 2, (N, C, 2))
        if ignore_index is not None:
            target[rng.random(target.shape) < 0.2] = ignore_index
        for a, got in zip(averages, all_averages(preds, target)):
            want = TF.auroc(_t(preds), _t(target), task, thresholds, average=a, ignore_index=ignore_index, **kw)
            _close(got, want, f"{task} average={a} seed={seed}")


def test_auroc_task_specific_forms_and_errors():
    rng = np.random.default_rng(0)
    preds, target = rng.random(N).astype(np.float32), rng.integers(0, 2, N)
    import torchmetrics.functional.classification as TC

    _close(M.binary_auroc(preds, target, 0.5), TC.binary_auroc(_t(preds), _t(target), 0.5), "binary_auroc")
    with pytest.raises(ValueError, match="max_fpr"):
        M.auroc(preds, target, "binary", max_fpr=1.5)
    with pytest.raises(TypeError, match="floating-point"):
        M.auroc(target, target, "binary")
    with pytest.raises(ValueError, match="ascending"):
        M.auroc(preds, target, "binary", thresholds=[0.5, 0.1])
    with pytest.raises(ValueError, match="max_fpr applies to task='binary'"):
        M.auroc(preds[:, None].repeat(3, 1), target, "multiclass", num_classes=3, max_fpr=0.5)


@pytest.mark.parametrize("input_format,include_background,aggregation_level", [
    ("one-hot", True, "samplewise"), ("index", False, "global"), ("mixed", True, "global"),
    ("one-hot", False, "global"),
])
def test_dice_score_and_mean_iou_equal_torchmetrics(input_format, include_background, aggregation_level):
    averages = ("micro", "macro", "weighted", "none")
    rng = np.random.default_rng(0)
    index_target = rng.integers(0, C, (4, 6, 5))
    index_target[0][index_target[0] == 2] = 1  # class 2 absent from sample 0: nan per class
    if input_format == "index":
        preds, target = rng.integers(0, C, (4, 6, 5)), index_target
    elif input_format == "mixed":
        preds, target = rng.normal(size=(4, C, 6, 5)).astype(np.float32), index_target
    else:
        preds = rng.normal(size=(4, C, 6, 5)).astype(np.float32)
        target = np.moveaxis(np.eye(C, dtype=np.int64)[index_target], -1, 1)
    for a in averages:
        got = M.dice_score(preds, target, C, include_background, a, input_format, aggregation_level)
        want = TS.dice_score(_t(preds), _t(target), C, include_background, a, input_format, aggregation_level)
        _close(got, want, f"dice {a}")
    for per_class in (False, True):
        got = M.mean_iou(preds, target, C, include_background, per_class, input_format)
        _close(got, TS.mean_iou(_t(preds), _t(target), C, include_background, per_class, input_format), "mean_iou")
