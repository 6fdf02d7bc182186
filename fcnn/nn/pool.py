"""Pooling layers (torch.nn names, arguments and defaults): max, max-unpool, average, adaptive, power-average.

Each layer validates and normalises its arguments at construction (``kernel_size``,
``stride``, ``padding``, ``dilation`` become tuples of ints, ``stride=None`` becomes
``kernel_size``). ``apply`` checks the input with the op's own public check
(:func:`fcnn.functional.pool.pool_input` and friends) under the layer's name, so
that a bad input names the layer, then calls its functional op, the class
attribute ``op`` (e.g. :func:`fcnn.functional.max_pool2d` for :class:`MaxPool2d`).
None of them has parameters or buffers. Inputs may be batched ``(N, C, *spatial)``
or unbatched ``(C, *spatial)``, as in torch.
"""

from __future__ import annotations

import math

from fcnn import _checks
from fcnn import functional as F
from fcnn.functional import pool as _P
from fcnn.nn.module import Layer


class _PoolNd(Layer):
    n: int = 0  # spatial dimensions
    op = None  # the functional op for this rank, as a staticmethod

    def _geometry(self, kernel_size, stride, padding, dilation=1):
        where = type(self).__name__
        self.kernel_size, self.stride, self.padding, self.dilation = _P.pool_args(
            kernel_size, stride, padding, dilation, self.n, where)

    def out_spatial(self, spatial) -> tuple[int, ...]:
        """Spatial output size for an input of spatial size ``spatial`` (torch's formula)."""
        return _P.pool_output_size(spatial, self.kernel_size, self.stride, self.padding,
                                   getattr(self, "dilation", (1,) * self.n), getattr(self, "ceil_mode", False))

    def _check_input(self, x, floating=True):
        """Refuse a bad input, or one the windows do not fit, naming this layer."""
        where = type(self).__name__
        x, _ = _P.pool_input(x, self.n, where, floating=floating)
        _P.checked_output_size(x, self.kernel_size, self.stride, self.padding, getattr(self, "dilation", (1,) * self.n),
                               self.ceil_mode, where)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class _MaxPoolNd(_PoolNd):
    """Max pooling; see :func:`fcnn.functional.max_pool2d`.

    With ``return_indices=True`` apply returns ``((values, indices), state)``,
    the indices (int32) being what :class:`MaxUnpool2d` expects.
    """

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False, ceil_mode=False):
        where = type(self).__name__
        self._geometry(kernel_size, stride, padding, dilation)
        self.return_indices = _checks.boolean(return_indices, "return_indices", where)
        self.ceil_mode = _checks.boolean(ceil_mode, "ceil_mode", where)

    def apply(self, params, state, x, *, train=False, rng=None):
        self._check_input(x)
        return self.op(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
                       self.return_indices), state

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class MaxPool1d(_MaxPoolNd):
    """``torch.nn.MaxPool1d``: ``(N, C, L)`` or ``(C, L)``.

    Args: ``kernel_size, stride=None (→ kernel_size), padding=0, dilation=1,
    return_indices=False, ceil_mode=False``.

    Shape: ``L_out = floor((L + 2·padding − dilation·(kernel_size − 1) − 1 [+ stride − 1 if ceil_mode]) / stride) + 1``,
    minus one in ceil_mode if the last window would start in the right padding.
    """

    n, op = 1, staticmethod(F.max_pool1d)


class MaxPool2d(_MaxPoolNd):
    """``torch.nn.MaxPool2d``: ``(N, C, H, W)`` or ``(C, H, W)``.

    Shape: ``H_out``, ``W_out`` as in :class:`MaxPool1d`, per dimension.

    Example::

        pool = nn.MaxPool2d(3, stride=2, padding=1)
        y, _ = pool.apply({}, {}, jnp.ones((8, 64, 56, 56)))   # (8, 64, 28, 28)
    """

    n, op = 2, staticmethod(F.max_pool2d)


class MaxPool3d(_MaxPoolNd):
    """``torch.nn.MaxPool3d``: ``(N, C, D, H, W)`` or ``(C, D, H, W)``; shape as :class:`MaxPool1d` per dimension."""

    n, op = 3, staticmethod(F.max_pool3d)


class _MaxUnpoolNd(_PoolNd):
    """Inverse of max pooling; ``apply(params, state, x, indices, output_size=None)``."""

    def __init__(self, kernel_size, stride=None, padding=0):
        where = type(self).__name__
        self.kernel_size, self.stride, self.padding = _P.unpool_args(kernel_size, stride, padding, self.n, where)

    def out_spatial(self, spatial) -> tuple[int, ...]:
        """Default spatial output size for an input of spatial size ``spatial``."""
        return _P.unpool_output_size(spatial, self.kernel_size, self.stride, self.padding, None,
                                     type(self).__name__)

    def apply(self, params, state, x, indices, *, output_size=None, train=False, rng=None):
        _P.unpool_input(x, indices, self.kernel_size, self.stride, self.padding, output_size, self.n,
                        type(self).__name__)
        return self.op(x, indices, self.kernel_size, self.stride, self.padding, output_size), state


class MaxUnpool1d(_MaxUnpoolNd):
    """``torch.nn.MaxUnpool1d``: ``L_out = (L − 1)·stride − 2·padding + kernel_size``, or ``output_size``."""

    n, op = 1, staticmethod(F.max_unpool1d)


class MaxUnpool2d(_MaxUnpoolNd):
    """``torch.nn.MaxUnpool2d``: ``H_out = (H − 1)·stride[0] − 2·padding[0] + kernel_size[0]`` (likewise W),
    or ``output_size`` given to apply (within ``± stride`` of that default).

    Example::

        pool, unpool = nn.MaxPool2d(2, return_indices=True), nn.MaxUnpool2d(2)
        (y, idx), _ = pool.apply({}, {}, x)
        x_rec, _ = unpool.apply({}, {}, y, idx, output_size=x.shape[-2:])
    """

    n, op = 2, staticmethod(F.max_unpool2d)


class MaxUnpool3d(_MaxUnpoolNd):
    """``torch.nn.MaxUnpool3d``: each spatial size as in :class:`MaxUnpool2d`."""

    n, op = 3, staticmethod(F.max_unpool3d)


class _AvgPoolNd(_PoolNd):
    """Average pooling; see :func:`fcnn.functional.avg_pool2d` for torch's divisors."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
        where = type(self).__name__
        self._geometry(kernel_size, stride, padding)
        del self.dilation  # torch's average pooling has none
        self.ceil_mode = _checks.boolean(ceil_mode, "ceil_mode", where)
        self.count_include_pad = _checks.boolean(count_include_pad, "count_include_pad", where)
        if divisor_override is not None:
            if not _checks.is_int(divisor_override):
                raise TypeError(f"{where}: divisor_override must be an int or None, got {divisor_override!r}")
            if divisor_override == 0:
                raise ValueError(f"{where}: divisor must be not zero (divisor_override=0)")
        self.divisor_override = divisor_override

    def apply(self, params, state, x, *, train=False, rng=None):
        self._check_input(x)
        # avg_pool1d has no divisor_override (AvgPool1d neither)
        override = {} if self.divisor_override is None else {"divisor_override": self.divisor_override}
        return self.op(x, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad,
                       **override), state


class AvgPool1d(_AvgPoolNd):
    """``torch.nn.AvgPool1d(kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True)``.

    Shape: ``L_out = floor((L + 2·padding − kernel_size [+ stride − 1 if ceil_mode]) / stride) + 1``.
    """

    n, op = 1, staticmethod(F.avg_pool1d)

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
        super().__init__(kernel_size, stride, padding, ceil_mode, count_include_pad)


class AvgPool2d(_AvgPoolNd):
    """``torch.nn.AvgPool2d(kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
    divisor_override=None)``: ``(N, C, H, W)`` or ``(C, H, W)``; shape as :class:`AvgPool1d` per dimension."""

    n, op = 2, staticmethod(F.avg_pool2d)


class AvgPool3d(_AvgPoolNd):
    """``torch.nn.AvgPool3d``: ``(N, C, D, H, W)`` or ``(C, D, H, W)``; arguments as :class:`AvgPool2d`."""

    n, op = 3, staticmethod(F.avg_pool3d)


class _AdaptivePoolNd(Layer):
    n: int = 0
    op = None

    def __init__(self, output_size):
        # Keeps None entries: they take the input's size at apply time.
        self.output_size = _P.adaptive_output_size(output_size, None, self.n, type(self).__name__)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class _AdaptiveAvgPoolNd(_AdaptivePoolNd):
    def apply(self, params, state, x, *, train=False, rng=None):
        _P.pool_input(x, self.n, type(self).__name__)
        return self.op(x, self.output_size), state


class _AdaptiveMaxPoolNd(_AdaptivePoolNd):
    def __init__(self, output_size, return_indices=False):
        super().__init__(output_size)
        self.return_indices = _checks.boolean(return_indices, "return_indices", type(self).__name__)

    def apply(self, params, state, x, *, train=False, rng=None):
        _P.pool_input(x, self.n, type(self).__name__)
        return self.op(x, self.output_size, self.return_indices), state


class AdaptiveAvgPool1d(_AdaptiveAvgPoolNd):
    """``torch.nn.AdaptiveAvgPool1d(output_size)``: ``(N, C, L)`` → ``(N, C, output_size)``,
    bin ``i`` = ``floor(i·L/out) … ceil((i+1)·L/out) − 1``."""

    n, op = 1, staticmethod(F.adaptive_avg_pool1d)


class AdaptiveAvgPool2d(_AdaptiveAvgPoolNd):
    """``torch.nn.AdaptiveAvgPool2d(output_size)``: ``(N, C, H, W)`` → ``(N, C, *output_size)``;
    ``None`` keeps that input size. ``AdaptiveAvgPool2d(1)`` is global average pooling."""

    n, op = 2, staticmethod(F.adaptive_avg_pool2d)


class AdaptiveAvgPool3d(_AdaptiveAvgPoolNd):
    """``torch.nn.AdaptiveAvgPool3d(output_size)``: ``(N, C, D, H, W)`` → ``(N, C, *output_size)``."""

    n, op = 3, staticmethod(F.adaptive_avg_pool3d)


class AdaptiveMaxPool1d(_AdaptiveMaxPoolNd):
    """``torch.nn.AdaptiveMaxPool1d(output_size, return_indices=False)``; bins as :class:`AdaptiveAvgPool1d`."""

    n, op = 1, staticmethod(F.adaptive_max_pool1d)


class AdaptiveMaxPool2d(_AdaptiveMaxPoolNd):
    """``torch.nn.AdaptiveMaxPool2d(output_size, return_indices=False)``; bins as :class:`AdaptiveAvgPool2d`."""

    n, op = 2, staticmethod(F.adaptive_max_pool2d)


class AdaptiveMaxPool3d(_AdaptiveMaxPoolNd):
    """``torch.nn.AdaptiveMaxPool3d(output_size, return_indices=False)``."""

    n, op = 3, staticmethod(F.adaptive_max_pool3d)


class _LPPoolNd(_PoolNd):
    def __init__(self, norm_type, kernel_size, stride=None, ceil_mode=False):
        where = type(self).__name__
        if not _checks.is_number(norm_type):
            raise TypeError(f"{where}: norm_type must be a number, got {norm_type!r}")
        if norm_type == 0:
            raise ValueError(f"{where}: norm_type must be non-zero, got {norm_type!r}")
        self.norm_type = norm_type
        self._geometry(kernel_size, stride, 0)
        del self.dilation
        self.ceil_mode = _checks.boolean(ceil_mode, "ceil_mode", where)

    def apply(self, params, state, x, *, train=False, rng=None):
        # the op pools x ** p (a float) for a finite p, and |x| (x's own dtype) for an infinite one
        self._check_input(x, floating=math.isinf(self.norm_type))
        return self.op(x, self.norm_type, self.kernel_size, self.stride, self.ceil_mode), state

    def extra_repr(self) -> str:
        return (f"norm_type={self.norm_type}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"ceil_mode={self.ceil_mode}")


class LPPool1d(_LPPoolNd):
    """``torch.nn.LPPool1d(norm_type, kernel_size, stride=None, ceil_mode=False)``: ``(Σ_window x^p)^(1/p)``.

    Shape: ``L_out = floor((L − kernel_size [+ stride − 1 if ceil_mode]) / stride) + 1``.
    """

    n, op = 1, staticmethod(F.lp_pool1d)


class LPPool2d(_LPPoolNd):
    """``torch.nn.LPPool2d(norm_type, kernel_size, stride=None, ceil_mode=False)``; shape as :class:`LPPool1d`."""

    n, op = 2, staticmethod(F.lp_pool2d)


class LPPool3d(_LPPoolNd):
    """``torch.nn.LPPool3d(norm_type, kernel_size, stride=None, ceil_mode=False)``; shape as :class:`LPPool1d`."""

    n, op = 3, staticmethod(F.lp_pool3d)

