"""Explicit weight penalties and the masks that pick which parameters they (or weight decay) touch.

Coupled vs decoupled weight decay:

* **Coupled** (``weight_decay=`` of :func:`~fcnn.optim.SGD`, :func:`~fcnn.optim.Adam`,
  ``Adagrad``, ``RMSprop``, ``Adadelta``, as in torch): ``weight_decay * w`` is
  added to the gradient before the optimizer's own scaling. That is exactly
  L2 regularization: ``weight_decay=lam`` == minimizing
  ``loss + lam / 2 * l2_penalty(params)``. With adaptive optimizers (Adam) the
  decay is then divided by the adaptive denominator, so heavily-updated
  weights are decayed less.
* **Decoupled** (:func:`~fcnn.optim.AdamW`): the weights shrink directly,
  ``w *= 1 - lr * weight_decay``, independent of the gradient statistics. It is
  not equivalent to any penalty on the loss for adaptive optimizers.

``l2_penalty`` is the plain sum of squares (no ``1/2``); ``l1_penalty`` the sum
of absolute values (gradient ``sign(w)``, 0 at 0). Add them to the loss
yourself: ``loss + lam * l1_penalty(params, mask)``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

_NO_DECAY_NAMES = ("bias",)


def _leaves(params, mask):
    leaves = jax.tree.leaves(params)
    if mask is None:
        return leaves
    if callable(mask):
        mask = mask(params)
    flags = jax.tree.leaves(mask)
    if len(flags) != len(leaves):
        raise ValueError(
            f"mask must have the structure of params ({len(leaves)} leaves), got {len(flags)} leaves"
        )
    return [p for p, keep in zip(leaves, flags) if keep]


def l2_penalty(params: Any, mask: Any = None) -> jnp.ndarray:
    """``sum(w**2)`` over the (masked) parameters; no ``1/2`` factor.

    ``SGD(weight_decay=lam)`` on ``loss`` == ``SGD()`` on ``loss + lam / 2 * l2_penalty(params)``.

    Args:
        params: a pytree of arrays.
        mask: optional pytree of bools (or callable ``params -> mask``);
            only leaves marked True count, e.g. :func:`weight_decay_mask`.
    """
    return sum((jnp.sum(jnp.square(p)) for p in _leaves(params, mask)), jnp.zeros([], jnp.float32))


def l1_penalty(params: Any, mask: Any = None) -> jnp.ndarray:
    """``sum(|w|)`` over the (masked) parameters (lasso); its gradient is ``sign(w)``, 0 at 0."""
    total = jnp.zeros([], jnp.float32)
    for p in _leaves(params, mask):
        total = total + jnp.sum(p * jax.lax.stop_gradient(jnp.sign(p)))
    return total


def weight_decay_mask(params: Any) -> Any:
    """A bool pytree, True for parameters that should be decayed.

    The rule (the usual "no decay on biases and normalization parameters"):
    a parameter is decayed iff it has at least 2 dimensions and its name (the
    last key of its path) is not ``'bias'``. This excludes every bias, and the
    ``weight``/``bias`` of BatchNorm, GroupNorm, InstanceNorm and LayerNorm over
    one dimension, which are 1-D; conv and linear weights are decayed. (A
    LayerNorm over several dimensions has an N-d weight: build that mask by hand.)

    Use as ``SGD(0.1, weight_decay=5e-4, mask=weight_decay_mask)`` (optax calls
    it with the params) or ``mask=weight_decay_mask(params)``.
    """

    def decay(path, leaf):
        name = _last_name(path)
        return bool(jnp.ndim(leaf) >= 2 and name not in _NO_DECAY_NAMES)

    return jax.tree_util.tree_map_with_path(decay, params)


def no_decay_mask(params: Any) -> Any:
    """The complement of :func:`weight_decay_mask`: True for biases and normalization parameters."""
    return jax.tree.map(lambda keep: not keep, weight_decay_mask(params))


def _last_name(path) -> str:
    if not path:
        return ""
    k = path[-1]
    for attr in ("key", "name", "idx"):
        if hasattr(k, attr):
            return str(getattr(k, attr))
    return str(k)
