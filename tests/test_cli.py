import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from fcnn import cli
from fcnn.data.mnist import write_idx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_main(capsys, *argv):
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def expect_usage_error(capsys, *argv):
    with pytest.raises(SystemExit) as e:
        cli.main(list(argv))
    assert e.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("flag,value,choices", [
    ("--optimizer", "lbfgs", "sgd, adam, adamw, rmsprop, adagrad, adadelta"),
    ("--schedule", "warmup", "none, step, cosine, onecycle"),
    ("--dataset", "imagenet", "digits, mnist, fashion-mnist, cifar10"),
    ("--model", "resnet9", "lenet5"),
])
def test_unknown_names_list_the_choices(capsys, flag, value, choices):
    err = expect_usage_error(capsys, "train", flag, value)
    assert f"unknown {flag[2:]}" in err and repr(value) in err and choices in err


def test_bad_numbers_and_missing_data(capsys, tmp_path):
    assert "--epochs must be positive" in expect_usage_error(capsys, "train", "--epochs", "0")
    assert "--lr must be positive" in expect_usage_error(capsys, "train", "--lr", "-1")
    assert "--data-dir" in expect_usage_error(capsys, "train", "--dataset", "mnist")
    err = expect_usage_error(capsys, "train", "--dataset", "cifar10", "--data-dir", str(tmp_path))
    assert "data_batch_1.bin" in err and "test_batch.bin" in err
    err = expect_usage_error(capsys, "train", "--dataset", "fashion-mnist", "--data-dir", str(tmp_path))
    assert "train-images-idx3-ubyte" in err and "t10k-labels-idx1-ubyte" in err
    err = expect_usage_error(capsys, "train", "--batch-size", "5000", "--epochs", "1")
    assert "--batch-size 5000" in err


def test_no_command_prints_help(capsys):
    code, out, _ = run_main(capsys)
    assert code == 2 and "train" in out


def test_python_dash_m_entry_point():
    proc = subprocess.run([sys.executable, "-m", "fcnn", "train", "--optimizer", "nope"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "unknown optimizer 'nope'" in proc.stderr


def test_train_digits_end_to_end(capsys, tmp_path):
    code, out, _ = run_main(capsys, "train", "--model", "lenet5", "--epochs", "3", "--lr", "0.01",
                            "--no-progress", "--output-dir", str(tmp_path))
    assert code == 0
    acc = float(out.split("test accuracy: ")[1].split("%")[0])
    assert acc >= 85.0, out
    m = json.load(open(tmp_path / "metrics.json"))
    assert m["config"]["model"] == "lenet5" and len(m["history"]) == 3
    assert abs(100 * m["test_accuracy"] - acc) < 0.01
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert float(rows[-1]["eval_accuracy"]) == m["test_accuracy"]


def test_train_mnist_files_sgd_step_schedule(capsys, tmp_path):
    rs = np.random.RandomState(0)
    for prefix, n in (("train", 48), ("t10k", 16)):
        write_idx(str(tmp_path / f"{prefix}-images-idx3-ubyte.gz"), rs.randint(0, 256, (n, 28, 28)).astype(np.uint8))
        write_idx(str(tmp_path / f"{prefix}-labels-idx1-ubyte.gz"), rs.randint(0, 10, n).astype(np.uint8))
    code, out, _ = run_main(capsys, "train", "--dataset", "mnist", "--data-dir", str(tmp_path), "--model", "lenet5",
                            "--epochs", "2", "--batch-size", "16", "--optimizer", "sgd", "--schedule", "step",
                            "--augment", "2", "--no-progress", "--output-dir", str(tmp_path / "out"))
    assert code == 0 and "48 train / 16 test images" in out and "epoch   2/2" in out
    assert json.load(open(tmp_path / "out" / "metrics.json"))["config"]["optimizer"] == "sgd"


def test_default_run_reaches_the_bar(capsys):
    # `fcnn train` with every default: the README's accuracy claim
    code, out, _ = run_main(capsys, "train", "--no-progress")
    assert code == 0
    assert float(out.split("test accuracy: ")[1].split("%")[0]) >= 98.5, out
