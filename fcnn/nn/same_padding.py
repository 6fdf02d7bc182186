"""TensorFlow's ``'SAME'`` padding as timm writes it: :func:`pad_same`, ``Conv2dSame``, ``MaxPool2dSame``,
``AvgPool2dSame``.

TF pads a strided convolution so that the output has ``ceil(size / stride)``
positions, splitting the padding with the odd element at the end; the amounts
depend on the input size, so they are computed at ``apply`` time (static
shapes, so nothing is left to pay for after ``jax.jit``). timm's ``tf_*``
models use it; torch's own ``padding='same'`` (stride 1 only) agrees with it
at stride 1.
"""

from __future__ import annotations

import math

from fcnn import _checks
from fcnn.functional.padding import pad
from fcnn.nn.conv import Conv2d
from fcnn.nn.pool import AvgPool2d, MaxPool2d


def same_padding(size: int, kernel_size: int, stride: int, dilation: int) -> tuple[int, int]:
    """``(before, after)`` of TF's 'SAME' padding along one dimension (timm's ``get_same_padding``)."""
    total = max((math.ceil(size / stride) - 1) * stride + (kernel_size - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def pad_same(x, kernel_size, stride, dilation=(1, 1), value: float = 0.0):
    """Pad the last two dimensions of ``x`` with ``value`` as TF's 'SAME' convolution would (timm's ``pad_same``)."""
    (top, bottom), (left, right) = (same_padding(n, k, s, d) for n, k, s, d in
                                    zip(x.shape[-2:], kernel_size, stride, dilation))
    return pad(x, (left, right, top, bottom), value=value)


def timm_padding(padding, kernel_size, stride, dilation, where: str):
    """timm's ``get_padding_value``: ``(padding for the convolution, whether 'SAME' is computed per input)``.

    ``'same'`` is static (symmetric) where stride 1 and an odd dilated kernel allow it, dynamic otherwise;
    ``'valid'`` is 0; ``None`` and other strings are timm's symmetric ``get_padding``; ints pass through.
    """
    k = _checks.ntuple(kernel_size, 2, "kernel_size", where)
    s = _checks.ntuple(stride, 2, "stride", where)
    d = _checks.ntuple(dilation, 2, "dilation", where)
    symmetric = tuple(((si - 1) + di * (ki - 1)) // 2 for ki, si, di in zip(k, s, d))
    if padding is None:
        return symmetric, False
    if isinstance(padding, str):
        padding = padding.lower()
        if padding == "same":
            static = all(si == 1 and (di * (ki - 1)) % 2 == 0 for ki, si, di in zip(k, s, d))
            return (symmetric, False) if static else (0, True)
        return (0, False) if padding == "valid" else (symmetric, False)
    return padding, False


class Conv2dSame(Conv2d):
    """timm's ``Conv2dSame``: a ``Conv2d`` whose input is padded as TensorFlow's 'SAME' (see :func:`pad_same`).

    Arguments, params and init as :class:`Conv2d`; ``padding`` is accepted and
    ignored, as timm's (the padding always follows the input size).

    Shape: ``H_out = ceil(H / stride[0])``, ``W_out = ceil(W / stride[1])``.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True,
                 **kwargs):
        super().__init__(in_channels, out_channels, kernel_size, stride, 0, dilation, groups, bias, **kwargs)

    def apply(self, params, state, x, *, train=False, rng=None):
        x = _checks.as_array(x, "input", type(self).__name__)
        return super().apply(params, state, pad_same(x, self.kernel_size, self.stride, self.dilation))


class MaxPool2dSame(MaxPool2d):
    """timm's ``MaxPool2dSame``: ``MaxPool2d`` over the input padded with ``-inf`` as TensorFlow's 'SAME'.

    Args (timm's): ``kernel_size, stride=None (→ kernel_size), padding=0 (ignored), dilation=1, ceil_mode=False``.

    Shape: ``H_out = ceil(H / stride[0])`` (without ``ceil_mode``), likewise ``W_out``.
    """

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
        super().__init__(kernel_size, stride, 0, dilation, False, ceil_mode)

    def apply(self, params, state, x, *, train=False, rng=None):
        x = _checks.as_array(x, "input", type(self).__name__)
        return super().apply(params, state, pad_same(x, self.kernel_size, self.stride, self.dilation, -math.inf))


class AvgPool2dSame(AvgPool2d):
    """timm's ``AvgPool2dSame``: ``AvgPool2d`` over the input zero-padded as TensorFlow's 'SAME'.

    Args (timm's): ``kernel_size, stride=None (→ kernel_size), padding=0 (ignored), ceil_mode=False,
    count_include_pad=True``. The padding is part of the input, so the zeros are always counted
    (timm's behaviour, which differs from TensorFlow's at the borders).
    """

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
        super().__init__(kernel_size, stride, 0, ceil_mode, count_include_pad)

    def apply(self, params, state, x, *, train=False, rng=None):
        x = _checks.as_array(x, "input", type(self).__name__)
        return super().apply(params, state, pad_same(x, self.kernel_size, self.stride))
