"""fcnn.data under misuse: corrupt files are named, lists are samples (as torch's DataLoader reads them), shapes are checked."""

import gzip

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader as TorchLoader

from fcnn.data import DataLoader, load_cifar10, load_mnist, random_shift
from fcnn.data.cifar import RECORD
from fcnn.data.mnist import write_idx


def _cifar_records(n, seed):
    rs = np.random.RandomState(seed)
    records = rs.randint(0, 256, size=(n, RECORD)).astype(np.uint8)
    records[:, 0] %= 10
    return records


def _write_cifar(directory, gz, n=3):
    for i, name in enumerate([f"data_batch_{k}.bin" for k in range(1, 6)] + ["test_batch.bin"]):
        raw = _cifar_records(n, i).tobytes()
        if gz:
            (directory / (name + ".gz")).write_bytes(gzip.compress(raw))
        else:
            (directory / name).write_bytes(raw)


def test_cifar10_gz_batches_are_read(tmp_path):
    (tmp_path / "raw").mkdir()
    (tmp_path / "gz").mkdir()
    _write_cifar(tmp_path / "raw", gz=False)
    _write_cifar(tmp_path / "gz", gz=True)
    for split in ("train", "test"):
        x_raw, y_raw = load_cifar10(str(tmp_path / "raw"), split)
        x_gz, y_gz = load_cifar10(str(tmp_path / "gz"), split)
        np.testing.assert_array_equal(x_gz, x_raw)
        np.testing.assert_array_equal(y_gz, y_raw)
    records = _cifar_records(3, 5)
    np.testing.assert_array_equal(y_raw, records[:, 0])
    np.testing.assert_array_equal(x_raw * 255, records[:, 1:].reshape(3, 3, 32, 32))


def _corrupt(blob: bytes, how: str) -> bytes:
    if how == "not gzip":
        return b"this is not gzip data" + blob[:40]
    if how == "truncated":
        return blob[: len(blob) // 2]
    if how == "bad crc":  # the trailer: CRC-32 then the length, little-endian
        bad = bytearray(blob)
        bad[-8] ^= 0xFF
        return bytes(bad)
    raise AssertionError(how)


@pytest.mark.parametrize("how", ["not gzip", "truncated", "bad crc"])
@pytest.mark.parametrize("dataset", ["mnist", "cifar10"])
def test_corrupt_gz_files_are_named(tmp_path, dataset, how):
    if dataset == "mnist":
        rs = np.random.RandomState(0)
        for prefix in ("train", "t10k"):
            write_idx(str(tmp_path / f"{prefix}-images-idx3-ubyte.gz"), rs.randint(0, 256, (4, 28, 28)).astype(np.uint8))
            write_idx(str(tmp_path / f"{prefix}-labels-idx1-ubyte.gz"), rs.randint(0, 10, 4).astype(np.uint8))
        bad = tmp_path / "train-images-idx3-ubyte.gz"
        load = lambda: load_mnist(str(tmp_path), "train")  # noqa: E731
    else:
        _write_cifar(tmp_path, gz=True)
        bad = tmp_path / "data_batch_2.bin.gz"
        load = lambda: load_cifar10(str(tmp_path), "train")  # noqa: E731
    bad.write_bytes(_corrupt(bad.read_bytes(), how))
    with pytest.raises(ValueError, match="is not a valid gzip file") as info:
        load()
    assert str(bad) in str(info.value)


def test_gzipped_files_under_raw_names_are_read(tmp_path):
    _write_cifar(tmp_path, gz=False)
    raw = tmp_path / "test_batch.bin"
    expected = load_cifar10(str(tmp_path), "test")
    raw.write_bytes(gzip.compress(raw.read_bytes()))
    for a, b in zip(load_cifar10(str(tmp_path), "test"), expected):
        np.testing.assert_array_equal(a, b)


# --- DataLoader: what a list means -------------------------------------------------------------


def _torch_batches(dataset, batch_size, drop_last):
    return [b for b in TorchLoader(dataset, batch_size=batch_size, shuffle=False, drop_last=drop_last)]


def _same(ours, theirs):
    if isinstance(theirs, (list, tuple)):
        assert isinstance(ours, tuple) and len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            _same(a, b)
        return
    np.testing.assert_array_equal(ours, theirs.numpy())
    assert ours.shape == tuple(theirs.shape)


@pytest.mark.parametrize("batch_size, drop_last", [(2, False), (3, True), (7, False)])
def test_a_list_of_samples_is_batched_as_torch_batches_it(batch_size, drop_last):
    rs = np.random.RandomState(0)
    images = [rs.standard_normal((1, 4, 3)).astype(np.float32) for _ in range(5)]
    labels = [np.int64(i % 3) for i in range(5)]
    cases = {
        "list of images": images,
        "list of (image, label)": list(zip(images, labels)),
        "list of [image, label]": [[x, y] for x, y in zip(images, labels)],
        "list of 4 images": images[:4],  # a list as long as an image has rows: still samples
    }
    for name, dataset in cases.items():
        ours = list(DataLoader(dataset, batch_size, drop_last=drop_last))
        theirs = _torch_batches(dataset, batch_size, drop_last)
        assert len(ours) == len(theirs), name
        for a, b in zip(ours, theirs):
            _same(a, b)
    # a tuple of arrays stays columns (torch: TensorDataset)
    x, y = np.stack(images), np.asarray(labels)
    ours = list(DataLoader((x, y), batch_size, drop_last=drop_last))
    theirs = _torch_batches(torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y)), batch_size,
                            drop_last)
    for a, b in zip(ours, theirs):
        _same(a, b)


def test_a_map_style_dataset_is_batched_as_samples():
    class Squares:
        def __len__(self):
            return 5

        def __getitem__(self, i):
            if not 0 <= i < 5:
                raise IndexError(i)
            return np.full((2,), i * i, np.float32), i

    ours = list(DataLoader(Squares(), 2))
    theirs = _torch_batches(Squares(), 2, False)
    for a, b in zip(ours, theirs):
        _same(a, b)


@pytest.mark.parametrize("dataset, error, message", [
    ([np.zeros((2, 3)), np.zeros((3, 2))], ValueError, r"sample 1 is float64 \(3, 2\), sample 0 is float64 \(2, 3\)"),
    ([np.zeros((4, 3)), np.zeros(4)], ValueError, r"pass arrays of columns as a tuple"),
    ([(np.zeros(2), 1), (np.zeros(2),)], ValueError, "sample 1 is tuple of 1 field"),
    ([(np.zeros(2), 1), np.zeros(2)], ValueError, "sample 1 is ndarray"),
    ([np.array(["a"])], ValueError, "numeric arrays"),
    ([], ValueError, "empty"),
    ("abc", TypeError, "got str"),
    ({"x": np.zeros(3)}, TypeError, "got dict"),
    (3, TypeError, "got int"),
])
def test_bad_sequences_of_samples(dataset, error, message):
    with pytest.raises(error, match=message):
        DataLoader(dataset, 2)


# --- random_shift on images without a channel axis ---------------------------------------------


def test_random_shift_on_images_without_channels():
    rs = np.random.RandomState(0)
    x = rs.standard_normal((5, 6, 7)).astype(np.float32)
    shift = random_shift(2)
    with_channel, _ = shift((x[:, None], None), np.random.default_rng(3))
    without, label = shift((x, "labels"), np.random.default_rng(3))
    assert without.shape == x.shape and without.dtype == x.dtype and label == "labels"
    np.testing.assert_array_equal(without, with_channel[:, 0])
    assert not np.array_equal(without, x)
    # several leading axes: the same offset for every channel of an image
    x4 = np.repeat(x[:, None, None], 2, axis=2)
    out4, _ = shift((x4, None), np.random.default_rng(3))
    np.testing.assert_array_equal(out4[:, 0, 1], without)
    with pytest.raises(ValueError, match=r"random_shift: expected images .* got shape \(5, 7\)"):
        shift((x[:, 0], None), np.random.default_rng(0))

