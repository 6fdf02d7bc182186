"""Flax NNX with ``nnx.jit`` (mutable objects, graph traversal on each call)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from benchmarks import spec


def _pool(x):
    return nnx.max_pool(x, (2, 2), (2, 2)) if hasattr(nnx, "max_pool") else jax.lax.reduce_window(
        x, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")


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
                bns.append(nnx.BatchNorm(item[1], momentum=0.9, rngs=rngs))
        self.convs = nnx.List(convs) if hasattr(nnx, "List") else convs
        self.bns = nnx.List(bns) if hasattr(nnx, "List") else bns
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


def setup(model: str, batch: int, seed: int = 0):
    x, y = spec.data(model, batch, seed)
    x = jnp.asarray(np.transpose(x, (0, 2, 3, 1)))
    y = jnp.asarray(y)
    net = {"lenet": LeNet, "bncnn": BNCNN}[model](nnx.Rngs(seed))
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
