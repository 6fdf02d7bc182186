"""``compiled``: run a functional op as one XLA program instead of primitive by primitive.

Called outside ``jax.jit`` (a notebook cell, a quick check, ``jax.grad`` of a
plain function), JAX runs every primitive of an op on its own, compiling each
for every new shape: an op like ``max_pool2d(..., return_indices=True)``
then takes seconds to start and runs an order of magnitude slower than the
same op under one ``jax.jit``. :func:`compiled` gives eager callers the latter. Inside a caller's own ``jit`` the op's program is
inlined into the caller's, so compiled code is unchanged; ``grad``, ``vmap``
and the other transformations apply to it as to any jitted function.

Array arguments are traced; every other argument (sizes, strides, modes,
flags, Python numbers) is configuration, part of the compilation key. Value
checks that need concrete data (the losses' label and probability checks) can't
run inside a compiled op, so those functions are not wrapped.

An op traced as a program of its own (called on concrete arrays) is traced
under the backend policy with ``eager=True`` (:class:`fcnn.backends.Policy`),
and the policy in force is part of every program's key; the policy's layout
rule is where that makes a difference.
"""

from __future__ import annotations

import functools
import inspect

import jax
import numpy as np

from fcnn import backends


_NEEDS_VALUES = (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError,
                 jax.errors.TracerIntegerConversionError, jax.errors.TracerBoolConversionError)


def _is_array(value) -> bool:
    return isinstance(value, (jax.Array, np.ndarray, jax.core.Tracer))


# One NaN object for every NaN hyper-parameter: NaN != NaN, so only identity
# lets a cache key holding one equal the next call's (tuples compare items by
# identity first, and a NaN's hash is its identity's).
_NAN = float("nan")


def _hashable(value):
    """``value`` with lists turned into tuples (torch accepts lists for sizes), or raise TypeError."""
    if isinstance(value, (list, tuple)):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, (float, np.floating)) and value != value:
        return _NAN
    hash(value)
    return value


def _typed(value):
    """A cache key that tells ``2`` from ``2.0`` and ``True`` from ``1``, which the op's checks treat differently."""
    if isinstance(value, tuple):
        return tuple, tuple(_typed(v) for v in value)
    return type(value), value


@functools.lru_cache(maxsize=4096)
def _program(fn, static: tuple, key: tuple, policy: backends.Policy):
    del key  # only distinguishes configurations that compare equal with different types
    config = dict(static)

    def run(arrays):
        # runs only while jax.jit traces: the op is traced under exactly this policy
        with backends.use(policy):
            return fn(**arrays, **config)

    return jax.jit(run)


def compiled(fn=None, *, dynamic: tuple[str, ...] = ()):
    """Wrap ``fn`` so that a call traces its arrays and compiles once per configuration and shapes.

    ``dynamic`` names parameters that are data even when given as Python
    numbers (e.g. a step counter), so that a new value does not recompile.
    Arguments that cannot serve as a compilation key (unhashable objects),
    and arrays that the op needs as values (a NumPy array as a size), make
    the call run uncompiled.
    """
    if fn is None:
        return functools.partial(compiled, dynamic=dynamic)
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        arrays, static = {}, []
        try:
            for name, value in bound.arguments.items():
                if _is_array(value) or (name in dynamic and value is not None):
                    arrays[name] = value
                else:
                    static.append((name, _hashable(value)))
            static = tuple(static)
            eager = not any(isinstance(v, jax.core.Tracer) for v in arrays.values())
            program = _program(fn, static, _typed(static), backends.policy().replace(eager=eager))
        except TypeError:
            return fn(*args, **kwargs)
        try:
            return program(arrays)
        except _NEEDS_VALUES:
            # an array given where the op needs a value (a NumPy size, say): run it as written,
            # which also re-raises the error if the caller's own trace is the reason
            return fn(*args, **kwargs)

    return wrapper
