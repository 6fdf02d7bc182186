"""Weight-standardised convolutions as timm writes them (``timm.layers.std_conv``).

``StdConv2d`` / ``StdConv2dSame`` (BiT ResNet-V2, hybrid ViTs) standardise
each output channel's weights to zero mean and unit variance before the
convolution; ``ScaledStdConv2d`` / ``ScaledStdConv2dSame`` (NFNets) also
multiply them by a learned ``gain`` and ``gamma / √fan_in``:

    ŵ[o] = (w[o] − mean(w[o])) / √(var(w[o]) + eps) · gain[o] · gamma / √fan_in

with the biased variance over ``fan_in = in_channels / groups · kh · kw``
elements, ``eps`` inside the square root (timm computes it with
``F.batch_norm`` in training mode). Params keep timm's names and order:
``weight``, ``bias`` (when enabled), ``gain`` ``(out_channels, 1, 1, 1)``.
"""

from __future__ import annotations

import jax

from fcnn import _checks
from fcnn.nn import init as _init
from fcnn.nn.conv import Conv2d
from fcnn.nn.same_padding import pad_same, timm_padding


def standardize_weight(weight, eps: float, scale=None):
    """``(w − mean) / √(var + eps)`` per output channel (dim 0) of ``weight``, times ``scale`` ``(out,)`` if given."""
    axes = tuple(range(1, weight.ndim))
    mean = weight.mean(axis=axes, keepdims=True)
    centred = weight - mean
    var = (centred * centred).mean(axis=axes, keepdims=True)
    w = centred * jax.lax.rsqrt(var + eps)
    if scale is not None:
        w = w * scale.reshape((-1,) + (1,) * (weight.ndim - 1))
    return w


class _StdConv(Conv2d):
    """A Conv2d that standardises its weight; the ``*Same`` forms pad the input as TF's 'SAME' when needed."""

    _same = False  # resolve padding as timm's get_padding_value (the *Same classes)

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, eps,
                 **kwargs):
        where = type(self).__name__
        if self._same:
            padding, self.same_pad = timm_padding(padding, kernel_size, stride, dilation, where)
        else:
            self.same_pad = False
            if padding is None:
                padding, _ = timm_padding(None, kernel_size, stride, dilation, where)
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, **kwargs)
        self.eps = _checks.number(eps, "eps", where, minimum=0)

    def _scale(self, params):
        return None

    def apply(self, params, state, x, *, train=False, rng=None):
        if self.same_pad:
            x = pad_same(_checks.as_array(x, "input", type(self).__name__), self.kernel_size, self.stride,
                         self.dilation)
        conv_params = {"weight": standardize_weight(params["weight"], self.eps, self._scale(params))}
        if "bias" in params:
            conv_params["bias"] = params["bias"]
        return super().apply(conv_params, state, x)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", eps={self.eps}"


class StdConv2d(_StdConv):
    """timm's ``StdConv2d``: a ``Conv2d`` with weight standardisation (see the module docstring).

    Args (timm's): ``in_channels, out_channels, kernel_size, stride=1, padding=None, dilation=1,
    groups=1, bias=False, eps=1e-6``; ``padding=None`` is ``((stride − 1) + dilation·(kernel_size − 1)) // 2``.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=None, dilation=1, groups=1,
                 bias=False, eps=1e-6, **kwargs):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, eps,
                         **kwargs)


class StdConv2dSame(StdConv2d):
    """timm's ``StdConv2dSame``: :class:`StdConv2d` with ``padding='SAME'`` (TensorFlow's) by default."""

    _same = True

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding="SAME", dilation=1, groups=1,
                 bias=False, eps=1e-6, **kwargs):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, eps,
                         **kwargs)


class ScaledStdConv2d(_StdConv):
    """timm's ``ScaledStdConv2d`` (NFNets): standardised weights times ``gain · gamma / √fan_in``.

    Args (timm's): ``in_channels, out_channels, kernel_size, stride=1, padding=None, dilation=1,
    groups=1, bias=True, gamma=1.0, eps=1e-6, gain_init=1.0``. Params ``weight``, ``bias``,
    ``gain`` ``(out_channels, 1, 1, 1)`` filled with ``gain_init``.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=None, dilation=1, groups=1,
                 bias=True, gamma=1.0, eps=1e-6, gain_init=1.0, **kwargs):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, eps,
                         **kwargs)
        where = type(self).__name__
        for name, value in (("gamma", gamma), ("gain_init", gain_init)):
            if not _checks.is_number(value):
                raise TypeError(f"{where}: {name} must be a number, got {value!r}")
        fan_in = self.weight_shape[1] * self.weight_shape[2] * self.weight_shape[3]
        self.gamma, self.gain_init = float(gamma), float(gain_init)
        self.scale = self.gamma * fan_in ** -0.5

    def init(self, key):
        params, state = super().init(key)
        params["gain"] = _init.constant(self.gain_init)(key, (self.out_channels, 1, 1, 1), self.dtype)
        return params, state

    def _scale(self, params):
        return params["gain"].reshape(-1) * self.scale


class ScaledStdConv2dSame(ScaledStdConv2d):
    """timm's ``ScaledStdConv2dSame``: :class:`ScaledStdConv2d` with ``padding='SAME'`` (TensorFlow's) by default."""

    _same = True

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding="SAME", dilation=1, groups=1,
                 bias=True, gamma=1.0, eps=1e-6, gain_init=1.0, **kwargs):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, gamma,
                         eps, gain_init, **kwargs)
