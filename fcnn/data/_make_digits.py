"""Rebuild ``fcnn/data/digits.npz`` from scikit-learn's copy of the UCI digits.

Not imported by the package; kept so the shipped file can be regenerated and
audited. Usage (offline once the wheel is on disk)::

    pip download scikit-learn --no-deps -d /tmp/skl
    python -m fcnn.data._make_digits /tmp/skl/scikit_learn-*.whl

The wheel holds ``sklearn/datasets/data/digits.csv.gz``: 1,797 rows of 64
pixel counts (0..16) followed by the label. The stratified 80/20 split is
computed here once, with a fixed seed, and its test indices are stored in the
file, so the split never depends on the NumPy version used at load time.
"""

from __future__ import annotations

import gzip
import io
import os
import sys
import zipfile

import numpy as np

SPLIT_SEED = 0
TEST_FRACTION = 0.2
CSV_IN_WHEEL = "sklearn/datasets/data/digits.csv.gz"


def read_csv(path: str) -> tuple[np.ndarray, np.ndarray]:
    if path.endswith(".whl"):
        with zipfile.ZipFile(path) as z:
            raw = gzip.decompress(z.read(CSV_IN_WHEEL))
    else:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    table = np.loadtxt(io.BytesIO(raw), delimiter=",", dtype=np.int64)
    if table.shape != (1797, 65):
        raise ValueError(f"unexpected digits table shape {table.shape}, expected (1797, 65)")
    pixels, labels = table[:, :64], table[:, 64]
    if pixels.min() < 0 or pixels.max() > 16 or set(np.unique(labels)) != set(range(10)):
        raise ValueError("digits table values out of range")
    return pixels.reshape(-1, 8, 8).astype(np.uint8), labels.astype(np.uint8)


def stratified_test_index(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Per class, a seeded permutation's first ``round(fraction * n_class)`` samples."""
    rng = np.random.default_rng(seed)
    test = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        test.append(rng.permutation(idx)[: int(round(fraction * idx.size))])
    return np.sort(np.concatenate(test)).astype(np.int16)


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        raise SystemExit("usage: python -m fcnn.data._make_digits <scikit-learn wheel or digits.csv.gz>")
    images, labels = read_csv(argv[0])
    test_index = stratified_test_index(labels, TEST_FRACTION, SPLIT_SEED)
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "digits.npz")
    np.savez_compressed(out, images=images, labels=labels, test_index=test_index)
    print(f"wrote {out}: {len(labels)} images, {len(test_index)} in the test split")


if __name__ == "__main__":
    main(sys.argv[1:])
