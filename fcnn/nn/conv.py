"""Convolution layers: ``Conv1d``, ``Conv2d``, ``Conv3d`` (torch.nn names, arguments and defaults)."""

from __future__ import annotations

import jax.numpy as jnp

from fcnn import _checks
from fcnn import functional as F
from fcnn.functional import conv as _fconv
from fcnn.nn import init as _init
from fcnn.nn.module import Layer

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


class _ConvNd(Layer):
    """What convolutions and transposed convolutions share, as torch's ``_ConvNd``.

    The checks of channels, groups, kernel size, stride and dilation, the
    ``weight``/``bias`` params (torch's layout: ``(out, in // groups, *kernel)``,
    transposed ``(in, out // groups, *kernel)``) with torch's default init,
    the input check and the repr. Subclasses set ``n`` (spatial dimensions),
    ``op`` (the functional op for that rank, as a staticmethod) and ``transposed``,
    and check their own padding.
    """

    n: int = 0
    op = None
    transposed: bool = False

    def _common(self, in_channels, out_channels, kernel_size, stride, dilation, groups, bias, dtype,
                weight_init, bias_init) -> str:
        where = type(self).__name__
        self.in_channels = _checks.positive_int(in_channels, "in_channels", where)
        self.out_channels = _checks.positive_int(out_channels, "out_channels", where)
        self.groups = _checks.positive_int(groups, "groups", where)
        for name, channels in (("in_channels", in_channels), ("out_channels", out_channels)):
            if channels % groups != 0:
                raise ValueError(f"{where}: {name} must be divisible by groups, got {name}={channels}, groups={groups}")
        for name, value in (("kernel_size", kernel_size), ("stride", stride), ("dilation", dilation)):
            setattr(self, name, _checks.ntuple(value, self.n, name, where))
            _checks.positive(getattr(self, name), name, where)
        self.bias = _checks.boolean(bias, "bias", where)
        self.dtype = dtype
        self.weight_init = weight_init or _init.torch_default_weight
        self.bias_init = bias_init
        return where

    @property
    def weight_shape(self) -> tuple[int, ...]:
        first, second = (self.in_channels, self.out_channels) if self.transposed else (self.out_channels, self.in_channels)
        return (first, second // self.groups) + self.kernel_size

    def init(self, key):
        bias_size = self.out_channels if self.bias else None
        return _init.weight_and_bias(key, self.weight_shape, bias_size, self.dtype, self.weight_init, self.bias_init), {}

    def _input(self, x):
        """``(x with a batch axis, whether it was unbatched)``; refuses a wrong rank or channel count."""
        where = type(self).__name__
        x, unbatched = _checks.spatial_input(x, self.n, where)
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"{where}: expected input with {self.in_channels} channels (in_channels), "
                f"got input of shape {tuple(x.shape) if not unbatched else tuple(x.shape[1:])}"
            )
        return x, unbatched

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0,) * self.n:
            s += f", padding={self.padding}"
        if getattr(self, "output_padding", (0,) * self.n) != (0,) * self.n:
            s += f", output_padding={self.output_padding}"
        if self.dilation != (1,) * self.n:
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if not self.bias:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class ConvNd(_ConvNd):
    """N-dimensional convolution; use :class:`Conv1d`, :class:`Conv2d` or :class:`Conv3d`.

    Params: ``weight`` ``(out_channels, in_channels // groups, *kernel_size)`` and,
    with ``bias=True``, ``bias`` ``(out_channels,)`` — torch's names and layout.
    Default init as torch: weight ``kaiming_uniform(a=√5)``, bias ``U(±1/√fan_in)``;
    pass ``weight_init`` / ``bias_init`` (``(key, shape, dtype) -> array``) to change it.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", *, dtype=jnp.float32,
                 weight_init=None, bias_init=None):
        where = self._common(in_channels, out_channels, kernel_size, stride, dilation, groups, bias, dtype,
                             weight_init, bias_init)
        n = self.n
        self.padding_mode = _checks.one_of(padding_mode, _PADDING_MODES, "padding_mode", where)
        # Validates 'same'/'valid'/ints now, at construction, not at first apply.
        self.pads = _fconv.conv_padding(padding, self.kernel_size, self.dilation, self.stride, n, where)
        self.padding = padding if isinstance(padding, str) else _checks.ntuple(padding, n, "padding", where)

    def apply(self, params, state, x, *, train=False, rng=None):
        x, unbatched = self._input(x)
        padding = self.padding
        if self.padding_mode != "zeros":
            flat = [p for lo_hi in reversed(self.pads) for p in lo_hi]
            x = F.pad(x, flat, mode=self.padding_mode)
            padding = 0
        y = self.op(x, params["weight"], params.get("bias"), self.stride, padding, self.dilation, self.groups)
        return (y[0] if unbatched else y), state


class Conv1d(ConvNd):
    """``torch.nn.Conv1d``: ``(N, C_in, L)`` or ``(C_in, L)`` → ``(N, C_out, L_out)``.

    Shape: ``L_out = floor((L + 2·padding − dilation·(kernel_size − 1) − 1) / stride) + 1``.

    Example::

        conv = nn.Conv1d(4, 8, 3, padding=1)
        params, state = conv.init(jax.random.key(0))
        y, _ = conv.apply(params, state, jnp.ones((2, 4, 16)))   # (2, 8, 16)
    """

    n, op = 1, staticmethod(F.conv1d)


class Conv2d(ConvNd):
    """``torch.nn.Conv2d``: ``(N, C_in, H, W)`` or ``(C_in, H, W)`` → ``(N, C_out, H_out, W_out)``.

    Args: ``in_channels, out_channels, kernel_size, stride=1, padding=0,
    dilation=1, groups=1, bias=True, padding_mode='zeros'`` as torch;
    ``padding`` may be an int, a pair, ``'valid'`` or ``'same'`` (stride 1).

    Shape: ``H_out = floor((H + 2·padding[0] − dilation[0]·(kernel_size[0] − 1) − 1) / stride[0]) + 1``
    (likewise ``W_out``).

    Example::

        conv = nn.Conv2d(3, 16, 3, stride=1, padding=1)
        params, state = conv.init(jax.random.key(0))
        y, _ = conv.apply(params, state, jnp.ones((8, 3, 32, 32)))   # (8, 16, 32, 32)
    """

    n, op = 2, staticmethod(F.conv2d)


class Conv3d(ConvNd):
    """``torch.nn.Conv3d``: ``(N, C_in, D, H, W)`` or ``(C_in, D, H, W)`` → ``(N, C_out, D_out, H_out, W_out)``.

    Shape: each spatial size as in :class:`Conv2d`.
    """

    n, op = 3, staticmethod(F.conv3d)
