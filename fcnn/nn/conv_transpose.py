"""Transposed convolution layers: ``ConvTranspose1d``, ``ConvTranspose2d``, ``ConvTranspose3d``."""

from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp

from fcnn import _checks
from fcnn import functional as F
from fcnn.functional import conv_transpose as _fct
from fcnn.nn.conv import _ConvNd


class ConvTransposeNd(_ConvNd):
    """N-dimensional transposed convolution; use :class:`ConvTranspose1d`, ``2d`` or ``3d``.

    Params: ``weight`` ``(in_channels, out_channels // groups, *kernel_size)``
    and, with ``bias=True``, ``bias`` ``(out_channels,)`` — torch's names and
    layout. Default init as torch: ``kaiming_uniform(a=√5)`` of that shape,
    i.e. U(±1/√fan_in) with ``fan_in = (out_channels // groups)·prod(kernel_size)``
    (torch computes the fan from ``weight.shape[1]``), and the bias U(±1/√fan_in).
    """

    transposed = True

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0,
                 groups=1, bias=True, dilation=1, padding_mode="zeros", *, dtype=jnp.float32,
                 weight_init=None, bias_init=None):
        where = self._common(in_channels, out_channels, kernel_size, stride, dilation, groups, bias, dtype,
                             weight_init, bias_init)
        n = self.n
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
        if not all(_checks.is_int(v) for v in output_size):
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
        x, unbatched = self._input(x)
        output_padding = self.output_padding_for(x.shape[2:], output_size, batched=not unbatched)
        y = self.op(x, params["weight"], params.get("bias"), self.stride, self.padding, output_padding,
                           self.groups, self.dilation)
        return (y[0] if unbatched else y), state


class ConvTranspose1d(ConvTransposeNd):
    """``torch.nn.ConvTranspose1d``: ``(N, C_in, L)`` or ``(C_in, L)`` → ``(N, C_out, L_out)``.

    Shape: ``L_out = (L − 1)·stride − 2·padding + dilation·(kernel_size − 1) + output_padding + 1``.
    ``apply(params, state, x, output_size=None)``: as in torch, ``output_size``
    picks the output_padding that gives that size (ignoring the constructor's).
    """

    n, op = 1, staticmethod(F.conv_transpose1d)


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

    n, op = 2, staticmethod(F.conv_transpose2d)


class ConvTranspose3d(ConvTransposeNd):
    """``torch.nn.ConvTranspose3d``: ``(N, C_in, D, H, W)`` or ``(C_in, D, H, W)`` → ``(N, C_out, D_out, H_out, W_out)``.

    Shape: each spatial size as in :class:`ConvTranspose2d`.
    """

    n, op = 3, staticmethod(F.conv_transpose3d)
