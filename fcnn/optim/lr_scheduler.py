"""torch.optim.lr_scheduler as optax schedules: ``count -> lr`` with torch's exact values.

Every schedule takes the base learning rate where torch takes an optimizer
and is a callable ``count -> lr`` (an optax schedule): ``sched(k)`` is the LR
``optimizer.param_groups[0]["lr"]`` holds after ``k`` calls to torch's
``scheduler.step()``. Pass it as an optimizer's ``lr``; optax evaluates it at
the number of updates done so far::

    sched = lr_scheduler.CosineAnnealingLR(0.1, T_max=50, steps_per_epoch=len(loader))
    opt = fcnn.optim.SGD(sched, momentum=0.9)

Schedules are built from jnp ops only, so they accept traced int counts
(inside ``jax.jit``) and arrays of counts (``sched(jnp.arange(n))`` gives the
whole sequence). Values are computed in closed form (torch mostly steps a
recursion; both agree up to float64 rounding, which the tests check) in the
default float dtype, with care for float32 accuracy (powers as
``exp(n * log(gamma))`` with a float64 ``log``, phases reduced in integers, and
cosine and one-cycle anneals evaluated from the end nearer zero, so that LRs
annealed to tiny values keep float32's relative accuracy).

``steps_per_epoch`` (keyword, every epoch-based schedule): makes a per-step
schedule whose value at step ``s`` is the epoch schedule at
``s // steps_per_epoch``, i.e. torch's per-epoch ``scheduler.step()`` while
optax counts updates.

:class:`ReduceLROnPlateau` depends on a metric, so it is an optax
``GradientTransformation`` with its own state, fed the metric once per epoch
(see its docstring).

Deliberate differences from torch: one param group (one ``lr``; use
``optax.multi_transform`` for more); no ``last_epoch`` (a schedule is a
function of the count, so resuming needs nothing); stricter argument checks
(e.g. ``T_max`` must be a positive int) where torch would divide by zero or
loop forever later.
"""

from __future__ import annotations

import bisect
import copy
import math
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from fcnn import _checks

__all__ = [
    "Schedule", "LambdaLR", "MultiplicativeLR", "StepLR", "MultiStepLR", "ConstantLR", "LinearLR",
    "ExponentialLR", "PolynomialLR", "CosineAnnealingLR", "CosineAnnealingWarmRestarts",
    "OneCycleLR", "SequentialLR", "ReduceLROnPlateau", "ReduceLROnPlateauState",
]

_INT32_MAX = 2**31 - 1


# ----------------------------------------------------------------------------- argument checks

def _between(value: Any, name: str, where: str, low: float, high: float, open_low: bool = False) -> float:
    v = _checks.number(value, name, where)
    if not (low < v if open_low else low <= v) or v > high:
        bracket = "(" if open_low else "["
        raise ValueError(f"{where}: {name} expected in {bracket}{low}, {high}], got {v!r}")
    return v


def _milestones(values: Any, where: str) -> tuple[int, ...]:
    if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray, range)):
        raise TypeError(f"{where}: milestones must be a list of ints, got {values!r}")
    out = tuple(_checks.integer(m, "milestones", where, 0) for m in values)
    if any(b < a for a, b in zip(out, out[1:])):
        raise ValueError(f"{where}: milestones must be increasing, got {list(out)}")
    return out


def _lr_lambda(fn: Any, where: str) -> Callable:
    if not callable(fn):
        raise TypeError(f"{where}: lr_lambda should be a function, but got {type(fn).__name__}")
    return fn


def _floatx():
    """The default float dtype: float32, or float64 under ``jax_enable_x64``."""
    return jax.dtypes.canonicalize_dtype(jnp.float64)


def _count(count: Any) -> jnp.ndarray:
    count = jnp.asarray(count)
    if not jnp.issubdtype(count.dtype, jnp.integer):
        raise TypeError(f"schedule: count must be an integer (array), got dtype {count.dtype}")
    return count


def _power(gamma: float, n: jnp.ndarray) -> jnp.ndarray:
    """``gamma ** n`` for integer ``n``, accurate in float32.

    ``exp(n * log(gamma))`` with ``log`` taken in float64 keeps the relative
    error near ``|n log gamma| * eps``, where a float32 ``gamma ** n`` carries
    ``n`` times the rounding error of ``gamma`` itself.
    """
    n = n.astype(_floatx())
    if gamma == 0.0:
        return jnp.where(n == 0, 1.0, 0.0).astype(n.dtype)
    magnitude = jnp.exp(n * math.log(abs(gamma)))
    return magnitude if gamma > 0 else jnp.where(n % 2 == 1, -magnitude, magnitude)


def _offset(k: jnp.ndarray, point: float, dtype) -> jnp.ndarray:
    """``k - point`` for an int array ``k`` and a Python float ``point``, accurate also where they are close.

    The integer parts are subtracted exactly in integers; the fraction of ``point``
    enters as a ``hi + lo`` pair in ``dtype``, so ``1 - 0.9999`` keeps its digits in float32.
    """
    whole = math.floor(point)
    fraction = point - whole  # exact in float64
    hi = float(np.asarray(fraction, dtype))
    return ((k - whole).astype(dtype) - hi) - (fraction - hi)


def _anneal(v0: float, v1: float, from_v0: Callable[[], jnp.ndarray], from_v1: Callable[[], jnp.ndarray],
            cosine: bool) -> jnp.ndarray:
    """The anneal from ``v0`` to ``v1`` at the fraction ``f`` of the way: linear, ``v0 + (v1 - v0) * f``, or
    cosine, ``v0 + (v1 - v0) * (1 - cos(pi * f)) / 2 = v0 + (v1 - v0) * sin(pi/2 * f) ** 2``.

    ``from_v0()`` gives ``f`` and ``from_v1()`` gives ``1 - f``, each computed exactly
    by the caller (from integers); only the one for the end whose value is nearer
    zero is used, with ``cos(pi/2 * f) = sin(pi/2 * (1 - f))``. Both terms then have
    one sign and nothing cancels: the value keeps float32's relative accuracy even
    where it is tiny (the final LR of a cycle, the end of a cosine to 0), where a
    float32 ``v0 + (v1 - v0) * f`` or ``cos(pi * f)`` near ``f = 1`` loses
    ``eps * |v0 / value|``.
    """
    near, far, t = (v0, v1, from_v0()) if abs(v0) <= abs(v1) else (v1, v0, from_v1())
    weight = jnp.square(jnp.sin(t * (math.pi / 2))) if cosine else t
    return near + (far - near) * weight


# ----------------------------------------------------------------------------- base class

class Schedule:
    """An optax schedule ``count -> lr`` reproducing a torch LR scheduler.

    Subclasses set their hyper-parameters and implement ``_at(epoch)`` for an
    int array of epochs (the number of torch ``scheduler.step()`` calls).
    """

    def __init__(self, steps_per_epoch: int | None = None) -> None:
        where = type(self).__name__
        self.steps_per_epoch = None if steps_per_epoch is None else _checks.integer(steps_per_epoch, "steps_per_epoch", where, 1)

    def __call__(self, count) -> jnp.ndarray:
        count = _count(count)
        if self.steps_per_epoch is not None:
            count = count // self.steps_per_epoch
        return self._at(count).astype(_floatx())

    def _set_lr(self, lr: Any) -> str:
        """Check and store the base learning rate ``lr``; returns the class name argument errors start with."""
        where = type(self).__name__
        self.lr = _checks.learning_rate(lr, where)
        return where

    def _at(self, epoch: jnp.ndarray) -> jnp.ndarray:
        raise NotImplementedError

    def _restarted(self, previous_lr: Callable[[], float]) -> Callable:
        """The schedule :class:`SequentialLR` runs from a later milestone on.

        torch resets the scheduler with ``_update_lr(0)``: its closed form at
        epoch 0 where it has one, else ``get_lr()`` on the current LR, then
        steps it on. For most schedules that is the schedule itself from 0;
        the exceptions override this.
        """
        del previous_lr
        return self

    def __repr__(self) -> str:
        args = {k: v for k, v in vars(self).items() if not k.startswith("_") and k != "steps_per_epoch"}
        if self.steps_per_epoch is not None:
            args["steps_per_epoch"] = self.steps_per_epoch
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in args.items())})"


# ----------------------------------------------------------------------------- lambda schedules

def _traceable(fn: Callable) -> bool:
    """Whether ``fn`` runs on a traced int epoch (jnp ops / plain arithmetic)."""
    try:
        jax.eval_shape(fn, jax.ShapeDtypeStruct((), jnp.int32))
    except Exception:  # any failure: fall back to calling it on the host like torch does
        return False
    return True


def _on_host(fn: Callable[[np.ndarray], np.ndarray], epoch: jnp.ndarray) -> jnp.ndarray:
    """Evaluate ``fn`` on the host with concrete epochs, from inside or outside ``jit``."""
    dtype = _floatx()

    def callback(e):
        return np.asarray(fn(np.asarray(e)), dtype=dtype)

    return jax.pure_callback(callback, jax.ShapeDtypeStruct(epoch.shape, dtype), epoch,
                             vmap_method="expand_dims")


def _lambda_factor(fn: Callable, epoch: jnp.ndarray, traceable: bool) -> jnp.ndarray:
    if traceable:
        return jnp.broadcast_to(jnp.asarray(fn(epoch), _floatx()), epoch.shape)
    return _on_host(np.vectorize(lambda e: float(fn(int(e))), otypes=[np.float64]), epoch)


class LambdaLR(Schedule):
    """``lr * lr_lambda(epoch)``, as ``torch.optim.lr_scheduler.LambdaLR``.

    Args:
        lr: the base learning rate (the optimizer's ``lr`` in torch).
        lr_lambda: a function of the epoch (an int) giving the factor.
        steps_per_epoch: see the module docstring.

    ``lr_lambda`` written with jnp ops or plain arithmetic (``lambda e: 0.95 ** e``)
    is traced into the compiled program and evaluated in the default float
    dtype. Any other Python function (``min``, ``math.cos``, ``if`` on the
    epoch...) is detected once at construction and called on the host through
    ``jax.pure_callback`` with the epoch as a Python int, exactly as torch
    calls it (works under ``jit``/``vmap``; costs a host round trip per call).
    """

    def __init__(self, lr: float, lr_lambda: Callable[[int], float], *, steps_per_epoch: int | None = None) -> None:
        super().__init__(steps_per_epoch)
        where = self._set_lr(lr)
        self.lr_lambda = _lr_lambda(lr_lambda, where)
        self._traceable = _traceable(lr_lambda)

    def _at(self, epoch):
        return self.lr * _lambda_factor(self.lr_lambda, epoch, self._traceable)


class MultiplicativeLR(Schedule):
    """``lr * prod_{j=1..epoch} lr_lambda(j)``, as ``torch.optim.lr_scheduler.MultiplicativeLR``.

    Args and the treatment of ``lr_lambda``: as :class:`LambdaLR`. The value
    at epoch ``k`` costs ``k`` evaluations of ``lr_lambda`` when traced (a
    ``fori_loop``); on the host the running products are cached.

    In :class:`SequentialLR` after a milestone it continues from the LR the
    previous schedule left, times ``lr_lambda(0)`` (torch's ``get_lr()`` on the
    current LR; it has no closed form).
    """

    def __init__(self, lr: float, lr_lambda: Callable[[int], float], *, steps_per_epoch: int | None = None) -> None:
        super().__init__(steps_per_epoch)
        where = self._set_lr(lr)
        self.lr_lambda = _lr_lambda(lr_lambda, where)
        self._first = 1  # the first epoch whose factor applies: torch's initial step applies none
        self._traceable = _traceable(lr_lambda)
        self._products = [1.0]  # host cache: products over j in [first, first + i)

    def _host_product(self, epoch: int) -> float:
        while len(self._products) <= epoch - self._first + 1:
            j = self._first + len(self._products) - 1
            self._products.append(self._products[-1] * float(self.lr_lambda(j)))
        return self._products[max(epoch - self._first + 1, 0)]

    def _at(self, epoch):
        if not self._traceable:
            return self.lr * _on_host(np.vectorize(lambda e: self._host_product(int(e)), otypes=[np.float64]), epoch)

        def body(j, acc):
            return jnp.where(j <= epoch, acc * _lambda_factor(self.lr_lambda, j, True), acc)

        ones = jnp.ones(epoch.shape, _floatx())
        return self.lr * jax.lax.fori_loop(self._first, jnp.max(epoch, initial=0) + 1, body, ones)

    def _restarted(self, previous_lr):
        restarted = copy.copy(self)
        restarted.lr, restarted._first, restarted._products = previous_lr(), 0, [1.0]
        return restarted


# ----------------------------------------------------------------------------- step-wise decays

class StepLR(Schedule):
    """``lr * gamma ** (epoch // step_size)``, as ``torch.optim.lr_scheduler.StepLR``.

    Args:
        lr: the base learning rate.
        step_size: period of the decay, a positive int.
        gamma: multiplicative factor of the decay.
        steps_per_epoch: see the module docstring.
    """

    def __init__(self, lr: float, step_size: int, gamma: float = 0.1, *, steps_per_epoch: int | None = None) -> None:
        super().__init__(steps_per_epoch)
        where = self._set_lr(lr)
        self.step_size = _checks.integer(step_size, "step_size", where, 1)
        self.gamma = _checks.number(gamma, "gamma", where)

    def _at(self, epoch):
        return self.lr * _power(self.gamma, epoch // self.step_size)


class MultiStepLR(Schedule):
    """``lr * gamma ** (number of milestones <= epoch)``, as ``torch.optim.lr_scheduler.MultiStepLR``.

    Args:
        lr: the base learning rate.
        milestones: epoch indices, non-decreasing ints; a milestone listed
            ``n`` times decays by ``gamma ** n`` (as torch's Counter does).
        gamma: multiplicative factor of the decay.
        steps_per_epoch: see the module docstring.
    """

    def __init__(self, lr: float, milestones: Sequence[int], gamma: float = 0.1, *,
                 steps_per_epoch: int | None = None) -> None:
        super().__init__(steps_per_epoch)
        where = self._set_lr(lr)
        self.milestones = _milestones(milestones, where)
        self.gamma = _checks.number(gamma, "gamma", where)

    def _at(self, epoch):
        # Exact float64 values per number of passed milestones; the count only indexes them.
        table = jnp.asarray([self.lr * self.gamma**n for n in range(len(self.milestones) + 1)], _floatx())
        if not self.milestones:
            return jnp.broadcast_to(table[0], epoch.shape)
        return table[jnp.searchsorted(jnp.asarray(self.milestones, epoch.dtype), epoch, side="right")]


class ExponentialLR(Schedule):
    """``lr * gamma ** epoch``, as ``torch.optim.lr_scheduler.ExponentialLR``.

    Args:
        lr: the base learning rate.
        gamma: multiplicative factor applied every epoch.
        steps_per_epoch: see the module docstring.
    """

    def __init__(self, lr: float, gamma: float, *, steps_per_epoch: int | None = None) -> None:
        super().__init__(steps_per_epoch)
        where = self._set_lr(lr)
        self.gamma = _checks.number(gamma, "gamma", where)

    def _at(self, epoch):
        return self.lr * _power(self.gamma, epoch)


class ConstantLR(Schedule):
    """``lr * factor`` until epoch ``total_iters``, then ``lr``; as ``torch.optim.lr_scheduler.ConstantLR``.

    Args:
        lr: the base learning rate.
        factor: in [0, 1]; 0 only with ``total_iters=0`` (torch divides by it
            when it undoes the factor).
        total_iters: non-negative int. With 0, stepping torch never undoes the
            factor (its check for ``epoch == total_iters`` comes after the
            epoch-0 branch), so the LR stays ``lr * factor``; we reproduce that.
        steps_per_epoch: see the module docstring.
    """

    def __init__(self, lr: float, factor: float = 1.0 / 3, total_iters: int = 5, *,
                 steps_per_epoch: int | None = None) -> None:
        super().__init__(steps_per_epoch)
        where = self._set_lr(lr)
        self.factor = _between(factor, "factor", where, 0.0, 1.0)
        self.total_iters = _checks.integer(total_iters, "total_iters", where, 0)
        if self.factor == 0.0 and self.total_iters > 0:
            raise ValueError(f"{where}: factor=0 cannot be undone at total_iters={self.total_iters} "
                             "(torch raises ZeroDivisionError there)")

    def _at(self, epoch):
        if self.total_iters == 0:
            return jnp.full(epoch.shape, self.lr * self.factor)
        return jnp.where(epoch >= self.total_iters, self.lr, self.lr * self.factor)

    def _restarted(self, previous_lr):
        # torch's closed form at epoch 0 with total_iters=0 is the full lr, and nothing changes it later.
        return (lambda epoch: jnp.full(jnp.shape(epoch), self.lr, _floatx())) if self.total_iters == 0 else self


class LinearLR(Schedule):
    """``lr * (start_factor + (end_factor - start_factor) * min(epoch, total_iters) / total_iters)``.

    As ``torch.optim.lr_scheduler.LinearLR``.

    Args:
        lr: the base learning rate.
        start_factor: in (0, 1].
        end_factor: in [0, 1].
        total_iters: non-negative int; with 0 the LR stays ``lr * start_factor``
            (what stepping torch gives).
        steps_per_epoch: see the module docstring.
    """

    def __init__(self, lr: float, start_factor: float = 1.0 / 3, end_factor: float = 1.0, total_iters: int = 5, *,
                 steps_per_epoch: int | None = None) -> None:
        super().__init__(steps_per_epoch)
        where = self._set_lr(lr)
        self.start_factor = _between(start_factor, "start_factor", where, 0.0, 1.0, open_low=True)
        self.end_factor = _between(end_factor, "end_factor", where, 0.0, 1.0)
        self.total_iters = _checks.integer(total_iters, "total_iters", where, 0)

    def _at(self, epoch):
        if self.total_iters == 0:
            return jnp.full(epoch.shape, self.lr * self.start_factor)
        progress = jnp.minimum(epoch, self.total_iters).astype(_floatx()) / self.total_iters
        return self.lr * (self.start_factor + (self.end_factor - self.start_factor) * progress)

    def _restarted(self, previous_lr):
        if self.total_iters == 0:
            raise ValueError("SequentialLR: LinearLR with total_iters=0 cannot start at a later milestone "
                             "(torch's closed form divides by total_iters)")
        return self


class PolynomialLR(Schedule):
    """``lr * (1 - min(epoch, total_iters) / total_iters) ** power``, as ``torch.optim.lr_scheduler.PolynomialLR``.

    Args:
        lr: the base learning rate.
        total_iters: non-negative int (0 keeps ``lr``, as stepping torch does).
        power: non-negative float.
        steps_per_epoch: see the module docstring.
    """

    def __init__(self, lr: float, total_iters: int = 5, power: float = 1.0, *,
                 steps_per_epoch: int | None = None) -> None:
        super().__init__(steps_per_epoch)
        where = self._set_lr(lr)
        self.total_iters = _checks.integer(total_iters, "total_iters", where, 0)
        self.power = _checks.number(power, "power", where)
        if self.power < 0:
            raise ValueError(f"{where}: power must be non-negative, got {self.power!r}")

    def _at(self, epoch):
        if self.total_iters == 0:
            return jnp.full(epoch.shape, self.lr)
        remaining = (self.total_iters - jnp.minimum(epoch, self.total_iters)).astype(_floatx()) / self.total_iters
        # A positive power too small for float32 (e.g. 1e-70) would become 0 and
        # give 0**0 = 1 at the end; torch (float64) gives 0 there.
        factor = remaining**self.power
        if self.power > 0:
            factor = jnp.where(remaining == 0, 0.0, factor)
        return self.lr * factor


# ----------------------------------------------------------------------------- cosine schedules

class CosineAnnealingLR(Schedule):
    """Cosine annealing from ``lr`` to ``eta_min`` in ``T_max`` epochs, as torch's ``CosineAnnealingLR``.

    ``eta_min + (lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2``.

    Past ``T_max`` torch keeps stepping its recursion, which climbs back to
    ``lr`` at ``2 * T_max`` and oscillates with period ``2 * T_max`` (it does
    not stay at ``eta_min`` as optax's ``cosine_decay_schedule`` does); this
    schedule gives that same periodic sequence.

    Args:
        lr: the base learning rate.
        T_max: half period, a positive int.
        eta_min: minimum learning rate.
        steps_per_epoch: see the module docstring.
    """

    def __init__(self, lr: float, T_max: int, eta_min: float = 0.0, *, steps_per_epoch: int | None = None) -> None:
        super().__init__(steps_per_epoch)
        where = self._set_lr(lr)
        self.T_max = _checks.integer(T_max, "T_max", where, 1)
        self.eta_min = _checks.number(eta_min, "eta_min", where)

    def _at(self, epoch):
        t, dtype = self.T_max, _floatx()
        to_min = jnp.abs(epoch % (2 * t) - t)  # epochs to (or past) the minimum: the same value either side
        return _anneal(self.lr, self.eta_min, lambda: (t - to_min).astype(dtype) / t,
                       lambda: to_min.astype(dtype) / t, cosine=True)


class CosineAnnealingWarmRestarts(Schedule):
    """SGDR, as ``torch.optim.lr_scheduler.CosineAnnealingWarmRestarts`` stepped without ``epoch``.

    ``eta_min + (lr - eta_min) * (1 + cos(pi * T_cur / T_i)) / 2`` where the
    ``i``-th cycle lasts ``T_i = T_0 * T_mult ** i`` epochs and ``T_cur``
    counts epochs since its start.

    Args:
        lr: the base learning rate.
        T_0: length of the first cycle, a positive int.
        T_mult: growth of the cycle length, an int >= 1.
        eta_min: minimum learning rate.
        steps_per_epoch: see the module docstring (torch's fractional
            ``step(epoch + i / iters)`` form is not reproduced; this gives
            the restart-per-epoch schedule, held within an epoch).
    """

    def __init__(self, lr: float, T_0: int, T_mult: int = 1, eta_min: float = 0.0, *,
                 steps_per_epoch: int | None = None) -> None:
        super().__init__(steps_per_epoch)
        where = self._set_lr(lr)
        if not _checks.is_int(T_0) or T_0 <= 0:
            raise ValueError(f"{where}: Expected positive integer T_0, but got {T_0!r}")
        if not _checks.is_int(T_mult) or T_mult < 1:
            raise ValueError(f"{where}: Expected integer T_mult >= 1, but got {T_mult!r}")
        self.T_0, self.T_mult = int(T_0), int(T_mult)
        self.eta_min = _checks.number(eta_min, "eta_min", where)
        # Cycle starts and lengths; geometric growth keeps the table short (<= 32 rows within int32).
        # Padding to 32 rows with unreachable starts gives every instance the same shapes.
        self._starts, self._lengths = [0], [self.T_0]
        while self.T_mult > 1 and self._starts[-1] + self._lengths[-1] <= _INT32_MAX:
            self._starts.append(self._starts[-1] + self._lengths[-1])
            self._lengths.append(self._lengths[-1] * self.T_mult)
        pad = 32 - len(self._starts)
        self._starts += [_INT32_MAX] * pad
        self._lengths += [self._lengths[-1]] * pad

    def _at(self, epoch):
        if self.T_mult == 1:
            t_cur, t_i = epoch % self.T_0, self.T_0
        else:
            cycle = jnp.searchsorted(jnp.asarray(self._starts, epoch.dtype), epoch, side="right") - 1
            t_cur = epoch - jnp.asarray(self._starts, epoch.dtype)[cycle]
            t_i = jnp.asarray(self._lengths, _floatx())[cycle]
        t_cur = t_cur.astype(_floatx())
        return _anneal(self.lr, self.eta_min, lambda: t_cur / t_i, lambda: (t_i - t_cur) / t_i, cosine=True)


# ----------------------------------------------------------------------------- one-cycle

class _Phases(Schedule):
    """A piecewise anneal over OneCycleLR's phases, evaluated the way torch's ``get_lr`` does.

    ``phases`` holds ``(end_step, start_value, end_value)``; step ``k`` uses the
    first phase with ``k <= end_step`` (the last one otherwise) and anneals
    (:func:`_anneal`) with ``pct = (k - previous end) / (end - previous end)``,
    both ``pct`` and ``1 - pct`` taken from exact step differences (:func:`_offset`),
    so every value is within a few float32 roundings of torch's float64 one, the
    tiny final LR ``max_lr / div_factor / final_div_factor`` included.
    """

    def __init__(self, phases, anneal_strategy: str, total_steps: int) -> None:
        super().__init__(None)
        self._phases = phases
        self._anneal_strategy = anneal_strategy
        self._total_steps = total_steps

    def _at(self, step):
        # Past total_steps torch raises; hold the last value it gives.
        k = jnp.minimum(step, self._total_steps)
        dtype = _floatx()
        start, values = 0.0, []
        for end, v0, v1 in self._phases:
            length = end - start
            scale = 1.0 / length if length else 0.0
            values.append(_anneal(v0, v1, lambda: _offset(k, start, dtype) * scale,
                                  lambda: -_offset(k, end, dtype) * scale, self._anneal_strategy == "cos"))
            start = end
        out = values[-1]
        for (end, _, _), value in zip(reversed(self._phases[:-1]), reversed(values[:-1])):
            # k <= end for an int k and a float end is k <= floor(end), decided in int arithmetic.
            out = jnp.where(k <= math.floor(end), value, out)
        return out


class OneCycleLR(_Phases):
    """The 1cycle policy, as ``torch.optim.lr_scheduler.OneCycleLR`` (stepped once per batch).

    LRs derive from ``max_lr`` (initial ``max_lr / div_factor``, final
    ``initial / final_div_factor``), so it takes no base LR. The instance is
    the LR schedule; ``.momentum`` is the momentum (or Adam ``beta1``) schedule
    torch writes into the optimizer, ``None`` when ``cycle_momentum=False``::

        sched = OneCycleLR(0.1, total_steps=1000)
        opt = fcnn.optim.SGD(sched, momentum=sched.momentum)

    Args: torch's, with ``max_lr``, ``base_momentum`` and ``max_momentum``
    single floats (one param group). ``steps_per_epoch`` here is torch's
    argument (with ``epochs``, an alternative to ``total_steps``).

    Torch raises when stepped past ``total_steps``; this schedule holds the
    value at ``total_steps``. Settings where torch divides by a zero-length
    phase (e.g. ``pct_start * total_steps == 1``) are refused up front.
    """

    def __init__(self, max_lr: float, total_steps: int | None = None, epochs: int | None = None,
                 steps_per_epoch: int | None = None, pct_start: float = 0.3, anneal_strategy: str = "cos",
                 cycle_momentum: bool = True, base_momentum: float = 0.85, max_momentum: float = 0.95,
                 div_factor: float = 25.0, final_div_factor: float = 1e4, three_phase: bool = False) -> None:
        where = type(self).__name__
        if total_steps is not None:
            if not _checks.is_int(total_steps) or total_steps <= 0:
                raise ValueError(f"{where}: Expected positive integer total_steps, but got {total_steps!r}")
            total = int(total_steps)
        elif epochs is not None and steps_per_epoch is not None:
            if not _checks.is_int(epochs) or epochs <= 0:
                raise ValueError(f"{where}: Expected positive integer epochs, but got {epochs!r}")
            if (not _checks.is_int(steps_per_epoch)
                    or steps_per_epoch <= 0):
                raise ValueError(f"{where}: Expected positive integer steps_per_epoch, but got {steps_per_epoch!r}")
            total = int(epochs) * int(steps_per_epoch)
        else:
            raise ValueError(f"{where}: You must define either total_steps OR (epochs AND steps_per_epoch)")
        if not isinstance(pct_start, (float, np.floating)) or not 0 <= pct_start <= 1:
            raise ValueError(f"{where}: Expected float between 0 and 1 pct_start, but got {pct_start!r}")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"{where}: anneal_strategy must be one of 'cos' or 'linear', "
                             f"instead got {anneal_strategy!r}")
        self.max_lr = _checks.learning_rate(max_lr, where, "max_lr")
        self.div_factor = _checks.number(div_factor, "div_factor", where)
        self.final_div_factor = _checks.number(final_div_factor, "final_div_factor", where)
        if self.div_factor == 0 or self.final_div_factor == 0:
            raise ValueError(f"{where}: div_factor and final_div_factor must be non-zero, "
                             f"got {self.div_factor!r} and {self.final_div_factor!r}")
        self.total_steps, self.pct_start, self.three_phase = total, float(pct_start), bool(three_phase)
        self.anneal_strategy, self.cycle_momentum = anneal_strategy, bool(cycle_momentum)
        self.base_momentum = _checks.number(base_momentum, "base_momentum", where)
        self.max_momentum = _checks.number(max_momentum, "max_momentum", where)

        initial = self.max_lr / self.div_factor
        low = initial / self.final_div_factor
        up, m_hi, m_lo = float(pct_start * total) - 1, self.max_momentum, self.base_momentum
        if three_phase:
            ends = [up, float(2 * pct_start * total) - 2, total - 1]
            lrs = [(initial, self.max_lr), (self.max_lr, initial), (initial, low)]
            moms = [(m_hi, m_lo), (m_lo, m_hi), (m_hi, m_hi)]
        else:
            ends = [up, total - 1]
            lrs = [(initial, self.max_lr), (self.max_lr, low)]
            moms = [(m_hi, m_lo), (m_lo, m_hi)]
        self._check_phases(ends, total, where)
        super().__init__([(e, a, b) for e, (a, b) in zip(ends, lrs)], anneal_strategy, total)
        self.momentum = (_Phases([(e, a, b) for e, (a, b) in zip(ends, moms)], anneal_strategy, total)
                         if self.cycle_momentum else None)

    def _check_phases(self, ends, total, where):
        start, reached = 0.0, -1
        for i, end in enumerate(ends):
            last = i == len(ends) - 1
            lo, hi = reached + 1, total if last else min(math.floor(end), total)
            if end == start and lo <= hi:
                raise ValueError(f"{where}: pct_start={self.pct_start} with total_steps={total} gives phase {i} "
                                 "zero length (torch divides by zero at that step)")
            reached, start = max(reached, math.floor(end)), end

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items()
                         if not k.startswith("_") and k not in ("momentum", "steps_per_epoch"))
        return f"OneCycleLR({args})"


# ----------------------------------------------------------------------------- sequencing

class SequentialLR(Schedule):
    """Schedules one after the other, as ``torch.optim.lr_scheduler.SequentialLR``.

    From epoch ``milestones[i - 1]`` on, ``schedules[i]`` runs, restarted at
    its own epoch 0 (e.g. warm-up then decay)::

        SequentialLR([LinearLR(0.1, 0.01, total_iters=5), CosineAnnealingLR(0.1, T_max=95)], milestones=[5])

    torch's quirks, reproduced: a milestone of 0 skips the schedules before it;
    equal milestones skip the schedules between them; a later
    :class:`MultiplicativeLR` continues from the previous schedule's last LR
    times ``lr_lambda(0)``; a later ``ConstantLR(total_iters=0)`` gives its full
    ``lr``; a later ``LinearLR(total_iters=0)`` is refused (torch divides by
    zero).

    Args:
        schedules: callables ``count -> lr`` (any optax schedule works; the
            quirks above apply to this module's schedules). Each child keeps
            its own base LR; torch's share the optimizer's.
        milestones: non-decreasing ints, one fewer than ``schedules``.
        steps_per_epoch: see the module docstring; milestones and the
            children's epochs count the same (outer) epochs.
    """

    def __init__(self, schedules: Sequence[Callable], milestones: Sequence[int], *,
                 steps_per_epoch: int | None = None) -> None:
        super().__init__(steps_per_epoch)
        where = type(self).__name__
        schedules = list(schedules)
        if not schedules:
            raise ValueError(f"{where} expects at least one scheduler, but got no scheduler.")
        for i, s in enumerate(schedules):
            if isinstance(s, ReduceLROnPlateau):
                raise ValueError(f"{where} does not support `ReduceLROnPlateau` scheduler, but got one at index {i} "
                                 "in the given schedulers sequence.")
            if not callable(s):
                raise TypeError(f"{where}: schedules[{i}] must be a schedule count -> lr, got {type(s).__name__}")
        self.milestones = _milestones(milestones, where)
        if len(self.milestones) != len(schedules) - 1:
            raise ValueError(f"{where}: expects number of schedulers provided to be one more than the number of "
                             f"milestone points, but got number of schedulers {len(schedules)} and the number of "
                             f"milestones to be equal to {len(self.milestones)}")
        self.schedules = schedules
        first = bisect.bisect_right(self.milestones, 0)
        self._first = first
        self._parts: list = [None] * len(schedules)
        self._parts[first] = schedules[first]
        for i in range(first + 1, len(schedules)):
            s = schedules[i]
            before = self.milestones[i - 1] - 1
            self._parts[i] = s._restarted(lambda k=before: self._value(k)) if isinstance(s, Schedule) else s

    def _value(self, epoch: int) -> float:
        """The value at a concrete epoch, from the parts built so far."""
        i = bisect.bisect_right(self.milestones, epoch)
        start = self.milestones[i - 1] if i else 0
        return float(self._parts[i](jnp.asarray(epoch - start, jnp.int32)))

    def _restarted(self, previous_lr):
        raise ValueError("SequentialLR: a SequentialLR cannot start at a later milestone "
                         "(torch's SequentialLR has no get_lr to restart from)")

    def _at(self, epoch):
        milestones = jnp.asarray(self.milestones, epoch.dtype)
        index = jnp.searchsorted(milestones, epoch, side="right") if self.milestones else jnp.zeros_like(epoch)
        starts = jnp.concatenate([jnp.zeros((1,), epoch.dtype), milestones])
        local = epoch - starts[index]
        out = jnp.asarray(self._parts[-1](local), _floatx())
        for i in range(len(self._parts) - 2, self._first - 1, -1):
            out = jnp.where(index == i, jnp.asarray(self._parts[i](local), _floatx()), out)
        return out


# ----------------------------------------------------------------------------- reduce on plateau

class ReduceLROnPlateauState(NamedTuple):
    lr: jnp.ndarray               # the current learning rate (float scalar)
    best: jnp.ndarray             # best metric seen so far (float scalar, starts at +-inf)
    num_bad_epochs: jnp.ndarray   # int32 scalar
    cooldown_counter: jnp.ndarray  # int32 scalar


class ReduceLROnPlateau(optax.GradientTransformationExtraArgs):
    """torch's ``ReduceLROnPlateau`` as an optax transformation scaling updates by ``current_lr / lr``.

    Chain it after an optimizer built with the same base ``lr``; it multiplies
    the optimizer's updates by the current LR over ``lr``, which equals
    running the optimizer at the current LR (every fcnn/torch optimizer is
    linear in its LR: momentum buffers and moments do not contain it).
    Feed the metric once per epoch with :meth:`step`, a pure function that
    finds this transformation's state anywhere in an optimizer state::

        plateau = ReduceLROnPlateau(0.1, patience=5)
        tx = optax.chain(fcnn.optim.SGD(0.1, momentum=0.9), plateau)
        opt_state = tx.init(params)
        for epoch in ...:
            ...  # updates, opt_state = tx.update(grads, opt_state, params)
            opt_state = plateau.step(opt_state, val_loss)   # torch: scheduler.step(val_loss)
        plateau.lr(opt_state)                               # current LR, for logging

    Alternatively ``tx.update(grads, opt_state, params, value=metric)`` (optax's
    extra-argument convention) applies the update at the current LR and then
    steps with ``metric`` — torch's ``optimizer.step(); scheduler.step(metric)``
    — for loops with one update per epoch or a per-update metric.

    Rules (torch's): a metric is better when ``< best * (1 - threshold)``
    (``rel``, mode ``min``), ``< best - threshold`` (``abs``), and mirrored for
    ``max``; the first metric always improves on the initial ``+-inf``. Bad
    epochs are counted; epochs in cooldown count as good (the cooldown counter
    decrements). When the bad count exceeds ``patience`` the LR becomes
    ``max(lr * factor, min_lr)`` unless that changes it by ``eps`` or less,
    and cooldown restarts. Metrics are compared in the default float dtype
    (float32), torch compares float64.

    Args: torch's (``min_lr`` a single float: one param group), with the base
    ``lr`` where torch takes an optimizer. ``factor`` must be in [0, 1),
    ``patience`` and ``cooldown`` non-negative ints.

    Difference from ``optax.contrib.reduce_on_plateau``: that one reduces when
    the plateau count *equals* patience, bounds a relative scale rather than
    the LR, has no ``eps`` guard or ``max`` mode and counts cooldown epochs
    differently.
    """

    def __new__(cls, lr: float, mode: str = "min", factor: float = 0.1, patience: int = 10,
                threshold: float = 1e-4, threshold_mode: str = "rel", cooldown: int = 0, min_lr: float = 0.0,
                eps: float = 1e-8):
        where = cls.__name__
        lr = _checks.learning_rate(lr, where)
        if mode not in ("min", "max"):
            raise ValueError(f"{where}: mode {mode!r} is unknown! (expected 'min' or 'max')")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"{where}: threshold mode {threshold_mode!r} is unknown! (expected 'rel' or 'abs')")
        factor = _checks.number(factor, "factor", where)
        if not 0.0 <= factor < 1.0:
            raise ValueError(f"{where}: Factor should be < 1.0 (and >= 0), got factor={factor!r}")
        patience = _checks.integer(patience, "patience", where, 0)
        cooldown = _checks.integer(cooldown, "cooldown", where, 0)
        threshold = _checks.number(threshold, "threshold", where)
        min_lr = _checks.number(min_lr, "min_lr", where)
        eps = _checks.number(eps, "eps", where)
        if min_lr < 0:
            raise ValueError(f"{where}: min_lr must be non-negative, got {min_lr!r}")

        def init(params=None) -> ReduceLROnPlateauState:
            del params
            worst = math.inf if mode == "min" else -math.inf
            return ReduceLROnPlateauState(jnp.asarray(lr, _floatx()), jnp.asarray(worst, _floatx()),
                                          jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))

        def update(updates, state, params=None, *, value=None, **extra):
            del params, extra
            scale = state.lr / lr if lr else jnp.ones((), _floatx())
            updates = jax.tree.map(lambda u: (u * scale).astype(u.dtype), updates)
            return updates, (state if value is None else self._step(state, value))

        self = super().__new__(cls, init, update)
        self.base_lr, self.mode, self.factor, self.patience = lr, mode, factor, patience
        self.threshold, self.threshold_mode, self.cooldown, self.min_lr, self.eps = (
            threshold, threshold_mode, cooldown, min_lr, eps)
        return self

    def _is_better(self, a, best):
        if self.mode == "min":
            return a < (best * (1.0 - self.threshold) if self.threshold_mode == "rel" else best - self.threshold)
        return a > (best * (1.0 + self.threshold) if self.threshold_mode == "rel" else best + self.threshold)

    def _step(self, state: ReduceLROnPlateauState, metric) -> ReduceLROnPlateauState:
        current = jnp.asarray(metric, _floatx())
        better = self._is_better(current, state.best)
        best = jnp.where(better, current, state.best)
        bad = jnp.where(better, 0, state.num_bad_epochs + 1)
        in_cooldown = state.cooldown_counter > 0
        cooldown_counter = jnp.where(in_cooldown, state.cooldown_counter - 1, state.cooldown_counter)
        bad = jnp.where(in_cooldown, 0, bad)
        reduce = bad > self.patience
        new_lr = jnp.maximum(state.lr * self.factor, self.min_lr)
        lr = jnp.where(reduce & (state.lr - new_lr > self.eps), new_lr, state.lr)
        return ReduceLROnPlateauState(
            lr.astype(state.lr.dtype), best.astype(state.best.dtype),
            jnp.where(reduce, 0, bad).astype(jnp.int32),
            jnp.where(reduce, self.cooldown, cooldown_counter).astype(jnp.int32))

    def step(self, opt_state, metric):
        """torch's ``scheduler.step(metric)``: returns ``opt_state`` with every plateau state in it stepped."""
        found = []

        def visit(node):
            if isinstance(node, ReduceLROnPlateauState):
                found.append(node)
                return self._step(node, metric)
            return node

        out = jax.tree.map(visit, opt_state, is_leaf=lambda n: isinstance(n, ReduceLROnPlateauState))
        if not found:
            raise ValueError("ReduceLROnPlateau.step: opt_state holds no ReduceLROnPlateauState "
                             "(pass the state of an optax.chain containing this transformation)")
        return out

    def lr(self, opt_state) -> jnp.ndarray:
        """The current learning rate held in ``opt_state`` (the first plateau state found)."""
        states = [n for n in jax.tree.leaves(opt_state, is_leaf=lambda n: isinstance(n, ReduceLROnPlateauState))
                  if isinstance(n, ReduceLROnPlateauState)]
        if not states:
            raise ValueError("ReduceLROnPlateau.lr: opt_state holds no ReduceLROnPlateauState")
        return states[0].lr

    def __repr__(self) -> str:
        return (f"ReduceLROnPlateau(lr={self.base_lr!r}, mode={self.mode!r}, factor={self.factor!r}, "
                f"patience={self.patience!r}, threshold={self.threshold!r}, threshold_mode={self.threshold_mode!r}, "
                f"cooldown={self.cooldown!r}, min_lr={self.min_lr!r}, eps={self.eps!r})")
