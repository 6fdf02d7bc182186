"""Locating data files in a user's data directory (shared by the readers)."""

from __future__ import annotations

import gzip
import os
import zlib
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


_GZIP_MAGIC = b"\x1f\x8b"


def read_bytes(path: str, where: str = "read_bytes") -> bytes:
    """File contents, decompressed when the name ends in ``.gz`` or the data starts with gzip's magic bytes.

    (No IDX file or CIFAR-10 batch starts with them: their first bytes are
    zeros and a label in 0..9.) A ``.gz`` file that is not gzip, is truncated
    or fails its CRC check raises ``ValueError`` naming ``where`` and the file.
    """
    if not path.endswith(".gz"):
        with open(path, "rb") as f:
            if f.read(2) != _GZIP_MAGIC:
                f.seek(0)
                return f.read()
    try:
        with gzip.open(path, "rb") as f:
            return f.read()
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        reason = "truncated" if isinstance(e, EOFError) else str(e)
        raise ValueError(f"{where}: {path} is not a valid gzip file ({reason})") from None
