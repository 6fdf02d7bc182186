"""Flag checks shared by the ``fcnn`` sub-commands: a bad value is a usage error (exit status 2), never a traceback."""

from __future__ import annotations

import argparse
import math
import os


class CLIError(ValueError):
    """A usage error: reported as ``fcnn: error: ...`` with exit status 2."""


def choice(value: str, choices, what: str) -> str:
    """``value`` if it is one of ``choices``, else :class:`CLIError` naming ``what`` and the choices."""
    if value not in choices:
        raise CLIError(f"unknown {what} {value!r}; choose one of: {', '.join(choices)}")
    return value


def in_range(low: float | None = None, high: float | None = None, *, low_open: bool = False,
             high_open: bool = False) -> type[argparse.Action]:
    """An argparse ``action=`` for a numeric flag: the value (converted by ``type=``) must be finite and
    in the range, else argparse's usage error, exit status 2, naming the flag and the value.

    ``low``/``high`` are inclusive unless ``low_open``/``high_open``. Example::

        parser.add_argument("--lr", type=float, action=in_range(0, 10, low_open=True))
        parser.add_argument("--epochs", type=int, action=in_range(1))
    """

    def problem(value) -> str | None:
        if isinstance(value, float) and not math.isfinite(value):
            return "must be a finite number"
        if low is not None and (value <= low if low_open else value < low):
            if low == 0 or (low == 1 and not low_open and isinstance(value, int)):
                return "must be positive" if low_open or low == 1 else "must be non-negative"
            return f"must be {'greater than' if low_open else 'at least'} {low!r}"
        if high is not None and (value >= high if high_open else value > high):
            return f"must be {'less than' if high_open else 'at most'} {high!r}"
        return None

    class InRange(argparse.Action):
        def __call__(self, parser, namespace, value, option_string=None):
            message = problem(value)
            if message:
                parser.error(f"{option_string} {message}, got {value!r}")
            setattr(namespace, self.dest, value)

    return InRange


def check_writable_dir(path: str, flag: str) -> None:
    """Refuse (:class:`CLIError`) a directory that could not be created or written: ``path`` or its nearest
    existing ancestor must be a directory this process may write into. Nothing is created."""
    probe = os.path.abspath(path)
    while not os.path.lexists(probe) and os.path.dirname(probe) != probe:
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        what = "is not a directory" if probe == os.path.abspath(path) else "is a file, so no directory can be made under it"
        raise CLIError(f"{flag} {path}: {probe} {what}")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise CLIError(f"{flag} {path}: no permission to write in {probe}")
