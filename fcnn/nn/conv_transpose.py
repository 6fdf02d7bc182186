"""Transposed convolution layers: ``ConvTranspose1d``, ``ConvTranspose2d``, ``ConvTranspose3d``."""

from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp
import numpy as np

from fcnn import _checks
from fcnn.functional import conv_transpose as _fct
from fcnn.nn import init as _init
from fcnn.nn.module import Layer


class ConvTransposeNd(Layer):
    """N-dimensional transposed convolution; use :class:`ConvTranspose1d`, ``2d`` or ``3d``.

    Params: ``weight`` ``(in_channels, out_channels // groups, *kernel_size)``
    and, with ``bias=True``, ``bias`` ``(out_channels,)`` — torch's names and
    layout. Default init as torch: ``kaiming_uniform(a=√5)`` of that shape,
    i.e. U(±1/√fan_in) with ``fan_in = (out_channels // groups)·prod(kernel_size)``
    (torch computes the fan from ``weight.shape[1]``), and the bias U(±1/√fan_in).
    """

    n: int = 0

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0,
                 groups=1, bias=True, dilation=1, padding_mode="zeros", *, dtype=jnp.float32,
                 weight_init=None, bias_init=None):
        where = type(self).__name__
        n = self.n
        self.in_channels = _checks.positive_int(in_channels, "in_channels", where)
        self.out_channels = _checks.positive_int(out_channels, "out_channels", where)
        self.groups = _checks.positive_int(groups, "groups", where)
        if in_channels % groups != 0:
            raise ValueError(f"{where}: in_channels must be divisible by groups, got in_channels={in_channels}, groups={groups}")
        if out_channels % groups != 0:
            raise ValueError(f"{where}: out_channels must be divisible by groups, got out_channels={out_channels}, groups={groups}")
        self.kernel_size = _checks.ntuple(kernel_size, n, "kernel_size", where)
        _checks.positive(self.kernel_size, "kernel_size", where)
        self.stride = _checks.ntuple(stride, n, "stride", where)
        _checks.positive(self.stride, "stride", where)
        self.dilation = _checks.ntuple(dilation, n, "dilation", where)
        _checks.positive(self.dilation, "dilation", where)
        if isinstance(padding, str):
            raise TypeError(f"{where}: padding must be an int or a tuple of {n} ints, got {padding!r}")
        self.padding = _checks.ntuple(padding, n, "padding", where)
        _checks.non_negative(self.padding, "padding", where)
        self.output_padding = _checks.ntuple(output_padding, n, "output_padding", where)
        _checks.non_negative(self.output_padding, "output_padding", where)
        _fct.output_padding_error(self.output_padding, self.stride, self.dilation, where)
        if padding_mode != "zeros":
            raise ValueError(f"{where}: Only \"zeros\" padding mode is supported for {where}, got padding_mode={padding_mode!r}")
        self.padding_mode = padding_mode
        if not isinstance(bias, bool):
            raise TypeError(f"{where}: bias must be a bool, got {bias!r}")
        self.bias = bias
        self.dtype = dtype
        self.weight_init = weight_init or _init.torch_default_weight
        self.bias_init = bias_init
        self._fn = {1: _fct.conv_transpose1d, 2: _fct.conv_transpose2d, 3: _fct.conv_transpose3d}[n]

    @property
    def weight_shape(self) -> tuple[int, ...]:
        return (self.in_channels, self.out_channels // self.groups) + self.kernel_size

    def init(self, key):
        bias_size = self.out_channels if self.bias else None
        return _init.weight_and_bias(key, self.weight_shape, bias_size, self.dtype, self.weight_init, self.bias_init), {}

    def output_padding_for(self, spatial, output_size, batched: bool = True) -> tuple[int, ...]:
        """torch's ``_output_padding``: the output_padding that yields ``output_size``.

        ``output_size`` is a sequence of ints: the spatial sizes, or (as torch)
        the whole output shape, ``(N, C, *spatial)`` for a batched input and
        ``(C, *spatial)`` for an unbatched one. Each spatial size must lie in
        ``[min, min + stride − 1]`` where ``min`` is the size with no output_padding.
        """
        where = type(self).__name__
        n = self.n
        if output_size is None:
            return self.output_padding
        lead = 2 if batched else 1
        if not isinstance(output_size, Sequence) or isinstance(output_size, str):
            raise TypeError(f"{where}: output_size must be a sequence of {n} or {n + lead} ints, got {output_size!r}")
        if not all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in output_size):
            raise TypeError(f"{where}: output_size must contain ints, got {tuple(output_size)!r}")
        if len(output_size) not in (n, n + lead):
            raise ValueError(
                f"{where}: for {n + lead}D input, output_size must have {n} elements (or {n + lead} with "
                f"{'batch and channels' if lead == 2 else 'channels'}), got {len(output_size)}: {tuple(output_size)!r}"
            )
        output_size = [int(v) for v in output_size[len(output_size) - n:]]
        min_sizes = _fct.transposed_output_size(spatial, self.kernel_size, self.stride, self.padding,
                                                (0,) * n, self.dilation)
        max_sizes = tuple(m + s - 1 for m, s in zip(min_sizes, self.stride))
        if any(not lo <= o <= hi for o, lo, hi in zip(output_size, min_sizes, max_sizes)):
            raise ValueError(
                f"{where}: requested an output_size of {output_size}, but valid sizes range "
                f"from {list(min_sizes)} to {list(max_sizes)} (for an input of {list(spatial)})"
            )
        return tuple(o - m for o, m in zip(output_size, min_sizes))

    def apply(self, params, state, x, output_size=None, *, train=False, rng=None):
        where = type(self).__name__
        x, unbatched = _checks.spatial_input(x, self.n, where)
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"{where}: expected input with {self.in_channels} channels (in_channels), "
                f"got input of shape {tuple(x.shape) if not unbatched else tuple(x.shape[1:])}"
            )
        output_padding = self.output_padding_for(x.shape[2:], output_size, batched=not unbatched)
        y = self._fn(x, params["weight"], params.get("bias"), self.stride, self.padding, output_padding,
                     self.groups, self.dilation)
        return (y[0] if unbatched else y), state

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0,) * self.n:
            s += f", padding={self.padding}"
        if self.output_padding != (0,) * self.n:
            s += f", output_padding={self.output_padding}"
        if self.dilation != (1,) * self.n:
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if not self.bias:
            s += ", bias=False"
        return s


class ConvTranspose1d(ConvTransposeNd):
    """``torch.nn.ConvTranspose1d``: ``(N, C_in, L)`` or ``(C_in, L)`` → ``(N, C_out, L_out)``.

    Shape: ``L_out = (L − 1)·stride − 2·padding + dilation·(kernel_size − 1) + output_padding + 1``.
    ``apply(params, state, x, output_size=None)``: as in torch, ``output_size``
    picks the output_padding that gives that size (ignoring the constructor's).
    """

    n = 1


class ConvTranspose2d(ConvTransposeNd):
    """``torch.nn.ConvTranspose2d``: ``(N, C_in, H, W)`` or ``(C_in, H, W)`` → ``(N, C_out, H_out, W_out)``.

    Args: ``in_channels, out_channels, kernel_size, stride=1, padding=0,
    output_padding=0, groups=1, bias=True, dilation=1, padding_mode='zeros'``
    as torch (only ``'zeros'`` padding, as torch).

    Shape: ``H_out = (H − 1)·stride[0] − 2·padding[0] + dilation[0]·(kernel_size[0] − 1) + output_padding[0] + 1``
    (likewise ``W_out``). ``apply(..., output_size=(H_out, W_out))`` chooses
    ``output_padding`` to hit that size, as torch's ``forward(input, output_size)``.

    Example::

        up = nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1)
        params, state = up.init(jax.random.key(0))
        y, _ = up.apply(params, state, jnp.ones((8, 64, 14, 14)))   # (8, 32, 28, 28)
    """

    n = 2


class ConvTranspose3d(ConvTransposeNd):
    """``torch.nn.ConvTranspose3d``: ``(N, C_in, D, H, W)`` or ``(C_in, D, H, W)`` → ``(N, C_out, D_out, H_out, W_out)``.

    Shape: each spatial size as in :class:`ConvTranspose2d`.
    """

    n = 3
