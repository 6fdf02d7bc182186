"""fcnn.interop.torch's files under misuse: forged safetensors headers (the ``safetensors`` library is the
oracle of what a valid file is), names the format reserves, torch files that are not weights only, and
buffers the model's dtype cannot hold."""

import json
import os
import struct
from collections import OrderedDict

import numpy as np
import pytest
import safetensors.numpy
import torch

from fcnn import nn
from fcnn.interop.torch import load_state_dict, read_checkpoint_file, read_safetensors, write_safetensors


def _file(tmp_path, header: dict, body: bytes, name="forged.safetensors"):
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)
    path = tmp_path / name
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + body)
    return path


def _valid():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.array([1, -2], np.int64)
    header = {"__metadata__": {"format": "pt"},
              "a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
              "b": {"dtype": "I64", "shape": [2], "data_offsets": [24, 40]}}
    return header, a.tobytes() + b.tobytes()


def _edit(path_fn):
    def edit(header, body):
        path_fn(header)
        return header, body
    return edit


def _gap(header, body):
    header["b"]["data_offsets"] = [32, 48]
    return header, body[:24] + b"\0" * 8 + body[24:]


FORGERIES = {
    "overlap": (_edit(lambda h: h["b"].update(data_offsets=[16, 32])), "overlaps another tensor"),
    "same data twice": (lambda h, b: ({**h, "b": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}}, b[:24]),
                        "overlaps another tensor"),
    "gap": (lambda h, b: _gap(h, b), "leaves 8 bytes unused"),
    "trailing bytes": (lambda h, b: (h, b + b"\0" * 8), "8 bytes after the last tensor"),
    "offsets outside the file": (_edit(lambda h: h["b"].update(data_offsets=[24, 400])), "invalid data offsets 24..400: outside the 40 bytes"),
    "negative offset": (_edit(lambda h: h["a"].update(data_offsets=[-8, 24])), "outside the 40 bytes"),
    "size disagrees with shape": (_edit(lambda h: h["a"].update(shape=[2, 2])), "need 16 bytes, not 24"),
    "no dtype": (_edit(lambda h: h["a"].pop("dtype")), "has no 'dtype'"),
    "no shape": (_edit(lambda h: h["a"].pop("shape")), "has no 'shape'"),
    "no offsets": (_edit(lambda h: h["a"].pop("data_offsets")), "has no 'data_offsets'"),
    "shape a string": (_edit(lambda h: h["a"].update(shape="2,3")), "shape must be a list"),
    "negative dimension": (_edit(lambda h: h["a"].update(shape=[-2, -3])), "non-negative ints"),
    "float offsets": (_edit(lambda h: h["a"].update(data_offsets=[0.0, 24.0])), "two ints"),
    "three offsets": (_edit(lambda h: h["a"].update(data_offsets=[0, 12, 24])), "two ints"),
    "unknown dtype": (_edit(lambda h: h["a"].update(dtype="F33")), "unsupported dtype 'F33'"),
    "dtype not a string": (_edit(lambda h: h["a"].update(dtype=7)), "unsupported dtype 7"),
    "tensor entry a list": (_edit(lambda h: h.update(a=[0, 24])), "must be an object"),
    "metadata of numbers": (_edit(lambda h: h.update(__metadata__={"epoch": 3})), "__metadata__ must be an object of strings"),
    "header a list": (lambda h, b: ([1, 2], b), "the header must be a JSON object"),
}


@pytest.mark.parametrize("case", list(FORGERIES))
def test_forged_safetensors_are_refused_as_the_library_refuses_them(tmp_path, case):
    edit, message = FORGERIES[case]
    header, body = edit(*_valid())
    path = _file(tmp_path, header, body)
    with pytest.raises(Exception):  # the oracle: the safetensors library refuses the file too
        safetensors.numpy.load_file(str(path))
    with pytest.raises(ValueError, match=message) as info:
        read_safetensors(path)
    assert str(path) in str(info.value)


def test_deeply_nested_header(tmp_path):
    blob = b'{"__metadata__": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    blob += b" " * (-len(blob) % 8)
    path = tmp_path / "deep.safetensors"
    path.write_bytes(struct.pack("<Q", len(blob)) + blob)
    with pytest.raises(ValueError, match="header is not valid JSON"):
        read_safetensors(path)


def test_duplicate_names_are_refused(tmp_path):
    blob = b'{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}'
    blob += b" " * (-len(blob) % 8)
    path = tmp_path / "dup.safetensors"
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + b"\x07")
    with pytest.raises(ValueError, match="duplicate key 'a'"):
        read_safetensors(path)


def test_valid_files_agree_with_the_library(tmp_path):
    header, body = _valid()
    path = _file(tmp_path, header, body, "valid.safetensors")
    ours, theirs = read_safetensors(path), safetensors.numpy.load_file(str(path))
    assert list(ours) == ["a", "b"] and set(theirs) == {"a", "b"}
    for k in theirs:
        np.testing.assert_array_equal(ours[k], theirs[k])
        assert ours[k].dtype == theirs[k].dtype
    rs = np.random.RandomState(0)
    tensors = {"w": rs.standard_normal((3, 2)).astype(np.float16), "empty": np.zeros((0, 4), np.float32),
               "flag": np.array(True), "idx": rs.randint(-9, 9, size=(5,)).astype(np.int8)}
    safetensors.numpy.save_file(tensors, str(tmp_path / "lib.safetensors"), metadata={"k": "v"})
    back = read_safetensors(tmp_path / "lib.safetensors")
    for k, v in tensors.items():
        np.testing.assert_array_equal(back[k], v)
        assert back[k].dtype == v.dtype and back[k].shape == v.shape


def test_write_safetensors_refuses_reserved_and_bad_names(tmp_path):
    path = tmp_path / "out.safetensors"
    with pytest.raises(ValueError, match="'__metadata__' is the format's key"):
        write_safetensors(path, {"w": np.ones(2), "__metadata__": np.ones(1)})
    with pytest.raises(TypeError, match="tensor names must be strings, got 3"):
        write_safetensors(path, {3: np.ones(2)})
    with pytest.raises(TypeError, match="metadata must be a mapping of strings to strings"):
        write_safetensors(path, {"w": np.ones(2)}, metadata={"epoch": 3})
    assert not path.exists() and os.listdir(tmp_path) == []


def test_write_safetensors_is_read_by_the_library_and_follows_the_umask(tmp_path):
    tensors = OrderedDict(a=np.arange(4, dtype=np.float32), b=np.array([[1, 2]], np.int64), c=np.float64(2.5))
    old = os.umask(0o027)
    try:
        write_safetensors(tmp_path / "x.safetensors", tensors, metadata={"format": "pt"})
    finally:
        os.umask(old)
    assert os.listdir(tmp_path) == ["x.safetensors"]
    assert (tmp_path / "x.safetensors").stat().st_mode & 0o777 == 0o640
    theirs = safetensors.numpy.load_file(str(tmp_path / "x.safetensors"))
    for k, v in tensors.items():
        np.testing.assert_array_equal(theirs[k], v)


# --- buffers beyond the model's dtype -------------------------------------------------------------


@pytest.mark.skipif(torch.tensor(0).dtype != torch.int64, reason="torch counts in int64")
def test_num_batches_tracked_beyond_int32_is_refused_not_wrapped():
    import jax

    if jax.config.jax_enable_x64:
        pytest.skip("with x64 the counter is int64 and loads exactly")
    bn = torch.nn.BatchNorm2d(3)
    sd = bn.state_dict()
    sd["num_batches_tracked"] = torch.tensor(2**31 + 5)
    with pytest.raises(ValueError, match=r"num_batches_tracked holds 2147483653, which the model's int32 cannot hold"):
        load_state_dict(nn.BatchNorm2d(3), sd)
    sd["num_batches_tracked"] = torch.tensor(2**31 - 1)
    _, state = load_state_dict(nn.BatchNorm2d(3), sd)
    assert int(state["num_batches_tracked"]) == 2**31 - 1


# --- torch files that are not weights-only ----------------------------------------------------------


class Custom:
    pass


@pytest.mark.parametrize("payload, reason", [
    (lambda: {"w": torch.ones(2), "when": __import__("datetime").datetime(2024, 1, 1)}, "datetime.datetime"),
    (lambda: {"model": torch.nn.Linear(2, 2)}, "torch.nn.modules.linear.Linear"),
    (lambda: {"w": torch.ones(2), "obj": Custom()}, "Custom"),
])
def test_pth_files_that_are_not_weights_only(tmp_path, payload, reason):
    path = tmp_path / "model.pth"
    torch.save(payload(), path)
    with pytest.raises(ValueError) as info:
        read_checkpoint_file(path)
    message = str(info.value)
    assert str(path) in message and "not a weights-only torch file" in message and reason in message
    assert "weights_only=False" not in message and "weights_only` set to `False" not in message


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_unreadable_pth_files(tmp_path, damage):
    path = tmp_path / "model.pth"
    torch.save({"w": torch.ones(3)}, path)
    data = path.read_bytes()
    path.write_bytes(b"not a torch file" * 4 if damage == "garbage" else data[: len(data) // 2])
    with pytest.raises(ValueError, match="model.pth is not a") as info:
        read_checkpoint_file(path)
    assert "weights_only=False" not in str(info.value)
