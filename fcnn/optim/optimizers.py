"""torch.optim's optimizers, with torch's names, defaults and update rules, as optax transformations.

Each constructor returns an ``optax.GradientTransformation``: a short
``optax.chain`` of stock optax pieces plus, where optax differs from torch, a
small named transformation from :mod:`fcnn.optim.transforms`. Use it the optax
way::

    opt = fcnn.optim.SGD(0.1, momentum=0.9, nesterov=True)
    opt_state = opt.init(params)
    updates, opt_state = opt.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)

One ``update`` is one ``torch.optim.Optimizer.step()``: parameter trajectories
equal torch's step for step (tested over 50+ steps for every option).

Common arguments:
    lr: a float, or a schedule ``count -> lr`` (e.g. from
        :mod:`fcnn.optim.lr_scheduler`), evaluated at the number of updates
        done so far, i.e. the LR torch's optimizer would hold after that many
        ``scheduler.step()`` calls.
    weight_decay: torch's *coupled* decay: ``weight_decay * param`` is added to
        the gradient (L2 regularization with penalty ``weight_decay / 2 * |w|^2``).
        :func:`AdamW` (and ``Adam(decoupled_weight_decay=True)``) decay the
        weights directly: ``param *= 1 - lr * weight_decay``.
    mask: optional pytree of bools with params' structure (or a callable
        ``params -> mask``) selecting which parameters are decayed; replaces
        torch's param groups for the usual "no decay on biases and norms" case,
        see :func:`fcnn.optim.weight_decay_mask`.
    maximize: ascend instead of descend (the gradient is negated first).

Gradient descent flavours are all ``SGD``: full-batch gradient descent,
mini-batch SGD and online SGD differ only in how many examples the caller
averages the gradient over (the batch size is the user's choice);
``momentum > 0`` gives heavy-ball momentum and ``nesterov=True`` NAG.

Deliberate difference: torch's param groups (different hyper-parameters per
group) are expressed with ``mask`` or ``optax.multi_transform``.
"""

from __future__ import annotations

from typing import Any

import optax

from fcnn import _checks
from fcnn.optim import transforms as T
from fcnn.optim.transforms import ScalarOrSchedule


def _check(ok: bool, msg: str) -> None:
    if not ok:
        raise ValueError(msg)


def _lr(lr, where: str):
    """A learning rate, or a schedule (a callable of the step count) passed through."""
    return lr if callable(lr) else _checks.learning_rate(lr, where)


def _head(maximize: bool, weight_decay: float, mask) -> list:
    """The steps torch applies to the raw gradient first: sign flip, then coupled decay."""
    parts = []
    if maximize:
        parts.append(optax.scale(-1.0))
    if weight_decay != 0.0:
        parts.append(optax.add_decayed_weights(weight_decay, mask))
    return parts


def _non_negative(value, name: str, where: str, label: str | None = None) -> float:
    """A float >= 0; torch's message ``Invalid <label> value: <value>`` otherwise (``label`` defaults to ``name``)."""
    value = _checks.number(value, name, where)
    _check(value >= 0.0, f"{where}: Invalid {label or name} value: {value}")
    return value


def SGD(lr: ScalarOrSchedule = 1e-3, momentum: ScalarOrSchedule = 0.0, dampening: float = 0.0,
        weight_decay: float = 0.0, nesterov: bool = False, *, maximize: bool = False,
        mask: Any = None) -> optax.GradientTransformation:
    """Stochastic gradient descent, optionally with momentum / Nesterov, as ``torch.optim.SGD``.

    ``g = grad + weight_decay * p``; with momentum ``buf = g`` on the first
    step, then ``buf = momentum * buf + (1 - dampening) * g``; the step is
    ``p -= lr * buf`` (or ``lr * (g + momentum * buf)`` with ``nesterov``).

    ``momentum`` may be a schedule (e.g. ``OneCycleLR(...).momentum``); torch
    reads ``group['momentum']`` each step the same way.
    """
    where = "SGD"
    lr = _lr(lr, where)
    if not callable(momentum):
        momentum = _non_negative(momentum, "momentum", where)
    dampening = _checks.number(dampening, "dampening", where)
    weight_decay = _non_negative(weight_decay, "weight_decay", where)
    if nesterov and (not callable(momentum) and momentum <= 0 or dampening != 0):
        raise ValueError(f"{where}: Nesterov momentum requires a momentum and zero dampening")
    parts = _head(maximize, weight_decay, mask)
    if callable(momentum) or dampening != 0.0:
        parts.append(T.torch_momentum(momentum, dampening, nesterov))
    elif momentum != 0.0:
        # optax's trace starts from a zero buffer: m * 0 + g == g, torch's first buffer.
        parts.append(optax.trace(decay=momentum, nesterov=nesterov))
    parts.append(optax.scale_by_learning_rate(lr))
    return optax.chain(*parts)


def _betas(betas, where: str):
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise TypeError(f"{where}: betas must be a tuple of two floats, got {betas!r}")
    b1, b2 = betas
    if not callable(b1):
        b1 = _checks.number(b1, "betas[0]", where)
        _check(0.0 <= b1 < 1.0, f"{where}: Invalid beta parameter at index 0: {b1}")
    b2 = _checks.number(b2, "betas[1]", where)
    _check(0.0 <= b2 < 1.0, f"{where}: Invalid beta parameter at index 1: {b2}")
    return b1, b2


def _adam(where, lr, betas, eps, weight_decay, amsgrad, maximize, decoupled, mask):
    lr = _lr(lr, where)
    eps = _non_negative(eps, "eps", where, "epsilon")
    b1, b2 = _betas(betas, where)
    weight_decay = _non_negative(weight_decay, "weight_decay", where)
    parts = _head(maximize, 0.0 if decoupled else weight_decay, mask)
    if amsgrad or callable(b1):
        parts.append(T.scale_by_torch_adam(b1, b2, eps, amsgrad))
    else:
        # m_hat / (sqrt(v_hat) + eps) == torch's (m / bc1) / (sqrt(v) / sqrt(bc2) + eps)
        parts.append(optax.scale_by_adam(b1, b2, eps))
    if decoupled and weight_decay != 0.0:
        # -lr * (adam + wd * p): torch's p *= 1 - lr * wd, then the Adam step.
        parts.append(optax.add_decayed_weights(weight_decay, mask))
    parts.append(optax.scale_by_learning_rate(lr))
    return optax.chain(*parts)


def Adam(lr: ScalarOrSchedule = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
         amsgrad: bool = False, *, maximize: bool = False, decoupled_weight_decay: bool = False,
         mask: Any = None) -> optax.GradientTransformation:
    """Adam as ``torch.optim.Adam`` (eps outside the square root, bias-corrected).

    ``weight_decay`` is coupled (added to the gradient) unless
    ``decoupled_weight_decay=True``, which is AdamW. ``amsgrad`` keeps the
    running max of the raw second moment, as torch. ``betas[0]`` may be a
    schedule (OneCycleLR's momentum cycle).
    """
    return _adam("Adam", lr, betas, eps, weight_decay, amsgrad, maximize, decoupled_weight_decay, mask)


def AdamW(lr: ScalarOrSchedule = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 1e-2,
          amsgrad: bool = False, *, maximize: bool = False, mask: Any = None) -> optax.GradientTransformation:
    """AdamW as ``torch.optim.AdamW``: Adam with decoupled decay ``p *= 1 - lr * weight_decay``.

    The decay is scaled by the (scheduled) learning rate, as in torch, not by
    a separate rate.
    """
    return _adam("AdamW", lr, betas, eps, weight_decay, amsgrad, maximize, True, mask)


def Adagrad(lr: ScalarOrSchedule = 1e-2, lr_decay: float = 0.0, weight_decay: float = 0.0,
            initial_accumulator_value: float = 0.0, eps: float = 1e-10, *, maximize: bool = False,
            mask: Any = None) -> optax.GradientTransformation:
    """Adagrad as ``torch.optim.Adagrad``.

    ``s += g**2`` (from ``initial_accumulator_value``), ``p -= clr * g / (sqrt(s) + eps)``
    with ``clr = lr / (1 + (t - 1) * lr_decay)`` at step ``t``.
    """
    where = "Adagrad"
    lr = _lr(lr, where)
    lr_decay = _non_negative(lr_decay, "lr_decay", where)
    weight_decay = _non_negative(weight_decay, "weight_decay", where)
    init = _non_negative(initial_accumulator_value, "initial_accumulator_value", where)
    eps = _non_negative(eps, "eps", where, "epsilon")
    return optax.chain(
        *_head(maximize, weight_decay, mask),
        T.scale_by_torch_adagrad(init, eps),
        optax.scale_by_learning_rate(T.adagrad_lr(lr, lr_decay)),
    )


def RMSprop(lr: ScalarOrSchedule = 1e-2, alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0.0,
            momentum: float = 0.0, centered: bool = False, *, maximize: bool = False,
            mask: Any = None) -> optax.GradientTransformation:
    """RMSprop as ``torch.optim.RMSprop``.

    ``v = alpha v + (1 - alpha) g**2``; ``avg = sqrt(v - mean_g**2) + eps`` if
    ``centered`` else ``sqrt(v) + eps`` (eps *outside* the root, unlike
    optax's default); with momentum ``buf = momentum buf + g / avg`` and
    ``p -= lr buf``, else ``p -= lr g / avg``.
    """
    where = "RMSprop"
    lr = _lr(lr, where)
    eps = _non_negative(eps, "eps", where, "epsilon")
    momentum = _non_negative(momentum, "momentum", where)
    weight_decay = _non_negative(weight_decay, "weight_decay", where)
    alpha = _non_negative(alpha, "alpha", where)
    scale = optax.scale_by_stddev if centered else optax.scale_by_rms
    parts = [*_head(maximize, weight_decay, mask), scale(decay=alpha, eps=eps, eps_in_sqrt=False)]
    if momentum > 0:
        parts.append(optax.trace(decay=momentum))
    parts.append(optax.scale_by_learning_rate(lr))
    return optax.chain(*parts)


def Adadelta(lr: ScalarOrSchedule = 1.0, rho: float = 0.9, eps: float = 1e-6, weight_decay: float = 0.0,
             *, maximize: bool = False, mask: Any = None) -> optax.GradientTransformation:
    """Adadelta as ``torch.optim.Adadelta``.

    ``v = rho v + (1 - rho) g**2``; ``d = sqrt(u + eps) / sqrt(v + eps) * g``;
    ``u = rho u + (1 - rho) d**2``; ``p -= lr d`` (optax's ``scale_by_adadelta``
    is exactly this).
    """
    where = "Adadelta"
    lr = _lr(lr, where)
    rho = _checks.number(rho, "rho", where)
    _check(0.0 <= rho <= 1.0, f"{where}: Invalid rho value: {rho}")
    eps = _non_negative(eps, "eps", where, "epsilon")
    weight_decay = _non_negative(weight_decay, "weight_decay", where)
    return optax.chain(
        *_head(maximize, weight_decay, mask),
        optax.scale_by_adadelta(rho=rho, eps=eps),
        optax.scale_by_learning_rate(lr),
    )


__all__ = ["SGD", "Adam", "AdamW", "Adagrad", "RMSprop", "Adadelta"]
