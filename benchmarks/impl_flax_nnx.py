"""Flax NNX with ``nnx.jit`` (mutable objects, graph traversal on each call)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from benchmarks import spec


def _pool(x, k=2, s=2, pad=0):
    padding = ((pad, pad), (pad, pad))
    return nnx.max_pool(x, (k, k), (s, s), padding) if hasattr(nnx, "max_pool") else jax.lax.reduce_window(
        x, -jnp.inf, jax.lax.max, (1, k, k, 1), (1, s, s, 1), ((0, 0),) + padding + ((0, 0),))


def _list(modules):
    return nnx.List(modules) if hasattr(nnx, "List") else modules


def _bn(c, rngs):
    """Train-mode BN with torch's running-stat momentum 0.1 (Flax counts the other way: 0.9)."""
    return nnx.BatchNorm(c, momentum=0.9, epsilon=1e-5, rngs=rngs)


class LeNet(nnx.Module):
    def __init__(self, rngs):
        self.conv1 = nnx.Conv(1, 6, (5, 5), padding=2, rngs=rngs)
        self.conv2 = nnx.Conv(6, 16, (5, 5), padding="VALID", rngs=rngs)
        self.fc1 = nnx.Linear(400, 120, rngs=rngs)
        self.fc2 = nnx.Linear(120, 84, rngs=rngs)
        self.fc3 = nnx.Linear(84, 10, rngs=rngs)

    def __call__(self, x):
        x = _pool(nnx.relu(self.conv1(x)))
        x = _pool(nnx.relu(self.conv2(x)))
        x = x.reshape(x.shape[0], -1)
        return self.fc3(nnx.relu(self.fc2(nnx.relu(self.fc1(x)))))


class BNCNN(nnx.Module):
    def __init__(self, rngs):
        convs, bns = [], []
        for item in spec.BNCNN_CHANNELS:
            if item != "pool":
                convs.append(nnx.Conv(*item, (3, 3), padding=1, use_bias=False, rngs=rngs))
                bns.append(_bn(item[1], rngs))
        self.convs = _list(convs)
        self.bns = _list(bns)
        self.fc = nnx.Linear(64 * 8 * 8, 10, rngs=rngs)

    def __call__(self, x):
        i = 0
        for item in spec.BNCNN_CHANNELS:
            if item == "pool":
                x = _pool(x)
                continue
            x = nnx.relu(self.bns[i](self.convs[i](x)))
            i += 1
        return self.fc(x.reshape(x.shape[0], -1))


class BasicBlock(nnx.Module):
    def __init__(self, cin, cout, stride, rngs):
        self.conv1 = nnx.Conv(cin, cout, (3, 3), stride, padding=1, use_bias=False, rngs=rngs)
        self.bn1 = _bn(cout, rngs)
        self.conv2 = nnx.Conv(cout, cout, (3, 3), padding=1, use_bias=False, rngs=rngs)
        self.bn2 = _bn(cout, rngs)
        self.downsample = nnx.Sequential(
            nnx.Conv(cin, cout, (1, 1), stride, padding="VALID", use_bias=False, rngs=rngs), _bn(cout, rngs),
        ) if stride != 1 or cin != cout else None

    def __call__(self, x):
        out = nnx.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return nnx.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet18(nnx.Module):
    def __init__(self, rngs):
        self.conv1 = nnx.Conv(3, 64, (7, 7), 2, padding=3, use_bias=False, rngs=rngs)
        self.bn1 = _bn(64, rngs)
        blocks, cin = [], 64
        for stage, cout in enumerate((64, 128, 256, 512)):
            for block in range(2):
                blocks.append(BasicBlock(cin, cout, 2 if stage > 0 and block == 0 else 1, rngs))
                cin = cout
        self.blocks = _list(blocks)
        self.fc = nnx.Linear(512, spec.num_classes("resnet18"), rngs=rngs)

    def __call__(self, x):
        x = _pool(nnx.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        for block in self.blocks:
            x = block(x)
        return self.fc(jnp.mean(x, (1, 2)))


def setup(model: str, batch: int, seed: int = 0):
    x, y = spec.data(model, batch, seed)
    x = jnp.asarray(np.transpose(x, (0, 2, 3, 1)))
    y = jnp.asarray(y)
    net = {"lenet": LeNet, "bncnn": BNCNN, "resnet18": ResNet18}[model](nnx.Rngs(seed))
    net.train()
    opt = nnx.Optimizer(net, optax.sgd(spec.LR, momentum=spec.MOMENTUM), wrt=nnx.Param)

    @nnx.jit
    def step(net, opt, x, y):
        def loss_fn(net):
            return optax.softmax_cross_entropy_with_integer_labels(net(x), y).mean()

        loss, g = nnx.value_and_grad(loss_fn)(net)
        opt.update(net, g)
        return loss

    return lambda: step(net, opt, x, y)
