"""Activation functions with torch.nn.functional's names, arguments and defaults.

Forward values follow torch, and so do the gradients at the kinks, where a
plain formula could pick either one-sided derivative. torch's choices, which
the ``jnp.where`` conditions below reproduce:

==============  ===================================================
relu            0 at ``x = 0``
leaky_relu      ``negative_slope`` at ``x = 0``
prelu           ``weight`` at ``x = 0``
elu             ``alpha`` at ``x = 0``
relu6           0 at ``x = 0`` and at ``x = 6``
hardsigmoid     0 at ``x = ±3``
hardswish       0 at ``x = -3``, 1 at ``x = 3``
hardtanh        0 at ``x = min_val`` and at ``x = max_val``
selu, celu      the negative branch's at 0: ``scale·alpha``, 1
threshold       0 at ``x = threshold``
hardshrink      0 on ``[−lambd, lambd]``, ends included
softshrink      0 on ``[−lambd, lambd]``, ends included
softplus        1 above ``threshold / beta`` (the linear branch)
==============  ===================================================

NaN inputs propagate as in torch. ``inplace`` arguments are accepted and ignored.

The per-element activations compute channels-last on the inputs where
convolutions do (:func:`fcnn.backends.pointwise`; same values).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from fcnn import _checks, backends
from fcnn.functional._compiled import compiled


def _input(x, where):
    x = _checks.as_array(x, "input", where)
    _checks.floating(x, "input", where)
    return x


@compiled
def relu(input, inplace: bool = False):
    """``max(0, x)``; gradient 0 at ``x = 0`` (torch's choice)."""
    x = _input(input, "relu")
    # `x <= 0` selects the constant branch at 0 (zero gradient) and lets NaN through.
    return backends.pointwise(lambda x: jnp.where(x <= 0, jnp.zeros_like(x), x), x)


@compiled
def leaky_relu(input, negative_slope: float = 0.01, inplace: bool = False):
    """``x`` if ``x > 0`` else ``negative_slope·x``; gradient ``negative_slope`` at 0."""
    x = _input(input, "leaky_relu")
    slope = _checks.number(negative_slope, "negative_slope", "leaky_relu")
    return backends.pointwise(lambda x: jnp.where(x > 0, x, x * slope), x)


@compiled
def elu(input, alpha: float = 1.0, inplace: bool = False):
    """``x`` if ``x > 0`` else ``alpha·(exp(x) − 1)``; gradient ``alpha`` at 0."""
    x = _input(input, "elu")
    alpha = _checks.number(alpha, "alpha", "elu")

    def f(x):
        # expm1 sees only non-positive values, so the unused branch can't overflow into NaN gradients.
        return jnp.where(x > 0, x, alpha * jnp.expm1(jnp.where(x > 0, jnp.zeros_like(x), x)))

    return backends.pointwise(f, x)


@compiled
def relu6(input, inplace: bool = False):
    """``min(max(0, x), 6)`` (torch's ``hardtanh(x, 0, 6)``); gradient 0 at 0 and at 6."""
    x = _input(input, "relu6")
    return backends.pointwise(lambda x: jnp.where(x <= 0, jnp.zeros_like(x), jnp.where(x >= 6, jnp.full_like(x, 6), x)), x)


@compiled
def hardsigmoid(input, inplace: bool = False):
    """``relu6(x + 3) / 6``; gradient ``1/6`` strictly inside (−3, 3), else 0."""
    x = _input(input, "hardsigmoid")
    return backends.pointwise(
        lambda x: jnp.where(x <= -3, jnp.zeros_like(x), jnp.where(x >= 3, jnp.ones_like(x), x / 6 + 0.5)), x)


@compiled
def hardswish(input, inplace: bool = False):
    """``x · relu6(x + 3) / 6``; gradient ``x/3 + 1/2`` inside (−3, 3), 0 at −3 and below, 1 at 3 and above."""
    x = _input(input, "hardswish")
    return backends.pointwise(lambda x: jnp.where(x <= -3, jnp.zeros_like(x), jnp.where(x >= 3, x, x * (x + 3) / 6)), x)


@compiled
def tanh(input):
    """Hyperbolic tangent."""
    return backends.pointwise(jnp.tanh, _input(input, "tanh"))


@compiled
def sigmoid(input):
    """``1 / (1 + exp(−x))``."""
    return backends.pointwise(jax.nn.sigmoid, _input(input, "sigmoid"))


@compiled
def silu(input, inplace: bool = False):
    """``x · sigmoid(x)`` (swish)."""
    x = _input(input, "silu")
    return backends.pointwise(lambda x: x * jax.nn.sigmoid(x), x)


@compiled
def gelu(input, approximate: str = "none"):
    """GELU. ``approximate='none'`` (default, as torch) is exact: ``x·Φ(x) = x/2·(1 + erf(x/√2))``;
    ``'tanh'`` is ``x/2·(1 + tanh(√(2/π)·(x + 0.044715·x³)))``."""
    x = _input(input, "gelu")
    _checks.one_of(approximate, ("none", "tanh"), "approximate", "gelu")
    if approximate == "none" and backends.policy().xla_cpu and backends.policy().gelu_erf:
        from fcnn.backends.xla_cpu import activation
        return backends.pointwise(activation.gelu, x)
    return backends.pointwise(lambda x: jax.nn.gelu(x, approximate=approximate == "tanh"), x)


@compiled
def prelu(input, weight):
    """``x`` if ``x > 0`` else ``weight·x``, with one learnable slope per channel.

    ``weight`` has 1 element (shared) or ``C = input.shape[1]`` elements; as in
    torch, a 1-D input counts as a single channel, so it needs a 1-element
    weight. Gradient w.r.t. the input at 0 is ``weight``.
    """
    where = "prelu"
    x = _input(input, where)
    w = _checks.as_array(weight, "weight", where)
    if w.ndim > 1:
        raise ValueError(f"{where}: Expected `weight` to be a scalar or 1D tensor, but got: ndim = {w.ndim}")
    if w.size != 1:
        if x.ndim == 0:
            raise ValueError(f"{where}: Not allow zero-dim input tensor with a weight of {w.size} elements")
        channels = x.shape[1] if x.ndim >= 2 else 1
        if w.size != channels:
            raise ValueError(
                f"{where}: Mismatch of parameter numbers and input channel size. Found parameter numbers "
                f"(weight) = {w.size} and channel size = {channels}."
            )
    _checks.same_dtype(x, w, "input", "weight", where)
    if w.ndim == 1:
        # (C,) lines up with dim 1; a 1-element weight (all that 0-/1-D inputs allow) broadcasts as a scalar.
        w = w.reshape((1, -1) + (1,) * (x.ndim - 2)) if x.ndim >= 2 else w.reshape(())
    # the slopes broadcast to the input's shape first, so that pointwise can lay both out channels-last
    return backends.pointwise(lambda x, w: jnp.where(x > 0, x, w * x), x, jnp.broadcast_to(w, x.shape))


def _softmax_dim(dim, ndim: int, where: str) -> int:
    if dim is None:
        raise TypeError(
            f"{where}: dim must be given (torch's implicit choice of dim is deprecated, so fcnn requires it)"
        )
    return _checks.dim_index(dim, ndim, "dim", where)


def _softmax_input(input, dim, dtype, where):
    x = _input(input, where)
    d = _softmax_dim(dim, x.ndim, where)
    if dtype is not None:
        x = x.astype(dtype)
    return x, (d if x.ndim else None)


@compiled
def softmax(input, dim=None, _stacklevel: int = 3, dtype=None):
    """``exp(x_i) / Σ_j exp(x_j)`` along ``dim``.

    Unlike torch, ``dim`` is required: torch's implicit choice (0 for 0-, 1- and
    3-D inputs, else 1) is deprecated there and a frequent source of bugs.
    ``dtype`` casts the input first, as torch's.
    """
    x, d = _softmax_input(input, dim, dtype, "softmax")
    return jax.nn.softmax(x, axis=d) if d is not None else jnp.ones_like(x)


@compiled
def log_softmax(input, dim=None, _stacklevel: int = 3, dtype=None):
    """``x_i − log Σ_j exp(x_j)`` along ``dim`` (required; see :func:`softmax`)."""
    x, d = _softmax_input(input, dim, dtype, "log_softmax")
    return jax.nn.log_softmax(x, axis=d) if d is not None else jnp.zeros_like(x)


@compiled
def hardtanh(input, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False):
    """``min(max(x, min_val), max_val)``; gradient 1 strictly between the bounds, else 0."""
    where = "hardtanh"
    x = _input(input, where)
    lo, hi = _checks.number(min_val, "min_val", where), _checks.number(max_val, "max_val", where)
    if lo > hi:
        raise ValueError(f"{where}: min_val cannot be greater than max_val, got min_val={lo}, max_val={hi}")
    return backends.pointwise(
        lambda x: jnp.where(x <= lo, jnp.full_like(x, lo), jnp.where(x >= hi, jnp.full_like(x, hi), x)), x)


def _elu_like(x, alpha, scale, input_scale):
    """``scale·x`` if ``x > 0`` else ``scale·alpha·(exp(input_scale·x) − 1)``: torch's shared ELU kernel."""
    def f(x):
        negative = jnp.where(x > 0, jnp.zeros_like(x), x)  # expm1 never sees the positive side (no overflow)
        return jnp.where(x > 0, x * scale, (scale * alpha) * jnp.expm1(negative * input_scale))

    return backends.pointwise(f, x)


# SELU's constants (Klambauer et al. 2017), as torch's.
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


@compiled
def selu(input, inplace: bool = False):
    """``scale·x`` if ``x > 0`` else ``scale·alpha·(exp(x) − 1)`` with torch's constants; gradient ``scale·alpha`` at 0."""
    return _elu_like(_input(input, "selu"), SELU_ALPHA, SELU_SCALE, 1.0)


@compiled
def celu(input, alpha: float = 1.0, inplace: bool = False):
    """``x`` if ``x > 0`` else ``alpha·(exp(x/alpha) − 1)``; gradient 1 at 0. ``alpha`` must not be 0."""
    where = "celu"
    x = _input(input, where)
    alpha = _checks.number(alpha, "alpha", where)
    if alpha == 0:
        raise ValueError(f"{where}: alpha cannot be 0 for CELU")
    return _elu_like(x, alpha, 1.0, 1.0 / alpha)


@compiled
def softplus(input, beta: float = 1.0, threshold: float = 20.0):
    """``log(1 + exp(beta·x)) / beta``, and ``x`` itself where ``beta·x > threshold`` (as torch, for stability)."""
    where = "softplus"
    x = _input(input, where)
    beta, threshold = _checks.number(beta, "beta", where), _checks.number(threshold, "threshold", where)

    def f(x):
        bx = x * beta
        linear = bx > threshold
        # the log branch never sees the linear side, so its exp can't overflow into a NaN gradient
        return jnp.where(linear, x, jnp.log1p(jnp.exp(jnp.where(linear, jnp.zeros_like(bx), bx))) / beta)

    return backends.pointwise(f, x)


@compiled
def mish(input, inplace: bool = False):
    """``x · tanh(softplus(x))`` (torch's Mish, softplus without a threshold)."""
    return backends.pointwise(lambda x: x * jnp.tanh(jax.nn.softplus(x)), _input(input, "mish"))


@compiled
def softsign(input):
    """``x / (1 + |x|)``."""
    return backends.pointwise(lambda x: x / (1 + jnp.abs(x)), _input(input, "softsign"))


@compiled
def logsigmoid(input):
    """``log(sigmoid(x)) = −softplus(−x)``, computed without overflow for large ``|x|``."""
    return backends.pointwise(jax.nn.log_sigmoid, _input(input, "logsigmoid"))


@compiled
def tanhshrink(input):
    """``x − tanh(x)``."""
    return backends.pointwise(lambda x: x - jnp.tanh(x), _input(input, "tanhshrink"))


@compiled
def threshold(input, threshold: float, value: float, inplace: bool = False):
    """``x`` if ``x > threshold`` else ``value``; gradient 0 at ``x = threshold``."""
    where = "threshold"
    x = _input(input, where)
    th, value = _checks.number(threshold, "threshold", where), _checks.number(value, "value", where)
    return backends.pointwise(lambda x: jnp.where(x <= th, jnp.full_like(x, value), x), x)


def _lambd(lambd, where):
    lambd = _checks.number(lambd, "lambd", where)
    if lambd < 0:
        raise ValueError(f"{where}: lambd must be non-negative, got {lambd}")
    return lambd


@compiled
def hardshrink(input, lambd: float = 0.5):
    """``x`` if ``|x| > lambd`` else 0."""
    where = "hardshrink"
    x = _input(input, where)
    lambd = _lambd(lambd, where)
    return backends.pointwise(lambda x: jnp.where((x >= -lambd) & (x <= lambd), jnp.zeros_like(x), x), x)


@compiled
def softshrink(input, lambd: float = 0.5):
    """``x − lambd`` above ``lambd``, ``x + lambd`` below ``−lambd``, 0 between (``lambd ≥ 0``)."""
    where = "softshrink"
    x = _input(input, where)
    lambd = _lambd(lambd, where)
    return backends.pointwise(
        lambda x: jnp.where(x > lambd, x - lambd, jnp.where(x < -lambd, x + lambd, x * 0)), x)


@compiled
def glu(input, dim: int = -1):
    """Gated linear unit: ``a · sigmoid(b)`` where ``a``, ``b`` are the two halves of ``input`` along ``dim``.

    ``input.shape[dim]`` must be even; the output has half that size there.
    """
    where = "glu"
    x = _input(input, where)
    if x.ndim == 0:
        raise ValueError(f"{where}: glu does not support 0-D inputs (there is no dimension to halve)")
    d = _softmax_dim(dim, x.ndim, where)
    if x.shape[d] % 2:
        raise ValueError(f"{where}: halving dimension must be even, but dimension {d} is size {x.shape[d]}")
    a, b = jnp.split(x, 2, axis=d)
    return a * jax.nn.sigmoid(b)

