"""Parameter initialisers with torch.nn.init's names, formulas and fan rules.

Each function returns an initialiser ``init(key, shape, dtype) -> array``
(the signature of ``jax.nn.initializers``) that any layer accepts through its
``weight_init=`` / ``bias_init=`` arguments. Fans are computed from the shape
the way torch does: ``fan_in = shape[1] * prod(shape[2:])``,
``fan_out = shape[0] * prod(shape[2:])``.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np


def calculate_fan_in_and_fan_out(shape) -> tuple[int, int]:
    if len(shape) < 2:
        raise ValueError(
            f"fan in and fan out can not be computed for a shape with fewer than 2 dimensions, got {tuple(shape)}"
        )
    receptive = math.prod(shape[2:]) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """torch.nn.init.calculate_gain."""
    linear = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
              "conv_transpose3d", "sigmoid")
    if nonlinearity in linear:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else float(param)
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def _fan(shape, mode: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = calculate_fan_in_and_fan_out(shape)
    return fan_in if mode == "fan_in" else fan_out


# The shortest flat draw: biases and small weights share one compiled generator
# (LeNet-5's ten tensors compile two instead of six); 64 KiB of float32 per draw.
_MIN_DRAW = 2**14


def _draw(sample, key, shape, dtype, scale=1.0, shift=0.0):
    """``shift + scale * sample(key, shape, dtype)``, drawn flat, longer, and cut to ``shape``.

    Why: XLA:CPU compiles JAX's threefry generator for a multi-dimensional
    shape several times more slowly than for a flat one, and eagerly every
    new shape compiles anew, so a model's ``init`` would compile a generator
    per parameter shape (``benchmarks/README.md``). Rounding the length up to a power of 4, and at least
    :data:`_MIN_DRAW`, lets layers of different sizes share one compiled
    generator (and one scaling). Called eagerly, the draw is cut and shaped
    in NumPy and put back on the device, which compiles nothing;
    as ``jnp`` slicing and reshaping it would compile two programs per
    parameter shape (EfficientNet-B0: 92 of its ``init``'s 136 programs).

    The values are the same: with JAX's default threefry
    (``jax_threefry_partitionable``), element ``i`` of a draw depends only on
    the key and the flat index ``i``, not on the shape (``tests/nn/test_init.py``
    checks this). With the older non-partitionable generator the values
    differ from ``sample(key, shape)``, but are still i.i.d. draws.
    """
    size = math.prod(shape)
    if size == 0:
        return jnp.zeros(shape, dtype)
    length = max(_MIN_DRAW, 1 << 2 * math.ceil(math.log2(size) / 2))
    flat = sample(key, (length,), dtype)
    if scale != 1.0:
        flat = scale * flat
    if shift != 0.0:
        flat = shift + flat
    if isinstance(flat, jax.core.Tracer):
        return flat[:size].reshape(shape)
    # a copy of the cut (a view would keep the whole draw alive) put on the device; jnp.asarray compiles per shape
    return jax.device_put(np.asarray(flat)[:size].reshape(shape).copy())


def uniform(a: float = 0.0, b: float = 1.0):
    """U(a, b)."""
    def init(key, shape, dtype=jnp.float32):
        return _draw(functools.partial(jax.random.uniform, minval=a, maxval=b), key, shape, dtype)
    return init


def normal(mean: float = 0.0, std: float = 1.0):
    """N(mean, std²)."""
    def init(key, shape, dtype=jnp.float32):
        return _draw(jax.random.normal, key, shape, dtype, std, mean)
    return init


def trunc_normal(mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0):
    """N(mean, std²) truncated to [a, b] (absolute bounds, as torch's trunc_normal_)."""
    def init(key, shape, dtype=jnp.float32):
        lo, hi = (a - mean) / std, (b - mean) / std
        return _draw(functools.partial(_truncated_normal, lower=lo, upper=hi), key, shape, dtype, std, mean)
    return init


def _truncated_normal(key, shape, dtype, lower, upper):
    return jax.random.truncated_normal(key, lower, upper, shape, dtype)


def _filled(key, shape, value, dtype=jnp.float32):
    """``jnp.full(shape, value, dtype)``; with a concrete ``key`` (an eager ``init``) built by NumPy instead.

    ``jnp.full`` called eagerly compiles a program per shape (a model's
    ``init`` one per distinct channel count for each of zeros and ones);
    NumPy's array put on the device compiles nothing. Under a trace
    (``jax.eval_shape``, ``jax.jit(model.init)``) the key is a tracer and
    the fill stays an operation of the traced program, not a constant.
    """
    if isinstance(key, jax.core.Tracer):
        return jnp.full(shape, value, dtype)
    return jax.device_put(np.full(shape, value, dtype))


def constant(value: float):
    def init(key, shape, dtype=jnp.float32):
        return _filled(key, shape, value, dtype)
    return init


def zeros(key, shape, dtype=jnp.float32):
    return _filled(key, shape, 0, dtype)


def ones(key, shape, dtype=jnp.float32):
    return _filled(key, shape, 1, dtype)


def _empty_is_zeros(init):
    """As torch's fan-based initialisers: a zero-element tensor has no fan, and is returned as is."""
    def wrapped(key, shape, dtype=jnp.float32):
        return jnp.zeros(shape, dtype) if not math.prod(shape) else init(key, shape, dtype)
    return wrapped


def xavier_uniform(gain: float = 1.0):
    """U(±gain·√(6 / (fan_in + fan_out)))."""
    def init(key, shape, dtype=jnp.float32):
        fan_in, fan_out = calculate_fan_in_and_fan_out(shape)
        bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
        return _draw(functools.partial(jax.random.uniform, minval=-bound, maxval=bound), key, shape, dtype)
    return _empty_is_zeros(init)


def xavier_normal(gain: float = 1.0):
    """N(0, gain²·2 / (fan_in + fan_out))."""
    def init(key, shape, dtype=jnp.float32):
        fan_in, fan_out = calculate_fan_in_and_fan_out(shape)
        std = gain * math.sqrt(2.0 / (fan_in + fan_out))
        return _draw(jax.random.normal, key, shape, dtype, std)
    return _empty_is_zeros(init)


def kaiming_uniform(a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"):
    """U(±gain·√(3 / fan)); torch's default for conv and linear weights is ``a=√5``."""
    def init(key, shape, dtype=jnp.float32):
        bound = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / _fan(shape, mode))
        return _draw(functools.partial(jax.random.uniform, minval=-bound, maxval=bound), key, shape, dtype)
    return _empty_is_zeros(init)


def kaiming_normal(a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"):
    """N(0, gain² / fan)."""
    def init(key, shape, dtype=jnp.float32):
        std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(shape, mode))
        return _draw(jax.random.normal, key, shape, dtype, std)
    return _empty_is_zeros(init)


def orthogonal(gain: float = 1.0):
    def init(key, shape, dtype=jnp.float32):
        return jax.nn.initializers.orthogonal(scale=gain)(key, (shape[0], math.prod(shape[1:])), dtype).reshape(shape)
    return init


def torch_default_weight(key, shape, dtype=jnp.float32):
    """Default weight init of torch's Conv*/Linear: ``kaiming_uniform(a=√5)`` = U(±1/√fan_in)."""
    return kaiming_uniform(a=math.sqrt(5))(key, shape, dtype)


def torch_default_bias(fan_in: int):
    """Default bias init of torch's Conv*/Linear: U(±1/√fan_in) of the weight's fan_in."""
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    return uniform(-bound, bound)


def weight_and_bias(key, weight_shape, bias_size: int | None, dtype, weight_init=None, bias_init=None) -> dict:
    """``{'weight', 'bias'}`` as torch's Conv*/ConvTranspose* create them.

    ``weight_init`` defaults to :func:`torch_default_weight`; the bias (omitted
    when ``bias_size`` is None) to U(±1/√fan_in) of the weight's shape.
    """
    wkey, bkey = jax.random.split(key)
    params = {"weight": (weight_init or torch_default_weight)(wkey, weight_shape, dtype)}
    if bias_size is not None:
        fan_in, _ = calculate_fan_in_and_fan_out(weight_shape)
        params["bias"] = (bias_init or torch_default_bias(fan_in))(bkey, (bias_size,), dtype)
    return params
