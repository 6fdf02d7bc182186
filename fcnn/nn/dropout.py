"""Dropout layers: ``Dropout``, ``Dropout1d``, ``Dropout2d``, ``Dropout3d``, ``AlphaDropout``.

Identity when ``train=False``. With ``train=True`` and ``p > 0`` the layer
needs ``rng`` (``apply(..., train=True, rng=key)``); the same key gives the
same mask. Kept values are scaled by ``1/(1 − p)``; ``p = 1`` gives zeros.
"""

from __future__ import annotations

from fcnn import _checks
from fcnn.functional.dropout import alpha_dropout, dropout, dropout1d, dropout2d, dropout3d
from fcnn.nn.module import Layer, require_rng


class _DropoutBase(Layer):
    op = None

    def __init__(self, p: float = 0.5, inplace: bool = False):
        where = type(self).__name__
        self.p = _checks.probability(p, "dropout probability", where)
        self.inplace = inplace

    def apply(self, params, state, x, *, train=False, rng=None):
        if train and self.p > 0:
            require_rng(rng, type(self).__name__)
        return self.op(x, self.p, train, key=rng), state

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Dropout(_DropoutBase):
    """``torch.nn.Dropout(p=0.5)``: zero each element with probability ``p``, scale the rest by ``1/(1 − p)``.

    Shape: any; output has the input's shape.
    """

    op = staticmethod(dropout)


class Dropout1d(_DropoutBase):
    """``torch.nn.Dropout1d(p=0.5)``: zero whole channels of ``(N, C, L)`` or ``(C, L)``."""

    op = staticmethod(dropout1d)


class Dropout2d(_DropoutBase):
    """``torch.nn.Dropout2d(p=0.5)``: zero whole channels of ``(N, C, H, W)`` or ``(C, H, W)``.

    A 3-D input is the unbatched ``(C, H, W)`` (torch instead treats it as
    ``(N, C, L)``, a behaviour it deprecates); see :func:`fcnn.functional.dropout2d`.
    """

    op = staticmethod(dropout2d)


class Dropout3d(_DropoutBase):
    """``torch.nn.Dropout3d(p=0.5)``: zero whole channels of ``(N, C, D, H, W)`` or ``(C, D, H, W)``."""

    op = staticmethod(dropout3d)


class AlphaDropout(_DropoutBase):
    """``torch.nn.AlphaDropout(p=0.5)``: dropout that keeps SELU's zero mean / unit variance."""

    op = staticmethod(alpha_dropout)
