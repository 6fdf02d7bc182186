"""Readers for MNIST and Fashion-MNIST in their distribution format (IDX files).

An IDX file is a big-endian header — two zero bytes, a type code, the number
of dimensions, one uint32 per dimension — followed by the array in C order.
Both data sets ship four files, the same names for both::

    train-images-idx3-ubyte   train-labels-idx1-ubyte
    t10k-images-idx3-ubyte    t10k-labels-idx1-ubyte

each possibly gzipped (``.gz``). torchvision's layout (``MNIST/raw``,
``FashionMNIST/raw`` under the directory) is found as well. Nothing is
downloaded.
"""

from __future__ import annotations

import math

import numpy as np

from fcnn.data._files import find_file, read_bytes

# IDX type codes → big-endian NumPy dtypes.
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_SPLIT_PREFIX = {"train": "train", "test": "t10k"}
_SUBDIRS = {"mnist": ("MNIST/raw", "raw"), "fashion-mnist": ("FashionMNIST/raw", "raw")}


def parse_idx(data: bytes, where: str = "parse_idx") -> np.ndarray:
    """Decode the bytes of an IDX file into an array (native byte order)."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{where}: not an IDX file (magic number must start with two zero bytes, "
                         f"got {data[:4].hex() or 'an empty file'})")
    code, ndim = data[2], data[3]
    if code not in _IDX_TYPES:
        raise ValueError(f"{where}: unknown IDX type code 0x{code:02x} (known: "
                         f"{', '.join(f'0x{c:02x}' for c in _IDX_TYPES)})")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{where}: truncated IDX header ({len(data)} bytes for {ndim} dimensions)")
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_TYPES[code])
    expected = header + math.prod(shape) * dtype.itemsize  # exact: numpy's product could overflow
    if len(data) != expected:
        raise ValueError(f"{where}: IDX file of shape {shape} should be {expected} bytes, got {len(data)}")
    return np.frombuffer(data, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def read_idx(path: str) -> np.ndarray:
    """Read an IDX file (raw, or gzip when the name ends in ``.gz``)."""
    return parse_idx(read_bytes(path, "read_idx"), where=f"read_idx({path!r})")


def _names(prefix: str, kind: str, ndim: int) -> list[str]:
    # the official names use '-idx3-ubyte'; some mirrors write '.idx3-ubyte'
    base = [f"{prefix}-{kind}-idx{ndim}-ubyte", f"{prefix}-{kind}.idx{ndim}-ubyte"]
    return [n + ext for n in base for ext in ("", ".gz")]


def load_mnist(data_dir: str, split: str = "train", *, dataset: str = "mnist",
               scale: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Load MNIST or Fashion-MNIST from IDX files in ``data_dir``.

    Args:
        data_dir: directory holding the four IDX files (or torchvision's
            ``MNIST/raw`` / ``FashionMNIST/raw`` below it).
        split: ``'train'`` (60,000 images) or ``'test'`` (10,000).
        dataset: ``'mnist'`` or ``'fashion-mnist'`` (same format; only the
            torchvision sub-directory and error messages differ).
        scale: divide by 255, giving floats in [0, 1]; else raw 0..255 as float32.

    Returns:
        ``(images, labels)``: float32 ``(N, 1, 28, 28)`` and int32 ``(N,)``.

    Raises:
        FileNotFoundError naming the expected files when they are missing;
        ValueError for a malformed file (magic number, dimensions, sizes).
    """
    where = f"load_mnist({dataset!r})"
    if dataset not in _SUBDIRS:
        raise ValueError(f"load_mnist: dataset must be one of {list(_SUBDIRS)}, got {dataset!r}")
    if split not in _SPLIT_PREFIX:
        raise ValueError(f"{where}: split must be one of {list(_SPLIT_PREFIX)}, got {split!r}")
    expected = [f"{p}-{k}-idx{d}-ubyte" for p in _SPLIT_PREFIX.values() for k, d in (("images", 3), ("labels", 1))]
    prefix = _SPLIT_PREFIX[split]
    img_path = find_file(data_dir, _names(prefix, "images", 3), _SUBDIRS[dataset], where, expected)
    lbl_path = find_file(data_dir, _names(prefix, "labels", 1), _SUBDIRS[dataset], where, expected)
    images, labels = read_idx(img_path), read_idx(lbl_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(f"{where}: {img_path} must hold uint8 images (N, rows, cols), got {images.dtype} {images.shape}")
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise ValueError(f"{where}: {lbl_path} must hold uint8 labels (N,), got {labels.dtype} {labels.shape}")
    if len(images) != len(labels):
        raise ValueError(f"{where}: {len(images)} images in {img_path} but {len(labels)} labels in {lbl_path}")
    if labels.size and labels.max() > 9:
        raise ValueError(f"{where}: labels in {lbl_path} must be 0..9, found {int(labels.max())}")
    x = images.astype(np.float32)[:, None]
    if scale:
        x /= 255.0
    return x, labels.astype(np.int32)


def write_idx(path: str, array: np.ndarray) -> None:
    """Write ``array`` as an IDX file (gzip when ``path`` ends in ``.gz``), atomically; the inverse of :func:`read_idx`."""
    import gzip

    from fcnn._atomic import write_atomic

    codes = {np.dtype(v).newbyteorder("="): k for k, v in _IDX_TYPES.items()}
    a = np.asarray(array)
    if a.dtype not in codes:
        raise TypeError(f"write_idx: dtype {a.dtype} has no IDX type code")
    header = bytes([0, 0, codes[a.dtype], a.ndim]) + np.asarray(a.shape, ">u4").tobytes()
    body = header + a.astype(a.dtype.newbyteorder(">")).tobytes()
    write_atomic(path, [gzip.compress(body) if str(path).endswith(".gz") else body])
