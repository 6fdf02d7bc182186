"""Small named optax transformations for the torch behaviours optax has no piece for.

Each one is a ``GradientTransformation(init, update)`` with a plain pytree
state, composed with stock optax pieces in :mod:`fcnn.optim.optimizers`:

* :func:`torch_momentum` - SGD momentum with ``dampening``: torch's first
  buffer is the raw gradient (no ``1 - dampening`` factor), later ones
  ``m * buf + (1 - dampening) * g``. optax's ``trace`` is used when
  ``dampening == 0`` and the momentum is a constant, where both agree.
* :func:`scale_by_torch_adam` - Adam with torch's ``amsgrad`` (max of the *raw*
  second moment, divided by the current bias correction; optax's
  ``scale_by_amsgrad`` takes the max of the bias-corrected moment) and a
  ``beta1`` that may follow a schedule (OneCycleLR's momentum cycle, with
  torch's bias correction ``1 - beta1_t ** t`` using the current beta1).
* :func:`scale_by_torch_adagrad` - Adagrad with ``eps`` outside the square
  root and an initial accumulator (optax's ``scale_by_rss`` puts eps inside).
* :func:`adagrad_lr` - the ``lr / (1 + (t - 1) * lr_decay)`` step size.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Union

import jax
import jax.numpy as jnp
import optax

ScalarOrSchedule = Union[float, Callable[[jnp.ndarray], jnp.ndarray]]


def _at(value: ScalarOrSchedule, count):
    return value(count) if callable(value) else value


class TorchMomentumState(NamedTuple):
    count: jnp.ndarray  # number of updates done so far (int32 scalar)
    momentum_buffer: Any


def torch_momentum(momentum: ScalarOrSchedule, dampening: float = 0.0,
                   nesterov: bool = False) -> optax.GradientTransformation:
    """torch.optim.SGD's momentum buffer.

    ``buf_1 = g_1``; ``buf_t = m_t * buf_{t-1} + (1 - dampening) * g_t``; the
    update is ``buf_t`` or, with ``nesterov``, ``g_t + m_t * buf_t``.

    Args:
        momentum: the factor ``m``, a float or a schedule ``count -> m``
            (count = number of previous updates, as for learning rates).
        dampening: the ``dampening`` of torch's SGD.
        nesterov: Nesterov's form.
    """

    def init(params):
        return TorchMomentumState(jnp.zeros([], jnp.int32), jax.tree.map(jnp.zeros_like, params))

    def update(updates, state, params=None):
        del params
        m = _at(momentum, state.count)
        first = state.count == 0
        buf = jax.tree.map(lambda g, b: jnp.where(first, g, m * b + (1 - dampening) * g),
                           updates, state.momentum_buffer)
        out = jax.tree.map(lambda g, b: g + m * b, updates, buf) if nesterov else buf
        return out, TorchMomentumState(optax.safe_increment(state.count), buf)

    return optax.GradientTransformation(init, update)


class TorchAdamState(NamedTuple):
    count: jnp.ndarray
    exp_avg: Any
    exp_avg_sq: Any
    max_exp_avg_sq: Any  # () when amsgrad is off


def scale_by_torch_adam(b1: ScalarOrSchedule = 0.9, b2: float = 0.999, eps: float = 1e-8,
                        amsgrad: bool = False) -> optax.GradientTransformation:
    """Adam's direction exactly as torch computes it (multiply by ``-lr`` afterwards).

    ``m_t = b1 m + (1 - b1) g``, ``v_t = b2 v + (1 - b2) g**2``,
    ``vmax_t = max(vmax, v_t)`` with ``amsgrad``, and the update
    ``(m_t / (1 - b1**t)) / (sqrt(v_t or vmax_t) / sqrt(1 - b2**t) + eps)``.

    Without amsgrad and with a constant ``b1`` this equals ``optax.scale_by_adam``,
    which :func:`fcnn.optim.Adam` uses then.
    """

    def init(params):
        zeros = lambda: jax.tree.map(jnp.zeros_like, params)
        return TorchAdamState(jnp.zeros([], jnp.int32), zeros(), zeros(), zeros() if amsgrad else ())

    def update(updates, state, params=None):
        del params
        beta1 = _at(b1, state.count)
        count = optax.safe_increment(state.count)
        t = count.astype(jnp.float32)
        m = jax.tree.map(lambda g, a: a + (1 - beta1) * (g - a), updates, state.exp_avg)  # torch's lerp
        v = jax.tree.map(lambda g, a: b2 * a + (1 - b2) * g * g, updates, state.exp_avg_sq)
        vmax = jax.tree.map(jnp.maximum, state.max_exp_avg_sq, v) if amsgrad else ()
        bc1 = 1 - beta1 ** t
        bc2_sqrt = jnp.sqrt(1 - b2 ** t)
        out = jax.tree.map(lambda a, s: (a / bc1) / (jnp.sqrt(s) / bc2_sqrt + eps), m, vmax if amsgrad else v)
        return out, TorchAdamState(count, m, v, vmax)

    return optax.GradientTransformation(init, update)


class TorchAdagradState(NamedTuple):
    sum: Any


def scale_by_torch_adagrad(initial_accumulator_value: float = 0.0,
                           eps: float = 1e-10) -> optax.GradientTransformation:
    """Adagrad's direction as torch: ``s_t = s_{t-1} + g**2``, update ``g / (sqrt(s_t) + eps)``.

    ``s_0 = initial_accumulator_value``. optax's ``scale_by_rss`` uses
    ``g / sqrt(s_t + eps)`` (eps inside the root), a visibly different step
    for small accumulators.
    """

    def init(params):
        return TorchAdagradState(jax.tree.map(lambda p: jnp.full_like(p, initial_accumulator_value), params))

    def update(updates, state, params=None):
        del params
        s = jax.tree.map(lambda g, a: a + g * g, updates, state.sum)
        out = jax.tree.map(lambda g, a: g / (jnp.sqrt(a) + eps), updates, s)
        return out, TorchAdagradState(s)

    return optax.GradientTransformation(init, update)


def adagrad_lr(lr: ScalarOrSchedule, lr_decay: float) -> ScalarOrSchedule:
    """torch Adagrad's step size at update ``count`` (0-based): ``lr / (1 + count * lr_decay)``."""
    if lr_decay == 0:
        return lr
    return lambda count: _at(lr, count) / (1 + count * lr_decay)
