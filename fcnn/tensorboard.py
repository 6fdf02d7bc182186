"""TensorBoard event files for :func:`fcnn.train.fit` and ``fcnn train --tensorboard DIR``, through tensorboardX.

::

    tb = fcnn.tensorboard.TensorBoard("runs/a", learning_rate=schedule)
    ts, history = fit(..., tensorboard=tb)        # or tensorboard="runs/a"
    # tensorboard --logdir runs

What is written, with the optimizer step as the global step:

* ``train/loss`` and ``train/accuracy`` of every training step (read back from
  the device once per epoch, so logging adds no synchronisation to the steps);
* ``train/learning_rate`` of every step when ``learning_rate`` (a float or a
  schedule ``step -> lr``, e.g. an ``fcnn.optim.lr_scheduler`` schedule) is given;
* every scalar of the epoch's record (``epoch/train_loss``, ``epoch/eval_loss``,
  ``epoch/eval_top1``, …) at the step that ends the epoch;
* ``train/batch``: a grid of the first images of the epoch's first training
  batch, as the train step receives it (after the loader's augmentation),
  scaled to ``[0, 1]`` by the batch's minimum and maximum.

tensorboardX is an optional dependency: ``pip install 'fcnn[tensorboard]'``.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np

from fcnn import _checks


def _summary_writer():
    try:
        from tensorboardX import SummaryWriter
    except ImportError as e:
        raise ImportError("fcnn.tensorboard needs tensorboardX, the optional extra 'tensorboard': "
                          "pip install 'fcnn[tensorboard]'") from e
    return SummaryWriter


def image_grid(images, nrow: int = 8, padding: int = 2) -> np.ndarray:
    """Tile ``(N, C, H, W)`` images into one ``(3, rows, cols)`` float image in ``[0, 1]`` (like
    ``torchvision.utils.make_grid(..., normalize=True)``): one or three channels (one is repeated), the batch
    scaled by its minimum and maximum, ``padding`` pixels of 0 around every tile.
    """
    images = np.asarray(images, np.float32)
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"image_grid: images must be (N, 1 or 3, H, W), got shape {images.shape}")
    if images.shape[1] == 1:
        images = np.repeat(images, 3, axis=1)
    low, high = float(images.min()), float(images.max())
    images = (images - low) / max(high - low, 1e-5)
    n, c, h, w = images.shape
    cols = min(nrow, n)
    rows = math.ceil(n / cols)
    grid = np.zeros((c, rows * (h + padding) + padding, cols * (w + padding) + padding), np.float32)
    for i in range(n):
        r, q = divmod(i, cols)
        top, left = padding + r * (h + padding), padding + q * (w + padding)
        grid[:, top:top + h, left:left + w] = images[i]
    return grid


class TensorBoard:
    """Writes a training run's curves and sample images as TensorBoard event files in ``logdir``.

    Args:
        logdir: directory of the event files (created if needed).
        learning_rate: a float or a schedule ``step -> lr`` to log as ``train/learning_rate``.
        images: how many images of the epoch's first batch go into ``train/batch`` (0: none).
    """

    def __init__(self, logdir: str, learning_rate: float | Callable | None = None, images: int = 16) -> None:
        if not _checks.is_int(images) or images < 0:
            raise ValueError(f"TensorBoard: images must be a non-negative int, got {images!r}")
        if learning_rate is not None and not callable(learning_rate) and not isinstance(learning_rate, (int, float)):
            raise TypeError(f"TensorBoard: learning_rate must be a number or a schedule, got {learning_rate!r}")
        self.logdir, self.learning_rate, self.images = str(logdir), learning_rate, images
        self.writer = _summary_writer()(self.logdir)

    def _lr(self, steps: np.ndarray) -> np.ndarray:
        if not callable(self.learning_rate):
            return np.full(steps.shape, float(self.learning_rate))
        return np.array([float(self.learning_rate(int(s))) for s in steps])

    def steps(self, first_step: int, per_step: Sequence[dict[str, Any]]) -> None:
        """Log each training step's metrics (``loss``, ``accuracy``, …), the first at ``first_step``."""
        numbers = np.arange(first_step, first_step + len(per_step))
        for step, metrics in zip(numbers, per_step):
            for name, value in metrics.items():
                self.writer.add_scalar(f"train/{name}", float(value), int(step))
        if self.learning_rate is not None:
            # the learning rate step k's update used: the schedule's value at k
            for step, lr in zip(numbers, self._lr(numbers)):
                self.writer.add_scalar("train/learning_rate", lr, int(step))

    def batch(self, images, step: int) -> None:
        """Log a grid of the first images of a training batch ``(N, C, H, W)`` (skipped for other layouts)."""
        images = np.asarray(images)
        if self.images and images.ndim == 4 and images.shape[1] in (1, 3):
            self.writer.add_image("train/batch", image_grid(images[:self.images]), int(step), dataformats="CHW")

    def epoch(self, record: dict, step: int) -> None:
        """Log the scalars of an epoch's record (``fit``'s history entry) as ``epoch/<name>``."""
        for name, value in record.items():
            if name != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(f"epoch/{name}", float(value), int(step))
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
