"""Reader for CIFAR-10 in its binary distribution format (``cifar-10-binary.tar.gz``, extracted).

Each batch file is a sequence of 3,073-byte records: one label byte (0..9)
then 3,072 pixel bytes — the 1,024 red, then green, then blue values of a
32×32 image in row-major order, i.e. already CHW. The training set is
``data_batch_1.bin`` … ``data_batch_5.bin`` (10,000 records each), the test set
``test_batch.bin``, each possibly gzipped (``.gz``). The extracted directory
``cifar-10-batches-bin`` below ``data_dir`` is found as well. Nothing is downloaded.
"""

from __future__ import annotations

import numpy as np

from fcnn.data._files import find_file, read_bytes

RECORD = 1 + 3 * 32 * 32
TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_FILES = ("test_batch.bin",)
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def parse_cifar10_batch(data: bytes, where: str = "parse_cifar10_batch") -> tuple[np.ndarray, np.ndarray]:
    """Decode one binary batch: uint8 images ``(N, 3, 32, 32)`` and uint8 labels ``(N,)``."""
    if len(data) == 0 or len(data) % RECORD:
        raise ValueError(f"{where}: a CIFAR-10 batch is a whole number of {RECORD}-byte records, "
                         f"got {len(data)} bytes")
    records = np.frombuffer(data, np.uint8).reshape(-1, RECORD)
    labels = records[:, 0].copy()
    if labels.max() > 9:
        raise ValueError(f"{where}: labels must be 0..9, found {int(labels.max())}")
    return records[:, 1:].reshape(-1, 3, 32, 32).copy(), labels


def load_cifar10(data_dir: str, split: str = "train", *, scale: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Load CIFAR-10 from the binary batches in ``data_dir``.

    Args:
        data_dir: directory holding ``data_batch_1.bin`` … ``data_batch_5.bin``
            and ``test_batch.bin``, each raw or gzipped (``data_batch_1.bin.gz``),
            or ``cifar-10-batches-bin/`` below it.
        split: ``'train'`` (the five data batches, in order) or ``'test'``.
        scale: divide by 255, giving floats in [0, 1]; else raw 0..255 as float32.

    Returns:
        ``(images, labels)``: float32 ``(N, 3, 32, 32)`` (RGB, NCHW) and int32 ``(N,)``.
    """
    where = "load_cifar10"
    files = {"train": TRAIN_FILES, "test": TEST_FILES}
    if split not in files:
        raise ValueError(f"{where}: split must be one of {list(files)}, got {split!r}")
    expected = TRAIN_FILES + TEST_FILES
    xs, ys = [], []
    for name in files[split]:
        path = find_file(data_dir, [name, name + ".gz"], ("cifar-10-batches-bin",), where, expected)
        x, y = parse_cifar10_batch(read_bytes(path, where), where=f"{where}({path!r})")
        xs.append(x)
        ys.append(y)
    x = np.concatenate(xs).astype(np.float32)
    if scale:
        x /= 255.0
    return x, np.concatenate(ys).astype(np.int32)
