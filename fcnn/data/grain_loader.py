"""``ImageLoader``: batches of an :class:`~fcnn.data.ImageFolder` (or any indexable data set) through grain.

grain (the ``fcnn[grain]`` extra) decodes on host threads or worker processes,
whole batches at a time, in one stream over all epochs, so the threads and
workers outlive an epoch; an epoch's state is its next batch's position, so it
can be continued at its exact next batch. The order is :class:`fcnn.data.DataLoader`'s: epoch
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
from fcnn.data.loader import batch_count, check_batching, epoch_order


def _grain():
    try:
        import grain
    except ImportError:
        raise ImportError("fcnn.data.ImageLoader reads through grain: pip install 'fcnn[grain]'") from None
    return grain


def process_indices(order: np.ndarray, batches: int, batch_size: int, rows: tuple[int, int]) -> np.ndarray:
    """The rows ``rows[0]:rows[1]`` of each of the first ``batches`` batches of ``order``, batch after batch."""
    idx = order[:batches * batch_size]
    lo, hi = rows
    return np.concatenate([idx[s:s + batch_size][lo:hi] for s in range(0, len(idx), batch_size)]) if len(idx) else idx


class _Batches:
    """grain's data source: element ``j`` is global batch ``start + j`` of the run, epoch after epoch.

    Global batch ``g`` is batch ``g % len(loader)`` of epoch ``g // len(loader)``;
    its element holds this process's rows, decoded and stacked, skipped samples
    (``None``) left out (a batch of skipped samples only is empty). One source
    spans every epoch, so grain's threads and worker processes stay up from one
    epoch to the next and prefetch across the boundary.
    """

    def __init__(self, loader: "ImageLoader", start: int) -> None:
        self.dataset, self.start, self.per_epoch = loader.dataset, start, len(loader)
        self.local = loader.batch_size // loader.process_count
        self._order = (loader.num_samples, loader.shuffle, loader.seed, loader.batch_size, loader._rows)
        self._cache: dict = {}

    def __len__(self) -> int:
        return self.per_epoch * (1 << 24)

    def rows(self, epoch: int) -> np.ndarray:
        if epoch not in self._cache:
            n, shuffle, seed, batch_size, rows = self._order
            self._cache = {epoch: process_indices(epoch_order(n, shuffle, seed, epoch), self.per_epoch, batch_size,
                                                  rows)}
        return self._cache[epoch]

    def __getitem__(self, j):
        epoch, b = divmod(self.start + int(j), self.per_epoch)
        items = [self.dataset[int(i)] for i in self.rows(epoch)[b * self.local:(b + 1) * self.local]]
        items = [item for item in items if item is not None]
        if not items:
            return np.zeros((0,), np.uint8), np.zeros((0,), np.int32)
        images, labels = zip(*items)
        return np.stack(images), np.asarray(labels, np.int32)


class _Epoch:
    """The batches of one epoch from the loader's stream, ``prefetch`` of them put on the device ahead."""

    def __init__(self, loader: "ImageLoader", epoch: int, start: int) -> None:
        self._loader, self._epoch, self._served = loader, epoch, start
        self._pulled = start
        self._queue: collections.deque = collections.deque()

    def __iter__(self):
        return self

    def __next__(self):
        loader = self._loader
        while len(self._queue) < max(loader.prefetch_to_device, 1) and self._pulled < len(loader):
            images, labels = loader._take(self._epoch, self._pulled)
            self._pulled += 1
            if labels.size:
                batch = (images, labels)
                if loader.prefetch_to_device:
                    import jax

                    batch = jax.device_put(batch)
                self._queue.append((batch, self._pulled))
        if not self._queue:
            raise StopIteration
        batch, self._served = self._queue.popleft()
        return batch

    def get_state(self) -> dict:
        """Where the epoch stands after the last batch returned (JSON-able; pass it to ``ImageLoader.epoch``)."""
        return {"epoch": self._epoch, "next_batch": self._served}


class ImageLoader:
    """Mini-batches ``(images uint8 (B, C, H, W), labels int32 (B,))`` of ``dataset`` through grain.

    Args:
        dataset: ``dataset[i] -> (image, label)`` with one image shape (an
            :class:`~fcnn.data.ImageFolder` with ``image_size``); ``None`` items
            (unreadable files with ``on_error='skip'``) are left out of their batch,
            which is that much smaller (a batch left empty is not served).
        batch_size: the global batch size (all processes together).
        shuffle, seed, drop_last: as :class:`fcnn.data.DataLoader` (same order).
        num_threads: host threads decoding in parallel (grain's ``ReadOptions``).
        num_workers: worker processes (grain's ``mp_prefetch``), each decoding whole batches; 0 decodes in
            this process. Threads and workers live from one epoch to the next (``close()`` stops them).
        prefetch_to_device: batches put on the default device ahead of use (0: hand out NumPy batches).
        process_index, process_count: this process's share (default: JAX's); with
            more than one process every batch is split by :func:`fcnn.distributed.process_rows`.

    ``loader.epoch(e)`` iterates epoch ``e``; its iterator's ``get_state()`` is a
    JSON-able dict (``{'epoch', 'next_batch'}``), and ``loader.epoch(e, state)``
    continues from it exactly. The batches do not depend on ``num_threads`` or
    ``num_workers``.
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
        self._stream = None

    def __len__(self) -> int:
        return batch_count(self.num_samples, self.batch_size, self.drop_last)

    def order(self, epoch: int) -> np.ndarray:
        """The sample indices of ``epoch`` in serving order (all processes), as :class:`fcnn.data.DataLoader`."""
        return epoch_order(self.num_samples, self.shuffle, self.seed, epoch)

    def indices(self, epoch: int) -> np.ndarray:
        """This process's sample indices of ``epoch``: its rows of every global batch, batch after batch."""
        return process_indices(self.order(epoch), len(self), self.batch_size, self._rows)

    def dataset_for(self, start: int):
        """The grain ``IterDataset`` of the run's global batches from ``start`` on (see :class:`_Batches`)."""
        grain = _grain()
        ds = grain.MapDataset.source(_Batches(self, start))
        it = ds.to_iter_dataset(grain.ReadOptions(num_threads=self.num_threads,
                                                  prefetch_buffer_size=2 * self.num_threads))
        if self.num_workers:
            # grain's worker processes read absl flags, which only an absl app parses; their defaults apply
            from absl import flags

            if not flags.FLAGS.is_parsed():
                flags.FLAGS.mark_as_parsed()
            it = it.mp_prefetch(grain.MultiprocessingOptions(num_workers=self.num_workers))
        return it

    def _take(self, epoch: int, batch: int):
        """Batch ``batch`` of epoch ``epoch``: the stream's next element, after restarting it there if it is elsewhere."""
        position = (epoch if self.shuffle else 0, batch)     # unshuffled epochs are all alike
        if self._stream is None or self._stream[1] != position:
            self.close()
            self._stream = [iter(self.dataset_for(position[0] * len(self) + batch)), position]
        out = next(self._stream[0])
        e, b = self._stream[1]
        self._stream[1] = (e + 1, 0) if b + 1 == len(self) else (e, b + 1)
        if not self.shuffle:
            self._stream[1] = (0, self._stream[1][1])
        return out

    def close(self) -> None:
        """Stop the stream's threads and worker processes (a later epoch starts them again)."""
        if self._stream is not None:
            it, self._stream = self._stream[0], None
            if hasattr(it, "close"):
                it.close()

    def epoch(self, epoch: int, state: dict | None = None) -> Iterator:
        """The batches of epoch ``epoch`` (0-based), from ``state`` (a ``get_state()`` of this epoch) if given.

        Consecutive epochs continue one stream of batches, so decoding threads
        and worker processes keep running between epochs (as torch's
        ``persistent_workers``) and the next epoch's first batches are decoded
        ahead; asking for any other place restarts the stream there.
        """
        start = 0
        if state is not None:
            if not isinstance(state, dict) or state.get("epoch") != epoch or not isinstance(
                    state.get("next_batch"), int) or not 0 <= state["next_batch"] <= len(self):
                raise ValueError(f"ImageLoader.epoch: state must be a get_state() of epoch {epoch}'s iterator, "
                                 f"got {state!r}")
            start = state["next_batch"]
        return _Epoch(self, epoch, start)

    def __iter__(self) -> Iterator:
        epoch, self._epoch = self._epoch, self._epoch + 1
        return self.epoch(epoch)

    def __repr__(self) -> str:
        return (f"ImageLoader(num_samples={self.num_samples}, batch_size={self.batch_size}, shuffle={self.shuffle}, "
                f"seed={self.seed}, drop_last={self.drop_last}, num_workers={self.num_workers}, "
                f"process={self.process_index}/{self.process_count})")
