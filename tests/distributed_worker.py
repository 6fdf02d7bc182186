"""Subprocess worker for tests/test_distributed.py (needs its own XLA_FLAGS / jax.distributed).

    python distributed_worker.py mesh OUT.npz          # 8 virtual devices: mesh vs 1 device
"""

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax

from fcnn import distributed, nn, train

GLOBAL_BATCH = 16
STEPS = 3


def model():
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Flatten(), nn.Linear(8 * 4 * 4, 5),
    )


def batches():
    rs = np.random.RandomState(0)
    for _ in range(STEPS):
        x = (rs.standard_normal((GLOBAL_BATCH, 3, 8, 8)) * 2 + 1).astype(np.float32)
        y = rs.randint(0, 5, GLOBAL_BATCH).astype(np.int32)
        yield x, y


def run(mesh=None, rows=None, **options):
    """Train STEPS steps; returns (flat params+state, losses) as numpy.

    ``run.info`` records how many devices held the result and whether the
    first train state was donated.
    """
    net, opt = model(), optax.sgd(0.1, momentum=0.9)
    ts = train.create_train_state(net, opt, 0)
    step = train.make_train_step(net, nn.CrossEntropyLoss(), opt, mesh=mesh, **options)
    if mesh is not None:
        ts = distributed.replicate(mesh, ts)
    first = jax.tree.leaves(ts.params)[0]
    losses = []
    for x, y in batches():
        batch = (x, y)
        if mesh is not None:
            lo, hi = rows if rows is not None else (0, GLOBAL_BATCH)
            batch = distributed.global_batch(mesh, (x[lo:hi], y[lo:hi]))
        ts, m = step(ts, batch)
        losses.append(m["loss"])
    leaves = jax.tree_util.tree_flatten_with_path((ts.params, ts.state))[0]
    flat = {jax.tree_util.keystr(k): np.asarray(v) for k, v in leaves}
    run.info = {"ndev": len(jax.tree.leaves(ts.params)[0].sharding.device_set), "donated": first.is_deleted()}
    return flat, np.asarray([np.asarray(l) for l in losses])


def main():
    mode = sys.argv[1]
    if mode == "mesh":
        out = sys.argv[2]
        assert jax.device_count() == 8, jax.devices()
        mesh = distributed.data_mesh()
        got, losses = run(mesh)
        info = run.info
        acc, acc_losses = run(mesh, accumulate_steps=2)
        bf16, bf16_losses = run(mesh, compute_dtype=jnp.bfloat16)
        np.savez(out, losses=losses, losses_acc=acc_losses, losses_bf16=bf16_losses, **info,
                 **{f"got{k}": v for k, v in got.items()}, **{f"bf16{k}": v for k, v in bf16.items()},
                 **{f"acc{k}": v for k, v in acc.items()})
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    main()
