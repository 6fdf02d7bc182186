"""JAX's persistent compilation cache for fcnn's training: compiled steps kept on disk between runs.

XLA compiles a CNN's train step in seconds (ResNet-50, MobileNet, ConvNeXt: 5–15 s
on a 2-core CPU) every time a new process starts. JAX can keep the compiled
programs on disk and load them in a later process with the same program,
compiler options, jaxlib and machine (`JAX's guide
<https://docs.jax.dev/en/latest/persistent_compilation_cache.html>`_).
:func:`fcnn.train.fit` and ``fcnn train`` switch it on with :func:`enable`;
call it yourself for your own training loop.

Where: ``$FCNN_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/fcnn/jax``, else
``~/.cache/fcnn/jax``; ``FCNN_CACHE_DIR=none`` switches the default off.
``fit(..., compilation_cache=DIR | None)`` and ``fcnn train --compilation-cache
DIR|none`` choose per run.

What: every program, including the small ones JAX compiles for each
operation run outside ``jit``. Those are what ``model.init`` costs (ResNet-50:
about 60 programs, seconds in all), so with fcnn's cache on,
``jax_persistent_cache_min_compile_time_secs`` is 0 instead of JAX's default
1 s, where you have not set it yourself (``JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS``
or a value other than 1). The directory grows by an entry per new program
(kilobytes for an operation, about half a megabyte for a ResNet-50 train
step); delete it whenever you like.

How: JAX compresses each entry with zstd where it can import it (the
``zstandard`` package, a dependency of fcnn before Python 3.14, whose standard
library has ``compression.zstd``), else with zlib, and keys the entries by
the algorithm. The frozen eval programs (:func:`fcnn.freeze`) hold their
weights, about 100 MB for ResNet-50 and ConvNeXt-Tiny, which zlib compresses
in about 3.4 s and decompresses in 0.5 s, zstd in 0.2 and 0.13 s
(``benchmarks/README.md``, first step).

The cache is JAX's process-wide configuration (``jax_compilation_cache_dir``):
once set, every program the process compiles afterwards is written there, not
only fcnn's. fcnn sets it only when you have not configured JAX's cache
yourself: if ``jax_compilation_cache_dir`` already names a directory fcnn did
not set (``JAX_COMPILATION_CACHE_DIR``, ``jax.config.update``), or
``jax_enable_compilation_cache`` is off, fcnn leaves JAX's configuration as it
is (thresholds included), whatever its arguments say. Turning fcnn's cache
off (``enable(None)``) gives JAX back its default threshold.

As JAX warns, a compilation cache is trusted code: do not point it at a
directory others can write to.
"""

from __future__ import annotations

import os
import warnings

import jax

ENV = "FCNN_CACHE_DIR"

# The directory fcnn itself gave JAX (None: fcnn has not configured the cache in this process).
_ours: str | None = None
# Whether the minimum compile time in force is fcnn's (0) rather than JAX's default or the user's.
_our_threshold = False
_MIN_TIME = "jax_persistent_cache_min_compile_time_secs"
_JAX_DEFAULT_MIN_TIME = 1.0


def default_dir() -> str | None:
    """The default cache directory: ``$FCNN_CACHE_DIR``, ``$XDG_CACHE_HOME/fcnn/jax`` or ``~/.cache/fcnn/jax``.

    ``None`` when ``FCNN_CACHE_DIR`` is ``none`` (any case): the default is off.
    """
    chosen = os.environ.get(ENV, "")
    if chosen.lower() == "none":
        return None
    if chosen:
        return os.path.abspath(os.path.expanduser(chosen))
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(os.path.abspath(base), "fcnn", "jax")


def resolve(cache, where: str = "compilation_cache") -> str | None:
    """The directory a ``compilation_cache`` argument names, or ``None`` for no cache.

    ``True`` is :func:`default_dir`; ``None``, ``False`` and the string
    ``"none"`` are no cache; a path (``str`` / ``os.PathLike``) is that directory.
    """
    if cache is True:
        return default_dir()
    if cache is None or cache is False:
        return None
    if isinstance(cache, (str, os.PathLike)):
        path = os.fspath(cache)
        if isinstance(path, str) and path.lower() == "none":
            return None
        if isinstance(path, str) and path:
            return os.path.abspath(os.path.expanduser(path))
    raise TypeError(f"{where}: compilation_cache must be a directory, True (the default directory) or "
                    f"None/False/'none' (no cache), got {cache!r}")


def user_configured() -> bool:
    """Whether JAX's persistent cache is configured by someone other than fcnn (then fcnn leaves it alone)."""
    if not jax.config.jax_enable_compilation_cache:
        return True
    current = jax.config.jax_compilation_cache_dir
    return current is not None and current != _ours


def enable(cache=True, where: str = "compilation_cache") -> str | None:
    """Point JAX's persistent compilation cache at ``cache`` unless the user configured it; returns the directory.

    Args:
      cache: ``True`` for :func:`default_dir`, a directory, or ``None`` /
        ``False`` / ``"none"`` for no cache (fcnn's own earlier setting in this
        process is undone; a user's configuration is kept).
      where: the caller's name for error messages.

    Returns:
      The directory JAX's cache uses now (the user's own where they configured
      it), or ``None`` when the cache is off. A directory that cannot be
      created is reported with a warning and the cache stays off.
    """
    global _ours
    path = resolve(cache, where)
    if user_configured():
        return jax.config.jax_compilation_cache_dir if jax.config.jax_enable_compilation_cache else None
    if path is not None:
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as error:
            warnings.warn(f"{where}: JAX's compilation cache stays off: cannot create {path!r} ({error})",
                          stacklevel=2)
            path = None
    _set_threshold(path is not None)
    if path == _ours:
        return path
    if _ours is not None:
        # JAX opens its cache once per process; after fcnn's directory was in use, switching needs a reset.
        from jax.experimental.compilation_cache import compilation_cache as jax_cache

        jax_cache.reset_cache()
    jax.config.update("jax_compilation_cache_dir", path)
    _ours = path
    return path


def _set_threshold(on: bool) -> None:
    """Cache every program while fcnn's cache is on, unless the user chose a minimum compile time."""
    global _our_threshold
    if on and not _our_threshold:
        user_set = _MIN_TIME.upper() in os.environ or getattr(jax.config, _MIN_TIME) != _JAX_DEFAULT_MIN_TIME
        if not user_set:
            jax.config.update(_MIN_TIME, 0.0)
            _our_threshold = True
    elif not on and _our_threshold:
        if getattr(jax.config, _MIN_TIME) == 0.0:  # still ours
            jax.config.update(_MIN_TIME, _JAX_DEFAULT_MIN_TIME)
        _our_threshold = False
