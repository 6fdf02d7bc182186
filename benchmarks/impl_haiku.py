"""Haiku: ``hk.transform_with_state`` (NHWC)."""

from __future__ import annotations

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks import spec


def _pool(x):
    return hk.max_pool(x, 2, 2, "VALID")


def lenet(x, train):
    x = _pool(jax.nn.relu(hk.Conv2D(6, 5, padding=((2, 2), (2, 2)))(x)))
    x = _pool(jax.nn.relu(hk.Conv2D(16, 5, padding="VALID")(x)))
    x = x.reshape(x.shape[0], -1)
    x = jax.nn.relu(hk.Linear(120)(x))
    x = jax.nn.relu(hk.Linear(84)(x))
    return hk.Linear(10)(x)


def bncnn(x, train):
    for item in spec.BNCNN_CHANNELS:
        if item == "pool":
            x = _pool(x)
            continue
        x = hk.Conv2D(item[1], 3, padding=((1, 1), (1, 1)), with_bias=False)(x)
        x = jax.nn.relu(hk.BatchNorm(True, True, decay_rate=0.9)(x, is_training=train))
    return hk.Linear(10)(x.reshape(x.shape[0], -1))


def setup(model: str, batch: int, seed: int = 0):
    x, y = spec.data(model, batch, seed)
    x = jnp.asarray(np.transpose(x, (0, 2, 3, 1)))
    y = jnp.asarray(y)
    net = hk.transform_with_state({"lenet": lenet, "bncnn": bncnn}[model])
    params, state = net.init(jax.random.key(seed), x, True)
    tx = optax.sgd(spec.LR, momentum=spec.MOMENTUM)
    opt_state = tx.init(params)

    def _step(params, state, opt_state, x, y):
        def loss_fn(params):
            logits, new_state = net.apply(params, state, None, x, True)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), new_state

        (loss, state), g = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = tx.update(g, opt_state, params)
        return optax.apply_updates(params, updates), state, opt_state, loss

    step = jax.jit(_step, donate_argnums=(0, 1, 2))
    carry = [params, state, opt_state]

    def run():
        carry[0], carry[1], carry[2], loss = step(*carry, x, y)
        return loss

    return run
