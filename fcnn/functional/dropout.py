"""Dropout: ``dropout``, ``dropout1d``, ``dropout2d``, ``dropout3d``, ``alpha_dropout``.

torch.nn.functional's names and defaults, with randomness made explicit: a
keyword ``key`` (a ``jax.random`` key) is required whenever ``training`` is
true and ``p > 0``. torch's random stream can't be reproduced, only its
distribution: each element (or channel) is kept with probability ``1 − p``
and scaled by ``1 / (1 − p)``; ``p = 1`` gives zeros. ``inplace`` is
accepted and ignored.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from fcnn import _checks, backends
from fcnn.functional._compiled import compiled
from fcnn.functional.activation import SELU_ALPHA, SELU_SCALE


def _prepare(input, p, key, where):
    x = _checks.as_array(input, "input", where)
    _checks.floating(x, "input", where)
    p = _checks.probability(p, "dropout probability", where)
    _checks.prng_key(key, "key", where)
    return x, p


def _require_key(key, where):
    if key is None:
        raise ValueError(f"{where}: key is required when training=True and p > 0 (pass key=jax.random.key(...))")
    return key


def _keep_mask(key, keep_probability, shape):
    """``jax.random.bernoulli(key, keep_probability, shape)``, drawn flat.

    The same values (JAX's default threefry numbers elements by flat index),
    but XLA:CPU compiles the flat draw several times faster than a 4-D one,
    which would dominate a training step's compilation.
    """
    return jax.random.bernoulli(key, keep_probability, (math.prod(shape),)).reshape(shape)


@compiled
def _masked(x, p, key, mask_shape, where):
    if p == 0.0:
        return x
    if p == 1.0:
        return jnp.zeros_like(x)
    keep = jnp.broadcast_to(_keep_mask(_require_key(key, where), 1.0 - p, mask_shape), x.shape)
    scale = jnp.asarray(1.0 / (1.0 - p), x.dtype)
    # in the layout of the convolutions around it (fcnn.backends.pointwise says why); same mask, same values
    return backends.pointwise(lambda x, keep: jnp.where(keep, x * scale, jnp.zeros_like(x)), x, keep)


def dropout(input, p: float = 0.5, training: bool = True, inplace: bool = False, *, key=None):
    """Zero each element with probability ``p`` and scale the rest by ``1/(1 − p)``; identity when not training."""
    where = "dropout"
    x, p = _prepare(input, p, key, where)
    if not _checks.static_bool(training, "training", where):
        return x
    return _masked(x, p, key, x.shape, where)


def _channel_dropout(input, p, training, key, n: int, where: str):
    x, p = _prepare(input, p, key, where)
    x, unbatched = _checks.spatial_input(x, n, where)
    if _checks.static_bool(training, "training", where):
        # one draw per (sample, channel), broadcast over the spatial dims.
        x = _masked(x, p, key, x.shape[:2] + (1,) * n, where)
    return x[0] if unbatched else x


def dropout1d(input, p: float = 0.5, training: bool = True, inplace: bool = False, *, key=None):
    """Zero whole channels of ``(N, C, L)`` or ``(C, L)`` with probability ``p`` (``torch.nn.functional.dropout1d``)."""
    return _channel_dropout(input, p, training, key, 1, "dropout1d")


def dropout2d(input, p: float = 0.5, training: bool = True, inplace: bool = False, *, key=None):
    """Zero whole channels of ``(N, C, H, W)`` or ``(C, H, W)`` with probability ``p``.

    Deliberate difference: torch 2.x treats a 3-D input as ``(N, C, L)`` and
    drops per ``(N, C)`` row (with a warning that this will change, pytorch
    issue 77081); fcnn treats it as the unbatched ``(C, H, W)`` that torch's
    documentation describes, so ``jax.vmap`` over examples is consistent.
    Other ranks are refused (torch warns and falls back to element dropout).
    """
    return _channel_dropout(input, p, training, key, 2, "dropout2d")


def dropout3d(input, p: float = 0.5, training: bool = True, inplace: bool = False, *, key=None):
    """Zero whole channels of ``(N, C, D, H, W)`` or ``(C, D, H, W)`` with probability ``p``."""
    return _channel_dropout(input, p, training, key, 3, "dropout3d")




@compiled
def alpha_dropout(input, p: float = 0.5, training: bool = False, inplace: bool = False, *, key=None):
    """Dropout for SELU networks, as ``torch.nn.functional.alpha_dropout`` (note ``training=False`` default).

    Dropped units are set to ``α' = −scale·alpha`` and the result is
    ``a·x̃ + b`` with ``a = ((1 − p)(1 + p·α'²))^{-1/2}``, ``b = −a·α'·p``, so
    zero mean and unit variance are kept.
    """
    where = "alpha_dropout"
    x, p = _prepare(input, p, key, where)
    if not _checks.static_bool(training, "training", where) or p == 0.0:
        return x
    if p == 1.0:
        # torch: keep probability 0 makes the affine map degenerate; it returns zeros.
        return jnp.zeros_like(x)
    keep = _keep_mask(_require_key(key, where), 1.0 - p, x.shape)
    alpha_p = -SELU_ALPHA * SELU_SCALE  # the value dropped units take
    a = ((1 - p) * (1 + p * alpha_p**2)) ** -0.5
    b = -a * alpha_p * p
    return (jnp.where(keep, x, jnp.asarray(alpha_p, x.dtype)) * a + b).astype(x.dtype)


def stochastic_depth(input, p: float, mode: str, training: bool = True, *, key=None):
    """Randomly zero whole residual branches, as ``torchvision.ops.stochastic_depth`` (note ``training=True``).

    ``mode='row'`` keeps each example (row of dim 0) with probability ``1 − p``,
    ``'batch'`` keeps or zeroes the whole input at once; kept values are scaled by
    ``1/(1 − p)``, and ``p = 1`` gives zeros. The result is ``input * noise`` as
    torchvision computes it, so a dropped non-finite value gives NaN there too.
    Identity when ``training`` is false or ``p = 0``; otherwise ``key`` is required.

    Args:
      input: ``(N, ...)``, any floating dtype.
      p: drop probability in ``[0, 1]``.
      mode: ``'row'`` or ``'batch'``.
      training: apply it (default True, as torchvision's function).
      key: a ``jax.random`` key.
    """
    where = "stochastic_depth"
    x = _checks.as_array(input, "input", where)
    _checks.floating(x, "input", where)
    p = _checks.probability(p, "drop probability p", where)
    _checks.one_of(mode, ("row", "batch"), "mode", where)
    _checks.prng_key(key, "key", where)
    if not _checks.static_bool(training, "training", where) or p == 0.0:
        return x
    if mode == "row" and x.ndim == 0:
        raise ValueError(f"{where}: mode 'row' needs an input with a batch dimension, got a 0-D input")
    shape = (x.shape[0],) + (1,) * (x.ndim - 1) if mode == "row" else (1,) * x.ndim
    return _scaled_by_noise(x, p, _require_key(key, where), shape, True)


def drop_path(x, drop_prob: float = 0.0, training: bool = False, scale_by_keep: bool = True, *, key=None):
    """timm's ``drop_path``: zero each example (row of dim 0) with probability ``drop_prob``.

    With ``scale_by_keep`` (default) the kept rows are scaled by ``1/(1 − drop_prob)``, which
    makes it :func:`stochastic_depth` in ``'row'`` mode; without, they are kept as they are.
    Identity when ``training`` is false (the default, as timm's) or ``drop_prob = 0``; otherwise
    ``key`` is required.
    """
    where = "drop_path"
    x = _checks.as_array(x, "input", where)
    _checks.floating(x, "input", where)
    p = _checks.probability(drop_prob, "drop_prob", where)
    if not isinstance(scale_by_keep, bool):
        raise TypeError(f"{where}: scale_by_keep must be a bool, got {scale_by_keep!r}")
    if not training or p == 0.0:
        return x
    if x.ndim == 0:
        raise ValueError(f"{where}: needs an input with a batch dimension, got a 0-D input")
    return _scaled_by_noise(x, p, _require_key(key, where), (x.shape[0],) + (1,) * (x.ndim - 1), scale_by_keep)


@compiled
def _scaled_by_noise(x, p, key, shape, scale):
    # x times a {0, 1} draw of `shape` kept with probability 1 - p, divided by 1 - p when `scale` (and 1 - p > 0)
    survival = 1.0 - p
    noise = _keep_mask(key, survival, shape).astype(x.dtype)
    if scale and survival > 0.0:
        noise = noise / jnp.asarray(survival, x.dtype)
    return x * noise
