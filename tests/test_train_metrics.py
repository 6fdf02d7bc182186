"""fit(..., metrics=...) and `fcnn train --metrics/--output-dir`: the reported metrics equal torchmetrics'."""

import csv
import json

import numpy as np
import pytest
from torchvision_cpu import import_torchvision

import_torchvision()
import torch  # noqa: E402
import torchmetrics  # noqa: E402

from fcnn import cli, data, metrics, nn, optim, train  # noqa: E402

C = 4


def _mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, C))


def _data(n, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, C, n).astype(np.int32)
    x = (rng.normal(size=(n, 6)) + y[:, None] * 0.7).astype(np.float32)
    return x, y


def test_fit_reports_metrics_equal_to_torchmetrics_over_the_eval_set():
    model, loss = _mlp(), nn.CrossEntropyLoss()
    eval_x, eval_y = _data(48, 1)
    eval_y[:5] = -100  # ignored by the loss; the metrics are told ignore_index=-100
    common = dict(task="multiclass", num_classes=C, ignore_index=-100)
    specs = {"top2": ("Accuracy", dict(top_k=2)), "f1": ("F1Score", dict(average="macro")),
             "recall_per_class": ("Recall", dict(average="none")), "confusion": ("ConfusionMatrix", {}),
             "auroc": ("AUROC", dict(thresholds=30))}
    chosen = {name: getattr(metrics, cls)(**kw, **common) for name, (cls, kw) in specs.items()}
    eval_loader = data.DataLoader((eval_x, eval_y), 16)  # one batch shape: one compilation
    ts, history = train.fit(model, data.DataLoader(_data(64, 0), 16, shuffle=True), eval_loader, loss,
                            optim.SGD(0.1), epochs=2, metrics=chosen, progress=False)
    references = {name: getattr(torchmetrics, cls)(**kw, **common) for name, (cls, kw) in specs.items()}
    for x, y in eval_loader:
        out, _ = model.apply(ts.params, ts.state, x)
        for ref in references.values():
            ref.update(torch.from_numpy(np.asarray(out)), torch.from_numpy(np.asarray(y)).long())
    last = history[-1]
    assert isinstance(last["eval_top2"], float) and isinstance(last["eval_confusion"], list)
    json.dumps(history)  # the history stays JSON data
    for name, ref in references.items():
        np.testing.assert_allclose(np.asarray(last[f"eval_{name}"]), ref.compute().numpy(), rtol=1e-6, atol=1e-6,
                                   err_msg=name)


def test_fit_refuses_bad_metrics():
    with pytest.raises(TypeError, match="fit: metrics"):
        train.fit(_mlp(), [], None, nn.CrossEntropyLoss(), optim.SGD(0.1), 1, metrics=["top1"])
    with pytest.raises(TypeError, match=r"metrics\['f1'\]"):
        train.fit(_mlp(), [], None, nn.CrossEntropyLoss(), optim.SGD(0.1), 1, metrics={"f1": "f1"})
    with pytest.raises(ValueError, match="eval_data"):
        train.fit(_mlp(), [], None, nn.CrossEntropyLoss(), optim.SGD(0.1), 1,
                  metrics={"f1": metrics.F1Score(task="multiclass", num_classes=C)})
    assert train.EarlyStopping("eval_top5").mode == "max" and train.EarlyStopping("eval_f1").mode == "max"


def test_cli_metrics_and_confusion_matrix(capsys, tmp_path):
    code = cli.main(["train", "--model", "lenet5", "--epochs", "3", "--lr", "0.01", "--no-progress",
                     "--metrics", "top1,top3,f1,precision,recall,balanced_accuracy", "--output-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0 and "top3 " in out and "test f1: " in out
    result = json.load(open(tmp_path / "metrics.json"))
    rows = list(csv.reader(open(tmp_path / "confusion_matrix.csv")))
    assert rows[0] == ["true/predicted"] + [str(i) for i in range(10)]
    cm = np.array([[int(v) for v in r[1:]] for r in rows[1:]])
    assert cm.tolist() == result["confusion_matrix"] and cm.sum() == 359
    # every reported number follows from the confusion matrix as torchmetrics computes it
    pairs = np.array([(t, p) for t in range(10) for p in range(10) for _ in range(cm[t, p])])
    preds, target = torch.from_numpy(pairs[:, 1]), torch.from_numpy(pairs[:, 0])
    for name, ref in (("precision", "precision"), ("recall", "recall"), ("f1", "f1_score"),
                      ("balanced_accuracy", "accuracy")):
        want = getattr(torchmetrics.functional, ref)(preds, target, "multiclass", num_classes=10, average="macro")
        np.testing.assert_allclose(result[f"test_{name}"], want.item(), rtol=1e-6, err_msg=name)
    assert result["test_top1"] == pytest.approx(result["test_accuracy"], abs=1e-7)
    assert result["test_top1"] <= result["test_top3"] <= 1
    table = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    assert float(table[-1]["eval_top3"]) == result["test_top3"] and "eval_confusion_matrix" not in table[-1]


@pytest.mark.parametrize("value,match", [("top0", "unknown metric 'top0'"), ("f1,f1", "distinct"),
                                         ("mAP", "unknown metric 'mAP'"), ("top11", "top11")])
def test_cli_bad_metric_names(capsys, value, match):
    with pytest.raises(SystemExit) as e:
        cli.main(["train", "--epochs", "1", "--metrics", value])
    assert e.value.code == 2 and match in capsys.readouterr().err
