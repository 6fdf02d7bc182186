"""The UCI hand-written digits, shipped with fcnn so training works offline.

1,797 grey-scale 8×8 images of the digits 0–9 (E. Alpaydin, C. Kaynak; CC BY 4.0;
see ``DIGITS_LICENSE.txt``), with a fixed stratified 80/20 train/test split
stored in the file itself (1,438 train / 359 test images).
"""

from __future__ import annotations

import os

import numpy as np

_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "digits.npz")
_SPLITS = ("train", "test", "all")
NUM_CLASSES = 10
MAX_PIXEL = 16


def load_digits(split: str = "train", *, scale: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Load the embedded digits data set.

    Args:
        split: ``'train'`` (1,438 images), ``'test'`` (359 images, the held-out
            split; stratified, 20 % of each class) or ``'all'`` (1,797, file order).
        scale: divide the pixel counts (0..16) by 16, giving floats in [0, 1].
            With ``scale=False`` the images keep the raw counts (as float32).

    Returns:
        ``(images, labels)``: images float32 ``(N, 1, 8, 8)`` (NCHW, one channel),
        labels int32 ``(N,)`` in 0..9. Fresh NumPy arrays on every call, in the
        file's order (the loader shuffles).
    """
    if split not in _SPLITS:
        raise ValueError(f"load_digits: split must be one of {list(_SPLITS)}, got {split!r}")
    with np.load(_PATH) as f:
        images, labels, test_index = f["images"], f["labels"], f["test_index"]
    if split != "all":
        in_test = np.zeros(len(labels), dtype=bool)
        in_test[test_index] = True
        keep = in_test if split == "test" else ~in_test
        images, labels = images[keep], labels[keep]
    x = images.astype(np.float32)[:, None]
    if scale:
        x /= MAX_PIXEL
    return x, labels.astype(np.int32)
