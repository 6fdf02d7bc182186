"""Files written whole or not at all: :func:`write_atomic`, shared by every fcnn writer.

The data goes to a temporary file next to the target, named
``.<target name>.<16 hex digits>.fcnn-tmp``; it is flushed and fsync'ed, renamed
over the target with ``os.replace``, and the directory is fsync'ed. A crash at any
moment leaves either the old file or the new one, never a torn one. The file is
created with mode ``0o666`` less the umask, as ``open(path, "w")`` creates files.

A process killed while writing leaves its temporary behind; every later write
into that directory removes the temporaries whose writers are gone. A writer
holds an exclusive ``flock`` on its temporary from creation until after the
rename, so "gone" is the kernel's answer (locks die with their process), not a
guess from ages or process ids, and concurrent writers never remove each other's
files. Where ``fcntl`` does not exist (Windows), the operating system itself
refuses to remove a file that its writer holds open.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from pathlib import Path
from typing import Iterable

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

TEMP_SUFFIX = ".fcnn-tmp"
_TEMP = re.compile(r"^\..+\.[0-9a-f]{16}" + re.escape(TEMP_SUFFIX) + "$")


def is_temporary(name: str) -> bool:
    """Whether ``name`` (a file name, no directory) is one of :func:`write_atomic`'s temporaries."""
    return bool(_TEMP.match(name))


def fsync_dir(directory: Path) -> None:
    """Make a rename or removal in ``directory`` durable (where directories can be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _create_temporary(directory: Path, name: str) -> tuple[int, Path]:
    """A new, locked, empty temporary for target ``name``: ``(fd, path)``."""
    while True:
        tmp = directory / f".{name}.{secrets.token_hex(8)}{TEMP_SUFFIX}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        except FileExistsError:
            continue
        if fcntl is None:
            return fd, tmp
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:  # a file system without locks: cleaners cannot lock either, so they leave it alone
            return fd, tmp
        # A cleaner may have locked and removed the file between its creation and our lock.
        if os.fstat(fd).st_nlink:
            return fd, tmp
        os.close(fd)


def remove_stale_temporaries(directory) -> list[Path]:
    """Remove the temporaries in ``directory`` whose writers are gone; returns the removed paths."""
    removed = []
    try:
        entries = [e.name for e in os.scandir(directory) if is_temporary(e.name)]
    except OSError:
        return removed
    for name in entries:
        path = Path(directory) / name
        if fcntl is None:
            with contextlib.suppress(OSError):
                os.unlink(path)
                removed.append(path)
            continue
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:  # renamed or removed meanwhile
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # its writer holds the lock: alive
                continue
            with contextlib.suppress(OSError):
                # the name must still be the file we locked (not renamed away to its target)
                if os.path.samestat(os.fstat(fd), os.stat(path)):
                    os.unlink(path)
                    removed.append(path)
        finally:
            os.close(fd)
    return removed


def write_atomic(path, chunks: Iterable) -> Path:
    """Write the bytes-like ``chunks`` to ``path`` atomically (see the module docstring); returns ``path``.

    The parent directory is created when missing. Stale temporaries left in it by
    killed writers are removed first.
    """
    path = Path(path)
    directory = path.parent
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory, not a file to write")
    for parent in (directory, *directory.parents):
        if parent.exists():
            if not parent.is_dir():
                raise NotADirectoryError(f"cannot write {path}: {parent} is a file, not a directory")
            break
    directory.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(directory)
    fd, tmp = _create_temporary(directory, path.name)
    try:
        with os.fdopen(fd, "wb", closefd=False) as f:
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    finally:
        # closing releases the lock, only once the file has its final name (or is removed)
        os.close(fd)
    fsync_dir(directory)
    return path
