import json
import os
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import optax
import pytest
from hypothesis import given, settings, strategies as st

from fcnn import checkpoint, nn

HERE = Path(__file__).parent


def _train_state(seed=0, *, trained=False):
    """A train state whose every leaf depends on ``seed``; ``trained`` also moves the optimizer
    state off its zeros (one update), so a restore that takes any leaf from its template
    instead of the file is visible."""
    net = nn.Sequential(nn.Conv2d(2, 3, 3), nn.Conv2d(3, 1, 1, bias=False))
    params, state = net.init(jax.random.key(seed, impl="rbg"))  # rbg: threefry compiles slowly on CPU
    opt = optax.chain(optax.clip_by_global_norm(1.0), optax.sgd(0.1, momentum=0.9))
    opt_state = opt.init(params)
    if trained:
        grads = jax.tree.map(lambda p: jnp.full_like(p, 0.5 + seed), params)
        opt_state = opt.update(grads, opt_state, params)[1]
    return {"params": params, "state": state, "opt_state": opt_state, "step": 3 + seed,
            "rng": jax.random.key(seed + 1), "legacy_rng": jax.random.PRNGKey(seed + 2), "lr": 0.25 * (seed + 1),
            "flags": {"warm": seed % 2 == 0, "epoch": jnp.asarray(seed, jnp.int32), "scale": jnp.asarray(seed + 0.5, jnp.bfloat16)}}


def _leaf_values(tree):
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {jax.tree_util.keystr(k): np.asarray(jax.random.key_data(v) if isinstance(v, jax.Array) and
                                                jnp.issubdtype(v.dtype, jax.dtypes.prng_key) else v)
            for k, v in leaves}


def _assert_every_leaf_differs(a, b):
    va, vb = _leaf_values(a), _leaf_values(b)
    assert va.keys() == vb.keys()
    same = [k for k in va if np.array_equal(va[k], vb[k])]
    assert not same, f"the template would hide a restore that copies these leaves from it: {same}"


def _assert_same(a, b):
    la, ta = jax.tree_util.tree_flatten(a)
    lb, tb = jax.tree_util.tree_flatten(b)
    assert ta == tb
    for x, y in zip(la, lb):
        assert type(x) is type(y) or (isinstance(x, jax.Array) and isinstance(y, jax.Array))
        if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
            assert x.dtype == y.dtype
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
        assert np.asarray(x).dtype == np.asarray(y).dtype


def test_round_trip_with_optax_namedtuples_keys_and_scalars(tmp_path):
    ts = _train_state(trained=True)
    path = checkpoint.save(tmp_path / "a.npz", ts, metadata={"history": {"loss": [1.5, 0.5]}})
    template = _train_state(seed=9)
    _assert_every_leaf_differs(template, ts)
    back = checkpoint.restore(path, template)
    _assert_same(back, ts)  # every leaf: values, Python types (float lr, int step, bool) and dtypes
    assert type(back["opt_state"][1][0]) is type(ts["opt_state"][1][0])  # optax TraceState
    header = checkpoint.read_metadata(path)
    assert header["metadata"] == {"history": {"loss": [1.5, 0.5]}}
    assert header["format_version"] == checkpoint.FORMAT_VERSION and header["fcnn_version"]
    # a template from jax.eval_shape works too (scalars become 0-d arrays there)
    back = checkpoint.restore(path, jax.eval_shape(lambda: _train_state(seed=9)))
    want = _leaf_values(ts)
    for k, v in _leaf_values(back).items():
        np.testing.assert_array_equal(v, want[k], err_msg=k)
    assert back["step"] == 3 and back["lr"] == 0.25


@settings(max_examples=10)
@given(st.sampled_from(["float32", "float16", "bfloat16", "int32", "uint8", "bool", "int8"]),
       st.lists(st.integers(0, 3), max_size=3))
def test_dtypes_and_shapes_round_trip(tmp_path_factory, dtype, shape):
    dt = jnp.dtype(ml_dtypes.bfloat16 if dtype == "bfloat16" else dtype)
    x = jnp.asarray(np.random.RandomState(0).standard_normal(shape) * 10).astype(dt)
    path = checkpoint.save(tmp_path_factory.mktemp("d") / "x.npz", {"x": x})
    back = checkpoint.restore(path, {"x": x})["x"]
    assert back.dtype == dt and back.shape == x.shape
    assert np.asarray(back).tobytes() == np.asarray(x).tobytes()


def test_no_pickle_in_files(tmp_path):
    path = checkpoint.save(tmp_path / "a.npz", _train_state())
    with zipfile.ZipFile(path) as z:
        for name in z.namelist():
            head = z.read(name)[:128]
            assert b"|O" not in head  # no object arrays, so nothing needs unpickling
    # a pickled object array hidden in an npz is refused, never unpickled
    bad = tmp_path / "evil.npz"
    np.savez(bad, **{"__fcnn__": np.array([object()], dtype=object)})
    with pytest.raises(checkpoint.CheckpointError, match="not an fcnn checkpoint|corrupt"):
        checkpoint.restore(bad, {})


def test_mismatches_are_all_listed(tmp_path):
    ts = _train_state()
    path = checkpoint.save(tmp_path / "a.npz", ts)
    other = _train_state()
    other["params"]["0"]["weight"] = jnp.zeros((3, 2, 5, 5))
    other["params"]["1"]["weight"] = other["params"]["1"]["weight"].astype(jnp.float16)
    del other["lr"]
    other["extra"] = jnp.zeros(2)
    with pytest.raises(checkpoint.CheckpointError) as e:
        checkpoint.restore(path, other)
    msg = str(e.value)
    for frag in ["['extra']", "['lr']", "['params']['0']['weight']: shape [3, 2, 3, 3]",
                 "['params']['1']['weight']: dtype float32 in the checkpoint, float16"]:
        assert frag in msg, msg
    other = _train_state()
    other["rng"] = jnp.zeros(2, jnp.uint32)
    with pytest.raises(checkpoint.CheckpointError, match=r"\['rng'\]: kind key"):
        checkpoint.restore(path, other)


def test_not_a_checkpoint_truncated_and_wrong_version(tmp_path):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"hello, not a zip")
    with pytest.raises(checkpoint.CheckpointError, match="not an fcnn checkpoint"):
        checkpoint.restore(junk, {})
    np.savez(tmp_path / "plain.npz", w=np.ones(3))
    with pytest.raises(checkpoint.CheckpointError, match="no __fcnn__ header"):
        checkpoint.restore(tmp_path / "plain.npz", {"w": jnp.ones(3)})
    with pytest.raises(FileNotFoundError, match="no such file"):
        checkpoint.restore(tmp_path / "missing.npz", {})

    ts = _train_state()
    good = checkpoint.save(tmp_path / "good.npz", ts)
    data = good.read_bytes()
    for cut in (len(data) // 3, len(data) - 30):
        (tmp_path / "cut.npz").write_bytes(data[:cut])
        with pytest.raises(checkpoint.CheckpointError, match="not an fcnn checkpoint|truncated|corrupt"):
            checkpoint.restore(tmp_path / "cut.npz", ts)
    # a flipped bit inside an array's data is caught by the stored checksum
    with zipfile.ZipFile(good) as z:
        info = max(z.infolist(), key=lambda i: i.file_size if i.filename != "__fcnn__.npy" else 0)
    arr_off = info.header_offset + 30 + len(info.filename) + len(info.extra) + info.file_size - 4
    flipped = bytearray(data)
    flipped[arr_off] ^= 0xFF
    (tmp_path / "flip.npz").write_bytes(bytes(flipped))
    with pytest.raises(checkpoint.CheckpointError, match="corrupt"):
        checkpoint.restore(tmp_path / "flip.npz", ts)

    # rewrite the header with a future format version
    with np.load(good) as z:
        arrays = {k: z[k] for k in z.files}
    header = json.loads(bytes(arrays["__fcnn__"]).decode())
    header["format_version"] = 99
    arrays["__fcnn__"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    np.savez(tmp_path / "future.npz", **arrays)
    with pytest.raises(checkpoint.CheckpointError, match="format version 99"):
        checkpoint.restore(tmp_path / "future.npz", ts)


def test_atomic_write_keeps_old_file_when_interrupted(tmp_path, monkeypatch):
    path = checkpoint.save(tmp_path / "a.npz", {"w": jnp.ones(3)})
    before = path.read_bytes()

    def boom(*args):
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save(path, {"w": jnp.zeros(3)})
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npz"]  # no temp file left behind


def test_rotation_and_latest(tmp_path):
    assert checkpoint.latest(tmp_path) is None and checkpoint.latest(tmp_path / "nope") is None
    for step in (1, 2, 10, 11):
        checkpoint.save_checkpoint(tmp_path, {"s": jnp.asarray(step)}, step, keep=3)
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    assert [p.name for p in checkpoint.checkpoints(tmp_path)] == [
        "ckpt_00000002.npz", "ckpt_00000010.npz", "ckpt_00000011.npz"]
    assert checkpoint.latest(tmp_path).name == "ckpt_00000011.npz"
    tree, header = checkpoint.restore_latest(tmp_path, {"s": jnp.asarray(0)})
    assert int(tree["s"]) == 11
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        checkpoint.restore_latest(tmp_path / "empty", {})
    with pytest.raises(ValueError, match="keep"):
        checkpoint.save_checkpoint(tmp_path, {}, 3, keep=0)
    with pytest.raises(ValueError, match="step"):
        checkpoint.save_checkpoint(tmp_path, {}, -1)
    with pytest.raises(TypeError, match="metadata"):
        checkpoint.save(tmp_path / "m.npz", {}, metadata={"x": object()})
    with pytest.raises(checkpoint.CheckpointError, match="cannot store leaf"):
        checkpoint.save(tmp_path / "m.npz", {"x": "a string"})


def test_exact_resume_after_sigkill(tmp_path):
    import resume_worker

    steps, kill_after = 10, 6
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")]),
               # the later processes reuse the first one's compiled programs
               JAX_COMPILATION_CACHE_DIR=str(tmp_path / "xla_cache"),
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0", JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
    interrupted, straight = tmp_path / "interrupted", tmp_path / "straight"
    worker = [sys.executable, str(HERE / "resume_worker.py")]
    proc = subprocess.Popen(worker + [str(interrupted), str(steps), "--ack"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=env)
    try:
        while True:
            line = proc.stdout.readline()
            assert line, f"worker exited early with {proc.wait()}"
            if line.strip() == f"saved {kill_after}":
                break
            proc.stdin.write("go\n")
            proc.stdin.flush()
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        rc = proc.wait()
    assert rc == -signal.SIGKILL
    assert checkpoint.latest(interrupted).name == f"ckpt_{kill_after:08d}.npz"
    assert not (interrupted / "final.npz").exists()
    assert len(checkpoint.checkpoints(interrupted)) == 2  # keep=2 rotation

    subprocess.run(worker + [str(interrupted), str(steps), "--resume"], check=True, env=env, timeout=600)
    subprocess.run(worker + [str(straight), str(steps)], check=True, env=env, timeout=600)
    template = dict(jax.eval_shape(resume_worker.init_state), step=0)
    resumed = checkpoint.restore(interrupted / "final.npz", template)
    uninterrupted = checkpoint.restore(straight / "final.npz", template)
    _assert_same(resumed, uninterrupted)
    assert resumed["step"] == steps
    history = checkpoint.read_metadata(interrupted / "final.npz")["metadata"]["history"]
    assert history == checkpoint.read_metadata(straight / "final.npz")["metadata"]["history"]
    assert len(history) == steps


def test_fit_epoch_callback_and_resume(tmp_path):
    from fcnn import train

    model = nn.Conv2d(1, 1, 1)
    opt = optax.sgd(0.1)
    ts = train.create_train_state(model, opt, jax.random.key(0, impl="rbg"))
    assert checkpoint.resume(tmp_path, ts) is None
    cb = checkpoint.epoch_callback(tmp_path, keep=2)
    for epoch in (1, 2, 3):
        ts = ts._replace(step=ts.step + 1)
        cb(epoch, ts, {"loss": np.float32(1.0 / epoch), "acc": jnp.asarray(0.5)})
    assert [p.name for p in checkpoint.checkpoints(tmp_path)] == ["ckpt_00000002.npz", "ckpt_00000003.npz"]
    back, epoch, history = checkpoint.resume(tmp_path, train.create_train_state(model, opt, jax.random.key(1, impl="rbg")))
    assert isinstance(back, train.TrainState) and epoch == 3 and int(back.step) == int(ts.step)
    assert history == [{"loss": 1.0, "acc": 0.5}, {"loss": 0.5, "acc": 0.5}, {"loss": pytest.approx(1 / 3), "acc": 0.5}]
    _assert_same(back, ts)


@pytest.mark.parametrize("crc", [2**32, -1])
def test_header_checksum_outside_32_bits_is_refused(tmp_path, crc):
    path = checkpoint.save(tmp_path / "a.npz", {"w": jnp.ones(3)})
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    header = json.loads(bytes(arrays["__fcnn__"]).decode())
    header["leaves"][0]["crc32"] = crc
    arrays["__fcnn__"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    np.savez(tmp_path / "forged.npz", **arrays)
    with pytest.raises(checkpoint.CheckpointError, match=r"crc32.*2\*\*32"):
        checkpoint.restore(tmp_path / "forged.npz", {"w": jnp.ones(3)})


def test_save_checkpoint_refuses_negative_and_earlier_steps(tmp_path):
    with pytest.raises(ValueError, match="step must be a non-negative int, got -1"):
        checkpoint.save_checkpoint(tmp_path, {"w": jnp.ones(3)}, -1)
    checkpoint.save_checkpoint(tmp_path, {"w": jnp.ones(3)}, 0)  # step 0 is allowed
    checkpoint.save_checkpoint(tmp_path, {"w": jnp.ones(3)}, 5)
    checkpoint.save_checkpoint(tmp_path, {"w": jnp.ones(3)}, 5)  # the same step again replaces it
    with pytest.raises(ValueError, match="later step than 4"):
        checkpoint.save_checkpoint(tmp_path, {"w": jnp.ones(3)}, 4)
    assert [p.name for p in checkpoint.checkpoints(tmp_path)] == ["ckpt_00000000.npz", "ckpt_00000005.npz"]


def test_zero_d_arrays_restore_into_python_scalar_templates(tmp_path):
    # the other direction of the eval_shape case above: saved 0-d arrays, a template of Python scalars
    saved = {"lr": jnp.asarray(0.25, jnp.float32), "step": jnp.asarray(7, jnp.int32), "warm": jnp.asarray(True)}
    path = checkpoint.save(tmp_path / "a.npz", saved)
    back = checkpoint.restore(path, {"lr": 0.5, "step": 0, "warm": False})
    assert back == {"lr": 0.25, "step": 7, "warm": True}
    assert [type(back[k]) for k in ("lr", "step", "warm")] == [float, int, bool]
