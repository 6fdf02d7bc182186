"""PyTorch ``state_dict`` interop: load torch weights into fcnn models and export them back.

fcnn's ``params``/``state`` already use torch's names and layouts (joined
keys == ``module.state_dict()`` keys), so conversion is a key-by-key copy
with checks:

* :func:`load_state_dict` — torch ``state_dict`` (tensors or numpy arrays) →
  ``(params, state)`` for an fcnn model, with torch's error messages for
  missing / unexpected keys and size mismatches; floating entries take the
  model's dtypes, the checkpoint's own (``dtype="state_dict"``) or a given one.
* :func:`state_dict` — ``(params, state)`` → ``OrderedDict[str, np.ndarray]``
  that ``torch_module.load_state_dict({k: torch.from_numpy(v) ...})`` accepts.
* :func:`load_torchvision_resnet` — a torchvision ResNet, ResNeXt or Wide ResNet checkpoint file
  (``.pth`` via ``torch.load(weights_only=True)``, or ``.safetensors`` read
  without any dependency) → an fcnn ResNet.
* :func:`read_safetensors` / :func:`write_safetensors` — the safetensors file
  format (8-byte little-endian header length, JSON header, raw little-endian
  data), implemented here so no extra package is needed.

torch itself is imported only when torch tensors are passed or a ``.pth``
file is read.
"""

from __future__ import annotations

import json
import math
import pickle
import re
import struct
from collections import OrderedDict
from pathlib import Path
from typing import Any, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fcnn._atomic import write_atomic


class IncompatibleKeys(NamedTuple):
    """As torch's ``_IncompatibleKeys``: what :func:`load_state_dict` could not match."""

    missing_keys: list[str]
    unexpected_keys: list[str]


def _flatten(tree, prefix: str = "") -> "OrderedDict[str, Any]":
    out: OrderedDict[str, Any] = OrderedDict()
    for k, v in tree.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, Mapping):
            out.update(_flatten(v, key))
        else:
            out[key] = v
    return out


def _set(tree: dict, key: str, value) -> None:
    *parents, leaf = key.split(".")
    for p in parents:
        tree = tree.setdefault(p, {})
    tree[leaf] = value


def _to_numpy(value, key: str) -> np.ndarray:
    # Always copy: torch tensors (and caller-owned numpy arrays) may later be
    # updated in place (optimizer.step()), and fcnn params must not change with them.
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, (jax.Array, np.generic, int, float, bool)):
        return np.array(value)
    mod = type(value).__module__
    if mod.startswith("torch"):
        import torch  # only when the caller hands us torch tensors

        if isinstance(value, torch.Tensor):
            t = value.detach().cpu()
            if t.dtype == torch.bfloat16:  # numpy has no bfloat16; go through float32 exactly
                return t.float().numpy().astype(jnp.bfloat16)
            return t.numpy().copy()
    raise TypeError(f"load_state_dict: value for {key!r} must be a torch tensor or an array, got {type(value).__name__}")


def _expected(model) -> tuple["OrderedDict[str, Any]", "OrderedDict[str, Any]"]:
    """The model's params and state as flat {key: ShapeDtypeStruct}, computed without running init.

    Keys keep ``init``'s insertion order (torch's module order); jax.eval_shape
    alone would return them sorted.
    """
    order = {}

    def init(key):
        params, state = model.init(key)
        order["params"], order["state"] = list(_flatten(params)), list(_flatten(state))
        return params, state

    params, state = jax.eval_shape(init, jax.random.key(0))
    params, state = _flatten(params), _flatten(state)
    return (OrderedDict((k, params[k]) for k in order["params"]),
            OrderedDict((k, state[k]) for k in order["state"]))


def incompatible_keys(model, state_dict: Mapping[str, Any]) -> IncompatibleKeys:
    """Keys of the model missing from ``state_dict`` and keys of ``state_dict`` the model lacks."""
    p, s = _expected(model)
    expected = list(p) + list(s)
    return IncompatibleKeys([k for k in expected if k not in state_dict],
                            [k for k in state_dict if k not in p and k not in s])


def load_state_dict(model, state_dict: Mapping[str, Any], strict: bool = True, *, key=None, dtype=None):
    """Build ``(params, state)`` for ``model`` from a torch-style ``state_dict``.

    Args:
      model: an fcnn layer/model; its ``init`` (evaluated abstractly with
        ``jax.eval_shape``) defines the expected keys, shapes and dtypes.
      state_dict: mapping from dotted torch names to torch tensors or numpy /
        jax arrays (e.g. ``torch_module.state_dict()``).
      strict: as torch: when True, missing or unexpected keys raise. When
        False, unexpected keys are ignored and missing entries keep the
        model's own initial values (``model.init(key)``). A missing
        ``num_batches_tracked`` is set to 0 without complaint, as torch's
        BatchNorm does for state_dicts without version metadata.
      key: PRNG key for those initial values (default ``jax.random.key(0)``);
        only used when keys are missing and ``strict=False``.
      dtype: the floating-point entries' dtype. ``None`` (default): the model's
        own dtypes (float32 for layers built with the default ``dtype``), so a
        float64 checkpoint is converted. ``"state_dict"``: each entry keeps the
        checkpoint's floating dtype (a float64 torch model loads as float64).
        A dtype (``jnp.float64``, ``jnp.bfloat16``, ...): every floating entry
        gets it. Integer entries (``num_batches_tracked``) always take the
        model's dtype. float64 needs JAX's x64 mode (``jax_enable_x64``);
        without it a float64 result is refused rather than silently narrowed.

    Returns:
      ``(params, state)`` as nested dicts of jax arrays with the dtypes chosen
      by ``dtype`` (values are converted, e.g. float64 → float32, int64 → int32).

    Raises:
      RuntimeError: with torch's wording — ``Missing key(s) in state_dict:``,
        ``Unexpected key(s) in state_dict:`` (strict only) and
        ``size mismatch for <key>: copying a param with shape ... from
        checkpoint, the shape in current model is ...`` (always, as torch).
      ValueError: an integer entry holds a value the model's integer dtype
        cannot hold (a ``num_batches_tracked`` beyond int32 without x64),
        which a conversion would wrap around.
    """
    if not isinstance(strict, bool):
        raise TypeError(f"load_state_dict: strict must be a bool, got {strict!r}")
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"load_state_dict: state_dict must be a mapping of names to tensors, got {type(state_dict).__name__}")
    keep_dtypes = isinstance(dtype, str) and dtype == "state_dict"
    if dtype is not None and not keep_dtypes:
        dtype = _float_dtype(dtype)
    exp_params, exp_state = _expected(model)
    expected = OrderedDict(list(exp_params.items()) + list(exp_state.items()))
    # As torch's BatchNorm does for state_dicts without version metadata (every
    # plain dict, every safetensors file): a missing counter is zero, not an error.
    arrays = {k: np.zeros(spec.shape, spec.dtype) for k, spec in expected.items()
              if k.split(".")[-1] == "num_batches_tracked" and k not in state_dict}
    missing = [k for k in expected if k not in state_dict and k not in arrays]
    unexpected = [k for k in state_dict if k not in expected]
    errors = []
    if strict:
        if unexpected:
            errors.append("Unexpected key(s) in state_dict: " + ", ".join(f'"{k}"' for k in unexpected) + ". ")
        if missing:
            errors.insert(0, "Missing key(s) in state_dict: " + ", ".join(f'"{k}"' for k in missing) + ". ")
    for k, spec in expected.items():
        if k not in state_dict:
            continue
        arr = _to_numpy(state_dict[k], k)
        _check_representable(arr, spec.dtype, k)
        if tuple(arr.shape) != tuple(spec.shape):
            errors.append(
                f"size mismatch for {k}: copying a param with shape {_torch_size(arr.shape)} from checkpoint, "
                f"the shape in current model is {_torch_size(spec.shape)}."
            )
            continue
        arrays[k] = arr
    if errors:
        raise RuntimeError(
            f"Error(s) in loading state_dict for {type(model).__name__}:\n\t" + "\n\t".join(errors)
        )
    if missing:
        init_params, init_state = model.init(jax.random.key(0) if key is None else key)
        fallback = {**_flatten(init_params), **_flatten(init_state)}
    params: dict = {}
    state: dict = {}
    for k, spec in expected.items():
        value = arrays[k] if k in arrays else fallback[k]
        target = spec.dtype
        if dtype is not None and jnp.issubdtype(spec.dtype, jnp.floating):
            target = (_float_dtype(value.dtype, k) or spec.dtype) if keep_dtypes else dtype
        _set(params if k in exp_params else state, k, jnp.asarray(value, dtype=target))
    return params, state


def _float_dtype(dtype, key: str | None = None):
    """``dtype`` as a floating numpy dtype JAX can hold now; ``None`` for a non-floating entry ``key``.

    Without ``key`` (the ``dtype=`` argument) a non-floating dtype is a TypeError. A dtype
    JAX would narrow (float64 without x64 mode) is a ValueError, not a silent float32.
    """
    what = f"the state_dict entry {key!r}" if key else "dtype"
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"load_state_dict: dtype must be None, 'state_dict' or a floating dtype, got {dtype!r}") from None
    if not jnp.issubdtype(dt, jnp.floating):
        if key:
            return None
        raise TypeError(f"load_state_dict: dtype must be None, 'state_dict' or a floating dtype, got {dt}")
    if jax.dtypes.canonicalize_dtype(dt) != dt:
        raise ValueError(
            f"load_state_dict: {what} is {dt}, which JAX holds only with x64 mode on "
            f"(jax.config.update('jax_enable_x64', True)); without it pass dtype=None or jnp.float32 to convert"
        )
    return dt


def _check_representable(arr: np.ndarray, dtype, key: str) -> None:
    """Refuse integers the model's integer dtype cannot hold (e.g. a ``num_batches_tracked`` beyond int32,
    jax's integer type without x64), which the conversion would wrap around."""
    dtype = np.dtype(dtype)
    if dtype.kind not in "iu" or arr.dtype.kind not in "iub" or arr.size == 0:
        return
    info = np.iinfo(dtype)
    low, high = arr.min(), arr.max()
    if low < info.min or high > info.max:
        value = int(high) if high > info.max else int(low)
        hint = " (jax holds int64 only with jax_enable_x64)" if dtype == np.int32 else ""
        raise ValueError(f"load_state_dict: {key} holds {value}, which the model's {dtype} cannot hold{hint}")


def _torch_order(model, params: Mapping, state: Mapping) -> list[str]:
    """torch's state_dict order: module by module (parents first), each one's own parameters, then its own buffers."""
    from fcnn.nn.module import Module

    paths = [path for path, _ in model.named_layers()] if isinstance(model, Module) else [""]
    owner = {k: k.rpartition(".")[0] for k in list(params) + list(state)}
    order = []
    for path in paths:
        order += [k for k in params if owner[k] == path] + [k for k in state if owner[k] == path]
    placed = set(order)
    return order + [k for k in list(params) + list(state) if k not in placed]


def _torch_size(shape) -> str:
    return f"torch.Size([{', '.join(str(int(d)) for d in shape)}])"


def state_dict(params, state=None, *, model=None) -> "OrderedDict[str, np.ndarray]":
    """``(params, state)`` → ``OrderedDict`` of numpy arrays under torch's dotted names.

    Within each layer the params come before the buffers, as in torch's
    ``state_dict()``. jax transformations (``jit``, ``grad``, ``tree_map``)
    return dicts with sorted keys; pass ``model`` to get exactly torch's
    module order back. Values are copied exactly (same dtype, same bits), so
    ``load_state_dict(model, state_dict(params, state))`` returns the same
    trees. Load into torch with
    ``module.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})``.
    """
    flat = _flatten(_merge(params or {}, state or {}))
    if model is not None:
        order = [k for k in _torch_order(model, *_expected(model)) if k in flat]
        flat = OrderedDict([(k, flat[k]) for k in order] + [(k, v) for k, v in flat.items() if k not in set(order)])
    return OrderedDict((k, np.array(v)) for k, v in flat.items())


def _nest(flat: Mapping[str, Any]) -> dict:
    tree: dict = {}
    for k, v in flat.items():
        _set(tree, k, v)
    return tree


def _merge(a: Mapping, b: Mapping) -> dict:
    out = dict(a)
    for k, v in b.items():
        if k in out:
            if not (isinstance(out[k], Mapping) and isinstance(v, Mapping)):
                raise ValueError(f"state_dict: key {k!r} is both a parameter and a buffer")
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


# --- safetensors, read and written without the safetensors package -------------------------

_ST_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": jnp.bfloat16,
    "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8,
    "U64": np.uint64, "U32": np.uint32, "U16": np.uint16, "U8": np.uint8, "BOOL": np.bool_,
}
_ST_NAMES = {np.dtype(v): k for k, v in _ST_DTYPES.items()}


def _unique_keys(pairs):
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"duplicate key {next(k for k in keys if keys.count(k) > 1)!r}")
    return dict(pairs)


def read_safetensors(path) -> "OrderedDict[str, np.ndarray]":
    """Read a ``.safetensors`` file into numpy arrays (no code is executed).

    The file is checked as the ``safetensors`` library checks it: a JSON header
    of ``{name: {"dtype", "shape", "data_offsets"}}`` (plus an optional
    ``__metadata__`` object of strings) whose tensors tile the data section
    exactly, without overlaps or gaps. Anything else raises ``ValueError``
    naming the file, the tensor and the field.
    """
    path = Path(path)
    where = f"read_safetensors: {path}"
    data = path.read_bytes()
    if len(data) < 8:
        raise ValueError(f"{where} is too short to be a safetensors file")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise ValueError(f"{where}: header length {n} exceeds the file size (truncated file?)")
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"), object_pairs_hook=_unique_keys)
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError is a ValueError
        raise ValueError(f"{where}: header is not valid JSON ({type(e).__name__}: {e})") from None

    def bad(field: str, want: str, got) -> ValueError:
        return ValueError(f"{where}: {field} must be {want}, got {got!r}")

    if not isinstance(header, dict):
        raise bad("the header", "a JSON object", header)
    metadata = header.get("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise bad("__metadata__", "an object of strings", metadata)
    body = memoryview(data)[8 + n:]
    entries = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(info, dict):
            raise bad(f"tensor {name!r}", "an object with dtype, shape and data_offsets", info)
        for field in ("dtype", "shape", "data_offsets"):
            if field not in info:
                raise ValueError(f"{where}: tensor {name!r} has no {field!r}")
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if not isinstance(dtype, str) or dtype not in _ST_DTYPES:
            raise ValueError(f"{where}: tensor {name!r} has unsupported dtype {dtype!r}")
        if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
            raise bad(f"tensor {name!r} shape", "a list of non-negative ints", shape)
        if not isinstance(offsets, list) or len(offsets) != 2 or not all(type(o) is int for o in offsets):
            raise bad(f"tensor {name!r} data_offsets", "[begin, end], two ints", offsets)
        start, end = offsets
        dt = np.dtype(_ST_DTYPES[dtype])
        if not 0 <= start <= end <= len(body):
            raise ValueError(f"{where}: tensor {name!r} has invalid data offsets {start}..{end}: outside the "
                             f"{len(body)} bytes of data")
        if end - start != math.prod(shape) * dt.itemsize:
            raise ValueError(f"{where}: tensor {name!r} has invalid data offsets {start}..{end}: its dtype "
                             f"{dtype} and shape {shape} need {math.prod(shape) * dt.itemsize} bytes, not {end - start}")
        entries.append((start, end, name, dt, shape))
    position = 0
    for start, end, name, _, _ in sorted(entries, key=lambda e: e[:2]):
        if start != position:
            problem = "overlaps another tensor" if start < position else f"leaves {start - position} bytes unused before it"
            raise ValueError(f"{where}: tensor {name!r} (data offsets {start}..{end}) {problem}: the tensors "
                             "must tile the data section")
        position = end
    if position != len(body):
        raise ValueError(f"{where}: {len(body) - position} bytes after the last tensor's data")
    out: OrderedDict[str, np.ndarray] = OrderedDict()
    for start, end, name, dt, shape in sorted(entries, key=lambda e: e[:2]):
        out[name] = np.frombuffer(body[start:end], dtype=dt.newbyteorder("<")).astype(dt).reshape(shape)
    return out


def write_safetensors(path, tensors: Mapping[str, Any], metadata: Mapping[str, str] | None = None) -> None:
    """Write ``{name: array}`` as a ``.safetensors`` file (little-endian, 8-byte aligned header), atomically.

    Names must be strings other than ``"__metadata__"`` (the format's key for
    ``metadata``, a mapping of strings to strings).
    """
    where = "write_safetensors"
    if metadata is not None and (not isinstance(metadata, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())):
        raise TypeError(f"{where}: metadata must be a mapping of strings to strings, got {metadata!r}")
    header: dict = {"__metadata__": dict(metadata)} if metadata else {}
    chunks, offset = [], 0
    for name, value in tensors.items():
        if not isinstance(name, str):
            raise TypeError(f"{where}: tensor names must be strings, got {name!r}")
        if name == "__metadata__":
            raise ValueError(f"{where}: '__metadata__' is the format's key for metadata=, not a tensor name")
        arr = _to_numpy(value, name)
        arr = np.ascontiguousarray(arr).reshape(arr.shape)  # ascontiguousarray makes 0-d arrays 1-d
        if arr.dtype not in _ST_NAMES:
            raise TypeError(f"{where}: tensor {name!r} has unsupported dtype {arr.dtype}")
        raw = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": _ST_NAMES[arr.dtype], "shape": list(arr.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    write_atomic(path, [struct.pack("<Q", len(blob)), blob, *chunks])


def read_checkpoint_file(path) -> "OrderedDict[str, Any]":
    """A state_dict from a ``.safetensors`` file or a torch file loaded with ``weights_only=True``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such checkpoint file: {path}")
    if path.suffix == ".safetensors":
        return read_safetensors(path)
    try:
        import torch
    except ImportError:
        raise ImportError(
            f"reading {path} needs torch (torch.load(weights_only=True)); without torch, convert it to .safetensors"
        ) from None
    # weights_only=True: torch's restricted unpickler, which refuses to run arbitrary code.
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"WeightsUnpickler error:\s*(.*?)(?:\.\s+Please|\n\n|$)", str(e), re.S)
        reason = " ".join(found.group(1).split()) if found and found.group(1).strip() else "not tensors and containers"
        raise ValueError(
            f"read_checkpoint_file: {path} is not a weights-only torch file ({reason}); fcnn reads .pth files "
            "only with torch's restricted unpickler. Save the weights alone from torch "
            "(torch.save(model.state_dict(), path)) or as .safetensors") from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        reason = str(e).split(". ")[0].strip()
        raise ValueError(f"read_checkpoint_file: {path} is not a readable torch file ({reason})") from None
    if isinstance(sd, Mapping) and "state_dict" in sd and isinstance(sd["state_dict"], Mapping):
        sd = sd["state_dict"]
    if not isinstance(sd, Mapping):
        raise ValueError(f"read_checkpoint_file: {path} does not hold a state_dict (got {type(sd).__name__})")
    return OrderedDict(sd)


def _resnet_architecture(sd: Mapping, path) -> dict:
    """The ``fcnn.models.ResNet`` arguments of a torchvision ResNet/ResNeXt/Wide ResNet state_dict, read from its shapes."""
    blocks = tuple(len({k.split(".")[1] for k in sd if k.startswith(f"layer{i}.")}) for i in range(1, 5))
    if not all(blocks) or "fc.weight" not in sd or "layer1.0.conv1.weight" not in sd:
        raise ValueError(f"load_torchvision_resnet: {path} does not look like a torchvision ResNet "
                         f"(blocks per stage {blocks}); use fcnn.models.load_torchvision(name, path)")
    from fcnn.models import resnet

    if "layer1.0.conv3.weight" not in sd:
        return dict(block=resnet.BasicBlock, layers=blocks)
    # layer1's bottleneck width is 64 · width_per_group / 64 · groups; its 3×3 conv has width / groups inputs
    width = int(sd["layer1.0.conv1.weight"].shape[0])
    groups = width // int(sd["layer1.0.conv2.weight"].shape[1])
    return dict(block=resnet.Bottleneck, layers=blocks, groups=groups, width_per_group=width // groups)


def load_torchvision_resnet(path, model=None, strict: bool = True):
    """Load a torchvision ResNet, ResNeXt or Wide ResNet checkpoint file into fcnn.

    :func:`fcnn.models.load_torchvision` loads every torchvision family by
    builder name; this reads the architecture from the file instead.

    Args:
      path: the checkpoint file. ``.pth``/``.pt`` files are read with
        ``torch.load(weights_only=True)`` (no pickle code execution);
        ``.safetensors`` files are read without torch.
      model: the fcnn ResNet to load into; by default it is built from the
        checkpoint's shapes — blocks per stage, BasicBlock or Bottleneck
        (``layer1.0.conv3``), the bottleneck's groups and width, and
        ``num_classes`` from ``fc.weight``.
      strict: as in :func:`load_state_dict`.

    Returns:
      ``(model, params, state)``.
    """
    sd = read_checkpoint_file(path)
    if model is None:
        from fcnn.models import ResNet

        model = ResNet(num_classes=int(sd["fc.weight"].shape[0]) if "fc.weight" in sd else 1000,
                       **_resnet_architecture(sd, path))
    params, state = load_state_dict(model, sd, strict=strict)
    return model, params, state


# The converter (torch.fx -> fcnn source) lives in its own module; its public names are part of this API.
from fcnn.interop.convert import (  # noqa: E402
    ConversionError, convert, load_converted, save_converted, source_of, to_source,
)
