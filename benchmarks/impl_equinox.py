"""Equinox: per-example modules vmapped over the batch, ``eqx.filter_jit``, ``eqx.nn.State`` for BN."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from benchmarks import spec


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
                self.bns.append(eqx.nn.BatchNorm(item[1], axis_name="batch", momentum=0.9, mode="batch"))
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


def setup(model: str, batch: int, seed: int = 0):
    x, y = (jnp.asarray(a) for a in spec.data(model, batch, seed))
    net, state = eqx.nn.make_with_state({"lenet": LeNet, "bncnn": BNCNN}[model])(jax.random.key(seed))
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
