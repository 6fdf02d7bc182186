"""Equinox: per-example modules vmapped over the batch, ``eqx.filter_jit``, ``eqx.nn.State`` for BN."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from benchmarks import spec


def _bn(c):
    """Per-example BN over the vmapped "batch" axis; torch's running-stat momentum 0.1 is Equinox's 0.9."""
    return eqx.nn.BatchNorm(c, axis_name="batch", eps=1e-5, momentum=0.9, mode="batch")


class LeNet(eqx.Module):
    layers: list

    def __init__(self, key):
        k = jax.random.split(key, 5)
        self.layers = [eqx.nn.Conv2d(1, 6, 5, padding=2, key=k[0]), eqx.nn.Conv2d(6, 16, 5, key=k[1]),
                       eqx.nn.Linear(400, 120, key=k[2]), eqx.nn.Linear(120, 84, key=k[3]),
                       eqx.nn.Linear(84, 10, key=k[4])]
        self.pool = eqx.nn.MaxPool2d(2, 2)

    pool: eqx.nn.MaxPool2d

    def __call__(self, x, state):
        c1, c2, f1, f2, f3 = self.layers
        x = self.pool(jax.nn.relu(c1(x)))
        x = self.pool(jax.nn.relu(c2(x)))
        x = x.reshape(-1)
        return f3(jax.nn.relu(f2(jax.nn.relu(f1(x))))), state


class BNCNN(eqx.Module):
    convs: list
    bns: list
    fc: eqx.nn.Linear
    pool: eqx.nn.MaxPool2d

    def __init__(self, key):
        keys = iter(jax.random.split(key, 5))
        self.convs, self.bns = [], []
        for item in spec.BNCNN_CHANNELS:
            if item != "pool":
                self.convs.append(eqx.nn.Conv2d(*item, 3, padding=1, use_bias=False, key=next(keys)))
                self.bns.append(_bn(item[1]))
        self.fc = eqx.nn.Linear(64 * 8 * 8, 10, key=next(keys))
        self.pool = eqx.nn.MaxPool2d(2, 2)

    def __call__(self, x, state):
        i = 0
        for item in spec.BNCNN_CHANNELS:
            if item == "pool":
                x = self.pool(x)
                continue
            x, state = self.bns[i](self.convs[i](x), state)
            x = jax.nn.relu(x)
            i += 1
        return self.fc(x.reshape(-1)), state


class BasicBlock(eqx.Module):
    conv1: eqx.nn.Conv2d
    bn1: eqx.nn.BatchNorm
    conv2: eqx.nn.Conv2d
    bn2: eqx.nn.BatchNorm
    downsample: tuple | None

    def __init__(self, cin, cout, stride, key):
        k1, k2, k3 = jax.random.split(key, 3)
        self.conv1 = eqx.nn.Conv2d(cin, cout, 3, stride, 1, use_bias=False, key=k1)
        self.bn1 = _bn(cout)
        self.conv2 = eqx.nn.Conv2d(cout, cout, 3, 1, 1, use_bias=False, key=k2)
        self.bn2 = _bn(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = (eqx.nn.Conv2d(cin, cout, 1, stride, use_bias=False, key=k3), _bn(cout))

    def __call__(self, x, state):
        out, state = self.bn1(self.conv1(x), state)
        out, state = self.bn2(self.conv2(jax.nn.relu(out)), state)
        if self.downsample is not None:
            conv, bn = self.downsample
            x, state = bn(conv(x), state)
        return jax.nn.relu(out + x), state


class ResNet18(eqx.Module):
    conv1: eqx.nn.Conv2d
    bn1: eqx.nn.BatchNorm
    pool: eqx.nn.MaxPool2d
    blocks: list
    fc: eqx.nn.Linear

    def __init__(self, key):
        keys = iter(jax.random.split(key, 10))
        self.conv1 = eqx.nn.Conv2d(3, 64, 7, 2, 3, use_bias=False, key=next(keys))
        self.bn1 = _bn(64)
        self.pool = eqx.nn.MaxPool2d(3, 2, 1)
        self.blocks, cin = [], 64
        for stage, cout in enumerate((64, 128, 256, 512)):
            for block in range(2):
                self.blocks.append(BasicBlock(cin, cout, 2 if stage > 0 and block == 0 else 1, next(keys)))
                cin = cout
        self.fc = eqx.nn.Linear(512, spec.num_classes("resnet18"), key=next(keys))

    def __call__(self, x, state):
        x, state = self.bn1(self.conv1(x), state)
        x = self.pool(jax.nn.relu(x))
        for block in self.blocks:
            x, state = block(x, state)
        return self.fc(jnp.mean(x, (1, 2))), state


def setup(model: str, batch: int, seed: int = 0):
    x, y = (jnp.asarray(a) for a in spec.data(model, batch, seed))
    cls = {"lenet": LeNet, "bncnn": BNCNN, "resnet18": ResNet18}[model]
    return train_runner(*eqx.nn.make_with_state(cls)(jax.random.key(seed)), x, y)


def train_runner(net, state, x, y):
    """``run()``: one SGD step (momentum, optax) of ``net`` on the batch ``(x, y)``, returning the loss.

    ``net(example, state) -> (logits, state)`` sees one example and is vmapped over the batch.
    """
    tx = optax.sgd(spec.LR, momentum=spec.MOMENTUM)
    opt_state = tx.init(eqx.filter(net, eqx.is_array))

    @eqx.filter_jit(donate="all-except-first")
    def step(batch, net, state, opt_state):
        x, y = batch
        def loss_fn(net):
            logits, new_state = jax.vmap(net, axis_name="batch", in_axes=(0, None), out_axes=(0, None))(x, state)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), new_state

        (loss, new_state), g = eqx.filter_value_and_grad(loss_fn, has_aux=True)(net)
        updates, opt_state = tx.update(g, opt_state, eqx.filter(net, eqx.is_array))
        return eqx.apply_updates(net, updates), new_state, opt_state, loss

    carry = [net, state, opt_state]

    def run():
        carry[0], carry[1], carry[2], loss = step((x, y), *carry)
        return loss

    return run
