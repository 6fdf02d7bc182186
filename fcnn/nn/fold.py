"""``Unfold`` and ``Fold`` (torch.nn names and arguments) over :mod:`fcnn.functional.im2col`. No params."""

from __future__ import annotations

from fcnn import _checks
from fcnn.functional import im2col as _F
from fcnn.nn.module import Layer


class Unfold(Layer):
    """``torch.nn.Unfold(kernel_size, dilation=1, padding=0, stride=1)``: sliding blocks as columns (im2col).

    Shape: ``(N, C, H, W)`` → ``(N, C·kh·kw, L)``; see :func:`fcnn.functional.unfold` for ``L``.
    """

    def __init__(self, kernel_size, dilation=1, padding=0, stride=1):
        self.kernel_size, self.dilation, self.padding, self.stride = _F.fold_args(
            kernel_size, dilation, padding, stride, type(self).__name__)

    def apply(self, params, state, x, *, train=False, rng=None):
        return _F.unfold(x, self.kernel_size, self.dilation, self.padding, self.stride), state

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, dilation={self.dilation}, padding={self.padding}, stride={self.stride}"


class Fold(Layer):
    """``torch.nn.Fold(output_size, kernel_size, dilation=1, padding=0, stride=1)``: columns summed into an image.

    Shape: ``(N, C·kh·kw, L)`` → ``(N, C, *output_size)``; see :func:`fcnn.functional.fold`.
    """

    def __init__(self, output_size, kernel_size, dilation=1, padding=0, stride=1):
        where = type(self).__name__
        self.output_size = _checks.ntuple(output_size, 2, "output_size", where)
        _checks.positive(self.output_size, "output_size", where)
        self.kernel_size, self.dilation, self.padding, self.stride = _F.fold_args(
            kernel_size, dilation, padding, stride, where)

    def apply(self, params, state, x, *, train=False, rng=None):
        return _F.fold(x, self.output_size, self.kernel_size, self.dilation, self.padding, self.stride), state

    def extra_repr(self) -> str:
        return (f"output_size={self.output_size}, kernel_size={self.kernel_size}, dilation={self.dilation}, "
                f"padding={self.padding}, stride={self.stride}")
