"""Haiku: ``hk.transform_with_state`` (NHWC)."""

from __future__ import annotations

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks import spec


def _pool(x, k=2, s=2, pad=0):
    # hk.max_pool knows only "SAME"/"VALID"; torch's symmetric padding is spelt out (with -inf)
    if pad:
        x = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), constant_values=-jnp.inf)
    return hk.max_pool(x, k, s, "VALID")


def _bn(x, train):
    """Train-mode BN; torch's running-stat momentum 0.1 is Haiku's decay_rate 0.9."""
    return hk.BatchNorm(True, True, decay_rate=0.9, eps=1e-5)(x, is_training=train)


def _conv(c, k, stride=1, pad=0):
    # explicit symmetric padding: Haiku's "SAME" pads (2, 3) / (0, 1) where torch pads (3, 3) / (1, 1)
    return hk.Conv2D(c, k, stride, padding=((pad, pad), (pad, pad)), with_bias=False)


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
        x = jax.nn.relu(_bn(_conv(item[1], 3, pad=1)(x), train))
    return hk.Linear(10)(x.reshape(x.shape[0], -1))


class BasicBlock(hk.Module):
    def __init__(self, cout, stride, name=None):
        super().__init__(name=name)
        self.cout, self.stride = cout, stride

    def __call__(self, x, train):
        out = jax.nn.relu(_bn(_conv(self.cout, 3, self.stride, 1)(x), train))
        out = _bn(_conv(self.cout, 3, 1, 1)(out), train)
        if self.stride != 1 or x.shape[-1] != self.cout:
            x = _bn(_conv(self.cout, 1, self.stride)(x), train)
        return jax.nn.relu(out + x)


def resnet18(x, train):
    x = _pool(jax.nn.relu(_bn(_conv(64, 7, 2, 3)(x), train)), 3, 2, 1)
    for stage, cout in enumerate((64, 128, 256, 512)):
        for block in range(2):
            x = BasicBlock(cout, 2 if stage > 0 and block == 0 else 1)(x, train)
    return hk.Linear(spec.num_classes("resnet18"))(jnp.mean(x, (1, 2)))


def setup(model: str, batch: int, seed: int = 0):
    x, y = spec.data(model, batch, seed)
    x = jnp.asarray(np.transpose(x, (0, 2, 3, 1)))
    y = jnp.asarray(y)
    net = hk.transform_with_state({"lenet": lenet, "bncnn": bncnn, "resnet18": resnet18}[model])
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
