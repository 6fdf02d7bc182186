"""``fcnn summary`` and ``fcnn train --checkpoint-dir/--resume`` on the command line."""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from fcnn import checkpoint, cli


def run_main(capsys, *argv):
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


# ----------------------------------------------------------------- fcnn summary

def test_summary_resnet18_totals(capsys):
    code, out, _ = run_main(capsys, "summary", "--model", "resnet18", "--input", "3,224,224")
    assert code == 0
    # torchvision's resnet18: 11,689,512 params; 1.814 GMACs at 224×224
    assert "Total params: 11,689,512" in out and "Total buffers: 9,620" in out
    assert "Total FLOPs: 3,628,146,688" in out
    assert "layer4.1.conv2" in out and "(1, 512, 7, 7)" in out and "(1, 1000)" in out


def test_summary_markdown_adapts_channels(capsys):
    code, out, _ = run_main(capsys, "summary", "--model", "lenet5", "--input", "3,32,32", "--markdown",
                            "--num-classes", "7")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("| Layer | Type | Output shape | Params")
    # conv1 sees 3 channels: 6·(3·5·5) + 6; the head has 7 outputs: 84·7 + 7
    assert "| conv1 | Conv2d | (1, 6, 28, 28) | 456 |" in out
    assert "| fc3 | Linear | (1, 7) | 595 |" in out


@pytest.mark.parametrize("argv,names", [
    (["--model", "resnet19", "--input", "3,224,224"], ["--model", "'resnet19'", "resnet18, resnet34"]),
    (["--model", "resnet18", "--input", "224,224"], ["--input 224,224", "has 2 dims"]),
    (["--model", "resnet18", "--input", "1,3,224,224"], ["--input 1,3,224,224", "has 4 dims"]),
    (["--model", "lenet5", "--input", "1,a,28"], ["--input", "'1,a,28'"]),
    (["--model", "lenet5", "--input", "1,0,28"], ["--input", "'1,0,28'"]),
    (["--model", "unet", "--input", "1,4,4"], ["--input 1,4,4", "too small"]),
    (["--model", "vgg", "--input", "3,32,32", "--batch-size", "0"], ["--batch-size", "0"]),
])
def test_summary_errors_exit_2_and_name_the_argument(capsys, argv, names):
    code, out, err = run_main(capsys, "summary", *argv)
    assert code == 2 and out == ""
    assert err.startswith("fcnn summary: error: ")
    for name in names:
        assert name in err, err


def test_summary_missing_flag_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["summary", "--model", "vgg"])
    assert e.value.code == 2 and "--input" in capsys.readouterr().err


# ----------------------------------------------------------------- fcnn train --checkpoint-dir / --resume

TRAIN = ["train", "--model", "lenet5", "--epochs", "4", "--no-progress"]
TIMING = ("seconds", "samples_per_second")


def final_arrays(directory):
    """Every stored leaf of the newest checkpoint (train state, epoch), by its key path."""
    path = checkpoint.latest(directory)
    header = checkpoint.read_metadata(path)
    with np.load(path, allow_pickle=False) as f:
        arrays = {leaf["name"]: f[f"a{i}"] for i, leaf in enumerate(header["leaves"])}
    return path.name, arrays, header["metadata"]


def without_timing(history):
    return [{k: v for k, v in row.items() if k not in TIMING} for row in history]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An uninterrupted 4-epoch run, and one stopped after epoch 2 then resumed (in-process)."""
    root = tmp_path_factory.mktemp("runs")
    out = {}
    # --resume on an empty directory starts from scratch (one command line for every restart)
    code = cli.main(TRAIN + ["--checkpoint-dir", str(root / "straight"), "--resume", "--output-dir",
                             str(root / "straight_metrics")])
    assert code == 0
    assert cli.main(TRAIN + ["--checkpoint-dir", str(root / "split"), "--stop-after-epoch", "2"]) == 0
    out["after_stop"] = sorted(p.name for p in (root / "split").iterdir())
    assert cli.main(TRAIN + ["--checkpoint-dir", str(root / "split"), "--resume", "--keep", "2",
                             "--output-dir", str(root / "split_metrics")]) == 0
    return root, out


def test_resume_after_stop_is_bit_identical(runs, capsys):
    root, out = runs
    assert out["after_stop"] == ["ckpt_00000001.npz", "ckpt_00000002.npz"]
    # --keep 2: the resumed run rotated the older files out; the final state is ckpt 4 in both
    assert sorted(p.name for p in (root / "split").iterdir()) == ["ckpt_00000003.npz", "ckpt_00000004.npz"]
    assert [p.name for p in checkpoint.checkpoints(root / "straight")] == [
        "ckpt_00000002.npz", "ckpt_00000003.npz", "ckpt_00000004.npz"]  # default --keep 3
    name_a, a, meta_a = final_arrays(root / "straight")
    name_b, b, meta_b = final_arrays(root / "split")
    assert name_a == name_b == "ckpt_00000004.npz"
    assert list(a) == list(b) and any("opt_state" in k for k in a) and "['epoch']" in a
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)  # params, buffers, optimizer state, step, key
    assert int(a["['epoch']"]) == 4 and int(a["['train_state'].step"]) == 4 * (1438 // 64)
    # the metrics history travels with the checkpoint and continues over the resume
    assert [r["epoch"] for r in meta_b["history"]] == [1, 2, 3, 4]
    assert without_timing(meta_a["history"]) == without_timing(meta_b["history"])
    assert meta_b["config"]["epochs"] == 4 and meta_b["config"]["model"] == "lenet5"
    ma = json.load(open(root / "straight_metrics" / "metrics.json"))
    mb = json.load(open(root / "split_metrics" / "metrics.json"))
    assert without_timing(mb["history"]) == without_timing(ma["history"]) and len(mb["history"]) == 4
    assert ma["test_accuracy"] == mb["test_accuracy"] == meta_a["history"][-1]["eval_accuracy"]


def test_sigkilled_run_resumes_bit_identically(runs, tmp_path, capsys):
    """A real ``fcnn train`` process killed mid-run; ``--resume`` (in-process) finishes it exactly."""
    root, _ = runs
    d = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "fcnn", *TRAIN, "--checkpoint-dir", str(d)],
                            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        for line in proc.stdout:
            if line.startswith("epoch   1/4"):  # printed after ckpt 1 is on disk
                proc.send_signal(signal.SIGKILL)
                break
    finally:
        proc.kill()
        rc = proc.wait(timeout=60)
    assert rc == -signal.SIGKILL
    done = int(checkpoint.latest(d).name[5:13])
    assert 1 <= done < 4  # killed somewhere in epochs 2-4, possibly while writing a checkpoint
    code, out, _ = run_main(capsys, *TRAIN, "--checkpoint-dir", str(d), "--resume")
    assert code == 0 and f"epoch {done} of 4 done" in out
    _, a, meta_a = final_arrays(root / "straight")
    _, b, meta_b = final_arrays(d)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert without_timing(meta_a["history"]) == without_timing(meta_b["history"])


def snapshot(directory):
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def expect_refusal(capsys, directory, *extra):
    """A resume that must fail with exit 2 and leave ``directory`` exactly as it was."""
    before = snapshot(directory)
    with pytest.raises(SystemExit) as e:
        cli.main(TRAIN + ["--checkpoint-dir", str(directory), *extra])
    assert e.value.code == 2
    assert snapshot(directory) == before
    return capsys.readouterr().err


def test_finished_run_resumes_to_nothing(runs, capsys):
    root, _ = runs
    before = snapshot(root / "straight")
    code, out, _ = run_main(capsys, *TRAIN, "--checkpoint-dir", str(root / "straight"), "--resume")
    assert code == 0 and "nothing to train: the checkpoint is at epoch 4 of 4" in out
    acc = json.load(open(root / "straight_metrics" / "metrics.json"))["test_accuracy"]
    assert f"test accuracy: {100 * acc:.2f}%" in out
    assert snapshot(root / "straight") == before


def test_refusals_leave_the_checkpoints_alone(runs, capsys, tmp_path):
    root, _ = runs
    d = root / "straight"
    err = expect_refusal(capsys, d)  # no --resume: would overwrite the run
    assert "--resume" in err and "already holds checkpoints" in err
    err = expect_refusal(capsys, d, "--resume", "--lr", "0.1", "--seed", "3")
    assert "--lr 0.003 in the checkpoint, 0.1 now" in err and "--seed 0 in the checkpoint, 3 now" in err
    err = expect_refusal(capsys, d, "--resume", "--epochs", "3")
    assert "--epochs 3" in err and "already at epoch 4" in err

    # a truncated newest checkpoint: a clear error, nothing rewritten or rotated
    broken = tmp_path / "broken"
    broken.mkdir()
    for name, data in snapshot(d).items():
        (broken / name).write_bytes(data)
    newest = checkpoint.latest(broken)
    newest.write_bytes(newest.read_bytes()[:-100])
    err = expect_refusal(capsys, broken, "--resume")
    assert "--resume" in err and newest.name in err

    # a checkpoint of another model under the same flags: the mismatched leaves are listed
    other = tmp_path / "other"
    config = checkpoint.read_metadata(checkpoint.latest(d))["metadata"]["config"]
    checkpoint.save_checkpoint(other, {"train_state": {"params": {"fc": np.zeros(3, np.float32)}}, "epoch": 1}, 1,
                               metadata={"config": config, "history": []})
    err = expect_refusal(capsys, other, "--resume")
    assert "does not match the template" in err and "params['conv1']['weight']" in err


def test_checkpoint_flag_errors(capsys):
    for argv, name in ((["--resume"], "--checkpoint-dir"), (["--stop-after-epoch", "1"], "--checkpoint-dir"),
                       (["--checkpoint-dir", "d", "--keep", "0"], "--keep"),
                       (["--checkpoint-dir", "d", "--stop-after-epoch", "0"], "--stop-after-epoch")):
        with pytest.raises(SystemExit) as e:
            cli.main(TRAIN + argv)
        assert e.value.code == 2
        assert name in capsys.readouterr().err
