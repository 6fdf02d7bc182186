"""ResNet-50 and MobileNet-V2 in Equinox, written as Equinox's users write them.

Modules see one example (CHW) and are ``jax.vmap``-ed over the batch with ``axis_name="batch"``;
``eqx.nn.BatchNorm(mode="batch")`` keeps its statistics in an ``eqx.nn.State``; optax's SGD (the step of ``benchmarks/impl_equinox.py``);
``eqx.filter_jit`` for the train step and for the eval forward (``eqx.nn.inference_mode``).

Fields are named after torchvision's modules (``layer1[0].conv1``, ``features[2].conv[1][0]``), so a
torch ``state_dict`` key is a path into the model: :func:`load_torch_state_dict` walks it and puts
torchvision's arrays in place (Equinox's kernels are OIHW like torch's), the running statistics in
the ``State``.

Where Equinox differs from torch: its BN tracks the biased batch variance and debiases the running
averages by the number of steps taken (torch does neither), which changes the statistics after a
step, not the step's loss; eval from loaded statistics is torch's. MobileNet-V2's classifier
``Dropout(0.2)`` is left out of the train step (as in ``benchmarks/zoo_lax.py``); its ``Linear`` is
``classifier`` here (``classifier.1`` in torch).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from benchmarks import impl_equinox, zoo

MODELS = {"resnet50", "mobilenet_v2"}


def _conv(cin, cout, kernel, stride=1, groups=1, *, key):
    return eqx.nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, use_bias=False, key=key)


def _bn(c):
    """BN over the vmapped "batch" axis; torch's running-stat momentum 0.1 is Equinox's 0.9."""
    return eqx.nn.BatchNorm(c, axis_name="batch", eps=1e-5, momentum=0.9, mode="batch")


class Bottleneck(eqx.Module):
    conv1: eqx.nn.Conv2d
    bn1: eqx.nn.BatchNorm
    conv2: eqx.nn.Conv2d
    bn2: eqx.nn.BatchNorm
    conv3: eqx.nn.Conv2d
    bn3: eqx.nn.BatchNorm
    downsample: eqx.nn.Sequential | None

    def __init__(self, cin, width, stride, downsample, key):
        k1, k2, k3, k4 = jax.random.split(key, 4)
        self.conv1, self.bn1 = _conv(cin, width, 1, key=k1), _bn(width)
        self.conv2, self.bn2 = _conv(width, width, 3, stride, key=k2), _bn(width)
        self.conv3, self.bn3 = _conv(width, 4 * width, 1, key=k3), _bn(4 * width)
        self.downsample = eqx.nn.Sequential([_conv(cin, 4 * width, 1, stride, key=k4), _bn(4 * width)]) \
            if downsample else None

    def __call__(self, x, state):
        out, state = self.bn1(self.conv1(x), state)
        out, state = self.bn2(self.conv2(jax.nn.relu(out)), state)
        out, state = self.bn3(self.conv3(jax.nn.relu(out)), state)
        if self.downsample is not None:
            x, state = self.downsample(x, state)
        return jax.nn.relu(out + x), state


class ResNet50(eqx.Module):
    conv1: eqx.nn.Conv2d
    bn1: eqx.nn.BatchNorm
    pool: eqx.nn.MaxPool2d
    layer1: list
    layer2: list
    layer3: list
    layer4: list
    fc: eqx.nn.Linear

    def __init__(self, key):
        keys = iter(jax.random.split(key, 20))
        self.conv1, self.bn1 = _conv(3, 64, 7, 2, key=next(keys)), _bn(64)
        self.pool = eqx.nn.MaxPool2d(3, 2, 1)
        cin, layers = 64, []
        for width, blocks, stride in zoo.RESNET50_STAGES:
            layers.append([Bottleneck(cin if b == 0 else 4 * width, width, stride if b == 0 else 1, b == 0, next(keys))
                           for b in range(blocks)])
            cin = 4 * width
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.fc = eqx.nn.Linear(2048, 1000, key=next(keys))

    def __call__(self, x, state):
        x, state = self.bn1(self.conv1(x), state)
        x = self.pool(jax.nn.relu(x))
        for block in self.layer1 + self.layer2 + self.layer3 + self.layer4:
            x, state = block(x, state)
        return self.fc(jnp.mean(x, (1, 2))), state


def _conv_bn_relu6(cin, cout, kernel=1, stride=1, groups=1, *, key):
    """torchvision's ``Conv2dNormActivation``: convolution ``0``, BN ``1``, ReLU6."""
    return eqx.nn.Sequential([_conv(cin, cout, kernel, stride, groups, key=key), _bn(cout), eqx.nn.Lambda(jax.nn.relu6)])


class InvertedResidual(eqx.Module):
    conv: eqx.nn.Sequential
    residual: bool = eqx.field(static=True)

    def __init__(self, cin, cout, stride, expand, key):
        k1, k2, k3 = jax.random.split(key, 3)
        hidden = cin * expand
        layers = [_conv_bn_relu6(cin, hidden, key=k1)] if expand != 1 else []
        layers += [_conv_bn_relu6(hidden, hidden, 3, stride, hidden, key=k2), _conv(hidden, cout, 1, key=k3), _bn(cout)]
        self.conv = eqx.nn.Sequential(layers)
        self.residual = stride == 1 and cin == cout

    def __call__(self, x, state):
        out, state = self.conv(x, state)
        return (x + out if self.residual else out), state


class MobileNetV2(eqx.Module):
    features: list
    classifier: eqx.nn.Linear

    def __init__(self, key):
        keys = iter(jax.random.split(key, 20))
        self.features = [_conv_bn_relu6(3, 32, 3, 2, key=next(keys))]
        self.features += [InvertedResidual(cin, cout, stride, t, next(keys))
                          for _, cin, cout, stride, t in zoo.mobilenet_v2_blocks()]
        self.features.append(_conv_bn_relu6(320, 1280, key=next(keys)))
        self.classifier = eqx.nn.Linear(1280, 1000, key=next(keys))

    def __call__(self, x, state):
        for layer in self.features:
            x, state = layer(x, state)
        return self.classifier(jnp.mean(x, (1, 2))), state


def _module(net, path):
    for part in path.split("."):
        net = net[int(part)] if part.isdigit() else getattr(net, part)
    return net


def load_torch_state_dict(net, state, state_dict):
    """``(net, state)`` with torchvision's weights and running statistics put in place.

    ``net`` and ``state`` may be abstract (``eqx.filter_eval_shape``): every array is replaced.
    """
    renames = {"classifier.1": "classifier"}
    weights, stats = {}, {}
    for key, value in state_dict.items():
        module, leaf = key.rsplit(".", 1)
        module = renames.get(module, module)
        if leaf in ("running_mean", "running_var"):
            stats.setdefault(module, {})[leaf] = jnp.asarray(value.numpy())
        elif leaf != "num_batches_tracked":
            weights[module, leaf] = jnp.asarray(value.numpy())
    paths = list(weights)
    old = [getattr(_module(net, m), leaf) for m, leaf in paths]
    for (m, leaf), a, b in zip(paths, old, weights.values()):
        if a.shape != b.shape:
            raise ValueError(f"{m}.{leaf}: {b.shape} does not fit {a.shape}")
    net = eqx.tree_at(lambda n: [getattr(_module(n, m), leaf) for m, leaf in paths], net, list(weights.values()))
    for module, s in stats.items():
        bn = _module(net, module)
        state = state.set(bn.batch_counter, jnp.array(0))
        state = state.set(bn.batch_state_index, (s["running_mean"], s["running_var"]))
    left = [leaf for leaf in jax.tree.leaves((net, state)) if isinstance(leaf, jax.ShapeDtypeStruct)]
    if left:
        raise ValueError(f"{len(left)} arrays not in the state_dict, e.g. {left[0]}")
    return net, state


def setup(name, mode, batch, size, state_dict, seed=0):
    """One train step or one eval forward of ``name`` from torchvision's ``state_dict`` (see ``benchmarks/zoo.py``)."""
    if name not in MODELS:
        raise NotImplementedError(f"equinox has no {name}")
    cls = {"resnet50": ResNet50, "mobilenet_v2": MobileNetV2}[name]
    # The model's shape only (no random initialisation to pay for): every array comes from the state_dict.
    net, state = eqx.filter_eval_shape(eqx.nn.make_with_state(cls), jax.random.key(seed))
    net, state = load_torch_state_dict(net, state, state_dict)
    x, y = (jnp.asarray(a) for a in zoo.data(batch, size, seed))
    if mode == "eval":
        @eqx.filter_jit
        def forward(net, state, x):
            return jax.vmap(net, axis_name="batch", in_axes=(0, None), out_axes=(0, None))(x, state)[0]

        net = eqx.nn.inference_mode(net)
        return lambda: forward(net, state, x)
    return impl_equinox.train_runner(net, state, x, y)
