"""Flax Linen, written the idiomatic way (NHWC, ``mutable=['batch_stats']``)."""

from __future__ import annotations

import flax.linen as fnn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks import spec


def _bn(train):
    """Train-mode BN with torch's running-stat momentum 0.1 (Flax counts the other way: 0.9)."""
    return fnn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5)


class LeNet(fnn.Module):
    @fnn.compact
    def __call__(self, x, train=True):
        x = fnn.max_pool(fnn.relu(fnn.Conv(6, (5, 5), padding=2)(x)), (2, 2), (2, 2))
        x = fnn.max_pool(fnn.relu(fnn.Conv(16, (5, 5), padding="VALID")(x)), (2, 2), (2, 2))
        x = x.reshape(x.shape[0], -1)
        x = fnn.relu(fnn.Dense(120)(x))
        x = fnn.relu(fnn.Dense(84)(x))
        return fnn.Dense(10)(x)


class BNCNN(fnn.Module):
    @fnn.compact
    def __call__(self, x, train=True):
        for item in spec.BNCNN_CHANNELS:
            if item == "pool":
                x = fnn.max_pool(x, (2, 2), (2, 2))
                continue
            x = fnn.Conv(item[1], (3, 3), padding=1, use_bias=False)(x)
            x = fnn.relu(_bn(train)(x))
        return fnn.Dense(10)(x.reshape(x.shape[0], -1))


class BasicBlock(fnn.Module):
    features: int
    stride: int = 1

    @fnn.compact
    def __call__(self, x, train=True):
        out = fnn.Conv(self.features, (3, 3), self.stride, padding=1, use_bias=False)(x)
        out = fnn.relu(_bn(train)(out))
        out = _bn(train)(fnn.Conv(self.features, (3, 3), padding=1, use_bias=False)(out))
        if self.stride != 1 or x.shape[-1] != self.features:
            x = _bn(train)(fnn.Conv(self.features, (1, 1), self.stride, padding="VALID", use_bias=False)(x))
        return fnn.relu(out + x)


class ResNet18(fnn.Module):
    @fnn.compact
    def __call__(self, x, train=True):
        x = fnn.relu(_bn(train)(fnn.Conv(64, (7, 7), 2, padding=3, use_bias=False)(x)))
        x = fnn.max_pool(x, (3, 3), (2, 2), padding=((1, 1), (1, 1)))
        for stage, features in enumerate((64, 128, 256, 512)):
            for block in range(2):
                x = BasicBlock(features, 2 if stage > 0 and block == 0 else 1)(x, train)
        return fnn.Dense(spec.num_classes("resnet18"))(jnp.mean(x, (1, 2)))


def setup(model: str, batch: int, seed: int = 0):
    x, y = spec.data(model, batch, seed)
    x = jnp.asarray(np.transpose(x, (0, 2, 3, 1)))
    y = jnp.asarray(y)
    net = {"lenet": LeNet, "bncnn": BNCNN, "resnet18": ResNet18}[model]()
    variables = net.init(jax.random.key(seed), x)
    return train_runner(net, variables["params"], variables.get("batch_stats", {}), x, y)


def train_runner(net, params, stats, x, y):
    """``run()``: one SGD step (momentum, optax) of ``net`` on the NHWC batch ``(x, y)``, returning the loss."""
    tx = optax.sgd(spec.LR, momentum=spec.MOMENTUM)
    opt_state = tx.init(params)

    def _step(params, stats, opt_state, x, y):
        def loss_fn(params):
            logits, new = net.apply({"params": params, "batch_stats": stats}, x, mutable=["batch_stats"])
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), new.get("batch_stats", {})

        (loss, stats), g = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = tx.update(g, opt_state, params)
        return optax.apply_updates(params, updates), stats, opt_state, loss

    step = jax.jit(_step, donate_argnums=(0, 1, 2))
    carry = [params, stats, opt_state]

    def run():
        carry[0], carry[1], carry[2], loss = step(*carry, x, y)
        return loss

    return run
