"""``ImageLoader``: batches of an :class:`~fcnn.data.ImageFolder` (or any indexable data set) through grain.

grain (the ``fcnn[grain]`` extra) decodes on host threads or worker processes
and keeps its iterator state as a small dict, so an epoch can be continued at
its exact next batch. The order is :class:`fcnn.data.DataLoader`'s: epoch
``e`` serves ``default_rng([seed, e]).permutation(n)`` in batches, so the same
seed gives the same batches as the in-memory loader and a run resumes exactly.

Multi-process runs: each process decodes only its rows of every global batch
(:func:`fcnn.distributed.process_rows`), the rows ``fit`` would otherwise cut
from a whole batch; ``fit`` sees ``process_local = True`` and places them as
they are, so N processes train on exactly the batches of one.
"""

from __future__ import annotations

import collections
from typing import Any, Iterator

import numpy as np

from fcnn import _checks
from fcnn.data.image_folder import Subset
from fcnn.data.loader import batch_count, check_batching, epoch_order


def _grain():
    try:
        import grain
    except ImportError:
        raise ImportError("fcnn.data.ImageLoader reads through grain: pip install 'fcnn[grain]'") from None
    return grain


def _stack(items):
    images, labels = zip(*items)
    return np.stack(images), np.asarray(labels, np.int32)


class _Prefetched:
    """Keeps ``size`` batches on the device ahead of the consumer; ``get_state`` is that of the last batch served."""

    def __init__(self, it, size: int) -> None:
        self._it, self._size = it, size
        self._queue: collections.deque = collections.deque()
        self._state = it.get_state()

    def __iter__(self):
        return self

    def __next__(self):
        import jax

        while len(self._queue) < max(self._size, 1):
            try:
                batch = next(self._it)
            except StopIteration:
                break
            self._queue.append((jax.device_put(batch) if self._size else batch, self._it.get_state()))
        if not self._queue:
            raise StopIteration
        batch, self._state = self._queue.popleft()
        return batch

    def get_state(self) -> dict:
        """grain's iterator state after the last batch returned (pass it to ``ImageLoader.epoch(e, state)``)."""
        return self._state


class ImageLoader:
    """Mini-batches ``(images uint8 (B, C, H, W), labels int32 (B,))`` of ``dataset`` through grain.

    Args:
        dataset: ``dataset[i] -> (image, label)`` with one image shape (an
            :class:`~fcnn.data.ImageFolder` with ``image_size``); ``None`` items
            (unreadable files with ``on_error='skip'``) are dropped.
        batch_size: the global batch size (all processes together).
        shuffle, seed, drop_last: as :class:`fcnn.data.DataLoader` (same order).
        num_threads: host threads decoding in parallel (grain's ``ReadOptions``).
        num_workers: worker processes (grain's ``mp_prefetch``); 0 decodes in this process.
        prefetch_to_device: batches put on the default device ahead of use (0: hand out NumPy batches).
        process_index, process_count: this process's share (default: JAX's); with
            more than one process every batch is split by :func:`fcnn.distributed.process_rows`.

    ``loader.epoch(e)`` iterates epoch ``e``; its iterator's ``get_state()`` is a
    JSON-able dict, and ``loader.epoch(e, state)`` continues from it exactly.
    ``iter(loader)`` runs the next epoch.
    """

    process_local = True

    def __init__(self, dataset, batch_size: int, shuffle: bool = False, seed: int = 0, drop_last: bool = False, *,
                 num_threads: int = 4, num_workers: int = 0, prefetch_to_device: int = 2,
                 process_index: int | None = None, process_count: int | None = None) -> None:
        where = "ImageLoader"
        _grain()
        if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
            raise TypeError(f"{where}: dataset must support len() and indexing, got {type(dataset).__name__}")
        self.dataset = dataset
        self.num_samples = len(dataset)
        if self.num_samples == 0:
            raise ValueError(f"{where}: the dataset is empty")
        self.batch_size, self.shuffle, self.seed, self.drop_last = check_batching(batch_size, shuffle, seed,
                                                                                  drop_last, where)
        self.num_threads = _checks.positive_int(num_threads, "num_threads", where)
        for name, v in (("num_workers", num_workers), ("prefetch_to_device", prefetch_to_device)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{where}: {name} must be a non-negative int, got {v!r}")
        self.num_workers, self.prefetch_to_device = num_workers, prefetch_to_device
        if process_count is None or process_index is None:
            import jax

            process_index = jax.process_index() if process_index is None else process_index
            process_count = jax.process_count() if process_count is None else process_count
        self.process_index, self.process_count = int(process_index), int(process_count)
        if self.process_count > 1 and not drop_last:
            raise ValueError(f"{where}: with {self.process_count} processes every batch is split among them; "
                             "pass drop_last=True")
        from fcnn import distributed

        self._rows = distributed.process_rows(self.batch_size, self.process_index, self.process_count)
        self._epoch = 0

    def __len__(self) -> int:
        return batch_count(self.num_samples, self.batch_size, self.drop_last)

    def order(self, epoch: int) -> np.ndarray:
        """The sample indices of ``epoch`` in serving order (all processes), as :class:`fcnn.data.DataLoader`."""
        return epoch_order(self.num_samples, self.shuffle, self.seed, epoch)

    def indices(self, epoch: int) -> np.ndarray:
        """This process's sample indices of ``epoch``: its rows of every global batch, batch after batch."""
        idx = self.order(epoch)[:len(self) * self.batch_size]
        lo, hi = self._rows
        starts = range(0, len(idx), self.batch_size)
        return np.concatenate([idx[s:s + self.batch_size][lo:hi] for s in starts]) if len(idx) else idx

    def dataset_for(self, epoch: int):
        """The grain ``IterDataset`` of epoch ``epoch``: decode, drop skipped samples, batch."""
        grain = _grain()
        local = self.batch_size // self.process_count
        ds = grain.MapDataset.source(Subset(self.dataset, self.indices(epoch)))
        it = ds.to_iter_dataset(grain.ReadOptions(num_threads=self.num_threads,
                                                  prefetch_buffer_size=max(2 * local, 16)), allow_nones=True)
        it = it.filter(lambda item: item is not None).batch(local, drop_remainder=self.drop_last, batch_fn=_stack)
        if self.num_workers:
            # grain's worker processes read absl flags, which only an absl app parses; their defaults apply
            from absl import flags

            if not flags.FLAGS.is_parsed():
                flags.FLAGS.mark_as_parsed()
            it = it.mp_prefetch(grain.MultiprocessingOptions(num_workers=self.num_workers))
        return it

    def epoch(self, epoch: int, state: dict | None = None) -> Iterator:
        """The batches of epoch ``epoch`` (0-based), from ``state`` (a ``get_state()`` of this epoch) if given."""
        it = iter(self.dataset_for(epoch))
        if state is not None:
            it.set_state(state)
        return _Prefetched(it, self.prefetch_to_device)

    def __iter__(self) -> Iterator:
        epoch, self._epoch = self._epoch, self._epoch + 1
        return self.epoch(epoch)

    def __repr__(self) -> str:
        return (f"ImageLoader(num_samples={self.num_samples}, batch_size={self.batch_size}, shuffle={self.shuffle}, "
                f"seed={self.seed}, drop_last={self.drop_last}, num_workers={self.num_workers}, "
                f"process={self.process_index}/{self.process_count})")
