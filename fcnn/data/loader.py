"""A NumPy batch iterator with seeded per-epoch shuffling, and normalization helpers.

Batches are NumPy arrays; ``jax.jit``-compiled steps take them as they are.
The order of epoch ``e`` depends only on ``(seed, e)``, so a run is exactly
reproducible and can be resumed at any epoch.
"""

from __future__ import annotations

from typing import Callable, Iterator, Sequence

import numpy as np

from fcnn import _checks


class DataLoader:
    """Iterate over aligned arrays in mini-batches, like ``torch.utils.data.DataLoader``.

    Args:
        arrays: what to batch, as torch's ``DataLoader`` reads its dataset:

            * a tuple of arrays with the same first dimension, the columns
              (e.g. ``(images, labels)``); batches are tuples;
            * an array: batches are arrays of its rows;
            * a list, or any other sequence of samples (``len`` and integer
              indexing, like a map-style torch ``Dataset``): every sample an
              array (batches are arrays) or a tuple/list of arrays (batches are
              tuples of their stacked fields), as torch's ``default_collate``
              gives. The samples are read and stacked once, here.
        batch_size: samples per batch.
        shuffle: reshuffle every epoch (a fresh permutation from ``(seed, epoch)``).
        seed: seed of the shuffling.
        drop_last: drop the last, smaller batch (keeps every batch the same
            shape, so a jitted step compiles once).
        transform: optional ``transform(batch, rng) -> batch`` applied to each
            batch (a tuple of arrays) with a ``numpy.random.Generator`` seeded
            from ``(seed, epoch, batch index)`` — data augmentation that is
            reproducible, e.g. :func:`random_shift`.

    Each ``iter(loader)`` runs one epoch and advances the epoch counter;
    :meth:`epoch` gives the batches of a given epoch without touching it.
    Yields tuples of arrays (a single array when one array was given).

    Example::

        loader = DataLoader((x, y), batch_size=64, shuffle=True, seed=0)
        for epoch in range(3):
            for xb, yb in loader:
                ...
    """

    def __init__(self, arrays, batch_size: int, shuffle: bool = False, seed: int = 0,
                 drop_last: bool = False, transform: Callable | None = None) -> None:
        where = "DataLoader"
        self.arrays, self._single = _columns(arrays, where)
        if not self.arrays:
            raise ValueError(f"{where}: arrays must hold at least one array")
        sizes = [a.shape[0] if a.ndim else None for a in self.arrays]
        if None in sizes or len(set(sizes)) != 1:
            raise ValueError(f"{where}: arrays must share their first dimension, got shapes "
                             f"{[a.shape for a in self.arrays]}")
        self.num_samples = sizes[0]
        self.batch_size, self.shuffle, self.seed, self.drop_last = check_batching(batch_size, shuffle, seed,
                                                                                  drop_last, where)
        if transform is not None and not callable(transform):
            raise TypeError(f"{where}: transform must be callable, got {transform!r}")
        self.transform = transform
        self._epoch = 0

    def __len__(self) -> int:
        return batch_count(self.num_samples, self.batch_size, self.drop_last)

    def order(self, epoch: int) -> np.ndarray:
        """The sample indices of ``epoch``, in the order they are served."""
        return epoch_order(self.num_samples, self.shuffle, self.seed, epoch)

    def epoch(self, epoch: int) -> Iterator:
        """The batches of epoch ``epoch`` (0-based)."""
        idx = self.order(epoch)
        stop = len(self) * self.batch_size
        for i, start in enumerate(range(0, min(stop, self.num_samples), self.batch_size)):
            take = idx[start:start + self.batch_size]
            batch = tuple(a[take] for a in self.arrays)
            if self.transform is not None:
                batch = tuple(self.transform(batch, np.random.default_rng([self.seed, epoch, i, 1])))
            yield batch[0] if self._single else batch

    def __iter__(self) -> Iterator:
        epoch, self._epoch = self._epoch, self._epoch + 1
        return self.epoch(epoch)

    def __repr__(self) -> str:
        return (f"DataLoader(num_samples={self.num_samples}, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, seed={self.seed}, drop_last={self.drop_last})")


def _stack(values: list, what: str, where: str) -> np.ndarray:
    arrays = [np.asarray(v) for v in values]
    for i, a in enumerate(arrays):
        if a.shape != arrays[0].shape or a.dtype.kind in "OUSV":
            raise ValueError(f"{where}: {what} {i} is {a.dtype} {a.shape}, {what} 0 is {arrays[0].dtype} "
                             f"{arrays[0].shape}: samples must be numeric arrays of one shape (a list is a "
                             "sequence of samples; pass arrays of columns as a tuple, e.g. (images, labels))")
    return np.stack(arrays)


def _columns(data, where: str) -> tuple[tuple[np.ndarray, ...], bool]:
    """The arrays a :class:`DataLoader` batches (same first dimension) and whether it yields single arrays."""
    if isinstance(data, tuple):
        return tuple(np.asarray(a) for a in data), False
    if isinstance(data, np.ndarray) or hasattr(data, "__array__") or hasattr(data, "__jax_array__"):
        return (np.asarray(data),), True
    if isinstance(data, (str, bytes, dict)) or not (hasattr(data, "__len__") and hasattr(data, "__getitem__")):
        raise TypeError(f"{where}: expected a tuple of arrays, an array or a sequence of samples, "
                        f"got {type(data).__name__}")
    samples = [data[i] for i in range(len(data))]
    if not samples:
        raise ValueError(f"{where}: the sequence of samples is empty")
    if not isinstance(samples[0], (tuple, list)):
        return (_stack(samples, "sample", where),), True
    width = len(samples[0])
    for i, sample in enumerate(samples):
        if not isinstance(sample, (tuple, list)) or len(sample) != width:
            raise ValueError(f"{where}: sample {i} is {type(sample).__name__} of "
                             f"{len(sample) if isinstance(sample, (tuple, list)) else 1} field(s), "
                             f"sample 0 a {type(samples[0]).__name__} of {width}")
    return tuple(_stack([s[j] for s in samples], f"field {j} of sample", where) for j in range(width)), False


def check_batching(batch_size, shuffle, seed, drop_last, where: str) -> tuple[int, bool, int, bool]:
    """The loaders' ``(batch_size, shuffle, seed, drop_last)``, checked."""
    batch_size = _checks.positive_int(batch_size, "batch_size", where)
    if not isinstance(shuffle, bool) or not isinstance(drop_last, bool):
        raise TypeError(f"{where}: shuffle and drop_last must be bools, got {shuffle!r}, {drop_last!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"{where}: seed must be a non-negative int, got {seed!r}")
    return batch_size, shuffle, int(seed), drop_last


def batch_count(num_samples: int, batch_size: int, drop_last: bool) -> int:
    """Batches per epoch: the last, smaller one counts unless ``drop_last``."""
    return num_samples // batch_size if drop_last else -(-num_samples // batch_size)


def epoch_order(num_samples: int, shuffle: bool, seed: int, epoch: int) -> np.ndarray:
    """The sample order of ``epoch``: a permutation that depends only on ``(seed, epoch)``."""
    if not shuffle:
        return np.arange(num_samples)
    return np.random.default_rng([seed, epoch]).permutation(num_samples)


def random_shift(max_shift: int) -> Callable:
    """A :class:`DataLoader` transform moving each image by up to ``max_shift`` pixels.

    Every image of the batch's first array, ``(N, C, H, W)`` or ``(N, H, W)``
    (any ``(N, ..., H, W)``), is translated by its own integer offsets ``dy, dx``
    in ``[-max_shift, max_shift]``, the same for all its channels; pixels moved
    in from outside are 0 (like torchvision's ``RandomCrop(size,
    padding=max_shift)``). Other arrays (labels) pass through.
    """
    m = _checks.positive_int(max_shift, "max_shift", "random_shift")

    def transform(batch, rng: np.random.Generator):
        x, *rest = batch
        x = np.asarray(x)
        if x.ndim < 3:
            raise ValueError(f"random_shift: expected images (N, H, W) or (N, C, H, W), got shape {x.shape}")
        shape = x.shape
        x = x.reshape(shape[0], int(np.prod(shape[1:-2])), *shape[-2:])
        n, _, h, w = x.shape
        padded = np.pad(x, ((0, 0), (0, 0), (m, m), (m, m)))
        dy, dx = rng.integers(0, 2 * m + 1, size=(2, n))
        rows = dy[:, None] + np.arange(h)               # (N, H) rows to take per image
        cols = dx[:, None] + np.arange(w)
        out = padded[np.arange(n)[:, None, None, None], np.arange(x.shape[1])[None, :, None, None],
                     rows[:, None, :, None], cols[:, None, None, :]]
        return (out.reshape(shape), *rest)

    return transform


def channel_stats(x, axis: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and (population) standard deviation of ``x``.

    ``axis`` is the channel axis (1 for NCHW); every other axis is reduced.
    Computed in float64 so large data sets don't lose precision; returned as float32.
    """
    x = np.asarray(x)
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"channel_stats: axis {axis} out of range for an array of shape {x.shape}")
    axes = tuple(i for i in range(x.ndim) if i != axis % x.ndim)
    x64 = x.astype(np.float64)
    return x64.mean(axis=axes).astype(np.float32), x64.std(axis=axes).astype(np.float32)


def normalize(x, mean: Sequence[float], std: Sequence[float], axis: int = 1) -> np.ndarray:
    """``(x - mean[c]) / std[c]`` per channel ``c`` along ``axis``, like torchvision's ``Normalize``."""
    x = np.asarray(x, dtype=np.float32)
    mean = np.asarray(mean, dtype=np.float32).reshape(-1)
    std = np.asarray(std, dtype=np.float32).reshape(-1)
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"normalize: axis {axis} out of range for an array of shape {x.shape}")
    c = x.shape[axis]
    for name, v in (("mean", mean), ("std", std)):
        if v.size not in (1, c):
            raise ValueError(f"normalize: {name} must have 1 or {c} (channels) values, got {v.size}")
    if np.any(std == 0):
        raise ValueError(f"normalize: std must be non-zero, got {std.tolist()}")
    shape = [1] * x.ndim
    shape[axis] = -1
    return (x - mean.reshape(shape)) / std.reshape(shape)
