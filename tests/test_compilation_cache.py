"""fcnn's use of JAX's persistent compilation cache: where it goes, that a new process reads it, and that
a user's own JAX cache configuration is left alone."""

import json
import os
import subprocess
import sys

import jax
import pytest

from fcnn import compilation_cache

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"  # a zstd frame's first four bytes

# A process that trains a tiny network (fit, or `fcnn train` with "cli") and reports JAX's cache events.
WORKER = r"""
import json, sys
import jax
import numpy as np

events = {}
jax.monitoring.register_event_listener(lambda event, **kw: events.__setitem__(event, events.get(event, 0) + 1))
if sys.argv[1] == "cli":
    from fcnn import cli
    assert cli.main(sys.argv[2:]) == 0
else:
    from fcnn import nn, optim, train
    rng = np.random.default_rng(0)
    batches = [(rng.standard_normal((4, 1, 8, 8), dtype=np.float32), rng.integers(0, 3, 4)) for _ in range(2)]
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    options = {} if sys.argv[1] == "default" else {"compilation_cache": None if sys.argv[1] == "none" else sys.argv[1]}
    train.fit(model, batches, batches, nn.CrossEntropyLoss(), optim.SGD(0.1), 1, progress=False, **options)
print(json.dumps({"hits": events.get("/jax/compilation_cache/cache_hits", 0),
                  "dir": jax.config.jax_compilation_cache_dir,
                  "min_time": jax.config.jax_persistent_cache_min_compile_time_secs}))
"""


def run_worker(tmp_path, *argv, **env):
    """The worker's report, with HOME and XDG_CACHE_HOME under tmp_path and no JAX settings but ``env``'s."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "FCNN_CACHE_DIR"))}
    environ.update(HOME=str(tmp_path / "home"), XDG_CACHE_HOME=str(tmp_path / "xdg"), PYTHONPATH=ROOT, **env)
    proc = subprocess.run([sys.executable, "-c", WORKER, *argv], cwd=ROOT, env=environ, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def entries(directory):
    return sorted(os.listdir(directory)) if os.path.isdir(directory) else []


def test_a_new_process_reads_the_compiled_steps_from_the_default_directory(tmp_path):
    directory = str(tmp_path / "xdg" / "fcnn" / "jax")
    cold = run_worker(tmp_path, "default")
    written = entries(directory)
    # every program is cached, the tiny network's steps and the operations run outside jit alike
    assert cold["dir"] == directory and cold["min_time"] == 0 and cold["hits"] == 0 and written
    # compressed with zstd (fcnn depends on zstandard), which JAX writes and reads several times faster than zlib
    for name in written:
        if name.endswith("-cache"):
            with open(os.path.join(directory, name), "rb") as entry:
                assert entry.read(4) == ZSTD_MAGIC, name
    warm = run_worker(tmp_path, "default")
    # every program the second process needed was in the cache: it hit them all and wrote nothing new
    assert warm["dir"] == directory and warm["hits"] >= len(written)
    assert entries(directory) == written


def test_fcnn_cache_dir_chooses_the_default_and_none_turns_it_off(tmp_path):
    chosen = tmp_path / "chosen"
    assert run_worker(tmp_path, "default", FCNN_CACHE_DIR=str(chosen))["dir"] == str(chosen)
    assert entries(chosen)
    off = run_worker(tmp_path, "default", FCNN_CACHE_DIR="none")
    assert off == {"hits": 0, "dir": None, "min_time": 1.0} and not (tmp_path / "xdg").exists()


def test_compilation_cache_none_turns_it_off(tmp_path):
    assert run_worker(tmp_path, "none") == {"hits": 0, "dir": None, "min_time": 1.0}
    assert not (tmp_path / "xdg").exists() and not (tmp_path / "home").exists()


def test_a_users_own_jax_cache_is_left_alone(tmp_path):
    mine, fcnns = tmp_path / "mine", tmp_path / "fcnns"
    report = run_worker(tmp_path, str(fcnns), JAX_COMPILATION_CACHE_DIR=str(mine),
                        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    assert report["dir"] == str(mine) and entries(mine) and not fcnns.exists()
    # with the user's directory JAX's default threshold stays too
    report = run_worker(tmp_path, str(fcnns), JAX_COMPILATION_CACHE_DIR=str(mine))
    assert report["dir"] == str(mine) and report["min_time"] == 1.0 and not fcnns.exists()
    off = run_worker(tmp_path, str(fcnns), JAX_ENABLE_COMPILATION_CACHE="false")
    assert off["hits"] == 0 and off["min_time"] == 1.0 and not fcnns.exists()
    # a threshold of the user's own is kept with fcnn's directory
    assert run_worker(tmp_path, str(fcnns), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="2")["min_time"] == 2


def test_cli_flag_chooses_the_directory(tmp_path):
    directory = tmp_path / "cli-cache"
    report = run_worker(tmp_path, "cli", "train", "--model", "lenet5", "--epochs", "1", "--no-progress",
                        "--compilation-cache", str(directory))
    assert report["dir"] == str(directory) and entries(directory)


def test_cli_refuses_an_empty_directory(capsys):
    from fcnn import cli

    with pytest.raises(SystemExit) as e:
        cli.main(["train", "--compilation-cache", ""])
    assert e.value.code == 2 and "--compilation-cache" in capsys.readouterr().err


# ------------------------------------------------------------------ in this process: the configuration only

@pytest.fixture
def jax_cache_config():
    """Restores JAX's cache configuration and fcnn's record of it after the test."""
    names = ("jax_compilation_cache_dir", "jax_enable_compilation_cache", "jax_persistent_cache_min_compile_time_secs")
    saved = [getattr(jax.config, name) for name in names]
    fcnns = compilation_cache._ours, compilation_cache._our_threshold
    yield
    from jax.experimental.compilation_cache import compilation_cache as jax_cache

    for name, value in zip(names, saved):
        jax.config.update(name, value)
    compilation_cache._ours, compilation_cache._our_threshold = fcnns
    jax_cache.reset_cache()


def test_default_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("FCNN_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert compilation_cache.default_dir() == str(tmp_path / "fcnn" / "jax")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert compilation_cache.default_dir() == str(tmp_path / "home" / ".cache" / "fcnn" / "jax")
    monkeypatch.setenv("FCNN_CACHE_DIR", str(tmp_path / "x"))
    assert compilation_cache.resolve(True) == str(tmp_path / "x")
    monkeypatch.setenv("FCNN_CACHE_DIR", "None")
    assert compilation_cache.resolve(True) is None


@pytest.mark.parametrize("value", [None, False, "none", "NONE"])
def test_resolve_no_cache(value):
    assert compilation_cache.resolve(value) is None


@pytest.mark.parametrize("value", [1, "", 0.5, ["dir"]])
def test_resolve_refuses_other_values(value):
    with pytest.raises(TypeError, match=r"fit: compilation_cache must be .*got " + repr(value).replace("[", r"\[")):
        compilation_cache.resolve(value, "fit")


def min_time():
    return jax.config.jax_persistent_cache_min_compile_time_secs


def test_enable_follows_its_argument_and_keeps_a_users_setting(jax_cache_config, monkeypatch, tmp_path):
    monkeypatch.delenv("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", raising=False)
    jax.config.update("jax_compilation_cache_dir", None)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    compilation_cache._ours, compilation_cache._our_threshold = None, False
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    assert compilation_cache.enable(a) == a == jax.config.jax_compilation_cache_dir and os.path.isdir(a)
    assert min_time() == 0
    assert compilation_cache.enable(b) == b == jax.config.jax_compilation_cache_dir and min_time() == 0
    assert compilation_cache.enable(None) is None and jax.config.jax_compilation_cache_dir is None
    assert min_time() == 1
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)  # the user's own threshold
    assert compilation_cache.enable(a) == a and min_time() == 0.5
    assert compilation_cache.enable(None) is None and min_time() == 0.5
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    jax.config.update("jax_compilation_cache_dir", a)  # the user's own directory
    assert compilation_cache.enable(b) == a == jax.config.jax_compilation_cache_dir and min_time() == 1
    assert compilation_cache.enable(None) == a == jax.config.jax_compilation_cache_dir
    jax.config.update("jax_compilation_cache_dir", None)
    jax.config.update("jax_enable_compilation_cache", False)
    assert compilation_cache.enable(b) is None and jax.config.jax_compilation_cache_dir is None


def test_enable_warns_and_stays_off_where_the_directory_cannot_be_made(jax_cache_config, tmp_path):
    jax.config.update("jax_compilation_cache_dir", None)
    compilation_cache._ours = None
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.warns(UserWarning, match="fit: JAX's compilation cache stays off: cannot create"):
        assert compilation_cache.enable(blocker / "cache", "fit") is None
    assert jax.config.jax_compilation_cache_dir is None
