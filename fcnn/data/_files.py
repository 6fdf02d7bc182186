"""Locating data files in a user's data directory (shared by the readers)."""

from __future__ import annotations

import gzip
import os
from typing import Sequence


def find_file(data_dir: str, candidates: Sequence[str], subdirs: Sequence[str], where: str,
              expected: Sequence[str]) -> str:
    """The first of ``candidates`` found in ``data_dir`` or one of its ``subdirs``.

    ``expected`` is the full list of files the data set needs; it is named in
    the error so the user knows what to put in the directory.
    """
    if not os.path.isdir(data_dir):
        raise FileNotFoundError(f"{where}: data_dir {data_dir!r} is not a directory")
    for sub in ("",) + tuple(subdirs):
        for name in candidates:
            path = os.path.join(data_dir, sub, name)
            if os.path.isfile(path):
                return path
    looked = ", ".join(repr(os.path.join(data_dir, s)) for s in ("",) + tuple(subdirs))
    raise FileNotFoundError(
        f"{where}: {candidates[0]!r} not found in data_dir (looked in {looked}); "
        f"expected the files {', '.join(expected)} (raw or .gz)"
    )


def read_bytes(path: str) -> bytes:
    """File contents, decompressed when the name ends in ``.gz``."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        return f.read()
