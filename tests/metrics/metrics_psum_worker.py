"""Subprocess worker for test_metrics_stateful.py: metric states summed over 4 virtual devices with psum.

    XLA_FLAGS=--xla_force_host_platform_device_count=4 python metrics_psum_worker.py IN.npz OUT.npz

Each device updates a fresh state with its quarter of every batch; ``jax.lax.psum``
inside ``shard_map`` sums the states, and ``compute`` runs on the sum.
"""

import sys

import jax
import numpy as np
from jax.sharding import Mesh, PartitionSpec as P

from fcnn import metrics

METRICS = {
    "f1_macro": metrics.F1Score(task="multiclass", num_classes=5, average="macro", ignore_index=-1),
    "top2": metrics.Accuracy(task="multiclass", num_classes=5, top_k=2, ignore_index=-1),
    "confmat": metrics.ConfusionMatrix(task="multiclass", num_classes=5, normalize="true", ignore_index=-1),
    "auroc": metrics.AUROC(task="multiclass", num_classes=5, thresholds=50, average="weighted", ignore_index=-1),
}


def main(src, dst):
    assert jax.device_count() == 4, jax.devices()
    data = np.load(src)
    mesh = Mesh(np.array(jax.devices()), ("d",))
    collection = metrics.Collection(METRICS)

    def local_then_sum(scores, target):
        state = collection.update(collection.init(), scores, target)
        return jax.lax.psum(state, "d")

    summed = jax.jit(jax.shard_map(local_then_sum, mesh=mesh, in_specs=(P("d"), P("d")), out_specs=P()))
    state = collection.init()
    for i in range(int(data["batches"])):
        state = metrics.merge(state, summed(data[f"scores{i}"], data[f"target{i}"]))
    np.savez(dst, **{k: np.asarray(v) for k, v in collection.compute(state).items()})


if __name__ == "__main__":
    main(*sys.argv[1:])
