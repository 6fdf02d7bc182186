"""Argument and shape validation shared by functional ops and layers.

Every check runs in plain Python on static shapes, before anything is traced
into XLA, and raises an error that names the op/layer, the argument and the
offending value.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np


def is_typed_key(x) -> bool:
    """Whether ``x`` is a typed PRNG key array (``jax.random.key``), or the shape of one."""
    return isinstance(x, (jax.Array, jax.ShapeDtypeStruct)) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def prng_key(key: Any, name: str, where: str):
    """``None``, a typed key (``jax.random.key``) or raw uint32 key data (``jax.random.PRNGKey``); else TypeError."""
    if key is None or is_typed_key(key):
        return key
    dtype = getattr(key, "dtype", None)
    if dtype is not None and np.dtype(dtype) == np.uint32 and np.ndim(key) >= 1:
        return key
    got = f"an array of dtype {dtype} and shape {tuple(np.shape(key))}" if dtype is not None else repr(key)
    raise TypeError(f"{where}: {name} must be None or a PRNG key (e.g. jax.random.key(0)), got {got}")


def static_bool(value: Any, name: str, where: str, how: str | None = None) -> bool:
    """A flag that selects the computation (``training``, ``train``): a Python bool, never a traced value."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, jax.core.Tracer):
        how = how or f"pass it as a Python bool, e.g. jax.jit(f, static_argnames='{name}'), or close over it"
        raise TypeError(
            f"{where}: {name} must be a Python bool, got a traced value; it selects the computation and "
            f"must be static: {how}"
        )
    raise TypeError(f"{where}: {name} must be a bool (True or False), got {value!r}")


def ntuple(value: Any, n: int, name: str, where: str) -> tuple[int, ...]:
    """Expand an int or a length-``n`` sequence of ints into an ``n``-tuple.

    Mirrors torch's ``_pair`` / ``_triple`` but refuses sequences of the wrong
    length instead of silently using them.
    """
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{where}: {name} must be an int or a tuple of {n} ints, got {value!r}")
    if isinstance(value, (int, np.integer)):
        return (int(value),) * n
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) == 1 and n > 1:
            value = tuple(value) * n
        if len(value) != n:
            raise ValueError(
                f"{where}: {name} must be an int or a tuple of {n} ints, got {tuple(value)!r}"
            )
        out = []
        for v in value:
            if not is_int(v):
                raise TypeError(
                    f"{where}: {name} must contain ints, got {tuple(value)!r}"
                )
            out.append(int(v))
        return tuple(out)
    raise TypeError(f"{where}: {name} must be an int or a tuple of {n} ints, got {value!r}")


def is_int(value: Any) -> bool:
    """A Python or NumPy integer; bools are not ints here (``True`` as a size is a mistake)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def is_number(value: Any) -> bool:
    """A Python or NumPy real scalar, bools excluded."""
    return is_int(value) or isinstance(value, (float, np.floating))


def boolean(value: Any, name: str, where: str) -> bool:
    """A bool hyper-parameter (``bias``, ``ceil_mode``, ``affine``): a Python or NumPy bool, else TypeError."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{where}: {name} must be a bool, got {value!r}")
    return bool(value)


def integer(value: Any, name: str, where: str, minimum: int | None = None) -> int:
    """An int (not a bool), at least ``minimum`` when given; TypeError / ValueError otherwise."""
    if not is_int(value):
        raise TypeError(f"{where}: {name} must be an int, got {value!r}")
    if minimum is not None and value < minimum:
        kind = {0: "a non-negative int", 1: "a positive int"}.get(minimum, f"an int >= {minimum}")
        raise ValueError(f"{where}: {name} must be {kind}, got {value!r}")
    return int(value)


def number(value: Any, name: str, where: str, minimum: float | None = None) -> float:
    """A real number as a Python float, at least ``minimum`` when given.

    Takes Python and NumPy scalars and concrete 0-d arrays; refuses bools,
    strings and traced values (a hyper-parameter is fixed when the op is traced).
    """
    if (isinstance(value, (bool, np.bool_, str, bytes, jax.core.Tracer)) or not hasattr(value, "__float__")
            or np.ndim(value) != 0 or np.iscomplexobj(value)):
        raise TypeError(f"{where}: {name} must be a number, got {value!r}")
    v = float(value)
    if minimum is not None and not v >= minimum:  # NaN fails too
        kind = "a non-negative number" if minimum == 0 else f"a number >= {minimum}"
        raise ValueError(f"{where}: {name} must be {kind}, got {value!r}")
    return v


def learning_rate(value: Any, where: str, name: str = "lr") -> float:
    """A learning rate: a number >= 0, with torch's message ``Invalid learning rate`` otherwise."""
    lr = number(value, name, where)
    if not lr >= 0.0:
        raise ValueError(f"{where}: Invalid learning rate: {lr}" + ("" if name == "lr" else f" ({name})"))
    return lr


def dim_index(dim: Any, ndim: int, name: str, where: str) -> int:
    """A possibly negative ``dim`` of an ``ndim``-dimensional array wrapped as torch wraps it (0-d counts as 1-d)."""
    if not is_int(dim):
        raise TypeError(f"{where}: {name} must be an int, got {dim!r}")
    n = max(ndim, 1)
    if not -n <= dim < n:
        raise IndexError(f"{where}: {name} out of range (expected to be in range of [{-n}, {n - 1}], but got {dim})")
    return dim % n


def positive(values: tuple[int, ...], name: str, where: str) -> None:
    if any(v <= 0 for v in values):
        raise ValueError(f"{where}: {name} must be positive, got {values if len(values) > 1 else values[0]!r}")


def non_negative(values: tuple[int, ...], name: str, where: str) -> None:
    if any(v < 0 for v in values):
        raise ValueError(f"{where}: {name} must be non-negative, got {values if len(values) > 1 else values[0]!r}")


def positive_int(value: Any, name: str, where: str) -> int:
    return integer(value, name, where, minimum=1)


def probability(p: Any, name: str, where: str) -> float:
    if not is_number(p):
        raise TypeError(f"{where}: {name} must be a float in [0, 1], got {p!r}")
    if not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"{where}: {name} has to be between 0 and 1, but got {p!r}")
    return float(p)


def as_array(x: Any, name: str, where: str) -> jnp.ndarray:
    """Accept jax/numpy arrays (and scalars); refuse lists of arbitrary objects."""
    if isinstance(x, (jnp.ndarray, np.ndarray, np.generic, int, float)):
        return jnp.asarray(x)
    if hasattr(x, "__jax_array__"):
        return jnp.asarray(x)
    raise TypeError(f"{where}: {name} must be an array, got {type(x).__name__}")


def spatial_input(x: Any, n_spatial: int, where: str, name: str = "input") -> tuple[jnp.ndarray, bool]:
    """Check an input of shape ``(N, C, *spatial)`` or unbatched ``(C, *spatial)``.

    Returns the input with a batch dimension and whether one was added.
    """
    x = as_array(x, name, where)
    if x.ndim == n_spatial + 1:
        return x[None], True
    if x.ndim == n_spatial + 2:
        return x, False
    raise ValueError(
        f"{where}: expected {n_spatial + 1}D (unbatched) or {n_spatial + 2}D (batched) {name}, "
        f"but got {name} of shape {tuple(x.shape)}"
    )


def floating(x: jnp.ndarray, name: str, where: str) -> None:
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"{where}: {name} must be a floating-point array, got dtype {x.dtype}")


def same_dtype(a: jnp.ndarray, b: jnp.ndarray, a_name: str, b_name: str, where: str) -> None:
    if a.dtype != b.dtype:
        raise TypeError(
            f"{where}: {a_name} ({a.dtype}) and {b_name} ({b.dtype}) should be the same dtype"
        )


def one_of(value: Any, allowed: Sequence[Any], name: str, where: str) -> Any:
    if value not in allowed:
        raise ValueError(f"{where}: {name} must be one of {list(allowed)}, got {value!r}")
    return value
