"""ResNet-50 and MobileNet-V2 in Flax Linen, written as Flax's examples write them.

NHWC activations and HWIO kernels (``fnn.Conv``), ``fnn.BatchNorm(use_running_average=not train)``
with its statistics in the ``batch_stats`` collection (``mutable=["batch_stats"]`` in training),
optax's SGD (the step of ``benchmarks/impl_flax_linen.py``), one ``jax.jit`` each for the train step and the eval forward. The input batch is
transposed to NHWC once, outside the timed call.

Submodules are named after torchvision's modules (``layer1.0``/``conv1``, ``features.2``/``conv.1``/``0``),
so that a variable's path, joined with dots, is its torch ``state_dict`` key: that is how
:func:`load_torch_state_dict` converts torchvision's weights (OIHW → HWIO, linear weights transposed).
Explicit paddings of ``k // 2`` as torch's, not ``"SAME"`` (which pads strided layers on one side only).

Where Flax differs from torch: its BN tracks the biased batch variance (torch the unbiased one), which
changes the running statistics after a step, not the step's loss. MobileNet-V2's classifier
``Dropout(0.2)`` is left out of the train step (as in ``benchmarks/zoo_lax.py``).
"""

from __future__ import annotations

import flax.linen as fnn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from benchmarks import impl_flax_linen, zoo

MODELS = {"resnet50", "mobilenet_v2"}


def _conv(features, kernel, stride=1, groups=1, name=None):
    pad = kernel // 2
    return fnn.Conv(features, (kernel, kernel), stride, padding=((pad, pad), (pad, pad)), feature_group_count=groups,
                    use_bias=False, name=name)


def _bn(train, name):
    """BN with torch's running-stat momentum 0.1 (Flax counts the other way: 0.9) and eps 1e-5."""
    return fnn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, name=name)


class Bottleneck(fnn.Module):
    width: int
    stride: int = 1
    downsample: bool = False

    @fnn.compact
    def __call__(self, x, train=True):
        out = fnn.relu(_bn(train, "bn1")(_conv(self.width, 1, name="conv1")(x)))
        out = fnn.relu(_bn(train, "bn2")(_conv(self.width, 3, self.stride, name="conv2")(out)))
        out = _bn(train, "bn3")(_conv(4 * self.width, 1, name="conv3")(out))
        if self.downsample:
            x = _bn(train, "downsample.1")(_conv(4 * self.width, 1, self.stride, name="downsample.0")(x))
        return fnn.relu(out + x)


class ResNet50(fnn.Module):
    @fnn.compact
    def __call__(self, x, train=True):
        x = fnn.relu(_bn(train, "bn1")(_conv(64, 7, 2, name="conv1")(x)))
        x = fnn.max_pool(x, (3, 3), (2, 2), padding=((1, 1), (1, 1)))
        for li, (width, blocks, stride) in enumerate(zoo.RESNET50_STAGES, 1):
            for bi in range(blocks):
                x = Bottleneck(width, stride if bi == 0 else 1, bi == 0, name=f"layer{li}.{bi}")(x, train)
        return fnn.Dense(1000, name="fc")(jnp.mean(x, (1, 2)))


class ConvBNReLU6(fnn.Module):
    """torchvision's ``Conv2dNormActivation``: convolution ``0``, BN ``1``, ReLU6."""
    features: int
    kernel: int = 1
    stride: int = 1
    groups: int = 1

    @fnn.compact
    def __call__(self, x, train=True):
        x = _conv(self.features, self.kernel, self.stride, self.groups, name="0")(x)
        return fnn.relu6(_bn(train, "1")(x))


class InvertedResidual(fnn.Module):
    cin: int
    cout: int
    stride: int
    expand: int

    @fnn.compact
    def __call__(self, x, train=True):
        hidden, out, j = self.cin * self.expand, x, 0
        if self.expand != 1:
            out, j = ConvBNReLU6(hidden, name="conv.0")(out, train), 1
        out = ConvBNReLU6(hidden, 3, self.stride, hidden, name=f"conv.{j}")(out, train)
        out = _bn(train, f"conv.{j + 2}")(_conv(self.cout, 1, name=f"conv.{j + 1}")(out))
        return x + out if self.stride == 1 and self.cin == self.cout else out


class MobileNetV2(fnn.Module):
    @fnn.compact
    def __call__(self, x, train=True):
        x = ConvBNReLU6(32, 3, 2, name="features.0")(x, train)
        for i, cin, cout, stride, t in zoo.mobilenet_v2_blocks():
            x = InvertedResidual(cin, cout, stride, t, name=f"features.{i}")(x, train)
        x = ConvBNReLU6(1280, name="features.18")(x, train)
        return fnn.Dense(1000, name="classifier.1")(jnp.mean(x, (1, 2)))


def load_torch_state_dict(variables, state_dict):
    """``variables`` (from ``init``) with every array replaced by its torchvision twin."""
    flat = traverse_util.flatten_dict(variables)
    # Module names hold dots, so a variable is found by its path joined with dots: "params.layer1.0.conv1.kernel".
    by_name = {".".join(k): k for k in flat}
    out = {}
    for key, value in state_dict.items():
        module, leaf = key.rsplit(".", 1)
        a = value.numpy()
        if leaf == "num_batches_tracked":
            continue
        if leaf in ("running_mean", "running_var"):
            name = f"batch_stats.{module}.{leaf.removeprefix('running_')}"
        elif leaf == "weight":
            name = f"params.{module}.{'scale' if a.ndim == 1 else 'kernel'}"
            a = a.transpose(2, 3, 1, 0) if a.ndim == 4 else a.T
        else:
            name = f"params.{module}.{leaf}"
        k = by_name[name]
        if flat[k].shape != a.shape:
            raise ValueError(f"{key} {a.shape} does not fit {name} {flat[k].shape}")
        out[k] = jnp.asarray(a)
    missing = set(flat) - set(out)
    if missing:
        raise ValueError(f"not in the state_dict: {sorted(missing)[:5]}")
    return traverse_util.unflatten_dict(out)


def setup(name, mode, batch, size, state_dict, seed=0):
    """One train step or one eval forward of ``name`` from torchvision's ``state_dict`` (see ``benchmarks/zoo.py``)."""
    if name not in MODELS:
        raise NotImplementedError(f"flax_linen has no {name}")
    net = {"resnet50": ResNet50, "mobilenet_v2": MobileNetV2}[name]()
    x, y = zoo.data(batch, size, seed)
    x, y = jnp.asarray(np.transpose(x, (0, 2, 3, 1))), jnp.asarray(y)
    variables = jax.eval_shape(lambda: net.init(jax.random.key(seed), x[:1], train=False))
    variables = load_torch_state_dict(variables, state_dict)
    if mode == "eval":
        forward = jax.jit(lambda variables, x: net.apply(variables, x, train=False))
        return lambda: forward(variables, x)
    return impl_flax_linen.train_runner(net, variables["params"], variables["batch_stats"], x, y)
