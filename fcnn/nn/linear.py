"""``Linear``, ``Identity``, ``Flatten`` and ``Unflatten`` (torch.nn names, arguments and defaults)."""

from __future__ import annotations

import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from fcnn import _checks
from fcnn.functional.linear import linear as _linear
from fcnn.nn import init as _init
from fcnn.nn.module import Layer


class Linear(Layer):
    """``torch.nn.Linear``: ``(*, in_features)`` → ``(*, out_features)``.

    Args:
      in_features, out_features: sizes of the last dimension of input and output.
      bias: learn an additive bias (default ``True``).
      dtype: parameter dtype (default float32).
      weight_init, bias_init: ``(key, shape, dtype) -> array`` initialisers; the
        defaults are torch's, weight and bias both ``U(±1/√in_features)``.

    Params: ``weight`` ``(out_features, in_features)`` and, with ``bias=True``,
    ``bias`` ``(out_features,)`` — torch's names and layout.

    Example::

        fc = nn.Linear(20, 30)
        params, state = fc.init(jax.random.key(0))
        y, _ = fc.apply(params, state, jnp.ones((128, 20)))   # (128, 30)
    """

    def __init__(self, in_features, out_features, bias=True, *, dtype=jnp.float32,
                 weight_init=None, bias_init=None):
        where = type(self).__name__
        # torch allows in_features=0 (an empty layer); positivity of out_features likewise is not required there,
        # but a zero-sized layer is almost always a bug, so fcnn asks for positive sizes.
        self.in_features = _checks.positive_int(in_features, "in_features", where)
        self.out_features = _checks.positive_int(out_features, "out_features", where)
        if not isinstance(bias, bool):
            raise TypeError(f"{where}: bias must be a bool, got {bias!r}")
        self.bias = bias
        self.dtype = dtype
        self.weight_init = weight_init or _init.torch_default_weight
        self.bias_init = bias_init or _init.torch_default_bias(self.in_features)

    def init(self, key):
        wkey, bkey = jax.random.split(key)
        params = {"weight": self.weight_init(wkey, (self.out_features, self.in_features), self.dtype)}
        if self.bias:
            params["bias"] = self.bias_init(bkey, (self.out_features,), self.dtype)
        return params, {}

    def apply(self, params, state, x, *, train=False, rng=None):
        x = _checks.as_array(x, "input", type(self).__name__)
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"{type(self).__name__}: expected input whose last dimension is in_features={self.in_features}, "
                f"got input of shape {tuple(x.shape)}"
            )
        return _linear(x, params["weight"], params.get("bias")), state

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias}"


class Identity(Layer):
    """``torch.nn.Identity``: returns its input; constructor arguments are accepted and ignored, as in torch."""

    def __init__(self, *args, **kwargs):
        del args, kwargs

    def apply(self, params, state, x, *, train=False, rng=None):
        return x, state


def _int_arg(value, name: str, where: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{where}: {name} must be an int, got {value!r}")
    return int(value)


class Flatten(Layer):
    """``torch.nn.Flatten``: merge dimensions ``start_dim..end_dim`` (inclusive) into one.

    Shape: ``(*, S_start, ..., S_end, *)`` → ``(*, S_start·…·S_end, *)``. The default
    ``start_dim=1`` keeps the batch dimension, so an unbatched ``(C, H, W)`` becomes
    ``(C, H·W)`` exactly as in torch; ``jax.vmap`` over examples therefore wants
    ``Flatten(start_dim=0)``.
    """

    def __init__(self, start_dim=1, end_dim=-1):
        where = type(self).__name__
        self.start_dim = _int_arg(start_dim, "start_dim", where)
        self.end_dim = _int_arg(end_dim, "end_dim", where)

    def apply(self, params, state, x, *, train=False, rng=None):
        where = type(self).__name__
        x = _checks.as_array(x, "input", where)
        start = _checks.dim_index(self.start_dim, x.ndim, "start_dim", where)
        end = _checks.dim_index(self.end_dim, x.ndim, "end_dim", where)
        if start > end:
            raise ValueError(
                f"{where}: flatten() has invalid args: start_dim cannot come after end_dim "
                f"(start_dim={self.start_dim}, end_dim={self.end_dim}, input of shape {tuple(x.shape)})"
            )
        if x.ndim == 0:
            return x.reshape(1), state
        shape = x.shape[:start] + (math.prod(x.shape[start:end + 1]),) + x.shape[end + 1:]
        return x.reshape(shape), state

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Layer):
    """``torch.nn.Unflatten``: split dimension ``dim`` into ``unflattened_size``.

    Shape: ``(*, S_dim, *)`` → ``(*, U_1, ..., U_k, *)`` with ``ΠU_i = S_dim``; one
    ``U_i`` may be ``-1`` and is then inferred, as in torch. Named-tensor
    (string) dims are not supported.
    """

    def __init__(self, dim, unflattened_size: Sequence[int]):
        where = type(self).__name__
        self.dim = _int_arg(dim, "dim", where)
        if isinstance(unflattened_size, (str, bytes)) or not isinstance(unflattened_size, Sequence):
            raise TypeError(f"{where}: unflattened_size must be a tuple or list of ints, got {unflattened_size!r}")
        size = tuple(_int_arg(s, "unflattened_size", where) for s in unflattened_size)
        if not size:
            raise ValueError(f"{where}: unflattened_size must be non-empty, got {unflattened_size!r}")
        if sum(s == -1 for s in size) > 1 or any(s < -1 for s in size):
            raise ValueError(
                f"{where}: unflattened_size may hold at most one -1 and otherwise non-negative sizes, got {size}"
            )
        self.unflattened_size = size

    def apply(self, params, state, x, *, train=False, rng=None):
        where = type(self).__name__
        x = _checks.as_array(x, "input", where)
        if x.ndim == 0:
            raise ValueError(f"{where}: cannot unflatten a 0-d input")
        d = _checks.dim_index(self.dim, x.ndim, "dim", where)
        size = list(self.unflattened_size)
        known = math.prod(s for s in size if s != -1)
        if -1 in size:
            if known == 0 or x.shape[d] % known != 0:
                raise ValueError(
                    f"{where}: Provided sizes {size} don't multiply up to the size of dim {self.dim} "
                    f"({x.shape[d]}) in the input of shape {tuple(x.shape)} (unflattened_size)"
                )
            size[size.index(-1)] = x.shape[d] // known
        elif known != x.shape[d]:
            raise ValueError(
                f"{where}: Provided sizes {size} don't multiply up to the size of dim {self.dim} "
                f"({x.shape[d]}) in the input of shape {tuple(x.shape)} (unflattened_size)"
            )
        return x.reshape(x.shape[:d] + tuple(size) + x.shape[d + 1:]), state

    def extra_repr(self) -> str:
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"
