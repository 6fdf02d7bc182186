"""fcnn.checkpoint under misuse: nothing saved is lost, nothing unrestorable is written, forged files are refused.

Directories mixing runs, leaves restore could not give back, writers killed
mid-save, concurrent rotation, the umask, and headers forged field by field.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import zlib
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fcnn import _atomic, checkpoint

HERE = Path(__file__).resolve().parent


def _tree(value=1.0):
    return {"w": jnp.full((3,), value), "step": 2, "rng": jax.random.key(0, impl="rbg")}


def _names(directory):
    return sorted(p.name for p in Path(directory).iterdir())


# --- a directory holds one run ---------------------------------------------------------------


@pytest.mark.parametrize("keep", [None, 1, 3])
def test_a_lower_step_is_refused_and_nothing_is_lost(tmp_path, keep):
    checkpoint.save_checkpoint(tmp_path, _tree(5.0), 5, keep=keep)
    before = (tmp_path / "ckpt_00000005.npz").read_bytes()
    for step in (0, 1, 4):
        with pytest.raises(ValueError, match=r"ckpt_00000005\.npz is a later step than %d" % step):
            checkpoint.save_checkpoint(tmp_path, _tree(float(step)), step, keep=keep)
    assert _names(tmp_path) == ["ckpt_00000005.npz"]
    assert (tmp_path / "ckpt_00000005.npz").read_bytes() == before
    # the newest step again replaces it; a later one continues the run
    checkpoint.save_checkpoint(tmp_path, _tree(6.0), 5, keep=keep)
    checkpoint.save_checkpoint(tmp_path, _tree(7.0), 7, keep=keep)
    newest = checkpoint.restore(checkpoint.latest(tmp_path), _tree())
    assert float(newest["w"][0]) == 7.0
    kept = ["ckpt_00000005.npz", "ckpt_00000007.npz"][-(keep or 2):]
    assert _names(tmp_path) == kept


def test_rotation_never_removes_the_file_just_written(tmp_path, monkeypatch):
    # A concurrent writer can slip a later step in between the order check and the rotation.
    checkpoint.save_checkpoint(tmp_path, _tree(), 3)
    real_save = checkpoint.save

    def save_then_other_writer(path, tree, **kw):
        out = real_save(path, tree, **kw)
        real_save(tmp_path / "ckpt_00000009.npz", tree)
        return out

    monkeypatch.setattr(checkpoint, "save", save_then_other_writer)
    path = checkpoint.save_checkpoint(tmp_path, _tree(), 4, keep=1)
    assert path.name in _names(tmp_path) and "ckpt_00000009.npz" in _names(tmp_path)


def test_a_second_fit_into_the_same_directory_is_refused(tmp_path):
    cb = checkpoint.epoch_callback(tmp_path, keep=2)
    for epoch in (1, 2, 3):
        cb(epoch, {"w": jnp.ones(2) * epoch}, {"loss": 1.0})
    second = checkpoint.epoch_callback(tmp_path, keep=2)
    with pytest.raises(ValueError, match="later step than 1"):
        second(1, {"w": jnp.zeros(2)}, {"loss": 9.0})
    tree, epoch, history = checkpoint.resume(tmp_path, {"w": jnp.zeros(2)})
    assert epoch == 3 and float(tree["w"][0]) == 3.0 and len(history) == 3


def test_rotation_tolerates_a_file_another_process_removed(tmp_path, monkeypatch):
    for step in (1, 2):
        checkpoint.save_checkpoint(tmp_path, _tree(), step)
    real = checkpoint.checkpoints

    def listed_then_removed(directory):
        found = real(directory)
        found[0].unlink()  # the other process's rotation wins the race
        return found

    monkeypatch.setattr(checkpoint, "checkpoints", listed_then_removed)
    checkpoint.save_checkpoint(tmp_path, _tree(), 3, keep=1)
    assert _names(tmp_path) == ["ckpt_00000003.npz"]


def test_replicas_saving_the_same_steps_concurrently(tmp_path):
    # e.g. every process of a data-parallel job saving its (identical) state
    n, errors = 12, []
    barrier = threading.Barrier(2)

    def writer():
        try:
            for step in range(n):
                barrier.wait()
                checkpoint.save_checkpoint(tmp_path, _tree(float(step)), step, keep=2)
        except BaseException as e:  # noqa: BLE001 (reported below)
            errors.append(e)
            barrier.abort()

    threads = [threading.Thread(target=writer) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert _names(tmp_path) == [f"ckpt_{n - 2:08d}.npz", f"ckpt_{n - 1:08d}.npz"]


# --- leaves that could not come back ---------------------------------------------------------------

UNRESTORABLE = {
    "str": "a string",
    "bytes": b"raw",
    "None-like object": object(),
    "unicode array": np.array(["a", "bc"]),
    "bytes array": np.array([b"a"]),
    "object array": np.array([1, "x"], dtype=object),
    "datetime array": np.array(["2024-01-01"], dtype="datetime64[D]"),
    "timedelta array": np.array([3], dtype="timedelta64[s]"),
    "structured array": np.zeros(2, dtype=[("a", "i4"), ("b", "f4")]),
    "void array": np.zeros(2, dtype="V8"),
    "int 2**63": 2**63,
    "int 2**64": 2**64,
    "int -2**63-1": -(2**63) - 1,
    "datetime scalar": np.datetime64("2024-01-01"),
}


@pytest.mark.parametrize("name", list(UNRESTORABLE))
def test_unrestorable_leaves_are_refused_before_writing(tmp_path, name):
    tree = {"params": {"w": jnp.ones(2)}, "extra": UNRESTORABLE[name]}
    with pytest.raises(checkpoint.CheckpointError, match=r"\['extra'\]"):
        checkpoint.save(tmp_path / "a.npz", tree)
    with pytest.raises(checkpoint.CheckpointError):
        checkpoint.save_checkpoint(tmp_path, tree, 1)
    assert _names(tmp_path) == []


def test_edge_values_come_back_exactly(tmp_path):
    tree = {"lo": -(2**63), "hi": 2**63 - 1, "f": 1e308, "b": True,
            "i64": np.array([2**62, -5], np.int64), "f64": np.array([1 + 2**-50]), "u64": np.array([2**64 - 1], np.uint64),
            "c": jnp.asarray([1 + 2j], jnp.complex64), "bf": jnp.asarray([1.5], jnp.bfloat16),
            "empty": np.zeros((0, 3), np.float32)}
    back = checkpoint.restore(checkpoint.save(tmp_path / "a.npz", tree), tree)
    for k, v in tree.items():
        assert type(back[k]) is type(v) or isinstance(back[k], jax.Array), k
        np.testing.assert_array_equal(np.asarray(back[k]), np.asarray(v))
        assert np.asarray(back[k]).dtype == np.asarray(v).dtype, k
    # a 64-bit leaf into a jax template leaf would silently lose bits without x64: refused
    if not jax.config.jax_enable_x64:
        with pytest.raises(checkpoint.CheckpointError, match="jax_enable_x64"):
            checkpoint.restore(tmp_path / "a.npz", {**tree, "i64": jax.ShapeDtypeStruct((2,), np.int64)})
        # a stored Python int beyond the template's int32
        with pytest.raises(checkpoint.CheckpointError, match="outside the template's int32"):
            checkpoint.restore(tmp_path / "a.npz", {**tree, "hi": jnp.asarray(0, jnp.int32)})


def test_scalars_and_0d_arrays_convert_only_without_changing_the_value(tmp_path):
    path = checkpoint.save(tmp_path / "s.npz", {"f": 3.5, "i": 2, "z": jnp.asarray(2.5, jnp.bfloat16),
                                                "n": np.float64(np.nan), "one": 1})
    good = checkpoint.restore(path, {"f": jnp.zeros((), jnp.float32), "i": jnp.zeros((), jnp.int32), "z": 0.0,
                                     "n": 0.0, "one": False})
    assert float(good["f"]) == 3.5 and int(good["i"]) == 2 and good["z"] == 2.5 and np.isnan(good["n"])
    assert good["one"] is True
    for template, message in [({"f": jnp.zeros((), jnp.int32)}, "is 3.5, the template wants an integer"),
                              ({"z": 0}, "is 2.5, the template wants an integer"),
                              ({"n": jnp.zeros((), jnp.int32)}, "is nan, the template wants an integer"),
                              ({"i": False}, "is 2, the template wants a bool"),
                              ({"i": jnp.zeros((), jnp.bool_)}, "is 2, the template wants a bool")]:
        full = {"f": 0.0, "i": 0, "z": 0.0, "n": 0.0, "one": 0, **template}
        with pytest.raises(checkpoint.CheckpointError, match=message):
            checkpoint.restore(path, full)


# --- files: permissions and stale temporaries ---------------------------------------------------


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_files_follow_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        path = checkpoint.save_checkpoint(tmp_path, _tree(), 1)
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


_KILLED_WRITER = """
import os, sys, time
import numpy as np
from fcnn import checkpoint

def hang(fd):  # the data is written, not yet synced nor renamed: SIGKILL arrives here
    print("writing", flush=True)
    time.sleep(600)

os.fsync = hang
checkpoint.save_checkpoint(sys.argv[1], {"w": np.ones(1 << 16, np.float32)}, 2, keep=2)
"""


def test_a_killed_save_leaves_no_stray_file_after_the_next_save(tmp_path):
    checkpoint.save_checkpoint(tmp_path, _tree(1.0), 1, keep=2)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(tmp_path)], stdout=subprocess.PIPE,
                            text=True, env=env)
    try:
        assert proc.stdout.readline().strip() == "writing"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    stray = [n for n in _names(tmp_path) if n != "ckpt_00000001.npz"]
    assert len(stray) == 1 and _atomic.is_temporary(stray[0]) and (tmp_path / stray[0]).stat().st_size > 1 << 18
    # a writer that is alive keeps its temporary
    fd, live = _atomic._create_temporary(tmp_path, "other.npz")
    try:
        checkpoint.save_checkpoint(tmp_path, _tree(3.0), 3, keep=2)
        assert _names(tmp_path) == sorted(["ckpt_00000001.npz", "ckpt_00000003.npz", live.name])
    finally:
        os.close(fd)
    checkpoint.save(tmp_path / "other.npz", _tree())
    assert _names(tmp_path) == ["ckpt_00000001.npz", "ckpt_00000003.npz", "other.npz"]
    assert float(checkpoint.restore_latest(tmp_path, _tree())[0]["w"][0]) == 3.0


def test_saving_onto_a_directory_or_under_a_file(tmp_path):
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(IsADirectoryError, match=f"{tmp_path} is a directory"):
        checkpoint.save(tmp_path, _tree())
    with pytest.raises(NotADirectoryError, match=f"{tmp_path / 'a_file'} is a file"):
        checkpoint.save_checkpoint(tmp_path / "a_file" / "run", _tree(), 1)
    assert _names(tmp_path) == ["a_file"] and (tmp_path / "a_file").read_text() == "x"


@pytest.mark.skipif(_atomic.fcntl is None, reason="flock is POSIX")
def test_file_systems_without_locks(tmp_path, monkeypatch):
    import errno

    stale = tmp_path / f".ckpt_00000001.npz.{'0' * 16}{_atomic.TEMP_SUFFIX}"
    stale.write_bytes(b"partial")

    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(_atomic.fcntl, "flock", no_locks)
    path = checkpoint.save_checkpoint(tmp_path, _tree(), 2, keep=1)
    # saves work; whose temporary is stale cannot be told, so none is removed
    assert _names(tmp_path) == sorted([path.name, stale.name])


# --- forged and malformed files ----------------------------------------------------------------


def _forge(tmp_path, edit, name="forged.npz"):
    """A valid checkpoint whose header JSON (a dict) or members (the npz dict) ``edit`` changes."""
    good = checkpoint.save(tmp_path / "good.npz", _tree())
    with np.load(good) as f:
        arrays = {k: f[k] for k in f.files}
    header = json.loads(bytes(arrays["__fcnn__"]).decode())
    edit(header, arrays)
    arrays["__fcnn__"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    np.savez(tmp_path / name, **arrays)
    return tmp_path / name


def test_files_carry_format_version_1(tmp_path):
    """The on-disk format's version, which every fcnn that reads version 1 checks: a writer that stamped
    another would make those readers refuse its files."""
    path = checkpoint.save(tmp_path / "c.npz", _tree())
    with np.load(path) as f:
        header = json.loads(bytes(f["__fcnn__"]).decode())
    assert (header["format"], header["format_version"]) == ("fcnn-checkpoint", 1)


def test_epoch_callback_keeps_three_checkpoints_by_default(tmp_path):
    cb = checkpoint.epoch_callback(tmp_path)
    for epoch in range(1, 6):
        cb(epoch, _tree(float(epoch)), {"loss": 1.0})
    assert _names(tmp_path) == ["ckpt_00000003.npz", "ckpt_00000004.npz", "ckpt_00000005.npz"]


def _leaf(header, name):
    return next(leaf for leaf in header["leaves"] if leaf["name"] == name)


FORGERIES = {
    "no leaves": (lambda h, a: h.pop("leaves"), "leaves must be a list"),
    "leaves a dict": (lambda h, a: h.update(leaves={}), "leaves must be a list"),
    "leaf a string": (lambda h, a: h["leaves"].__setitem__(0, "w"), r"leaves\[0\] must be a JSON object"),
    "no shape": (lambda h, a: _leaf(h, "['w']").pop("shape"), r"has no 'shape'"),
    "no crc": (lambda h, a: _leaf(h, "['w']").pop("crc32"), r"has no 'crc32'"),
    "shape a string": (lambda h, a: _leaf(h, "['w']").update(shape="3"), r"shape \(\['w'\]\) must be a list"),
    "negative dim": (lambda h, a: _leaf(h, "['w']").update(shape=[-3]), "non-negative ints"),
    "float dim": (lambda h, a: _leaf(h, "['w']").update(shape=[3.0]), "non-negative ints"),
    "dtype an int": (lambda h, a: _leaf(h, "['w']").update(dtype=5), r"dtype \(\['w'\]\) must be a string"),
    "unknown dtype": (lambda h, a: _leaf(h, "['w']").update(dtype="float17"), "numeric dtype"),
    "object dtype": (lambda h, a: _leaf(h, "['w']").update(dtype="object"), "numeric dtype"),
    "unknown kind": (lambda h, a: _leaf(h, "['w']").update(kind="tensor"), "kind"),
    "kind a list": (lambda h, a: _leaf(h, "['w']").update(kind=[]), "kind"),
    "name not a string": (lambda h, a: _leaf(h, "['w']").update(name=3), "name"),
    "duplicate name": (lambda h, a: _leaf(h, "['step']").update(name="['w']"), "naming no other leaf"),
    "crc a string": (lambda h, a: _leaf(h, "['w']").update(crc32="abc"), "crc32"),
    "scalar with a shape": (lambda h, a: _leaf(h, "['step']").update(shape=[2]), "kind 'int'"),
    "metadata a list": (lambda h, a: h.update(metadata=[1]), "metadata must be a JSON object"),
    "no metadata": (lambda h, a: h.pop("metadata"), "metadata must be a JSON object"),
}


@pytest.mark.parametrize("case", list(FORGERIES))
def test_forged_headers_are_refused_naming_file_and_field(tmp_path, case):
    edit, message = FORGERIES[case]
    path = _forge(tmp_path, edit)
    for read in (checkpoint.read_metadata, lambda p: checkpoint.restore(p, _tree())):
        with pytest.raises(checkpoint.CheckpointError, match=message) as info:
            read(path)
        assert str(path) in str(info.value)


def _replace_member(header, arrays, name, value):
    """Store ``value`` for leaf ``name`` with a matching checksum, so only its shape or kind is wrong."""
    index = [leaf["name"] for leaf in header["leaves"]].index(name)
    arrays[f"a{index}"] = value
    _leaf(header, name)["crc32"] = zlib.crc32(np.ascontiguousarray(value).tobytes())


def _drop_member(header, arrays, name):
    arrays.pop(f"a{[leaf['name'] for leaf in header['leaves']].index(name)}")


MEMBER_FORGERIES = {
    "member missing": (lambda h, a: _drop_member(h, a, "['w']"), "truncated or corrupt"),
    "member reshaped": (lambda h, a: _replace_member(h, a, "['w']", np.ones(2, np.float32)), "has shape"),
    "member longer": (lambda h, a: _replace_member(h, a, "['w']", np.ones(4, np.float32)), "has shape"),
    "member of another dtype": (lambda h, a: _replace_member(h, a, "['w']", np.ones(3, np.int32)), "stored as int32"),
    "scalar member an array": (lambda h, a: _replace_member(h, a, "['step']", np.arange(2)), "the header says a scalar"),
    "key of another impl": (lambda h, a: _leaf(h, "['rng']").update(dtype="nope"), "dtype nope in the checkpoint"),
    "key data of another size": (lambda h, a: _replace_member(h, a, "['rng']", np.zeros(3, np.uint32)),
                                 "is not a 'rbg' PRNG key"),
    "checksum": (lambda h, a: _leaf(h, "['w']").update(crc32=1), "checksum mismatch"),
}


@pytest.mark.parametrize("case", list(MEMBER_FORGERIES))
def test_forged_members_are_refused(tmp_path, case):
    edit, message = MEMBER_FORGERIES[case]
    path = _forge(tmp_path, edit)
    with pytest.raises(checkpoint.CheckpointError, match=message) as info:
        checkpoint.restore(path, _tree())
    assert str(path) in str(info.value)


def test_deeply_nested_header_json(tmp_path):
    path = _forge(tmp_path, lambda h, a: None)
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    arrays["__fcnn__"] = np.frombuffer(b'{"format": "fcnn-checkpoint", "x": ' + b"[" * 200_000 + b"]" * 200_000 + b"}",
                                       np.uint8)
    np.savez(path, **arrays)
    with pytest.raises(checkpoint.CheckpointError, match="corrupt header"):
        checkpoint.read_metadata(path)


def test_a_negative_epoch_is_refused_by_resume(tmp_path):
    checkpoint.save(tmp_path / "ckpt_00000001.npz", {"train_state": {"w": jnp.ones(2)}, "epoch": -4},
                    metadata={"history": []})
    with pytest.raises(checkpoint.CheckpointError, match="epoch -4"):
        checkpoint.resume(tmp_path, {"w": jnp.ones(2)})


def test_malformed_history_is_refused_by_resume(tmp_path):
    checkpoint.save_checkpoint(tmp_path, {"train_state": {"w": jnp.ones(2)}, "epoch": 1}, 1,
                               metadata={"history": "not a list"})
    with pytest.raises(checkpoint.CheckpointError, match="metadata.history must be a list"):
        checkpoint.resume(tmp_path, {"w": jnp.ones(2)})


def test_random_corruption_only_ever_raises_checkpoint_error(tmp_path):
    good = checkpoint.save(tmp_path / "good.npz", _tree())
    data = good.read_bytes()
    rs = np.random.RandomState(0)
    for trial in range(40):
        corrupt = bytearray(data)
        for pos in rs.randint(0, len(data), size=rs.randint(1, 4)):
            corrupt[pos] ^= 1 << rs.randint(8)
        path = tmp_path / f"c{trial}.npz"
        path.write_bytes(bytes(corrupt))
        try:  # any other exception fails the test
            checkpoint.restore(path, _tree())
        except checkpoint.CheckpointError:
            pass
