"""Layers: each holds hyper-parameters and offers ``init(key)`` and ``apply(params, state, *inputs, train, rng)``."""

from fcnn.nn import init
from fcnn.nn.module import Context, Layer, Module, ModuleList, Sequential, apply_with_hook
from fcnn.nn.conv import Conv1d, Conv2d, Conv3d
