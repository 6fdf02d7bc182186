"""Building blocks of torchvision's CNNs (``torchvision.ops`` and the model files), timm's ``DropPath`` and torch's
``ChannelShuffle``.

``StochasticDepth``, ``SqueezeExcitation``, ``Conv2dNormActivation`` /
``Conv3dNormActivation``, ``Permute`` (``torchvision.ops``), ``LayerNorm2d``
(ConvNeXt's channels-first layer norm), ``DropPath`` (timm) and ``ChannelShuffle`` (``torch.nn``),
with torchvision's arguments, defaults and child names, so their params and
state carry the same state_dict keys as the torchvision modules.
"""

from __future__ import annotations

import jax.numpy as jnp

from fcnn import _checks
from fcnn.functional.elementwise import mul
from fcnn.functional.dropout import drop_path, stochastic_depth
from fcnn.functional.norm import layer_norm
from fcnn.functional.shuffle import channel_shuffle
from fcnn.nn.activation import ReLU, Sigmoid
from fcnn.nn.conv import Conv2d, Conv3d
from fcnn.nn.module import Layer, Module, Sequential, require_rng
from fcnn.nn.norm import BatchNorm2d, BatchNorm3d, LayerNorm
from fcnn.nn.pool import AdaptiveAvgPool2d


class StochasticDepth(Layer):
    """``torchvision.ops.StochasticDepth(p, mode)``: drop whole residual branches while training.

    ``mode='row'`` zeroes each example of the batch with probability ``p``,
    ``'batch'`` the whole batch at once; survivors are scaled by ``1/(1 − p)``.
    Identity with ``train=False``; with ``train=True`` and ``p > 0`` it needs
    ``rng``. See :func:`fcnn.functional.stochastic_depth`.

    Shape: any ``(N, ...)``; the output has the input's shape.
    """

    def __init__(self, p: float, mode: str):
        where = type(self).__name__
        self.p = _checks.probability(p, "p", where)
        self.mode = _checks.one_of(mode, ("row", "batch"), "mode", where)

    def apply(self, params, state, x, *, train=False, rng=None):
        if train and self.p > 0:
            require_rng(rng, type(self).__name__)
        return stochastic_depth(x, self.p, self.mode, train, key=rng), state

    def extra_repr(self) -> str:
        return f"p={self.p}, mode={self.mode}"


class DropPath(Layer):
    """timm's ``DropPath(drop_prob=0., scale_by_keep=True)``: drop whole examples of a residual branch.

    ``DropPath(p)`` is ``StochasticDepth(p, 'row')``; ``scale_by_keep=False`` keeps the survivors
    unscaled. Identity with ``train=False``; with ``train=True`` and ``drop_prob > 0`` it needs ``rng``.
    See :func:`fcnn.functional.drop_path`.
    """

    def __init__(self, drop_prob: float = 0.0, scale_by_keep: bool = True):
        where = type(self).__name__
        self.drop_prob = _checks.probability(drop_prob, "drop_prob", where)
        self.scale_by_keep = _checks.boolean(scale_by_keep, "scale_by_keep", where)

    def apply(self, params, state, x, *, train=False, rng=None):
        if train and self.drop_prob > 0:
            require_rng(rng, type(self).__name__)
        return drop_path(x, self.drop_prob, train, self.scale_by_keep, key=rng), state

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob:0.3f}"


class SqueezeExcitation(Module):
    """``torchvision.ops.SqueezeExcitation``: rescale channels by a gate computed from their means.

    ``out = x · scale_activation(fc2(activation(fc1(avgpool(x)))))`` with
    ``fc1``/``fc2`` 1×1 convolutions (with biases) and ``avgpool`` global
    average pooling; children ``avgpool``, ``fc1``, ``fc2``, ``activation``,
    ``scale_activation`` as torchvision's, so params are ``fc1.weight``
    ``(squeeze_channels, input_channels, 1, 1)``, ``fc1.bias``, ``fc2.weight``, ``fc2.bias``.

    Args:
      input_channels: ``C`` of the input.
      squeeze_channels: channels between ``fc1`` and ``fc2``.
      activation: a layer class (or any callable returning a layer), default :class:`ReLU`.
      scale_activation: likewise, default :class:`Sigmoid`.

    Shape: ``(N, C, H, W)`` or ``(C, H, W)`` → the same.
    """

    def __init__(self, input_channels: int, squeeze_channels: int, activation=ReLU, scale_activation=Sigmoid):
        super().__init__()
        self.avgpool = AdaptiveAvgPool2d(1)
        self.fc1 = Conv2d(input_channels, squeeze_channels, 1)
        self.fc2 = Conv2d(squeeze_channels, input_channels, 1)
        self.activation = activation()
        self.scale_activation = scale_activation()

    def forward(self, ctx, x):
        scale = ctx.scale_activation(ctx.fc2(ctx.activation(ctx.fc1(ctx.avgpool(x)))))
        return mul(scale, x)


# The default of ConvNormActivation's norm_layer: the batch norm of the convolution's dimension.
_BATCH_NORM = object()


class ConvNormActivation(Sequential):
    """A convolution, a normalisation and an activation in a :class:`Sequential`, as torchvision.ops.misc's.

    Use :class:`Conv2dNormActivation` or :class:`Conv3dNormActivation`. The
    children are named ``"0"`` (the convolution), then ``"1"`` the norm and
    ``"2"`` the activation, each present only when its factory is not ``None``
    (torchvision's numbering, so ``"1"`` is the activation without a norm).

    Args (torchvision's, in its order):
      in_channels, out_channels, kernel_size=3, stride=1: the convolution's.
      padding: default ``None``, which is ``(kernel_size − 1) // 2 · dilation`` per dimension
        (the size-keeping padding for odd kernels and stride 1).
      groups=1: the convolution's.
      norm_layer: ``norm_layer(out_channels)`` builds the norm (a class or ``functools.partial``);
        ``None`` for none; default ``BatchNorm2d`` / ``BatchNorm3d``.
      activation_layer: ``activation_layer(inplace=inplace)`` (``activation_layer()`` when
        ``inplace`` is ``None``) builds the activation; ``None`` for none; default :class:`ReLU`.
      dilation=1: the convolution's.
      inplace=True: passed on to the activation (accepted and ignored by fcnn's activations).
      bias: the convolution's bias; default ``None`` means ``norm_layer is None``.
    """

    _conv = None
    _norm = None

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, padding=None, groups=1,
                 norm_layer=_BATCH_NORM, activation_layer=ReLU, dilation=1, inplace=True, bias=None):
        where = type(self).__name__
        n = self._conv.n
        if norm_layer is _BATCH_NORM:
            norm_layer = self._norm
        if padding is None:
            k = _checks.ntuple(kernel_size, n, "kernel_size", where)
            d = _checks.ntuple(dilation, n, "dilation", where)
            padding = tuple((ki - 1) // 2 * di for ki, di in zip(k, d))
        if bias is None:
            bias = norm_layer is None
        layers = [self._conv(in_channels, out_channels, kernel_size, stride, padding, dilation=dilation,
                             groups=groups, bias=bias)]
        if norm_layer is not None:
            layers.append(norm_layer(out_channels))
        if activation_layer is not None:
            layers.append(activation_layer(**({} if inplace is None else {"inplace": inplace})))
        super().__init__(*layers)
        self.out_channels = out_channels


class Conv2dNormActivation(ConvNormActivation):
    """``torchvision.ops.Conv2dNormActivation``: ``Conv2d`` → norm (default ``BatchNorm2d``) → activation (``ReLU``).

    Arguments as :class:`ConvNormActivation`, in torchvision's order: ``in_channels,
    out_channels, kernel_size=3, stride=1, padding=None, groups=1, norm_layer=BatchNorm2d,
    activation_layer=ReLU, dilation=1, inplace=True, bias=None``.

    Example::

        block = nn.Conv2dNormActivation(3, 16, 3, stride=2)    # children "0" Conv2d(bias=False), "1", "2"
        params, state = block.init(jax.random.key(0))          # keys 0.weight, 1.weight, 1.running_mean, ...
    """

    _conv = Conv2d
    _norm = BatchNorm2d


class Conv3dNormActivation(ConvNormActivation):
    """``torchvision.ops.Conv3dNormActivation``: ``Conv3d`` → norm (default ``BatchNorm3d``) → activation (``ReLU``)."""

    _conv = Conv3d
    _norm = BatchNorm3d


class Permute(Layer):
    """``torchvision.ops.Permute(dims)``: ``jnp.transpose(x, dims)`` (torch's ``x.permute(dims)``).

    ``dims`` is a permutation of ``0 .. len(dims) − 1``; the input must have ``len(dims)`` dimensions.
    """

    def __init__(self, dims):
        where = type(self).__name__
        if isinstance(dims, (str, bytes)) or not hasattr(dims, "__iter__"):
            raise TypeError(f"{where}: dims must be a sequence of ints, got {dims!r}")
        dims = tuple(dims)
        if any(not _checks.is_int(d) for d in dims):
            raise TypeError(f"{where}: dims must be a sequence of ints, got {dims!r}")
        n = len(dims)
        if sorted(d % n if -n <= d < n else d for d in dims) != list(range(n)):
            raise ValueError(f"{where}: dims must be a permutation of 0..{n - 1}, got {dims!r}")
        self.dims = tuple(d % n for d in dims)

    def apply(self, params, state, x, *, train=False, rng=None):
        x = _checks.as_array(x, "input", type(self).__name__)
        if x.ndim != len(self.dims):
            raise ValueError(f"{type(self).__name__}: dims {self.dims} need a {len(self.dims)}-D input, "
                             f"got input of shape {tuple(x.shape)}")
        return jnp.transpose(x, self.dims), state

    def extra_repr(self) -> str:
        return f"dims={list(self.dims)}"


class LayerNorm2d(LayerNorm):
    """Layer norm over the channels of ``(N, C, H, W)``, as torchvision's ConvNeXt ``LayerNorm2d``.

    The same arguments, params (``weight``, ``bias`` of shape ``normalized_shape``, usually ``(C,)``)
    and statistics as :class:`LayerNorm`, applied to the channels-last view: each pixel's ``C``
    values are normalised together. ConvNeXt builds it with ``eps=1e-6``; the default is
    ``LayerNorm``'s ``1e-5``, as torchvision's class.

    Shape: ``(N, C, H, W)`` → the same.
    """

    def apply(self, params, state, x, *, train=False, rng=None):
        where = type(self).__name__
        x = _checks.as_array(x, "input", where)
        if x.ndim != 4:
            raise ValueError(f"{where}: expected a 4-D input (N, C, H, W), got input of shape {tuple(x.shape)}")
        y = layer_norm(jnp.moveaxis(x, 1, -1), self.normalized_shape, params.get("weight"), params.get("bias"),
                       self.eps)
        return jnp.moveaxis(y, -1, 1), state


class ChannelShuffle(Layer):
    """``torch.nn.ChannelShuffle(groups)``: interleave the channels of ``(N, C, *)`` from ``groups`` groups.

    See :func:`fcnn.functional.channel_shuffle`. Shape: the input's.
    """

    def __init__(self, groups: int):
        self.groups = _checks.positive_int(groups, "groups", type(self).__name__)

    def apply(self, params, state, x, *, train=False, rng=None):
        return channel_shuffle(x, self.groups), state

    def extra_repr(self) -> str:
        return f"groups={self.groups}"
