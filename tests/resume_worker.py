"""Training process used by tests/test_checkpoint.py's exact-resume test.

``python resume_worker.py DIR STEPS [--ack] [--resume]`` trains a tiny conv net
with Adam on a deterministic data stream, checkpointing every ``EVERY`` steps
into DIR. With ``--ack`` it prints ``saved <step>`` after each checkpoint and
waits for a line on stdin, so the parent can SIGKILL it right after a given
checkpoint. With ``--resume`` it starts from ``latest(DIR)``. At the end it
saves the final train state as DIR/final.npz.
"""

import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax

from fcnn import checkpoint, nn

EVERY = 3


def model():
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 2, 3, stride=2))


def batch(step):
    # The data stream is a pure function of the step, as a resumable loader must be.
    rs = np.random.RandomState(step)
    return rs.standard_normal((4, 1, 8, 8)).astype(np.float32), rs.standard_normal((4, 2, 3, 3)).astype(np.float32)


NET = model()
OPT = optax.adam(1e-2)


@jax.jit
def _init():
    # 'rbg' keys: threefry programs take many seconds to compile on a busy CPU
    params, state = NET.init(jax.random.key(0, impl="rbg"))
    return params, state, OPT.init(params), jax.random.key(7, impl="rbg")


def init_state():
    # one compiled function instead of a compile per eager op: the test starts this process twice
    params, state, opt_state, rng = _init()
    return {"params": params, "state": state, "opt_state": opt_state, "step": 0, "rng": rng}


@jax.jit
def train_step(params, state, opt_state, rng, x, y):
    rng, noise_key = jax.random.split(rng)
    # input noise drawn from the carried key: resuming must restore the key too.
    x = x + 0.1 * jax.random.normal(noise_key, x.shape)

    def loss_fn(p):
        out, new_state = NET.apply(p, state, x, train=True)
        return jnp.mean((out - y) ** 2), new_state

    (loss, new_state), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = OPT.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), new_state, opt_state, rng, loss


def train(ts, steps, history, on_checkpoint=None, directory=None):
    while ts["step"] < steps:
        x, y = batch(ts["step"])
        p, s, o, r, loss = train_step(ts["params"], ts["state"], ts["opt_state"], ts["rng"], x, y)
        ts = {"params": p, "state": s, "opt_state": o, "step": ts["step"] + 1, "rng": r}
        history.append(float(loss))
        if directory is not None and ts["step"] % EVERY == 0:
            checkpoint.save_checkpoint(directory, ts, ts["step"], keep=2, metadata={"history": history})
            if on_checkpoint:
                on_checkpoint(ts["step"])
    return ts, history


def main(argv):
    directory, steps = argv[0], int(argv[1])
    if "--resume" in argv:
        # the template only needs structure, shapes and dtypes: nothing is computed
        template = dict(jax.eval_shape(init_state), step=0)
        ts, header = checkpoint.restore_latest(directory, template)
        history = header["metadata"]["history"]
    else:
        ts, history = init_state(), []

    def ack(step):
        print(f"saved {step}", flush=True)
        sys.stdin.readline()

    ts, history = train(ts, steps, history, ack if "--ack" in argv else None, directory)
    checkpoint.save(f"{directory}/final.npz", ts, metadata={"history": history})


if __name__ == "__main__":
    main(sys.argv[1:])
