"""Loss functions mirroring ``torch.nn.functional``: same names, positional order and defaults.

Every loss takes ``reduction`` in ``{'none', 'mean', 'sum'}``; the deprecated
``size_average`` / ``reduce`` arguments are accepted in their torch positions and
mapped to a reduction exactly as torch's ``_Reduction.legacy_get_string`` does.

Deliberate differences from torch:

* Mismatched ``input`` / ``target`` shapes raise ``ValueError``. torch only
  warns for ``l1_loss`` / ``mse_loss`` / ``smooth_l1_loss`` / ``huber_loss`` and
  then broadcasts, which almost always hides a bug (e.g. ``(N, 1)`` vs ``(N,)``
  silently becomes ``(N, N)``).
* Value checks that need the data (BCE probabilities outside ``[0, 1]``, class
  labels outside ``[0, C)``) run only when the array is concrete, i.e. not
  while being traced by ``jax.jit`` / ``jax.grad`` / ``jax.vmap``: inside a
  trace there is no value to look at and XLA has no exceptions. Under ``jit``
  out-of-range labels therefore behave like ``ignore_index`` (contribute 0 and
  are not counted in the weighted mean) instead of raising.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_derivatives import SymbolicZero

from fcnn import _checks
from fcnn.functional._compiled import compiled

_REDUCTIONS = ("none", "mean", "sum")


# ---------------------------------------------------------------- helpers

def resolve_reduction(reduction, size_average, reduce, where: str) -> str:
    """The reduction a loss applies: ``reduction`` (checked, naming ``where``), or the one the
    deprecated ``size_average`` / ``reduce`` give when either is set. The loss functions and
    the :mod:`fcnn.nn` loss objects both resolve their arguments with it."""
    if size_average is not None or reduce is not None:
        # torch's legacy rule: both default to True; reduce=False wins.
        size_average = True if size_average is None else size_average
        reduce = True if reduce is None else reduce
        if not reduce:
            return "none"
        return "mean" if size_average else "sum"
    return _checks.one_of(reduction, _REDUCTIONS, "reduction", where)


def _reduce(loss: jnp.ndarray, reduction: str) -> jnp.ndarray:
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.mean()
    return loss


def _concrete(x) -> np.ndarray | None:
    """The value of ``x`` as numpy when it is known now (not a tracer), else None."""
    if isinstance(x, jax.core.Tracer):
        return None
    return np.asarray(x)


def _float_pair(input, target, where: str) -> tuple[jnp.ndarray, jnp.ndarray]:
    x = _checks.as_array(input, "input", where)
    t = _checks.as_array(target, "target", where)
    _checks.floating(x, "input", where)
    if x.shape != t.shape:
        raise ValueError(
            f"{where}: Using a target size ({tuple(t.shape)}) that is different to the input size "
            f"({tuple(x.shape)}) is not supported. Please ensure they have the same size."
        )
    return x, t.astype(x.dtype) if not jnp.issubdtype(t.dtype, jnp.floating) else t


def _optional_weight(weight, shape, name: str, where: str, exact: bool = False):
    if weight is None:
        return None
    w = _checks.as_array(weight, name, where)
    if exact:
        if w.shape != tuple(shape):
            raise ValueError(
                f"{where}: {name} must have the same size as input {tuple(shape)}, got {tuple(w.shape)}"
            )
        return w
    try:
        out = np.broadcast_shapes(w.shape, tuple(shape))
    except ValueError:
        out = None
    if out != tuple(shape):
        raise ValueError(
            f"{where}: {name} of shape {tuple(w.shape)} cannot be broadcast to input shape {tuple(shape)}"
        )
    return w


def _weighted(loss, weight, reduction: str, mean_over_weight: bool):
    """Apply an elementwise ``weight`` the way torch's Python-level weighted losses do."""
    if weight is None:
        return _reduce(loss, reduction)
    loss = loss * weight
    if reduction == "mean" and mean_over_weight:
        return loss.sum() / weight.sum()
    return _reduce(loss, reduction)


def _abs(d):
    # |d| whose gradient is sign(d), i.e. 0 at d == 0 as in torch (jnp.abs gives 1).
    return d * jax.lax.stop_gradient(jnp.sign(d))


# ------------------------------------------------------- regression losses

@compiled
def l1_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """Mean absolute error ``|input - target|``.

    Args:
        input, target: arrays of the same shape.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``.
        weight: optional array of input's shape; with ``'mean'`` the result is
            ``sum(weight * |d|) / sum(weight)`` (torch's rule).

    Shape: input ``(*)``, target ``(*)``; output scalar, or ``(*)`` for ``'none'``.
    Gradient at ``input == target`` is 0, as in torch.
    """
    where = "l1_loss"
    reduction = resolve_reduction(reduction, size_average, reduce, where)
    x, t = _float_pair(input, target, where)
    w = _optional_weight(weight, x.shape, "weight", where, exact=True)
    return _weighted(_abs(x - t), w, reduction, mean_over_weight=True)


@compiled
def mse_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """Mean squared error ``(input - target)**2``.

    Same arguments and weighted-mean rule as :func:`l1_loss`. torch warns and
    broadcasts when the shapes differ; fcnn raises ``ValueError``.
    """
    where = "mse_loss"
    reduction = resolve_reduction(reduction, size_average, reduce, where)
    x, t = _float_pair(input, target, where)
    w = _optional_weight(weight, x.shape, "weight", where, exact=True)
    return _weighted(jnp.square(x - t), w, reduction, mean_over_weight=True)


@compiled
def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0):
    """Smooth L1: ``0.5 d**2 / beta`` where ``|d| < beta``, else ``|d| - 0.5 beta``.

    ``beta == 0`` is exactly :func:`l1_loss` (as in torch). Continuous value
    and gradient at ``|d| == beta``.
    """
    where = "smooth_l1_loss"
    reduction = resolve_reduction(reduction, size_average, reduce, where)
    beta = _checks.number(beta, "beta", where, minimum=0)
    x, t = _float_pair(input, target, where)
    d = x - t
    a = _abs(d)
    if beta == 0.0:
        return _reduce(a, reduction)
    loss = jnp.where(a < beta, 0.5 * d * d / beta, a - 0.5 * beta)
    return _reduce(loss, reduction)


@compiled
def huber_loss(input, target, reduction="mean", delta=1.0, weight=None):
    """Huber: ``0.5 d**2`` where ``|d| < delta``, else ``delta (|d| - 0.5 delta)``.

    ``delta`` must be positive. With ``weight`` and ``'mean'`` the result is
    ``mean(weight * loss)`` (torch divides by the element count here, unlike
    l1/mse which divide by ``sum(weight)``).
    """
    where = "huber_loss"
    reduction = _checks.one_of(reduction, _REDUCTIONS, "reduction", where)
    delta = _checks.number(delta, "delta", where, minimum=0)
    if delta == 0.0:
        raise ValueError(f"{where}: delta must be positive, got {delta!r}")
    x, t = _float_pair(input, target, where)
    w = _optional_weight(weight, x.shape, "weight", where, exact=True)
    d = x - t
    a = _abs(d)
    loss = jnp.where(a < delta, 0.5 * d * d, delta * (a - 0.5 * delta))
    return _weighted(loss, w, reduction, mean_over_weight=False)


# ------------------------------------------------------ binary classification

_LOG_FLOOR = -100.0  # torch clamps log(p) and log(1 - p) at -100 so BCE stays finite at 0 and 1


@jax.custom_jvp
def _bce(x, t):
    return -(t * jnp.maximum(jnp.log(x), _LOG_FLOOR) + (1 - t) * jnp.maximum(jnp.log1p(-x), _LOG_FLOOR))


def _bce_jvp(primals, tangents):
    # torch's closed-form derivative, not that of the clamped logs: it stays
    # finite at x in {0, 1} thanks to the 1e-12 floor on x (1 - x). Written
    # linearly in the tangents so that JAX transposes it into torch's gradient
    # ``g * (x - t) / max(x (1 - x), 1e-12)``, in that order of operations.
    x, t = primals
    dx, dt = tangents
    out = _bce(x, t)
    # jax.checkpoint: reverse mode saves x and t only and recomputes the
    # coefficients in the backward pass, as the custom VJP did.
    parts = []  # JAX calls this rule only when at least one tangent is not zero
    if type(dx) is not SymbolicZero:
        parts.append(jax.checkpoint(_bce_dx, prevent_cse=False)(dx, x, t))
    if type(dt) is not SymbolicZero:
        parts.append(jax.checkpoint(_bce_dt, prevent_cse=False)(dt, x))
    return out, sum(parts[1:], parts[0])


def _bce_dx(dx, x, t):
    return dx / jnp.maximum((1 - x) * x, 1e-12) * (x - t)


def _bce_dt(dt, x):
    return dt * (jnp.log1p(-x) - jnp.log(x))


_bce.defjvp(_bce_jvp, symbolic_zeros=True)


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None, reduction="mean"):
    """Binary cross entropy on probabilities: ``-w [t log p + (1 - t) log(1 - p)]``.

    Args:
        input: probabilities in ``[0, 1]``, any shape.
        target: same shape as input (floats, usually 0/1).
        weight: optional rescaling, broadcastable to input's shape.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'`` (``'mean'`` is the plain
            mean over elements, weights included, as in torch).

    Shape: input ``(*)``, target ``(*)``; output scalar, or ``(*)`` for ``'none'``.

    As torch: each log is clamped at -100, so the loss is finite at p = 0 or 1,
    and the input gradient is ``(p - t) / max(p (1 - p), 1e-12)``. Inputs or
    targets outside ``[0, 1]`` raise ``ValueError`` when they are concrete
    (not traced; under ``jit`` no check is possible).
    """
    value = _concrete(input)
    if value is not None and not np.all((value >= 0) & (value <= 1)):
        raise ValueError("binary_cross_entropy: all elements of input should be between 0 and 1")
    value = _concrete(target)
    if value is not None and not np.all((value >= 0) & (value <= 1)):
        raise ValueError("binary_cross_entropy: all elements of target should be between 0 and 1")
    return _binary_cross_entropy(input, target, weight, size_average, reduce, reduction)


@compiled
def _binary_cross_entropy(input, target, weight, size_average, reduce, reduction):
    where = "binary_cross_entropy"
    reduction = resolve_reduction(reduction, size_average, reduce, where)
    x, t = _float_pair(input, target, where)
    w = _optional_weight(weight, x.shape, "weight", where)
    return _weighted(_bce(x, t), w, reduction, mean_over_weight=False)


@compiled
def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None,
                                     reduction="mean", pos_weight=None):
    """Sigmoid + binary cross entropy in one numerically stable expression.

    ``loss = (1 - t) x - (1 + (pos_weight - 1) t) log_sigmoid(x)``, times ``weight``.

    Args:
        input: logits, any shape ``(*)``.
        target: same shape, floats in ``[0, 1]``.
        weight: optional, broadcastable to input's shape.
        pos_weight: optional weight of positive examples, broadcastable to
            input's shape (usually ``(C,)`` for the last, class, dimension).
    """
    where = "binary_cross_entropy_with_logits"
    reduction = resolve_reduction(reduction, size_average, reduce, where)
    x, t = _float_pair(input, target, where)
    w = _optional_weight(weight, x.shape, "weight", where)
    pw = _optional_weight(pos_weight, x.shape, "pos_weight", where)
    log_sig = jax.nn.log_sigmoid(x)
    if pw is None:
        loss = (1 - t) * x - log_sig
    else:
        loss = (1 - t) * x - (1 + (pw - 1) * t) * log_sig
    return _weighted(loss, w, reduction, mean_over_weight=False)


# -------------------------------------------------- multi-class classification

def _class_input(input, where: str) -> tuple[jnp.ndarray, bool]:
    """Input ``(C,)``, ``(N, C)`` or ``(N, C, d1, ...)`` -> batched, and whether a batch dim was added."""
    x = _checks.as_array(input, "input", where)
    _checks.floating(x, "input", where)
    if x.ndim == 0:
        raise ValueError(f"{where}: input must have at least 1 dimension (C,), got a scalar")
    if x.ndim == 1:
        return x[None], True
    return x, False


def _class_weight(weight, n_classes: int, where: str):
    if weight is None:
        return None
    w = _checks.as_array(weight, "weight", where)
    if w.shape != (n_classes,):
        raise ValueError(
            f"{where}: weight tensor should be defined either for all {n_classes} classes or no classes "
            f"but got weight tensor of shape: {list(w.shape)}"
        )
    return w


def _index_target(target, x: jnp.ndarray, unbatched: bool, ignore_index: int, where: str) -> jnp.ndarray:
    t = _checks.as_array(target, "target", where)
    if not jnp.issubdtype(t.dtype, jnp.integer):
        raise TypeError(
            f"{where}: target must hold integer class indices (or, for cross_entropy, class "
            f"probabilities of input's shape {tuple(x.shape[1:] if unbatched else x.shape)}), "
            f"got dtype {t.dtype} and shape {tuple(t.shape)}"
        )
    expected = (x.shape[0],) + x.shape[2:]
    got = t.shape if not unbatched else (1,) + t.shape
    if got != expected:
        shown = expected[1:] if unbatched else expected
        raise ValueError(
            f"{where}: expected target of shape {tuple(shown)} for input of shape "
            f"{tuple(x.shape[1:] if unbatched else x.shape)}, got target of shape {tuple(t.shape)}"
        )
    return t.reshape(got)


def _check_labels(input, target, ignore_index: int, where: str) -> None:
    """Raise for class labels outside ``[0, C)`` (other than ``ignore_index``), when the labels are concrete.

    Runs before the compiled loss (:mod:`fcnn.functional._compiled`), which
    only ever sees traced labels.
    """
    value = _concrete(target)
    shape = np.shape(input)
    if value is None or not np.issubdtype(value.dtype, np.integer) or len(shape) == 0:
        return
    n_classes = shape[0] if len(shape) == 1 else shape[1]
    bad = (value != ignore_index) & ((value < 0) | (value >= n_classes))
    if bad.any():
        raise ValueError(
            f"{where}: target {int(value[bad].flat[0])} is out of bounds: class indices must be in "
            f"[0, {n_classes}) or equal to ignore_index={ignore_index}"
        )


def _nll(logp, t, w, ignore_index: int, reduction: str, unbatched: bool, label_smoothing: float = 0.0):
    """NLL over class axis 1 of ``logp`` (N, C, *d) with integer targets ``t`` (N, *d)."""
    # Out-of-range labels can only reach here from a caller's trace (concrete
    # ones raise in _check_labels); they are treated as ignored.
    valid = (t != ignore_index) & (t >= 0) & (t < logp.shape[1])
    safe = jnp.where(valid, t, 0)
    picked = jnp.take_along_axis(logp, safe[:, None], axis=1)[:, 0]
    tw = jnp.ones_like(picked) if w is None else w[safe]
    tw = jnp.where(valid, tw, 0)
    loss = -tw * picked
    if label_smoothing > 0.0:
        # torch: (1 - eps) * nll + eps / C * sum_c(-w_c logp_c), the second term
        # reduced with the same denominator (the sum of target weights).
        wb = 1.0 if w is None else w.reshape((1, -1) + (1,) * (logp.ndim - 2))
        smooth = jnp.where(valid, -(logp * wb).sum(axis=1), 0)
        eps_c = label_smoothing / logp.shape[1]
        loss = (1 - label_smoothing) * loss + eps_c * smooth
    if reduction == "none":
        return loss[0] if unbatched else loss
    if reduction == "sum":
        return loss.sum()
    total = tw.sum()
    # All targets ignored: torch returns NaN (0/0) but a zero gradient; the
    # safe denominator keeps inf * 0 out of the backward pass.
    return jnp.where(total == 0, jnp.nan, loss.sum() / jnp.where(total == 0, 1, total))


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
             reduction="mean"):
    """Negative log-likelihood of log-probabilities: ``-w[t] * input[t]``.

    Args:
        input: log-probabilities ``(C,)``, ``(N, C)`` or ``(N, C, d1, ..., dK)``.
        target: integer classes ``()``, ``(N,)`` or ``(N, d1, ..., dK)`` in
            ``[0, C)`` or equal to ``ignore_index``.
        weight: optional ``(C,)`` class weights.
        ignore_index: targets equal to it contribute 0 and are not counted.
        reduction: ``'mean'`` is ``sum(loss) / sum(weight[t])`` over
            non-ignored targets (torch's weighted mean; NaN if all are ignored).

    Shape: output scalar, or target's shape for ``'none'``.
    """
    _check_labels(input, target, ignore_index, "nll_loss")
    return _nll_loss(input, target, weight, size_average, ignore_index, reduce, reduction)


@compiled
def _nll_loss(input, target, weight, size_average, ignore_index, reduce, reduction):
    where = "nll_loss"
    reduction = resolve_reduction(reduction, size_average, reduce, where)
    x, unbatched = _class_input(input, where)
    w = _class_weight(weight, x.shape[1], where)
    t = _index_target(target, x, unbatched, ignore_index, where)
    return _nll(x, t, w, ignore_index, reduction, unbatched)


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
                  reduction="mean", label_smoothing=0.0):
    """Cross entropy of logits: ``log_softmax`` over the class dimension + NLL.

    Args:
        input: unnormalized logits ``(C,)``, ``(N, C)`` or ``(N, C, d1, ..., dK)``.
        target: either integer class indices of shape ``()``, ``(N,)`` or
            ``(N, d1, ..., dK)``, or class probabilities (floats) of input's shape.
        weight: optional ``(C,)`` class weights.
        ignore_index: index targets equal to it are ignored (index targets only).
        reduction: for index targets ``'mean'`` divides by the sum of the
            weights of the non-ignored targets; for probability targets by the
            number of elements ``N * d1 * ... * dK`` (torch's rules).
        label_smoothing: ``eps`` in ``[0, 1]``; the target becomes
            ``(1 - eps) * onehot + eps / C`` (with weights and ignore_index as in torch).

    Shape: output scalar, or ``()``, ``(N,)``, ``(N, d1, ..., dK)`` for ``'none'``.
    """
    _check_labels(input, target, ignore_index, "cross_entropy")
    return _cross_entropy(input, target, weight, size_average, ignore_index, reduce, reduction, label_smoothing)


@compiled
def _cross_entropy(input, target, weight, size_average, ignore_index, reduce, reduction, label_smoothing):
    where = "cross_entropy"
    reduction = resolve_reduction(reduction, size_average, reduce, where)
    label_smoothing = _checks.probability(label_smoothing, "label_smoothing", where)
    x, unbatched = _class_input(input, where)
    n_classes = x.shape[1]
    w = _class_weight(weight, n_classes, where)
    logp = jax.nn.log_softmax(x, axis=1)
    t_raw = _checks.as_array(target, "target", where)
    if jnp.issubdtype(t_raw.dtype, jnp.floating):
        in_shape = x.shape[1:] if unbatched else x.shape
        if t_raw.shape != in_shape:
            raise ValueError(
                f"{where}: a floating-point target holds class probabilities and must have input's shape "
                f"{tuple(in_shape)}, got target of shape {tuple(t_raw.shape)}"
            )
        p = t_raw[None] if unbatched else t_raw
        p = p.astype(x.dtype)
        if label_smoothing > 0.0:
            p = p * (1 - label_smoothing) + label_smoothing / n_classes
        wb = 1.0 if w is None else w.reshape((1, -1) + (1,) * (x.ndim - 2))
        loss = -(logp * p * wb).sum(axis=1)
        if reduction == "none":
            return loss[0] if unbatched else loss
        return _reduce(loss, reduction)
    t = _index_target(t_raw, x, unbatched, ignore_index, where)
    return _nll(logp, t, w, ignore_index, reduction, unbatched, label_smoothing)


__all__ = [
    "binary_cross_entropy", "binary_cross_entropy_with_logits", "cross_entropy", "nll_loss",
    "l1_loss", "mse_loss", "smooth_l1_loss", "huber_loss",
]
