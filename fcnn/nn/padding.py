"""Padding layers with torch.nn's names: ``ZeroPad1d/2d/3d``, ``ConstantPad1d/2d/3d``, ``ReflectionPad1d/2d/3d``,
``ReplicationPad1d/2d/3d``, ``CircularPad1d/2d/3d``; each calls :func:`fcnn.functional.pad`.

``padding`` is an int (the same amount on every side) or a tuple of ``2·n``
ints ``(left, right, top, bottom, front, back)`` from the last dimension
backwards, as torch. Unlike torch, which takes a shorter tuple and pads fewer
dimensions, a tuple of another length is refused. Constant and zero padding
take negative amounts (which crop); the other modes pad an input of ``n + 1``
or ``n + 2`` dimensions (unbatched or batched) by less than its size
(reflect) or at most its size (circular).

Shape: each of the last ``n`` sizes grows by its two amounts.
"""

from __future__ import annotations

from fcnn import _checks
from fcnn.functional.padding import pad
from fcnn.nn.module import Layer


class _PadNd(Layer):
    # the number of padded trailing dimensions; not called ``n``, which fcnn.summary reads as a layer that
    # fixes the input's rank (constant padding takes any rank)
    padded_dims: int = 0
    mode: str = "constant"

    def __init__(self, padding):
        where = type(self).__name__
        self.padding = _checks.ntuple(padding, 2 * self.padded_dims, "padding", where)
        self.value = 0.0

    def apply(self, params, state, x, *, train=False, rng=None):
        where = type(self).__name__
        x = _checks.as_array(x, "input", where)
        if self.mode != "constant" and x.ndim not in (self.padded_dims + 1, self.padded_dims + 2):
            raise ValueError(f"{where}: expected a {self.padded_dims + 1}-D or {self.padded_dims + 2}-D input, got input of shape "
                             f"{tuple(x.shape)}")
        if self.mode == "constant" and x.ndim < self.padded_dims:
            raise ValueError(f"{where}: expected an input of at least {self.padded_dims} dimensions, got shape {tuple(x.shape)}")
        return pad(x, self.padding, self.mode, self.value if self.mode == "constant" else None), state

    def pads(self, axis: int) -> tuple[int, int]:
        """``(before, after)`` amounts of spatial axis ``axis`` (0 = the first of the last ``n``)."""
        i = self.padded_dims - 1 - axis
        return self.padding[2 * i], self.padding[2 * i + 1]

    def extra_repr(self) -> str:
        return f"{self.padding}" + (f", value={self.value}" if type(self).__name__.startswith("Constant") else "")


class _ConstantPadNd(_PadNd):
    def __init__(self, padding, value: float):
        super().__init__(padding)
        self.value = _checks.number(value, "value", type(self).__name__)


class ConstantPad1d(_ConstantPadNd):
    """``torch.nn.ConstantPad1d(padding, value)``: pad the last dimension with ``value``."""

    padded_dims = 1


class ConstantPad2d(_ConstantPadNd):
    """``torch.nn.ConstantPad2d(padding, value)``: pad the last two dimensions with ``value``.

    Example::

        nn.ConstantPad2d((1, 1, 2, 0), 3.5).apply({}, {}, jnp.ones((1, 3, 4, 4)))[0].shape   # (1, 3, 6, 6)
    """

    padded_dims = 2


class ConstantPad3d(_ConstantPadNd):
    """``torch.nn.ConstantPad3d(padding, value)``: pad the last three dimensions with ``value``."""

    padded_dims = 3


class ZeroPad1d(_PadNd):
    """``torch.nn.ZeroPad1d(padding)``: pad the last dimension with zeros."""

    padded_dims = 1


class ZeroPad2d(_PadNd):
    """``torch.nn.ZeroPad2d(padding)``: pad the last two dimensions with zeros."""

    padded_dims = 2


class ZeroPad3d(_PadNd):
    """``torch.nn.ZeroPad3d(padding)``: pad the last three dimensions with zeros."""

    padded_dims = 3


class ReflectionPad1d(_PadNd):
    """``torch.nn.ReflectionPad1d(padding)``: mirror ``(C, L)`` / ``(N, C, L)`` at its ends, without repeating the edge."""

    padded_dims, mode = 1, "reflect"


class ReflectionPad2d(_PadNd):
    """``torch.nn.ReflectionPad2d(padding)``: mirror the last two dimensions of a 3-D or 4-D input."""

    padded_dims, mode = 2, "reflect"


class ReflectionPad3d(_PadNd):
    """``torch.nn.ReflectionPad3d(padding)``: mirror the last three dimensions of a 4-D or 5-D input."""

    padded_dims, mode = 3, "reflect"


class ReplicationPad1d(_PadNd):
    """``torch.nn.ReplicationPad1d(padding)``: repeat the edge values of ``(C, L)`` / ``(N, C, L)``."""

    padded_dims, mode = 1, "replicate"


class ReplicationPad2d(_PadNd):
    """``torch.nn.ReplicationPad2d(padding)``: repeat the edges of the last two dimensions of a 3-D or 4-D input."""

    padded_dims, mode = 2, "replicate"


class ReplicationPad3d(_PadNd):
    """``torch.nn.ReplicationPad3d(padding)``: repeat the edges of the last three dimensions of a 4-D or 5-D input."""

    padded_dims, mode = 3, "replicate"


class CircularPad1d(_PadNd):
    """``torch.nn.CircularPad1d(padding)``: wrap ``(C, L)`` / ``(N, C, L)`` around."""

    padded_dims, mode = 1, "circular"


class CircularPad2d(_PadNd):
    """``torch.nn.CircularPad2d(padding)``: wrap the last two dimensions of a 3-D or 4-D input around."""

    padded_dims, mode = 2, "circular"


class CircularPad3d(_PadNd):
    """``torch.nn.CircularPad3d(padding)``: wrap the last three dimensions of a 4-D or 5-D input around."""

    padded_dims, mode = 3, "circular"
