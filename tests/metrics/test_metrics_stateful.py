"""fcnn.metrics accumulators (init/update/compute) against torchmetrics' class-based metrics over the same
batches, jitted updates, and states summed across 4 devices with psum (in a subprocess)."""

import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from torchvision_cpu import import_torchvision

import_torchvision()
import torch  # noqa: E402
import torchmetrics  # noqa: E402

from fcnn import metrics as M  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORKER = os.path.join(os.path.dirname(__file__), "metrics_psum_worker.py")
C = 5


def _batches(n_batches=3, size=16, ignore=-1, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_batches):
        scores = rng.normal(size=(size, C)).astype(np.float32)
        target = rng.integers(0, C, size)
        target[target == C - 1] = 0  # an empty class throughout
        if ignore is not None:
            target[rng.random(size) < 0.2] = ignore
        out.append((scores, target))
    return out


PAIRS = {  # name: (fcnn metric, torchmetrics metric, ignore_index of the data)
    "accuracy_top2_macro": (lambda: M.Accuracy(task="multiclass", num_classes=C, top_k=2, average="macro"),
                            lambda: torchmetrics.Accuracy(task="multiclass", num_classes=C, top_k=2, average="macro"),
                            None),
    "f1_weighted_ignore": (lambda: M.F1Score(task="multiclass", num_classes=C, average="weighted", ignore_index=-1),
                           lambda: torchmetrics.F1Score(task="multiclass", num_classes=C, average="weighted",
                                                        ignore_index=-1), -1),
    "precision_none": (lambda: M.Precision(task="multiclass", num_classes=C, average="none"),
                       lambda: torchmetrics.Precision(task="multiclass", num_classes=C, average="none"), None),
    "recall_micro": (lambda: M.Recall(task="multiclass", num_classes=C, average="micro", ignore_index=2),
                     lambda: torchmetrics.Recall(task="multiclass", num_classes=C, average="micro", ignore_index=2),
                     2),
    "fbeta_macro": (lambda: M.FBetaScore(task="multiclass", beta=2.0, num_classes=C, average="macro"),
                    lambda: torchmetrics.FBetaScore(task="multiclass", beta=2.0, num_classes=C, average="macro"), None),
    "stat_scores": (lambda: M.StatScores(task="multiclass", num_classes=C, average="none"),
                    lambda: torchmetrics.StatScores(task="multiclass", num_classes=C, average="none"), None),
    "confmat_pred": (lambda: M.ConfusionMatrix(task="multiclass", num_classes=C, normalize="pred", ignore_index=-1),
                     lambda: torchmetrics.ConfusionMatrix(task="multiclass", num_classes=C, normalize="pred",
                                                          ignore_index=-1), -1),
    "jaccard_macro": (lambda: M.JaccardIndex(task="multiclass", num_classes=C, ignore_index=-1),
                      lambda: torchmetrics.JaccardIndex(task="multiclass", num_classes=C, ignore_index=-1), -1),
    "auroc_binned": (lambda: M.AUROC(task="multiclass", num_classes=C, thresholds=20),
                     lambda: torchmetrics.AUROC(task="multiclass", num_classes=C, thresholds=20), None),
}


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_accumulated_equals_torchmetrics_class(name):
    ours, theirs, ignore = PAIRS[name]
    metric, reference = ours(), theirs()
    state = metric.init()
    update = jax.jit(metric.update)  # one compilation: every batch has one shape
    for scores, target in _batches(ignore=ignore):
        state = update(state, scores, target)
        reference.update(torch.from_numpy(scores), torch.from_numpy(target))
    np.testing.assert_allclose(np.asarray(metric.compute(state), np.float64),
                               reference.compute().numpy().astype(np.float64), rtol=1e-6, atol=1e-6)


def test_binary_and_multilabel_accumulators_equal_torchmetrics():
    rng = np.random.default_rng(3)
    pairs = [
        (M.Recall(task="binary", threshold=0.3), torchmetrics.Recall(task="binary", threshold=0.3), (16,)),
        (M.F1Score(task="multilabel", num_labels=3, average="macro"),
         torchmetrics.F1Score(task="multilabel", num_labels=3, average="macro"), (16, 3)),
        (M.AUROC(task="binary", thresholds=[0.1, 0.4, 0.5, 0.9], max_fpr=0.5),
         torchmetrics.AUROC(task="binary", thresholds=[0.1, 0.4, 0.5, 0.9], max_fpr=0.5), (16,)),
        (M.AUROC(task="multilabel", num_labels=3, thresholds=10, average="micro"),
         torchmetrics.AUROC(task="multilabel", num_labels=3, thresholds=10, average="micro"), (16, 3)),
    ]
    for metric, reference, shape in pairs:
        state = metric.init()
        for _ in range(3):  # eager updates
            preds, target = rng.random(shape).astype(np.float32), rng.integers(0, 2, shape)
            state = metric.update(state, preds, target)
            reference.update(torch.from_numpy(preds), torch.from_numpy(target))
        np.testing.assert_allclose(np.asarray(metric.compute(state)), reference.compute().numpy(), rtol=1e-6,
                                   atol=1e-6, err_msg=repr(reference))


def test_accumulator_argument_errors():
    with pytest.raises(ValueError, match="thresholds=None"):
        M.AUROC(task="binary")
    with pytest.raises(ValueError, match="average"):
        M.F1Score(task="multiclass", num_classes=3, average="avg")
    metric = M.Accuracy(task="multiclass", num_classes=3)
    with pytest.raises(ValueError, match="Accuracy: target must hold class indices"):
        metric.update(metric.init(), np.zeros((2, 3), np.float32), np.array([0, 7]))
    with pytest.raises(TypeError, match="Collection"):
        M.Collection([metric])


def test_states_summed_across_devices_with_psum(tmp_path):
    """4 devices each update with a quarter of every batch; psum of the states == torchmetrics over all data."""
    batches = _batches(n_batches=2, size=32, ignore=-1, seed=5)
    src, dst = tmp_path / "in.npz", tmp_path / "out.npz"
    np.savez(src, batches=len(batches), **{f"scores{i}": s for i, (s, _) in enumerate(batches)},
             **{f"target{i}": t for i, (_, t) in enumerate(batches)})
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), JAX_PLATFORMS="cpu",
               XLA_FLAGS="--xla_force_host_platform_device_count=4")
    subprocess.run([sys.executable, WORKER, str(src), str(dst)], check=True, timeout=600, env=env)
    got = dict(np.load(dst))
    references = {
        "f1_macro": torchmetrics.F1Score(task="multiclass", num_classes=C, average="macro", ignore_index=-1),
        "top2": torchmetrics.Accuracy(task="multiclass", num_classes=C, top_k=2, ignore_index=-1),
        "confmat": torchmetrics.ConfusionMatrix(task="multiclass", num_classes=C, normalize="true", ignore_index=-1),
        "auroc": torchmetrics.AUROC(task="multiclass", num_classes=C, thresholds=50, average="weighted",
                                    ignore_index=-1),
    }
    assert sorted(got) == sorted(references)
    for scores, target in batches:
        s, t = torch.from_numpy(scores), torch.from_numpy(target)
        for ref in references.values():
            ref.update(s, t)
    for name, ref in references.items():
        np.testing.assert_allclose(got[name], ref.compute().numpy(), rtol=1e-6, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("aggregation_level,average,input_format,include_background", [
    ("samplewise", "macro", "index", True), ("samplewise", "none", "mixed", False),
    ("global", "weighted", "index", False), ("global", "micro", "one-hot", True),
])
def test_segmentation_accumulators_equal_torchmetrics(aggregation_level, average, input_format, include_background):
    import torchmetrics.segmentation as TS

    rng = np.random.default_rng(7)
    dice = M.DiceScore(3, include_background, average, aggregation_level, input_format)
    ref_dice = TS.DiceScore(3, include_background, average, aggregation_level, input_format)
    iou = M.MeanIoU(3, include_background, average == "none", input_format)
    ref_iou = TS.MeanIoU(3, include_background, average == "none", input_format)
    states = dice.init(), iou.init()
    for _ in range(3):
        target = rng.integers(0, 3, (4, 5, 6))
        target[0][target[0] == 2] = 1  # a class absent from a sample
        preds = rng.integers(0, 3, (4, 5, 6))
        if input_format == "mixed":
            preds = rng.normal(size=(4, 3, 5, 6)).astype(np.float32)
        if input_format == "one-hot":
            preds, target = (np.moveaxis(np.eye(3, dtype=np.int64)[a], -1, 1) for a in (preds, target))
        states = dice.update(states[0], preds, target), iou.update(states[1], preds, target)
        for ref in (ref_dice, ref_iou):
            ref.update(torch.from_numpy(preds), torch.from_numpy(target))
    np.testing.assert_allclose(np.asarray(dice.compute(states[0])), ref_dice.compute().numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.asarray(iou.compute(states[1])), ref_iou.compute().numpy(), rtol=1e-6, atol=1e-6)
