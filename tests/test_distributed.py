"""Data-parallel and multi-process training (fcnn.distributed, make_train_step(mesh=...)) and the
large-model step options (accumulate_steps, remat, compute_dtype).

Multi-device runs need their own XLA_FLAGS / jax.distributed, so they run in
subprocesses (tests/distributed_worker.py); the single-process reference is
computed here.
"""

import os
import socket
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fcnn import distributed, nn, train

sys.path.insert(0, os.path.dirname(__file__))
import distributed_worker as worker  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(os.path.dirname(__file__), "distributed_worker.py")
TOL = 1e-5


def _env(**extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env["JAX_PLATFORMS"] = "cpu"
    env.pop("XLA_FLAGS", None)
    env.update(extra)
    return env


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def reference():
    return worker.run()


def _assert_trees_close(got: dict, ref: dict, prefix_got: str, prefix_ref: str = "", tol=TOL):
    keys = [k[len(prefix_got):] for k in got if k.startswith(prefix_got)]
    assert sorted(keys) == sorted(ref), (sorted(keys), sorted(ref))
    for k in keys:
        np.testing.assert_allclose(got[prefix_got + k], ref[k], rtol=tol, atol=tol, err_msg=k)


def test_eight_devices_equal_one_device(tmp_path, reference):
    """8 virtual CPU devices (batch sharded, synchronized BN) == 1 device on the same global batch."""
    out = tmp_path / "mesh.npz"
    subprocess.run([sys.executable, WORKER, "mesh", str(out)], check=True, timeout=600,
                   env=_env(XLA_FLAGS="--xla_force_host_platform_device_count=8"))
    d = dict(np.load(out))
    ref, ref_losses = reference
    np.testing.assert_allclose(d["losses"], ref_losses, rtol=TOL, atol=TOL)
    _assert_trees_close(d, ref, "got")  # params and BN running statistics
    assert int(d["ndev"]) == 8
    assert bool(d["donated"]), "the sharded step must donate the incoming train state"
    # accumulation and bf16 run sharded too, close to the fp32 single-batch run
    np.testing.assert_allclose(d["acc_losses"][0], ref_losses[0], rtol=1e-2)
    np.testing.assert_allclose(d["bf16_losses"], ref_losses, rtol=3e-2)
    for k in ref:
        assert d["bf16" + k].dtype == ref[k].dtype, f"{k}: mixed precision changed a stored dtype"


# ---- step options, in process (one device) ----

def _mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 3))


def _train(net, steps=3, **options):
    opt = optax.sgd(0.1, momentum=0.9)
    ts = train.create_train_state(net, opt, 0)
    step = train.make_train_step(net, nn.CrossEntropyLoss(), opt, **options)
    rs = np.random.RandomState(1)
    losses = []
    for _ in range(steps):
        x = rs.standard_normal((8, 3, 2, 2)).astype(np.float32)
        y = rs.randint(0, 3, 8).astype(np.int32)
        ts, m = step(ts, (x, y))
        losses.append(float(m["loss"]))
    return ts, np.asarray(losses)


@pytest.fixture(scope="module")
def mlp_reference():
    return _train(_mlp())


def test_accumulation_equals_whole_batch_without_bn(mlp_reference):
    ref, ref_losses = mlp_reference
    got, losses = _train(_mlp(), accumulate_steps=4)
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-5, atol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), got.params, ref.params)


def test_accumulation_updates_bn_per_micro_batch():
    """BN state advances once per micro-batch (as torch with k backward() calls)."""
    net = nn.Sequential(nn.BatchNorm2d(3), nn.Flatten(), nn.Linear(12, 3))
    ts, _ = _train(net, steps=2, accumulate_steps=2)
    assert int(ts.state["0"]["num_batches_tracked"]) == 4


def test_remat_gives_the_same_step(reference):
    ref, ref_losses = reference
    got, losses = worker.run(remat=True)
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-6, atol=1e-6)
    for k in ref:
        np.testing.assert_allclose(got[k], ref[k], rtol=1e-5, atol=1e-6, err_msg=k)


def test_mixed_precision_keeps_float32_params_and_grads(mlp_reference):
    ts, losses = _train(_mlp(), compute_dtype=jnp.bfloat16)
    ref, ref_losses = mlp_reference
    assert all(a.dtype == jnp.float32 for a in jax.tree.leaves(ts.params))
    assert all(a.dtype == jnp.float32 for a in jax.tree.leaves(ts.opt_state) if jnp.issubdtype(a.dtype, jnp.floating))
    np.testing.assert_allclose(losses, ref_losses, rtol=2e-2)
    # the params did move in float32 (updates smaller than bf16's resolution are kept)
    assert not np.array_equal(np.asarray(ts.params["1"]["weight"]), np.asarray(ref.params["1"]["weight"]))


def test_single_device_mesh_equals_plain_jit(reference):
    mesh = distributed.data_mesh(devices=jax.devices()[:1])
    got, losses = worker.run(mesh)
    ref, ref_losses = reference
    np.testing.assert_allclose(losses, ref_losses, rtol=TOL, atol=TOL)
    for k in ref:
        np.testing.assert_allclose(got[k], ref[k], rtol=TOL, atol=TOL, err_msg=k)


# ---- bad input ----

def test_bad_step_options():
    net, opt, loss = _mlp(), optax.sgd(0.1), nn.CrossEntropyLoss()
    with pytest.raises(ValueError, match="accumulate_steps"):
        train.make_train_step(net, loss, opt, accumulate_steps=0)
    with pytest.raises(TypeError, match="accumulate_steps"):
        train.make_train_step(net, loss, opt, accumulate_steps=2.0)
    with pytest.raises(TypeError, match="remat"):
        train.make_train_step(net, loss, opt, remat="yes")
    with pytest.raises(ValueError, match="compute_dtype"):
        train.make_train_step(net, loss, opt, compute_dtype=jnp.int32)
    with pytest.raises(TypeError, match="mesh"):
        train.make_train_step(net, loss, opt, mesh="data")
    with pytest.raises(ValueError, match="data_axis 'batch'"):
        train.make_train_step(net, loss, opt, mesh=distributed.data_mesh(), data_axis="batch")
    step = train.make_train_step(net, loss, opt, accumulate_steps=3)
    ts = train.create_train_state(net, opt, 0)
    with pytest.raises(ValueError, match="accumulate_steps=3"):
        step(ts, (np.zeros((8, 3, 2, 2), np.float32), np.zeros(8, np.int32)))


def test_bad_distributed_arguments(monkeypatch):
    for var in (distributed.ENV_NUM_PROCESSES, distributed.ENV_PROCESS_ID, distributed.ENV_COORDINATOR):
        monkeypatch.delenv(var, raising=False)
    assert distributed.initialize() is False  # single process: nothing to join
    assert distributed.initialize(num_processes=1) is False
    with pytest.raises(ValueError, match="coordinator"):
        distributed.initialize(num_processes=2, process_id=0)
    with pytest.raises(ValueError, match="coordinator"):
        distributed.initialize("localhost", num_processes=2, process_id=0)
    with pytest.raises(ValueError, match="process_id"):
        distributed.initialize("127.0.0.1:1234", num_processes=2, process_id=2)
    with pytest.raises(ValueError, match="process_id"):
        distributed.initialize("127.0.0.1:1234", num_processes=2)
    with pytest.raises(ValueError, match="num_processes"):
        distributed.initialize("127.0.0.1:1234", num_processes=0, process_id=0)
    monkeypatch.setenv(distributed.ENV_NUM_PROCESSES, "two")
    with pytest.raises(ValueError, match="FCNN_NUM_PROCESSES"):
        distributed.initialize()
    with pytest.raises(ValueError, match="global_batch_size=10"):
        distributed.process_rows(10, process_index=0, process_count=3)
    assert distributed.process_rows(12, process_index=2, process_count=3) == (8, 12)
    mesh = distributed.data_mesh()
    with pytest.raises(ValueError, match="scalar"):
        distributed.global_batch(mesh, np.float32(1.0))


def test_cli_arguments(monkeypatch):
    import argparse

    for var in (distributed.ENV_NUM_PROCESSES, distributed.ENV_PROCESS_ID, distributed.ENV_COORDINATOR):
        monkeypatch.delenv(var, raising=False)
    parser = argparse.ArgumentParser()
    distributed.add_arguments(parser)
    assert distributed.mesh_from_args(parser.parse_args([])) is None
    mesh = distributed.mesh_from_args(parser.parse_args(["--data-parallel"]))
    assert mesh.axis_names == ("data",) and mesh.size == jax.device_count()
    with pytest.raises(SystemExit):  # argparse's usage error, before anything runs
        parser.parse_args(["--num-processes", "two"])
    with pytest.raises(ValueError, match="coordinator"):
        distributed.mesh_from_args(parser.parse_args(["--num-processes", "2", "--process-id", "0"]))


def test_cli_two_processes_equal_one(tmp_path):
    """`fcnn train --num-processes 2 --process-id i --coordinator 127.0.0.1:PORT` == the one-process run."""
    import json

    common = ["-m", "fcnn", "train", "--model", "lenet5", "--epochs", "1", "--batch-size", "64", "--no-progress"]
    port = _free_port()
    procs = [subprocess.Popen([sys.executable, *common, "--output-dir", str(tmp_path / f"p{i}"),
                               "--num-processes", "2", "--process-id", str(i), "--coordinator", f"127.0.0.1:{port}"],
                              env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for i in range(2)]
    single = subprocess.run([sys.executable, *common, "--output-dir", str(tmp_path / "one")], env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
    logs = []
    try:
        for p in procs:
            logs.append(p.communicate(timeout=600)[0].decode(errors="replace"))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert single.returncode == 0, single.stdout.decode(errors="replace")[-3000:]
    assert all(p.returncode == 0 for p in procs), "\n----\n".join(l[-3000:] for l in logs)
    one = json.load(open(tmp_path / "one" / "metrics.json"))
    two = json.load(open(tmp_path / "p0" / "metrics.json"))
    assert not (tmp_path / "p1").exists(), "only process 0 writes the metrics"
    for key in ("train_loss", "eval_loss", "eval_accuracy"):
        np.testing.assert_allclose(two["history"][0][key], one["history"][0][key], rtol=1e-4, atol=1e-5, err_msg=key)
