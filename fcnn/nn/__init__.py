"""Layers: each holds hyper-parameters and offers ``init(key)`` and ``apply(params, state, *inputs, train, rng)``.

A leaf layer validates and normalises its hyper-parameters in ``__init__``
(with :mod:`fcnn._checks`, naming the layer) and its ``apply`` calls a public
op of :mod:`fcnn.functional`. A family with 1-D/2-D/3-D variants is one
N-dimensional class with thin subclasses that set ``n`` (the spatial
dimensions) and ``op``, the functional op of that rank::

    class MaxPool2d(_MaxPoolNd):
        n, op = 2, staticmethod(F.max_pool2d)

The op's own errors name the op; so that a bad input names the layer, ``apply``
first runs the op family's public input check with the layer's name (e.g.
:func:`fcnn.functional.pool.pool_input` in :mod:`fcnn.nn.pool`), or checks the
input itself (the channel count in :mod:`fcnn.nn.conv`).
"""

from fcnn.nn import init
from fcnn.nn.module import (
    Buffer, Child, Context, Layer, Module, ModuleDict, ModuleList, Parameter, RngRequiredError, Sequential,
    apply_with_hook,
)
from fcnn.nn.conv import Conv1d, Conv2d, Conv3d
from fcnn.nn.linear import Flatten, Identity, Linear, Unflatten
from fcnn.nn.activation import (
    CELU, ELU, GELU, GLU, SELU, Hardshrink, Hardsigmoid, Hardswish, Hardtanh, LeakyReLU, LogSigmoid, LogSoftmax, Mish,
    PReLU, ReLU, ReLU6, Sigmoid, SiLU, Softmax, Softmax2d, Softplus, Softshrink, Softsign, Tanh, Tanhshrink, Threshold,
)
from fcnn.nn.norm import (
    BatchNorm1d, BatchNorm2d, BatchNorm3d, GroupNorm, InstanceNorm1d, InstanceNorm2d, InstanceNorm3d, LayerNorm,
    LocalResponseNorm,
)
from fcnn.nn.dropout import AlphaDropout, Dropout, Dropout1d, Dropout2d, Dropout3d
from fcnn.nn.loss import (
    BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, HuberLoss, L1Loss, MSELoss, NLLLoss, SmoothL1Loss,
)
from fcnn.nn.pool import (
    AdaptiveAvgPool1d, AdaptiveAvgPool2d, AdaptiveAvgPool3d, AdaptiveMaxPool1d, AdaptiveMaxPool2d, AdaptiveMaxPool3d,
    AvgPool1d, AvgPool2d, AvgPool3d, LPPool1d, LPPool2d, LPPool3d, MaxPool1d, MaxPool2d, MaxPool3d, MaxUnpool1d,
    MaxUnpool2d, MaxUnpool3d,
)
from fcnn.nn.upsample import PixelShuffle, PixelUnshuffle, Upsample, UpsamplingBilinear2d, UpsamplingNearest2d
from fcnn.nn.conv_transpose import ConvTranspose1d, ConvTranspose2d, ConvTranspose3d
from fcnn.nn.blocks import (
    ChannelShuffle, Conv2dNormActivation, Conv3dNormActivation, DropPath, LayerNorm2d, Permute, SqueezeExcitation,
    StochasticDepth,
)
from fcnn.nn.padding import (
    CircularPad1d, CircularPad2d, CircularPad3d, ConstantPad1d, ConstantPad2d, ConstantPad3d, ReflectionPad1d,
    ReflectionPad2d, ReflectionPad3d, ReplicationPad1d, ReplicationPad2d, ReplicationPad3d, ZeroPad1d, ZeroPad2d,
    ZeroPad3d,
)
from fcnn.nn.fold import Fold, Unfold
from fcnn.nn.same_padding import AvgPool2dSame, Conv2dSame, MaxPool2dSame
from fcnn.nn.std_conv import ScaledStdConv2d, ScaledStdConv2dSame, StdConv2d, StdConv2dSame
from fcnn.nn.norm_act import BatchNormAct2d
