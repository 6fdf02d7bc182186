"""Static view of a compiled train step: ``python -m benchmarks.hlo_stats [model:batch ...]``.

For the hand-written lax step and fcnn's step it prints XLA's cost analysis
(flops, bytes accessed), the executable's buffer sizes (arguments, outputs,
temporaries — the step's working memory, exact where RSS deltas are not) and
a histogram of the optimized HLO's instructions, to see what differs between
the two compiled programs.
"""

from __future__ import annotations

import collections
import re
import sys
import warnings

import jax
import jax.numpy as jnp

from benchmarks import impl_fcnn, impl_lax, spec

warnings.filterwarnings("ignore")


def compiled_lax(model, batch):
    x, y = (jnp.asarray(a) for a in spec.data(model, batch))
    p, s = impl_lax.init(model)
    buf = jax.tree.map(jnp.zeros_like, p)
    return impl_lax.make_step(model).lower(p, s, buf, x, y).compile()


def compiled_fcnn(model, batch):
    from fcnn import nn, train

    net = impl_fcnn.build(model)
    opt = impl_fcnn.optimizer()
    x, y = (jnp.asarray(a) for a in spec.data(model, batch))
    ts = train.create_train_state(net, opt, 0)
    return train.make_train_step(net, nn.CrossEntropyLoss(), opt).lower(ts, (x, y)).compile()


def describe(name, compiled):
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    mem = compiled.memory_analysis()
    ops = collections.Counter(re.findall(r"= \S+ (\w[\w-]*)\(", compiled.as_text()))
    top = ", ".join(f"{k} {v}" for k, v in ops.most_common(12))
    mib = lambda b: f"{b / 2**20:.1f} MiB"
    print(f"  {name:5s} GFLOP {cost.get('flops', 0) / 1e9:.3f}, bytes accessed {mib(cost.get('bytes accessed', 0))}, "
          f"args {mib(mem.argument_size_in_bytes)}, out {mib(mem.output_size_in_bytes)}, "
          f"temp {mib(mem.temp_size_in_bytes)}")
    print(f"        ops: {top}")


def main(argv):
    cases = [(c.split(":")[0], int(c.split(":")[1])) for c in argv] or [("lenet", 128), ("bncnn", 64)]
    for model, batch in cases:
        print(f"{model} b{batch}")
        describe("lax", compiled_lax(model, batch))
        describe("fcnn", compiled_fcnn(model, batch))


if __name__ == "__main__":
    main(sys.argv[1:])
