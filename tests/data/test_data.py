import gzip
import os

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from fcnn import data
from fcnn.data import DataLoader, channel_stats, load_cifar10, load_digits, load_mnist, normalize, read_idx
from fcnn.data.mnist import parse_idx, write_idx


# --- digits -----------------------------------------------------------------

def test_digits_splits_are_a_stratified_partition():
    x_all, y_all = load_digits("all")
    x_tr, y_tr = load_digits("train")
    x_te, y_te = load_digits("test")
    assert x_all.shape == (1797, 1, 8, 8) and x_all.dtype == np.float32 and y_all.dtype == np.int32
    assert len(y_tr) == 1438 and len(y_te) == 359
    assert x_all.min() == 0.0 and x_all.max() == 1.0
    # every image lands in exactly one split (compare as multisets of rows)
    rows = lambda x: sorted(map(bytes, (x * 16).astype(np.uint8).reshape(len(x), -1)))
    assert rows(np.concatenate([x_tr, x_te])) == rows(x_all)
    # stratified: each class is 20 % (rounded) of its count in the test split
    counts = np.bincount(y_all, minlength=10)
    np.testing.assert_array_equal(np.bincount(y_te, minlength=10), np.round(0.2 * counts))
    np.testing.assert_array_equal(np.bincount(y_tr) + np.bincount(y_te), counts)


def test_digits_raw_counts_and_reproducible():
    x, y = load_digits("test", scale=False)
    x2, y2 = load_digits("test", scale=False)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    assert x.max() == 16 and np.all(x == np.round(x))
    # the first image in the file is a 0 (as in the UCI/scikit-learn copy)
    xa, ya = load_digits("all", scale=False)
    assert ya[0] == 0 and xa[0, 0, 0].tolist() == [0, 0, 5, 13, 9, 1, 0, 0]


def test_digits_bad_split():
    with pytest.raises(ValueError, match="split"):
        load_digits("validation")


def test_digits_license_shipped():
    here = os.path.dirname(data.__file__)
    text = open(os.path.join(here, "DIGITS_LICENSE.txt")).read()
    assert "CC BY 4.0" in text and "Alpaydin" in text


# --- MNIST IDX --------------------------------------------------------------

@given(dtype=st.sampled_from([np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]),
       shape=st.lists(st.integers(0, 4), min_size=1, max_size=3), gz=st.booleans())
@settings(max_examples=15)
def test_idx_roundtrip(tmp_path_factory, dtype, shape, gz):
    a = (np.arange(int(np.prod(shape))) - 3).astype(dtype).reshape(shape)
    path = str(tmp_path_factory.mktemp("idx") / ("a.idx" + (".gz" if gz else "")))
    write_idx(path, a)
    b = read_idx(path)
    assert b.dtype == np.dtype(dtype) and b.shape == a.shape
    np.testing.assert_array_equal(a, b)


def _write_mnist(d, n_train=5, n_test=3, gz=True, sub=""):
    rs = np.random.RandomState(0)
    root = os.path.join(d, sub)
    os.makedirs(root, exist_ok=True)
    ext = ".gz" if gz else ""
    out = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        x = rs.randint(0, 256, size=(n, 28, 28)).astype(np.uint8)
        y = rs.randint(0, 10, size=n).astype(np.uint8)
        write_idx(os.path.join(root, f"{prefix}-images-idx3-ubyte{ext}"), x)
        write_idx(os.path.join(root, f"{prefix}-labels-idx1-ubyte{ext}"), y)
        out[prefix] = (x, y)
    return out


@pytest.mark.parametrize("gz", [True, False])
def test_load_mnist_reads_real_format(tmp_path, gz):
    ref = _write_mnist(str(tmp_path), gz=gz)
    for split, prefix in (("train", "train"), ("test", "t10k")):
        x, y = load_mnist(str(tmp_path), split)
        assert x.shape == (len(ref[prefix][0]), 1, 28, 28) and x.dtype == np.float32 and y.dtype == np.int32
        np.testing.assert_array_equal(x[:, 0], ref[prefix][0] / np.float32(255))
        np.testing.assert_array_equal(y, ref[prefix][1])


def test_load_mnist_header_bytes_exact(tmp_path):
    # the real header of train-labels: magic 0x00000801, then the count
    raw = bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 1])
    (tmp_path / "lbl").write_bytes(raw)
    np.testing.assert_array_equal(read_idx(str(tmp_path / "lbl")), [7, 2, 1])
    with gzip.open(tmp_path / "lbl.gz", "wb") as f:
        f.write(raw)
    np.testing.assert_array_equal(read_idx(str(tmp_path / "lbl.gz")), [7, 2, 1])


def test_load_fashion_mnist_torchvision_layout(tmp_path):
    ref = _write_mnist(str(tmp_path), gz=False, sub="FashionMNIST/raw")
    x, y = data.load("fashion-mnist", "test", str(tmp_path))
    np.testing.assert_array_equal(y, ref["t10k"][1])


def test_load_mnist_missing_files_names_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte.*t10k-labels-idx1-ubyte"):
        load_mnist(str(tmp_path), "train")
    with pytest.raises(FileNotFoundError, match="not a directory"):
        load_mnist(str(tmp_path / "nope"))
    write_idx(str(tmp_path / "train-images-idx3-ubyte"), np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(FileNotFoundError, match="train-labels-idx1-ubyte"):
        load_mnist(str(tmp_path), "train")


def test_load_mnist_bad_files(tmp_path):
    with pytest.raises(ValueError, match="magic"):
        parse_idx(bytes([1, 0, 8, 1, 0, 0, 0, 0]))
    with pytest.raises(ValueError, match="type code"):
        parse_idx(bytes([0, 0, 7, 1, 0, 0, 0, 0]))
    with pytest.raises(ValueError, match="bytes"):
        parse_idx(bytes([0, 0, 8, 1, 0, 0, 0, 5, 1, 2]))
    write_idx(str(tmp_path / "train-images-idx3-ubyte"), np.zeros((2, 28, 28), np.uint8))
    write_idx(str(tmp_path / "train-labels-idx1-ubyte"), np.zeros((3,), np.uint8))
    with pytest.raises(ValueError, match="2 images.*3 labels"):
        load_mnist(str(tmp_path))
    write_idx(str(tmp_path / "train-labels-idx1-ubyte"), np.array([0, 12], np.uint8))
    with pytest.raises(ValueError, match="0..9"):
        load_mnist(str(tmp_path))
    write_idx(str(tmp_path / "train-images-idx3-ubyte"), np.zeros((2, 784), np.uint8))
    with pytest.raises(ValueError, match="images"):
        load_mnist(str(tmp_path))
    with pytest.raises(ValueError, match="split"):
        load_mnist(str(tmp_path), "val")
    with pytest.raises(ValueError, match="dataset"):
        load_mnist(str(tmp_path), dataset="kmnist")


# --- CIFAR-10 ---------------------------------------------------------------

def _cifar_bytes(x, y):
    return b"".join(bytes([int(lbl)]) + img.tobytes() for img, lbl in zip(x, y))


def test_load_cifar10_reads_real_format(tmp_path):
    rs = np.random.RandomState(1)
    sub = tmp_path / "cifar-10-batches-bin"
    sub.mkdir()
    ref = {}
    for i, name in enumerate([f"data_batch_{k}.bin" for k in range(1, 6)] + ["test_batch.bin"]):
        x = rs.randint(0, 256, size=(2 + i % 2, 3, 32, 32)).astype(np.uint8)
        y = rs.randint(0, 10, size=len(x)).astype(np.uint8)
        (sub / name).write_bytes(_cifar_bytes(x, y))
        ref[name] = (x, y)
    x, y = load_cifar10(str(tmp_path), "train")
    train = [ref[f"data_batch_{k}.bin"] for k in range(1, 6)]
    assert x.shape == (12, 3, 32, 32) and x.dtype == np.float32 and y.dtype == np.int32
    np.testing.assert_array_equal(x, np.concatenate([a for a, _ in train]) / np.float32(255))
    np.testing.assert_array_equal(y, np.concatenate([b for _, b in train]))
    # record layout: label byte, then red plane row-major, then green, then blue
    first = (sub / "test_batch.bin").read_bytes()[:1 + 3072]
    xt, yt = load_cifar10(str(tmp_path), "test", scale=False)
    assert yt[0] == first[0] and xt[0, 1, 0, 0] == first[1 + 1024] and xt[0, 0, 0, 1] == first[2]


def test_load_cifar10_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="data_batch_1.bin.*test_batch.bin"):
        load_cifar10(str(tmp_path), "test")
    (tmp_path / "test_batch.bin").write_bytes(b"\x00" * 3000)
    with pytest.raises(ValueError, match="3073-byte records"):
        load_cifar10(str(tmp_path), "test")
    (tmp_path / "test_batch.bin").write_bytes(b"\x0b" + b"\x00" * 3072)
    with pytest.raises(ValueError, match="0..9"):
        load_cifar10(str(tmp_path), "test")
    with pytest.raises(ValueError, match="split"):
        load_cifar10(str(tmp_path), "valid")


def test_load_by_name_errors():
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'.*digits"):
        data.load("imagenet")
    with pytest.raises(ValueError, match="data_dir"):
        data.load("mnist")


# --- loader -----------------------------------------------------------------

@given(n=st.integers(1, 23), bs=st.integers(1, 8), shuffle=st.booleans(), drop_last=st.booleans(),
       seed=st.integers(0, 3))
def test_loader_covers_each_sample_once_per_epoch(n, bs, shuffle, drop_last, seed):
    x = np.arange(n) * 10
    y = np.arange(n)
    loader = DataLoader((x, y), bs, shuffle=shuffle, seed=seed, drop_last=drop_last)
    batches = list(loader)
    assert len(batches) == len(loader)
    seen = np.concatenate([b[1] for b in batches]) if batches else np.zeros(0, int)
    for xb, yb in batches:
        np.testing.assert_array_equal(xb, yb * 10)  # arrays stay aligned
        assert len(yb) == bs or (not drop_last and yb is batches[-1][1])
    expected = n // bs * bs if drop_last else n
    assert len(seen) == expected and len(set(seen.tolist())) == expected
    if not shuffle:
        np.testing.assert_array_equal(seen, np.arange(expected))


def test_loader_seeded_shuffle_per_epoch():
    x = np.arange(50)
    a, b = DataLoader(x, 10, shuffle=True, seed=3), DataLoader(x, 10, shuffle=True, seed=3)
    e0a, e1a = np.concatenate(list(a)), np.concatenate(list(a))
    e0b = np.concatenate(list(b))
    np.testing.assert_array_equal(e0a, e0b)           # same seed, same epoch → same order
    assert not np.array_equal(e0a, e1a)                # a new order each epoch
    np.testing.assert_array_equal(np.concatenate(list(b.epoch(1))), e1a)  # epochs addressable
    c = np.concatenate(list(DataLoader(x, 10, shuffle=True, seed=4)))
    assert not np.array_equal(e0a, c)


def test_loader_bad_args():
    with pytest.raises(ValueError, match="first dimension"):
        DataLoader((np.zeros(3), np.zeros(4)), 2)
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(np.zeros(3), 0)
    with pytest.raises(TypeError, match="batch_size"):
        DataLoader(np.zeros(3), 2.0)
    with pytest.raises(ValueError, match="seed"):
        DataLoader(np.zeros(3), 2, seed=-1)
    with pytest.raises(TypeError, match="shuffle"):
        DataLoader(np.zeros(3), 2, shuffle="yes")


def test_channel_stats_and_normalize():
    rs = np.random.RandomState(0)
    x = rs.standard_normal((6, 3, 4, 5)).astype(np.float32) * [[[[1.0]], [[2.0]], [[3.0]]]] + 5
    mean, std = channel_stats(x)
    np.testing.assert_allclose(mean, x.transpose(1, 0, 2, 3).reshape(3, -1).mean(1), rtol=1e-5)
    np.testing.assert_allclose(std, x.transpose(1, 0, 2, 3).reshape(3, -1).std(1), rtol=1e-5)
    z = normalize(x, mean, std)
    zm, zs = channel_stats(z)
    np.testing.assert_allclose(zm, 0, atol=1e-5)
    np.testing.assert_allclose(zs, 1, rtol=1e-5)
    # NHWC via axis=-1
    mh, _ = channel_stats(x.transpose(0, 2, 3, 1), axis=-1)
    np.testing.assert_allclose(mh, mean, rtol=1e-6)
    with pytest.raises(ValueError, match="std"):
        normalize(x, mean, [1.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="mean"):
        normalize(x, [0.0, 0.0], std)


def test_random_shift_transform_is_seeded_and_moves_images():
    from fcnn.data import random_shift

    x = np.zeros((6, 2, 5, 5), np.float32)
    x[:, :, 2, 2] = np.arange(1, 7)[:, None]          # one bright pixel per image, both channels
    y = np.arange(6)
    loader = DataLoader((x, y), 3, shuffle=True, seed=1, transform=random_shift(1))
    e0 = list(loader.epoch(0))
    again = list(loader.epoch(0))
    for (xa, ya), (xb, yb) in zip(e0, again):
        np.testing.assert_array_equal(xa, xb)
    for xb, yb in e0:
        for img, label in zip(xb, yb):
            r, q = np.argwhere(img[0] > 0)[0]
            assert abs(r - 2) <= 1 and abs(q - 2) <= 1       # moved by at most one pixel
            assert img[0, r, q] == label + 1 and img.sum() == 2 * (label + 1)  # channels move together
    shifts = {tuple(np.argwhere(img[0] > 0)[0]) for xb, _ in e0 for img in xb}
    assert len(shifts) > 1
    with pytest.raises(ValueError, match="max_shift"):
        random_shift(0)
    with pytest.raises(TypeError, match="transform"):
        DataLoader(x, 2, transform=3)
