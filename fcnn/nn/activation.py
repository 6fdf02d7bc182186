"""Activation layers (torch.nn names, arguments and defaults); each calls its op in
:mod:`fcnn.functional.activation`, which documents values and gradients at the kinks.

All of them work elementwise on any shape (``Softmax``/``LogSoftmax`` along
``dim``; ``PReLU`` per channel along dimension 1, or 0 for 1-D inputs).
``inplace`` is accepted and ignored.
"""

from __future__ import annotations

import jax.numpy as jnp

from fcnn import _checks
from fcnn.functional import activation as _F
from fcnn.nn import init as _init
from fcnn.nn.module import Layer


class _Elementwise(Layer):
    """A parameter-free layer calling its functional op, ``op(x, **self._kwargs())``."""

    op = None

    def _kwargs(self) -> dict:
        return {}

    def apply(self, params, state, x, *, train=False, rng=None):
        return self.op(x, **self._kwargs()), state

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self._kwargs().items())


class _InplaceElementwise(_Elementwise):
    """An elementwise layer whose torch counterpart takes ``inplace`` (accepted and ignored)."""

    def __init__(self, inplace: bool = False):
        self.inplace = inplace


class ReLU(_InplaceElementwise):
    """``torch.nn.ReLU``: ``max(0, x)``."""

    op = staticmethod(_F.relu)


class ReLU6(_InplaceElementwise):
    """``torch.nn.ReLU6``: ``min(max(0, x), 6)``."""

    op = staticmethod(_F.relu6)


class LeakyReLU(_Elementwise):
    """``torch.nn.LeakyReLU(negative_slope=0.01)``: ``x`` if ``x > 0`` else ``negative_slope·x``."""

    op = staticmethod(_F.leaky_relu)

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False):
        self.negative_slope = _checks.number(negative_slope, "negative_slope", type(self).__name__)
        self.inplace = inplace

    def _kwargs(self):
        return {"negative_slope": self.negative_slope}


class ELU(_Elementwise):
    """``torch.nn.ELU(alpha=1.0)``: ``x`` if ``x > 0`` else ``alpha·(exp(x) − 1)``."""

    op = staticmethod(_F.elu)

    def __init__(self, alpha: float = 1.0, inplace: bool = False):
        self.alpha = _checks.number(alpha, "alpha", type(self).__name__)
        self.inplace = inplace

    def _kwargs(self):
        return {"alpha": self.alpha}


class Tanh(_Elementwise):
    """``torch.nn.Tanh``."""

    op = staticmethod(_F.tanh)


class Sigmoid(_Elementwise):
    """``torch.nn.Sigmoid``."""

    op = staticmethod(_F.sigmoid)


class SiLU(_InplaceElementwise):
    """``torch.nn.SiLU``: ``x · sigmoid(x)``."""

    op = staticmethod(_F.silu)


class GELU(_Elementwise):
    """``torch.nn.GELU(approximate='none')``: exact erf form by default, ``'tanh'`` for the approximation."""

    op = staticmethod(_F.gelu)

    def __init__(self, approximate: str = "none"):
        self.approximate = _checks.one_of(approximate, ("none", "tanh"), "approximate", type(self).__name__)

    def _kwargs(self):
        return {"approximate": self.approximate}


class Hardswish(_InplaceElementwise):
    """``torch.nn.Hardswish``: ``x · relu6(x + 3) / 6``."""

    op = staticmethod(_F.hardswish)


class Hardsigmoid(_InplaceElementwise):
    """``torch.nn.Hardsigmoid``: ``relu6(x + 3) / 6``."""

    op = staticmethod(_F.hardsigmoid)


class _SoftmaxBase(_Elementwise):
    def __init__(self, dim=None):
        # Checked here so the mistake shows at construction, not at the first apply.
        if dim is None:
            raise TypeError(
                f"{type(self).__name__}: dim must be given (torch's implicit choice of dim is deprecated, "
                "so fcnn requires it)"
            )
        if not _checks.is_int(dim):
            raise TypeError(f"{type(self).__name__}: dim must be an int, got {dim!r}")
        self.dim = dim

    def _kwargs(self):
        return {"dim": self.dim}


class Softmax(_SoftmaxBase):
    """``torch.nn.Softmax(dim)``; ``dim`` is required (torch's implicit default is deprecated)."""

    op = staticmethod(_F.softmax)


class LogSoftmax(_SoftmaxBase):
    """``torch.nn.LogSoftmax(dim)``; ``dim`` is required (torch's implicit default is deprecated)."""

    op = staticmethod(_F.log_softmax)


class PReLU(Layer):
    """``torch.nn.PReLU(num_parameters=1, init=0.25)``: ``x`` if ``x > 0`` else ``a·x``.

    Params: ``weight`` ``(num_parameters,)`` filled with ``init``. With
    ``num_parameters > 1`` it must equal the channel count, dimension 1 of the
    input; a 1-D input counts as one channel (torch's rule).
    """

    def __init__(self, num_parameters: int = 1, init: float = 0.25, *, dtype=jnp.float32):
        where = type(self).__name__
        self.num_parameters = _checks.positive_int(num_parameters, "num_parameters", where)
        self.init_value = _checks.number(init, "init", where)
        self.dtype = dtype

    def init(self, key):
        return {"weight": _init.constant(self.init_value)(key, (self.num_parameters,), self.dtype)}, {}

    def apply(self, params, state, x, *, train=False, rng=None):
        return _F.prelu(x, params["weight"]), state

    def extra_repr(self) -> str:
        return f"num_parameters={self.num_parameters}"


class Hardtanh(_Elementwise):
    """``torch.nn.Hardtanh(min_val=-1.0, max_val=1.0)``: ``min(max(x, min_val), max_val)``."""

    op = staticmethod(_F.hardtanh)

    def __init__(self, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False):
        where = type(self).__name__
        self.min_val = _checks.number(min_val, "min_val", where)
        self.max_val = _checks.number(max_val, "max_val", where)
        if self.min_val > self.max_val:
            raise ValueError(f"{where}: min_val cannot be greater than max_val, got {min_val} > {max_val}")
        self.inplace = inplace

    def _kwargs(self):
        return {"min_val": self.min_val, "max_val": self.max_val}


class SELU(_InplaceElementwise):
    """``torch.nn.SELU``: ``scale·(x if x > 0 else alpha·(exp(x) − 1))``, alpha ≈ 1.6733, scale ≈ 1.0507."""

    op = staticmethod(_F.selu)


class CELU(_Elementwise):
    """``torch.nn.CELU(alpha=1.0)``: ``x`` if ``x > 0`` else ``alpha·(exp(x/alpha) − 1)``."""

    op = staticmethod(_F.celu)

    def __init__(self, alpha: float = 1.0, inplace: bool = False):
        self.alpha = _checks.number(alpha, "alpha", type(self).__name__)
        if self.alpha == 0:
            raise ValueError(f"{type(self).__name__}: alpha cannot be 0")
        self.inplace = inplace

    def _kwargs(self):
        return {"alpha": self.alpha}


class Mish(_InplaceElementwise):
    """``torch.nn.Mish``: ``x · tanh(softplus(x))``."""

    op = staticmethod(_F.mish)


class Softplus(_Elementwise):
    """``torch.nn.Softplus(beta=1.0, threshold=20.0)``: ``log(1 + exp(beta·x)) / beta``, linear above ``threshold/beta``."""

    op = staticmethod(_F.softplus)

    def __init__(self, beta: float = 1.0, threshold: float = 20.0):
        where = type(self).__name__
        self.beta = _checks.number(beta, "beta", where)
        self.threshold = _checks.number(threshold, "threshold", where)

    def _kwargs(self):
        return {"beta": self.beta, "threshold": self.threshold}


class Softsign(_Elementwise):
    """``torch.nn.Softsign``: ``x / (1 + |x|)``."""

    op = staticmethod(_F.softsign)


class LogSigmoid(_Elementwise):
    """``torch.nn.LogSigmoid``: ``log(sigmoid(x))``."""

    op = staticmethod(_F.logsigmoid)


class Tanhshrink(_Elementwise):
    """``torch.nn.Tanhshrink``: ``x − tanh(x)``."""

    op = staticmethod(_F.tanhshrink)


class Threshold(_Elementwise):
    """``torch.nn.Threshold(threshold, value)``: ``x`` if ``x > threshold`` else ``value``."""

    op = staticmethod(_F.threshold)

    def __init__(self, threshold: float, value: float, inplace: bool = False):
        where = type(self).__name__
        self.threshold = _checks.number(threshold, "threshold", where)
        self.value = _checks.number(value, "value", where)
        self.inplace = inplace

    def _kwargs(self):
        return {"threshold": self.threshold, "value": self.value}


class _Shrink(_Elementwise):
    def __init__(self, lambd: float = 0.5):
        where = type(self).__name__
        self.lambd = _checks.number(lambd, "lambd", where)
        _checks.non_negative((self.lambd,), "lambd", where)

    def _kwargs(self):
        return {"lambd": self.lambd}


class Hardshrink(_Shrink):
    """``torch.nn.Hardshrink(lambd=0.5)``: ``x`` if ``|x| > lambd`` else 0."""

    op = staticmethod(_F.hardshrink)


class Softshrink(_Shrink):
    """``torch.nn.Softshrink(lambd=0.5)``: ``x ∓ lambd`` outside ``[−lambd, lambd]``, 0 inside."""

    op = staticmethod(_F.softshrink)


class GLU(_Elementwise):
    """``torch.nn.GLU(dim=-1)``: ``a · sigmoid(b)`` for the halves ``a``, ``b`` of the input along ``dim``.

    Shape: ``(*, 2M, *)`` → ``(*, M, *)`` along ``dim``.
    """

    op = staticmethod(_F.glu)

    def __init__(self, dim: int = -1):
        if not _checks.is_int(dim):
            raise TypeError(f"{type(self).__name__}: dim must be an int, got {dim!r}")
        self.dim = dim

    def _kwargs(self):
        return {"dim": self.dim}


class Softmax2d(Layer):
    """``torch.nn.Softmax2d``: softmax over the channels at every position of ``(N, C, H, W)`` or ``(C, H, W)``."""

    def apply(self, params, state, x, *, train=False, rng=None):
        x = _checks.as_array(x, "input", type(self).__name__)
        if x.ndim not in (3, 4):
            raise ValueError(f"{type(self).__name__}: expected a 3-D or 4-D input, got input of shape {tuple(x.shape)}")
        return _F.softmax(x, dim=-3), state
