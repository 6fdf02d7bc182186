"""Loss objects with torch's constructor arguments, called as ``loss(input, target)``.

They are not layers (no params, no state): each validates and stores its
hyper-parameters and calls the matching function of
:mod:`fcnn.functional.loss`, so ``nn.CrossEntropyLoss(label_smoothing=0.1)(logits, labels)``
is ``F.cross_entropy(logits, labels, label_smoothing=0.1)``. Instances are
plain objects, safe to close over inside ``jax.jit``.
Class weights are stored as arrays and used as constants.
"""

from __future__ import annotations

from fcnn import _checks
from fcnn.functional import loss as F


class _Loss:
    _where = "Loss"

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean"):
        self.reduction = F.resolve_reduction(reduction, size_average, reduce, self._where)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not hasattr(v, "shape"))
        return f"{type(self).__name__}({args})"


def _array_or_none(x, name: str, where: str):
    return None if x is None else _checks.as_array(x, name, where)


class L1Loss(_Loss):
    """``|input - target|``, see :func:`fcnn.functional.l1_loss`. Shape: ``(*)``, ``(*)`` -> scalar or ``(*)``."""
    _where = "L1Loss"

    def __call__(self, input, target):
        return F.l1_loss(input, target, reduction=self.reduction)


class MSELoss(_Loss):
    """``(input - target)**2``, see :func:`fcnn.functional.mse_loss`. Shape: ``(*)``, ``(*)`` -> scalar or ``(*)``."""
    _where = "MSELoss"

    def __call__(self, input, target):
        return F.mse_loss(input, target, reduction=self.reduction)


class SmoothL1Loss(_Loss):
    """Smooth L1 with threshold ``beta`` (default 1.0), see :func:`fcnn.functional.smooth_l1_loss`."""
    _where = "SmoothL1Loss"

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean", beta: float = 1.0):
        super().__init__(size_average, reduce, reduction)
        self.beta = _checks.number(beta, "beta", self._where, minimum=0)

    def __call__(self, input, target):
        return F.smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)


class HuberLoss(_Loss):
    """Huber loss with threshold ``delta`` (default 1.0), see :func:`fcnn.functional.huber_loss`."""
    _where = "HuberLoss"

    def __init__(self, reduction: str = "mean", delta: float = 1.0):
        super().__init__(reduction=reduction)
        self.delta = _checks.number(delta, "delta", self._where, minimum=0)
        if self.delta == 0.0:
            raise ValueError(f"{self._where}: delta must be positive, got {delta!r}")

    def __call__(self, input, target):
        return F.huber_loss(input, target, reduction=self.reduction, delta=self.delta)


class BCELoss(_Loss):
    """Binary cross entropy on probabilities, see :func:`fcnn.functional.binary_cross_entropy`."""
    _where = "BCELoss"

    def __init__(self, weight=None, size_average=None, reduce=None, reduction: str = "mean"):
        super().__init__(size_average, reduce, reduction)
        self.weight = _array_or_none(weight, "weight", self._where)

    def __call__(self, input, target):
        return F.binary_cross_entropy(input, target, self.weight, reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Sigmoid + BCE, stable, see :func:`fcnn.functional.binary_cross_entropy_with_logits`."""
    _where = "BCEWithLogitsLoss"

    def __init__(self, weight=None, size_average=None, reduce=None, reduction: str = "mean", pos_weight=None):
        super().__init__(size_average, reduce, reduction)
        self.weight = _array_or_none(weight, "weight", self._where)
        self.pos_weight = _array_or_none(pos_weight, "pos_weight", self._where)

    def __call__(self, input, target):
        return F.binary_cross_entropy_with_logits(input, target, self.weight, reduction=self.reduction,
                                                  pos_weight=self.pos_weight)


class NLLLoss(_Loss):
    """Negative log-likelihood of log-probabilities, see :func:`fcnn.functional.nll_loss`.

    Shape: input ``(C,)``, ``(N, C)`` or ``(N, C, d1, ...)``; target ``()``,
    ``(N,)`` or ``(N, d1, ...)``.
    """
    _where = "NLLLoss"

    def __init__(self, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
                 reduction: str = "mean"):
        super().__init__(size_average, reduce, reduction)
        self.weight = _array_or_none(weight, "weight", self._where)
        self.ignore_index = _checks.integer(ignore_index, "ignore_index", self._where)

    def __call__(self, input, target):
        return F.nll_loss(input, target, self.weight, ignore_index=self.ignore_index, reduction=self.reduction)


class CrossEntropyLoss(_Loss):
    """Softmax cross entropy of logits, see :func:`fcnn.functional.cross_entropy`.

    Shape: input ``(C,)``, ``(N, C)`` or ``(N, C, d1, ...)``; target class
    indices ``()``, ``(N,)`` or ``(N, d1, ...)``, or probabilities of input's shape.
    """
    _where = "CrossEntropyLoss"

    def __init__(self, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
                 reduction: str = "mean", label_smoothing: float = 0.0):
        super().__init__(size_average, reduce, reduction)
        self.weight = _array_or_none(weight, "weight", self._where)
        self.ignore_index = _checks.integer(ignore_index, "ignore_index", self._where)
        self.label_smoothing = _checks.probability(label_smoothing, "label_smoothing", self._where)

    def __call__(self, input, target):
        return F.cross_entropy(input, target, self.weight, ignore_index=self.ignore_index,
                               reduction=self.reduction, label_smoothing=self.label_smoothing)

