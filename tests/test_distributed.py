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
    # accumulation (BN statistics per micro-batch) and bf16 run sharded too: equal to the same
    # options on one device
    acc, acc_losses = worker.run(accumulate_steps=2)
    np.testing.assert_allclose(d["losses_acc"], acc_losses, rtol=TOL, atol=TOL)
    _assert_trees_close(d, acc, "acc")
    bf16, bf16_losses = worker.run(compute_dtype=jnp.bfloat16)
    for k in ref:
        assert d["bf16" + k].dtype == ref[k].dtype, f"{k}: mixed precision changed a stored dtype"
    # bf16 sums the shards' gradients in another order: equal to bf16 rounding, and close to float32
    np.testing.assert_allclose(d["losses_bf16"], bf16_losses, rtol=1e-2)
    np.testing.assert_allclose(d["losses_bf16"], ref_losses, rtol=1e-2)
    _assert_trees_close(d, bf16, "bf16", tol=2e-2)


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


def _bn_net():
    return nn.Sequential(nn.Conv2d(3, 4, 2), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4, 3))


def _bn_torch_twin():
    import torch

    T = torch.nn
    return T.Sequential(T.Conv2d(3, 4, 2), T.BatchNorm2d(4), T.ReLU(), T.Flatten(), T.Linear(4, 3))


@pytest.mark.parametrize("k", [2, 4])
def test_accumulation_with_batch_norm_matches_torch_k_backward_calls(k):
    """accumulate_steps=k == torch's loop: k forward/backward() calls on the micro-batches (rows
    j, j+k, …), each loss divided by k, then one optimizer step. BN's running statistics advance
    once per micro-batch; params, statistics and the loss are compared after every step."""
    import torch
    from oracle import flatten, load_into_torch

    net = _bn_net()
    ts = train.create_train_state(net, optax.sgd(0.1, momentum=0.9), 0)
    twin = _bn_torch_twin()
    load_into_torch(twin, ts.params, ts.state)
    topt = torch.optim.SGD(twin.parameters(), lr=0.1, momentum=0.9)
    step = train.make_train_step(net, nn.CrossEntropyLoss(), optax.sgd(0.1, momentum=0.9), accumulate_steps=k)
    rs = np.random.RandomState(1)
    for i in range(3):
        x = (rs.standard_normal((8, 3, 2, 2)) * 2 + 1).astype(np.float32)
        y = rs.randint(0, 3, 8).astype(np.int32)
        ts, m = step(ts, (x, y))
        topt.zero_grad()
        losses = []
        for j in range(k):
            loss = torch.nn.functional.cross_entropy(twin(torch.from_numpy(x[j::k])), torch.from_numpy(y[j::k]).long())
            (loss / k).backward()
            losses.append(loss.item())
        topt.step()
        np.testing.assert_allclose(float(m["loss"]), np.mean(losses), rtol=1e-5, err_msg=f"loss, step {i}")
        got = {**flatten(ts.params), **flatten(ts.state)}
        for name, v in twin.state_dict().items():
            np.testing.assert_allclose(got[name], v.numpy(), rtol=1e-5, atol=1e-6, err_msg=f"{name}, step {i}")
    assert int(ts.state["1"]["num_batches_tracked"]) == 3 * k


def test_remat_gives_the_same_step(reference):
    ref, ref_losses = reference
    got, losses = worker.run(remat=True)
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-6, atol=1e-6)
    for k in ref:
        np.testing.assert_allclose(got[k], ref[k], rtol=1e-5, atol=1e-6, err_msg=k)


def _update_error(got, ref, init):
    """‖Δgot − Δref‖ / ‖Δref‖ over all params, Δ the change from ``init``."""
    num = den = 0.0
    for g, r, i in zip(jax.tree.leaves(got), jax.tree.leaves(ref), jax.tree.leaves(init)):
        dg, dr = np.asarray(g, np.float64) - np.asarray(i), np.asarray(r, np.float64) - np.asarray(i)
        num += np.sum((dg - dr) ** 2)
        den += np.sum(dr ** 2)
    return np.sqrt(num / den)


def test_mixed_precision_keeps_float32_params_and_grads(mlp_reference):
    ts, losses = _train(_mlp(), compute_dtype=jnp.bfloat16)
    ref, ref_losses = mlp_reference
    init = train.create_train_state(_mlp(), optax.sgd(0.1, momentum=0.9), 0).params
    assert all(a.dtype == jnp.float32 for a in jax.tree.leaves(ts.params))
    assert all(a.dtype == jnp.float32 for a in jax.tree.leaves(ts.opt_state) if jnp.issubdtype(a.dtype, jnp.floating))
    # bfloat16 keeps 8 bits of mantissa (relative rounding 2⁻⁹ ≈ 0.2 %): the losses and the
    # params' updates over three steps stay within a few times that of the float32 run
    np.testing.assert_allclose(losses, ref_losses, rtol=3e-3)
    assert _update_error(ts.params, ref.params, init) < 1e-2
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

    from fcnn.cli import distributed as flags

    for var in (distributed.ENV_NUM_PROCESSES, distributed.ENV_PROCESS_ID, distributed.ENV_COORDINATOR):
        monkeypatch.delenv(var, raising=False)
    parser = argparse.ArgumentParser()
    flags.add_arguments(parser)
    assert flags.mesh_from_args(parser.parse_args([])) is None
    mesh = flags.mesh_from_args(parser.parse_args(["--data-parallel"]))
    assert mesh.axis_names == ("data",) and mesh.size == jax.device_count()
    with pytest.raises(SystemExit):  # argparse's usage error, before anything runs
        parser.parse_args(["--num-processes", "two"])
    with pytest.raises(ValueError, match="coordinator"):
        flags.mesh_from_args(parser.parse_args(["--num-processes", "2", "--process-id", "0"]))


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
