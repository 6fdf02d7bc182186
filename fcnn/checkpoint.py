"""Safe, atomic checkpoints of a whole training state, restored against a template.

A checkpoint is one ``.npz`` file (``numpy.savez``, read back with
``allow_pickle=False``) holding every array leaf of a pytree under its key
path (``['params']['conv1']['weight']``, ``.opt_state[0].mu['fc']['bias']`` …)
plus one JSON document (stored as a ``uint8`` array named ``__fcnn__``) with
the format name and version, the fcnn and jax versions, the kind, shape,
dtype and CRC-32 of every leaf, and free-form user metadata (e.g. the metrics history).
Nothing is ever unpickled or executed on load.

Restoring needs a *template*: the pytree you get from ``init`` (arrays or
``jax.ShapeDtypeStruct``). The template supplies the tree structure, so
optax's NamedTuple states, dataclass train states and typed PRNG keys come
back with their own types; the file supplies the values. Every difference
between file and template (missing or unexpected leaves, shapes, dtypes,
kinds) is reported together in one :class:`CheckpointError`.

Leaves may be jax/numpy arrays, typed PRNG keys (stored as
``jax.random.key_data`` plus the implementation name, rebuilt with
``jax.random.wrap_key_data``), legacy ``uint32`` keys, and Python
``int``/``float``/``bool`` scalars (e.g. a step counter), which come back as
Python scalars.

Leaves that could not come back as they went in are refused when saving:
string, object, datetime, structured and raw-void arrays, Python ints outside
int64's range.

Writes are atomic (:mod:`fcnn._atomic`): the file is written to a temporary
name in the target directory, flushed and fsync'ed, renamed over the target
with ``os.replace`` and the directory is fsync'ed, so a crash at any moment
leaves either the old file or the new one, never a torn one. The temporary a
killed writer leaves behind is removed by the next save into that directory.
Files get mode ``0o666`` less the umask, like any file ``open`` creates.

Directories of checkpoints: :func:`save_checkpoint` writes
``ckpt_<step>.npz`` and keeps the last ``keep`` of them, :func:`latest`
finds the newest, :func:`checkpoints` lists them by step.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
import zlib
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fcnn import _atomic, _checks

FORMAT = "fcnn-checkpoint"
FORMAT_VERSION = 1
_META = "__fcnn__"
_NAME = re.compile(r"^ckpt_(\d+)\.npz$")


class CheckpointError(ValueError):
    """The file is not a usable fcnn checkpoint for this template (the message says why)."""


def _fcnn_version() -> str:
    from fcnn import __version__

    return __version__


_INT64 = (-(2**63), 2**63)


def _restorable_dtype(dtype: np.dtype) -> bool:
    # bool, integers, floats, complex, and ml_dtypes' bfloat16/float8 (kind 'V' but a scalar type of their own);
    # not strings, objects, datetimes, structured or raw void arrays, which restore cannot rebuild.
    return dtype.kind in "biufc" or (dtype.kind == "V" and dtype.type is not np.void)


def _leaf_spec(x, name: str = "") -> dict:
    """Kind, shape and dtype of a leaf, identical for a value and for its template.

    Raises :class:`CheckpointError` for a leaf :func:`restore` could not give back as it was.
    """
    if isinstance(x, (bool, np.bool_)) and not isinstance(x, np.ndarray):
        return {"kind": "bool", "shape": [], "dtype": "bool"}
    if isinstance(x, int):
        if not _INT64[0] <= x < _INT64[1]:
            raise CheckpointError(f"checkpoint: leaf {name} is the Python int {x}, outside int64's range; "
                                  "store it as a string in metadata= or split it into int64 parts")
        return {"kind": "int", "shape": [], "dtype": "int64"}
    if isinstance(x, float):
        return {"kind": "float", "shape": [], "dtype": "float64"}
    if _checks.is_typed_key(x):
        impl = str(jax.random.key_impl(x)) if isinstance(x, jax.Array) else x.dtype._impl.name
        return {"kind": "key", "shape": list(x.shape), "dtype": impl}
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        dtype = np.dtype(x.dtype) if isinstance(x.dtype, np.dtype) else None
        if dtype is None or not _restorable_dtype(dtype):
            raise CheckpointError(
                f"checkpoint: leaf {name} has dtype {x.dtype}, which cannot be restored; leaves must be "
                "bool, integer, floating-point or complex arrays, PRNG keys or Python int/float/bool "
                "(put text in metadata=)")
        return {"kind": "array", "shape": list(x.shape), "dtype": jnp.dtype(dtype).name}
    raise CheckpointError(
        f"checkpoint: cannot store leaf {name} of type {type(x).__name__} ({x!r}); "
        "leaves must be arrays, PRNG keys or Python int/float/bool"
    )


def _storable(x, spec: dict) -> np.ndarray:
    if spec["kind"] == "key":
        return np.asarray(jax.random.key_data(x))
    arr = np.asarray(x)
    # npz only knows numpy's own dtypes: bfloat16/float8 (ml_dtypes) go in as raw bits.
    if arr.dtype.kind == "V" or arr.dtype.name not in np.sctypeDict:
        arr = arr.view(np.dtype(f"uint{arr.dtype.itemsize * 8}"))
    return arr


def _flatten(tree) -> list[tuple[str, Any]]:
    leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
    return [(jax.tree_util.keystr(path), leaf) for path, leaf in leaves]


def _json_scalar(x):
    # metrics often arrive as numpy / jax scalars
    if isinstance(x, (np.generic, jax.Array, np.ndarray)) and np.ndim(x) == 0:
        return np.asarray(x).item()
    raise TypeError(f"{type(x).__name__} is not JSON serialisable")


def save(path, tree, *, metadata: dict | None = None) -> Path:
    """Write ``tree`` (any pytree of arrays, PRNG keys and Python scalars) to ``path`` atomically.

    Args:
      path: destination file; ``.npz`` is the conventional suffix.
      tree: e.g. ``{"params": ..., "state": ..., "opt_state": ..., "step": 3, "rng": key}``
        or a train-state object registered as a pytree.
      metadata: JSON-serialisable dict stored alongside (metrics history, config, …);
        read it back with :func:`read_metadata`.

    Returns:
      the path written.
    """
    path = Path(path)
    flat = _flatten(tree)
    specs: dict[str, dict] = {}
    arrays: dict[str, np.ndarray] = {}
    for i, (name, leaf) in enumerate(flat):
        spec = _leaf_spec(leaf, name)
        specs[name] = spec
        arrays[f"a{i}"] = _storable(leaf, spec)
        # zip's own CRC is not checked by numpy's reader; this one is, on restore.
        spec["crc32"] = zlib.crc32(np.ascontiguousarray(arrays[f"a{i}"]).tobytes())
    try:
        user = json.loads(json.dumps(metadata if metadata is not None else {}, default=_json_scalar))
    except (TypeError, ValueError) as e:
        raise TypeError(f"checkpoint.save: metadata must be JSON-serialisable: {e}") from None
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "fcnn_version": _fcnn_version(),
        "jax_version": jax.__version__,
        "leaves": [dict(name=name, **specs[name]) for name, _ in flat],
        "metadata": user,
    }
    arrays[_META] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return _atomic.write_atomic(path, [buffer.getbuffer()])


def _open(path):
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint: no such file: {path}")
    try:
        data = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise CheckpointError(f"checkpoint: {path} is not an fcnn checkpoint (not a readable .npz file: {e})") from None
    if not isinstance(data, np.lib.npyio.NpzFile) or _META not in data.files:
        raise CheckpointError(f"checkpoint: {path} is not an fcnn checkpoint (no {_META} header)")
    try:
        header = json.loads(bytes(data[_META]).decode())
    except (ValueError, RecursionError, zipfile.BadZipFile, OSError, EOFError) as e:
        raise CheckpointError(f"checkpoint: {path} has a corrupt header ({type(e).__name__}: {e})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint: {path} is not an fcnn checkpoint (format {header.get('format') if isinstance(header, dict) else None!r})")
    version = header.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint: {path} has format version {version!r} (written by fcnn {header.get('fcnn_version')}), "
            f"but this fcnn ({_fcnn_version()}) reads format version {FORMAT_VERSION}"
        )
    _check_header(header, path)
    return data, header


_KINDS = {"bool": "bool", "int": "int64", "float": "float64", "key": None, "array": None}


def _check_header(header: dict, path) -> None:
    """Refuse a header whose fields :func:`restore` would trip over, naming the field."""

    def bad(field: str, want: str, got) -> CheckpointError:
        return CheckpointError(f"checkpoint: {path} has a malformed header: {field} must be {want}, got {got!r}")

    if not isinstance(header.get("metadata"), dict):
        raise bad("metadata", "a JSON object", header.get("metadata"))
    leaves = header.get("leaves")
    if not isinstance(leaves, list):
        raise bad("leaves", "a list", leaves)
    seen = set()
    for i, leaf in enumerate(leaves):
        if not isinstance(leaf, dict):
            raise bad(f"leaves[{i}]", "a JSON object", leaf)
        for field in ("name", "kind", "shape", "dtype", "crc32"):
            if field not in leaf:
                raise CheckpointError(f"checkpoint: {path} has a malformed header: leaves[{i}] has no {field!r}")
        name, kind, shape, dtype, crc = (leaf[f] for f in ("name", "kind", "shape", "dtype", "crc32"))
        if not isinstance(name, str) or name in seen:
            raise bad(f"leaves[{i}].name", "a string naming no other leaf", name)
        seen.add(name)
        if not isinstance(kind, str) or kind not in _KINDS:
            raise bad(f"leaves[{i}].kind ({name})", f"one of {list(_KINDS)}", kind)
        if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
            raise bad(f"leaves[{i}].shape ({name})", "a list of non-negative ints", shape)
        if kind in _SCALARS and (shape != [] or dtype != _KINDS[kind]):
            raise bad(f"leaves[{i}] ({name})", f"shape [] and dtype {_KINDS[kind]!r} for kind {kind!r}",
                      {"shape": shape, "dtype": dtype})
        if not isinstance(dtype, str):
            raise bad(f"leaves[{i}].dtype ({name})", "a string", dtype)
        if kind == "array":
            try:
                ok = _restorable_dtype(np.dtype(jnp.dtype(dtype)))
            except TypeError:
                ok = False
            if not ok:
                raise bad(f"leaves[{i}].dtype ({name})", "a numeric dtype name", dtype)
        if type(crc) is not int or not 0 <= crc < 2**32:
            raise bad(f"leaves[{i}].crc32 ({name})", "an int in [0, 2**32)", crc)


def read_metadata(path) -> dict:
    """The header of a checkpoint: ``format_version``, ``fcnn_version``, ``jax_version``,
    ``leaves`` (name, kind, shape, dtype) and the user ``metadata`` dict. Reads no arrays."""
    _, header = _open(path)
    return header


def restore(path, template):
    """Read the checkpoint at ``path`` into the structure of ``template``.

    Args:
      path: a file written by :func:`save`.
      template: a pytree with the same structure, e.g. the train state
        built by ``init`` (its values are ignored; ``jax.ShapeDtypeStruct``
        leaves are fine).

    Returns:
      a pytree of ``template``'s structure with the stored values (jax arrays,
      typed PRNG keys, Python scalars).

    Raises:
      CheckpointError: not an fcnn checkpoint, incompatible format version,
        truncated/corrupt data, or a structure/shape/dtype mismatch (all
        mismatched leaves are listed).
    """
    data, header = _open(path)
    stored = {leaf["name"]: (i, leaf) for i, leaf in enumerate(header["leaves"])}
    flat, treedef = jax.tree_util.tree_flatten_with_path(template)
    names = [jax.tree_util.keystr(p) for p, _ in flat]
    problems = []
    missing = [n for n in names if n not in stored]
    unexpected = [n for n in stored if n not in set(names)]
    if missing:
        problems.append("missing from the checkpoint: " + ", ".join(missing))
    if unexpected:
        problems.append("in the checkpoint but not in the template: " + ", ".join(unexpected))
    for name, (_, leaf) in zip(names, flat):
        if name not in stored:
            continue
        problems += _mismatches(name, stored[name][1], _leaf_spec(leaf, name))
    if problems:
        raise CheckpointError(f"checkpoint: {path} does not match the template:\n  " + "\n  ".join(problems))

    values = []
    for name, (_, leaf) in zip(names, flat):
        i, spec = stored[name]
        try:
            raw = data[f"a{i}"]
        except (KeyError, zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
            raise CheckpointError(f"checkpoint: {path} is truncated or corrupt (leaf {name}: {e})") from None
        if zlib.crc32(np.ascontiguousarray(raw).tobytes()) != spec.get("crc32"):
            raise CheckpointError(f"checkpoint: {path} is corrupt (checksum mismatch for leaf {name})")
        values.append(_rebuild(raw, spec, leaf, name, path))
    return jax.tree_util.tree_unflatten(treedef, values)


_SCALARS = ("bool", "int", "float")


def _mismatches(name: str, got: dict, want: dict) -> list[str]:
    # A Python scalar and a 0-d array are interchangeable (jax.eval_shape turns
    # the one into the other); the template decides what comes back.
    if got["kind"] in _SCALARS and want["kind"] in _SCALARS + ("array",) and want["shape"] == []:
        return []
    if want["kind"] in _SCALARS and got["kind"] == "array" and got["shape"] == []:
        return []
    return [f"{name}: {field} {got[field]} in the checkpoint, {want[field]} in the template"
            for field in ("kind", "shape", "dtype") if got[field] != want[field]]


def _rebuild(raw: np.ndarray, spec: dict, template_leaf, name: str, path) -> Any:
    """The value of leaf ``name`` as the template asks for it: numpy template leaves get numpy arrays back,
    jax ones jax arrays, Python scalars Python scalars; nothing is converted in a way that changes its value
    (beyond rounding a float to the template's float dtype)."""
    want = _leaf_spec(template_leaf, name)
    kind = want["kind"]
    where = f"checkpoint: {path}: leaf {name}"
    if spec["kind"] == "array":
        dtype = np.dtype(jnp.dtype(spec["dtype"]))
        if raw.dtype != dtype:
            # bfloat16/float8 are stored as their raw bits
            if raw.dtype.itemsize != dtype.itemsize or raw.dtype.kind != "u":
                raise CheckpointError(f"{where} is stored as {raw.dtype}, header says {dtype}")
            raw = raw.view(dtype)
        if list(raw.shape) != spec["shape"]:
            raise CheckpointError(f"{where} has shape {raw.shape}, header says {tuple(spec['shape'])}")
    elif spec["kind"] in _SCALARS and (raw.shape != () or raw.dtype.kind not in "biuf"):
        raise CheckpointError(f"{where} is stored as {raw.dtype} {raw.shape}, the header says a scalar")
    if kind in _SCALARS or spec["kind"] in _SCALARS:
        # a Python scalar on one side, a 0-d array on the other
        value = raw.item()
        target = kind if kind in _SCALARS else np.dtype(jnp.dtype(want["dtype"]))
        _check_scalar(value, target, where)
        if kind in _SCALARS:
            return {"bool": bool, "int": int, "float": float}[kind](value)
        raw = np.asarray(value).astype(target)
    if kind == "key":
        try:
            return jax.random.wrap_key_data(jnp.asarray(raw), impl=spec["dtype"])
        except (TypeError, ValueError, KeyError) as e:
            raise CheckpointError(f"{where} is not a {spec['dtype']!r} PRNG key ({e})") from None
    if isinstance(template_leaf, (np.ndarray, np.generic)):
        return raw
    if jax.dtypes.canonicalize_dtype(raw.dtype) != raw.dtype:
        raise CheckpointError(
            f"{where} is {raw.dtype}, which jax holds only with jax_enable_x64 (it would become "
            f"{jax.dtypes.canonicalize_dtype(raw.dtype)}); restore it into a numpy template leaf, or enable x64")
    return jnp.asarray(raw)


def _check_scalar(value, target, where: str) -> None:
    """Refuse a scalar that ``target`` (a scalar kind or a dtype) would change: a fraction or an out-of-range
    integer into an integer, anything but 0/1 into a bool, a complex number into a real."""
    kind = {"bool": "b", "int": "i", "float": "f"}.get(target) if isinstance(target, str) else target.kind
    if isinstance(value, complex) and kind != "c":
        raise CheckpointError(f"{where} is {value}, a complex number; the template wants {target}")
    if kind == "b" and value not in (0, 1):
        raise CheckpointError(f"{where} is {value}, the template wants a bool")
    if kind in "iu":
        if isinstance(value, float) and not value.is_integer():
            raise CheckpointError(f"{where} is {value}, the template wants an integer ({target})")
        low, high = (-(2**63), 2**63 - 1) if isinstance(target, str) else (np.iinfo(target).min, np.iinfo(target).max)
        if not low <= value <= high:
            raise CheckpointError(f"{where} is {value}, outside the template's {target}")


# --- directories of checkpoints ------------------------------------------------------------


def checkpoints(directory) -> list[Path]:
    """The ``ckpt_<step>.npz`` files in ``directory``, oldest (smallest step) first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def latest(directory) -> Path | None:
    """The newest checkpoint in ``directory`` (largest step), or ``None`` when there is none."""
    found = checkpoints(directory)
    return found[-1] if found else None


def _step(path: Path) -> int:
    return int(_NAME.match(path.name).group(1))


def save_checkpoint(directory, tree, step: int, *, keep: int | None = None, metadata: dict | None = None) -> Path:
    """Save ``tree`` as ``directory/ckpt_<step>.npz`` and delete all but the newest ``keep``.

    A directory holds one run's checkpoints, in increasing steps: saving a step
    lower than the newest one already there (a second run started into the
    same directory, a rollback) raises ``ValueError`` before anything is
    written, since :func:`latest` would go on naming the other file and
    rotation would delete the new one. Saving the newest step again replaces
    that file. To roll back, delete the later checkpoints first, or save into
    another directory. In a multi-process job, save from one process
    (:func:`fcnn.distributed.is_main_process`), as ``fcnn train`` does;
    replicas saving the same steps in lockstep are tolerated.

    The new file is complete on disk before any old one is removed, so
    :func:`latest` always names a whole checkpoint; rotation never removes the
    file just written, and a file another process removed first is skipped.
    """
    if not _checks.is_int(step) or step < 0:
        raise ValueError(f"save_checkpoint: step must be a non-negative int, got {step!r}")
    if keep is not None and (not _checks.is_int(keep) or keep < 1):
        raise ValueError(f"save_checkpoint: keep must be a positive int or None, got {keep!r}")
    newest = latest(directory)
    if newest is not None and _step(newest) > step:
        raise ValueError(
            f"save_checkpoint: {newest} is a later step than {int(step)}: a directory holds one run's checkpoints "
            "in increasing steps (a lower step would be deleted by rotation, and resuming would continue the "
            "other file). Save into another directory, or delete the later checkpoints to roll back")
    path = save(Path(directory) / f"ckpt_{int(step):08d}.npz", tree, metadata=metadata)
    if keep is not None:
        for old in checkpoints(directory)[:-keep]:
            if old.name != path.name:
                old.unlink(missing_ok=True)  # a concurrent writer's rotation may have removed it already
        _atomic.fsync_dir(Path(directory))
    return path


def restore_latest(directory, template):
    """``(tree, header)`` from the newest checkpoint in ``directory``; ``FileNotFoundError`` if none."""
    path = latest(directory)
    if path is None:
        raise FileNotFoundError(f"restore_latest: no checkpoint (ckpt_<step>.npz) in {directory}")
    return restore(path, template), read_metadata(path)


# --- fcnn.train integration -----------------------------------------------------------------


def epoch_callback(directory, *, keep: int | None = 3, history: list | None = None, metadata: dict | None = None):
    """An ``on_epoch_end`` callback for :func:`fcnn.train.fit` that checkpoints every epoch.

    Each call ``f(epoch, train_state, metrics)`` appends ``metrics`` to the
    history and writes ``directory/ckpt_<epoch>.npz`` holding
    ``{"train_state": train_state, "epoch": epoch}`` with the history in the
    metadata, keeping the newest ``keep``. Pass the ``history`` restored by
    :func:`resume` to continue it. ``metadata`` (e.g. the run's configuration)
    is stored next to the history in every file. Like :func:`save_checkpoint`,
    it refuses to save an epoch lower than the newest checkpoint in
    ``directory`` (another run's), before writing anything.
    """
    hist = list(history or [])
    extra = dict(metadata or {})

    def on_epoch_end(epoch, train_state, metrics):
        hist.append(dict(metrics))
        save_checkpoint(directory, {"train_state": train_state, "epoch": int(epoch)}, int(epoch), keep=keep,
                        metadata={**extra, "history": hist})
        return False

    return on_epoch_end


def resume(directory, train_state_template):
    """``(train_state, epoch, history)`` from the newest checkpoint written by :func:`epoch_callback`.

    Returns ``None`` when ``directory`` holds no checkpoint. Raises
    :class:`CheckpointError` (and changes nothing on disk) when the newest
    checkpoint is unreadable, of another format version, or does not match
    the template.
    """
    path = latest(directory)
    if path is None:
        return None
    tree = restore(path, {"train_state": train_state_template, "epoch": 0})
    if tree["epoch"] < 0:
        raise CheckpointError(f"checkpoint: {path} is at epoch {tree['epoch']}; epochs are non-negative")
    history = read_metadata(path)["metadata"].get("history", [])
    if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
        raise CheckpointError(f"checkpoint: {path} has a malformed header: metadata.history must be a list of "
                              f"JSON objects, got {history!r}")
    return tree["train_state"], tree["epoch"], history
