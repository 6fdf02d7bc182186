"""``fcnn train`` refuses every bad flag, environment value, directory and data file with exit status 2,
``fcnn train: error: ...`` and nothing trained: never a traceback, never a NaN run."""

import gzip
import json
import os

import numpy as np
import pytest

from fcnn import checkpoint, cli, distributed
from fcnn.data.mnist import write_idx


@pytest.fixture
def no_training(monkeypatch):
    """Fail the test if anything would be trained."""
    import fcnn.train

    def fit(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(fcnn.train, "fit", fit)


def refused(capsys, *argv) -> str:
    with pytest.raises(SystemExit) as e:
        cli.main(["train", *argv])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "fcnn train: error: " in err and "Traceback" not in err
    return err.split("fcnn train: error: ", 1)[1]


BAD_NUMBERS = [
    ("--lr", "inf", "--lr must be a finite number, got inf"),
    ("--lr", "-inf", "--lr must be a finite number, got -inf"),
    ("--lr", "nan", "--lr must be a finite number, got nan"),
    ("--lr", "1e30", "--lr must be at most 10, got 1e+30"),
    ("--lr", "0", "--lr must be positive, got 0.0"),
    ("--lr", "abc", "argument --lr: invalid float value: 'abc'"),
    ("--weight-decay", "inf", "--weight-decay must be a finite number"),
    ("--weight-decay", "-0.1", "--weight-decay must be non-negative"),
    ("--weight-decay", "2", "--weight-decay must be at most 1"),
    ("--momentum", "nan", "--momentum must be a finite number"),
    ("--momentum", "1", "--momentum must be less than 1, got 1.0"),
    ("--momentum", "-0.5", "--momentum must be non-negative"),
    ("--label-smoothing", "1.5", "--label-smoothing must be at most 1"),
    ("--label-smoothing", "nan", "--label-smoothing must be a finite number"),
    ("--epochs", "0", "--epochs must be positive, got 0"),
    ("--epochs", "2.5", "argument --epochs: invalid int value: '2.5'"),
    ("--batch-size", "-3", "--batch-size must be positive"),
    ("--seed", "-1", "--seed must be non-negative, got -1"),
    ("--seed", str(2**32), f"--seed must be at most {2**32 - 1}, got {2**32}"),
    ("--augment", "-1", "--augment must be non-negative"),
    ("--keep", "0", "--keep must be positive"),
    ("--stop-after-epoch", "0", "--stop-after-epoch must be positive"),
    ("--num-processes", "0", "argument --num-processes: must be a positive int or 'auto', got '0'"),
    ("--num-processes", "abc", "argument --num-processes: must be a positive int or 'auto', got 'abc'"),
    ("--num-processes", "-2", "must be a positive int or 'auto'"),
    ("--process-id", "-1", "--process-id must be non-negative"),
    ("--coordinator", "localhost", "argument --coordinator: must be 'host:port'"),
    ("--coordinator", "localhost:0", "with a port in [1, 65535]"),
    ("--coordinator", "localhost:http", "with a port in [1, 65535]"),
]


@pytest.mark.parametrize("flag, value, message", BAD_NUMBERS, ids=[f"{f} {v}" for f, v, _ in BAD_NUMBERS])
def test_bad_flag_values_are_usage_errors(capsys, no_training, flag, value, message):
    assert message in refused(capsys, f"{flag}={value}")  # '=': argparse reads "--lr -inf" as two flags


def test_the_edges_of_the_ranges_are_accepted():
    args = cli.build_parser().parse_args(["train", "--lr", "10", "--momentum", "0", "--weight-decay", "1",
                                          "--label-smoothing", "1", "--seed", str(2**32 - 1), "--augment", "0",
                                          "--num-processes", "auto", "--coordinator", "[::1]:80"])
    assert (args.lr, args.momentum, args.weight_decay, args.seed, args.num_processes) == (10.0, 0.0, 1.0, 2**32 - 1, "auto")


@pytest.mark.parametrize("argv, message", [
    (["--num-processes", "2", "--process-id", "2", "--coordinator", "127.0.0.1:1234"],
     "--process-id must be in [0, 2) for --num-processes 2, got 2"),
    (["--num-processes", "1", "--process-id", "1"], "--process-id must be in [0, 1)"),
    (["--process-id", "3"], "--process-id must be in [0, 1) for --num-processes 1, got 3"),
    (["--num-processes", "2", "--process-id", "0", "--coordinator", "no-such-host.invalid:1234"],
     "cannot resolve the host 'no-such-host.invalid'"),
    (["--num-processes", "2", "--process-id", "0"], "coordinator ('host:port') is required"),
])
def test_bad_distributed_settings(capsys, no_training, argv, message):
    assert message in refused(capsys, *argv)
    assert not distributed._initialized


@pytest.mark.parametrize("env, message", [
    ({"FCNN_NUM_PROCESSES": "abc"}, "FCNN_NUM_PROCESSES must be an int, got 'abc'"),
    ({"FCNN_NUM_PROCESSES": "0", "FCNN_PROCESS_ID": "0", "FCNN_COORDINATOR": "h:1"}, "num_processes must be a positive int"),
    ({"FCNN_NUM_PROCESSES": "2", "FCNN_PROCESS_ID": "-1", "FCNN_COORDINATOR": "127.0.0.1:1"}, "process_id must be an int in [0, 2)"),
    ({"FCNN_NUM_PROCESSES": "2", "FCNN_PROCESS_ID": "0", "FCNN_COORDINATOR": "127.0.0.1"}, "coordinator must be 'host:port'"),
])
def test_bad_distributed_environment(capsys, monkeypatch, no_training, env, message):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert message in refused(capsys)


@pytest.fixture(params=["--output-dir", "--checkpoint-dir"])
def dir_flag(request):
    return request.param


def test_output_directories_that_cannot_be_written(capsys, tmp_path, no_training, dir_flag):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    assert f"{dir_flag} {a_file}: {a_file} is not a directory" in refused(capsys, dir_flag, str(a_file))
    under = a_file / "sub" / "dir"
    assert f"{a_file} is a file, so no directory can be made under it" in refused(capsys, dir_flag, str(under))
    assert a_file.read_text() == "x"
    if dir_flag == "--output-dir":
        (tmp_path / "out" / "metrics.csv").mkdir(parents=True)
        assert "metrics.csv there is a directory" in refused(capsys, dir_flag, str(tmp_path / "out"))


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root may write into any directory")
def test_output_directory_without_permission(capsys, tmp_path, no_training, dir_flag):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    assert f"no permission to write in {locked}" in refused(capsys, dir_flag, str(locked / "run"))


def test_writable_directory_check_accepts_new_and_existing(tmp_path):
    cli.check_writable_dir(str(tmp_path), "--output-dir")
    cli.check_writable_dir(str(tmp_path / "new" / "nested"), "--output-dir")
    assert not (tmp_path / "new").exists()  # nothing is created by the check


def _mnist(directory, corrupt=None):
    rs = np.random.RandomState(0)
    for prefix in ("train", "t10k"):
        write_idx(str(directory / f"{prefix}-images-idx3-ubyte.gz"), rs.randint(0, 256, (8, 28, 28)).astype(np.uint8))
        write_idx(str(directory / f"{prefix}-labels-idx1-ubyte.gz"), rs.randint(0, 10, 8).astype(np.uint8))
    if corrupt:
        path = directory / corrupt
        path.write_bytes(path.read_bytes()[:-20])
        return path


@pytest.mark.parametrize("what", ["truncated gz", "bad idx", "cifar not gzip", "missing"])
def test_corrupt_or_missing_data_files(capsys, tmp_path, no_training, what):
    if what == "truncated gz":
        bad = _mnist(tmp_path, corrupt="t10k-labels-idx1-ubyte.gz")
        argv, message = ["--dataset", "mnist"], f"{bad} is not a valid gzip file (truncated)"
    elif what == "bad idx":
        _mnist(tmp_path)
        bad = tmp_path / "train-labels-idx1-ubyte.gz"
        bad.write_bytes(gzip.compress(b"\x01\x02\x03\x04"))
        argv, message = ["--dataset", "fashion-mnist"], "not an IDX file"
    elif what == "cifar not gzip":
        for name in [f"data_batch_{k}.bin" for k in range(1, 6)] + ["test_batch.bin"]:
            (tmp_path / (name + ".gz")).write_bytes(b"plain bytes, not gzip")
        argv, message = ["--dataset", "cifar10"], "data_batch_1.bin.gz is not a valid gzip file"
    else:
        argv, message = ["--dataset", "mnist"], "not found in data_dir"
    assert message in refused(capsys, *argv, "--data-dir", str(tmp_path))


def test_resume_from_a_checkpoint_with_a_forged_config(capsys, tmp_path, no_training):
    checkpoint.save_checkpoint(tmp_path, {"x": np.zeros(1, np.float32)}, 1, metadata={"config": ["not", "a", "dict"]})
    err = refused(capsys, "--checkpoint-dir", str(tmp_path), "--resume", "--epochs", "2")
    assert "metadata.config must be a JSON object" in err


def test_metrics_are_written_atomically_with_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        cli._write_metrics(str(tmp_path / "out"), {"lr": 0.1}, [{"loss": 1.0}, {"loss": 0.5, "acc": 0.9}],
                           {"test_accuracy": 0.9})
    finally:
        os.umask(old)
    assert sorted(os.listdir(tmp_path / "out")) == ["metrics.csv", "metrics.json"]
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["history"][1] == {"loss": 0.5, "acc": 0.9}
    assert (tmp_path / "out" / "metrics.csv").read_text().splitlines() == ["loss,acc", "1.0,", "0.5,0.9"]
    assert (tmp_path / "out" / "metrics.json").stat().st_mode & 0o777 == 0o644
