"""Where a compiled train step spends its time, per XLA op: ``python -m benchmarks.profile bncnn 64``.

Compiles fcnn's step (``--impl lax`` for the hand-written reference) for one
benchmark case, or for one of ``benchmarks.zoo``'s torchvision networks
(``python -m benchmarks.profile mobilenet_v2 8 --size 96``, ``--eval`` for the
inference forward), runs it under ``jax.profiler`` and prints the traced XLA
operations (fusions, convolutions, YNNPACK calls), slowest first, each with
its output shape and the JAX operation it came from. On XLA:CPU an Eigen
convolution's traced event is its launch only: its work runs on the intra-op
thread pool, untraced, and is counted in the summary's "untraced" row (the
step's time less the traced operations'). Traced operations can also
overlap, so the traced time is a guide to where the time goes rather than a
partition of the step. The operations are also summed by kind (by the
instruction's name: convolutions by kernel size, YNNPACK calls, loops, copies
and transposes, element-wise fusions).
``--hlo FILE`` also writes the optimized HLO, to look the fusions up.
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import re
import tempfile
import warnings

import jax
import jax.numpy as jnp

from benchmarks import impl_fcnn, impl_lax, spec

# trace events that are runtime bookkeeping, not XLA operations
_RUNTIME = ("$", "ThunkExecutor", "Pjit", "end:", "Slinky", "Common", "Alloc", "ParseArguments")


def compiled_step(model: str, batch: int, impl: str):
    """``(compiled step, run)`` for ``impl`` in {"fcnn", "lax"}; ``run()`` takes one training step."""
    x, y = (jnp.asarray(a) for a in spec.data(model, batch))
    if impl == "lax":
        p, s = impl_lax.init(model)
        state = [p, s, jax.tree.map(jnp.zeros_like, p)]
        compiled = impl_lax.make_step(model).lower(*state, x, y).compile()

        def run():  # the reference donates its state: carry it from step to step
            out = compiled(*state, x, y)
            state[:] = out[:3]
            return out

        return compiled, run
    from fcnn import nn, train

    net, opt = impl_fcnn.build(model), impl_fcnn.optimizer()
    ts = train.create_train_state(net, opt, 0)
    compiled = train.make_train_step(net, nn.CrossEntropyLoss(), opt, donate=False).lower(ts, (x, y)).compile()
    return compiled, lambda: compiled(ts, (x, y))


def zoo_step(model: str, batch: int, size: int, train: bool):
    """``(compiled program, run)`` for fcnn's train step or eval forward of a ``benchmarks.zoo`` network."""
    from benchmarks import zoo

    state_dict = {k: v.detach().clone() for k, v in zoo.torch_model(model).state_dict().items()}
    run = zoo.setup_fcnn(model, "train" if train else "eval", batch, size, state_dict)
    jax.block_until_ready(run())
    return run.compiled(), run


def kind(name: str, line: str) -> str:
    """The kind of one traced operation (its HLO instruction ``line``), for the per-kind summary."""
    base = re.sub(r"\.\d+$", "", name)
    if "convolution" in line.split(", metadata=")[0] or base.startswith("conv"):
        window = re.search(r"window=\{size=([0-9x]+)", line)
        grouped = " grouped" if re.search(r"(feature|batch)_group_count=", line) else ""
        return f"convolution {window.group(1) if window else ''}{grouped}".rstrip()
    for prefix, what in (("ynn", "YNNPACK (matrix products, reductions)"), ("dot", "matrix product"),
                         ("while", "loop (scan)"), ("bitcast_dynamic-update-slice", "loop (scan) output copy"),
                         ("transpose", "transpose"), ("copy", "copy / layout change"), ("reduce", "reduction"),
                         ("select", "select (masks, max-pool)"), ("pad", "pad")):
        if base.startswith(prefix):
            return what
    return "element-wise fusion" if "fusion" in base else "other"


def profile(run, steps: int):
    """``(per-op microseconds summed over the steps, total microseconds of the steps)`` from a profiler trace."""
    jax.block_until_ready(run())
    folder = tempfile.mkdtemp()
    with jax.profiler.trace(folder, create_perfetto_trace=True):
        for _ in range(steps):
            out = run()
        jax.block_until_ready(out)
    events = json.load(gzip.open(glob.glob(folder + "/**/*.trace.json.gz", recursive=True)[0]))
    events = events["traceEvents"] if isinstance(events, dict) else events
    per_op, total = collections.defaultdict(float), 0.0
    for e in events:
        if e.get("ph") != "X" or "dur" not in e:
            continue
        if e["name"] == "ThunkExecutor::Execute (wait for completion)":
            total += e["dur"]
        elif not e["name"].startswith(_RUNTIME):
            per_op[e["name"]] += e["dur"]
    return per_op, total


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", help="lenet, bncnn, resnet18, or a benchmarks.zoo network")
    ap.add_argument("batch", type=int)
    ap.add_argument("--size", type=int, default=96, help="image size for the zoo networks")
    ap.add_argument("--eval", action="store_true", help="the zoo network's inference forward, not its train step")
    ap.add_argument("--impl", default="fcnn", choices=["fcnn", "lax"])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--hlo", default=None, help="also write the optimized HLO to this file")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    if args.model in ("lenet", "bncnn", "resnet18"):
        compiled, run = compiled_step(args.model, args.batch, args.impl)
    else:
        compiled, run = zoo_step(args.model, args.batch, args.size, not args.eval)
    text = compiled.as_text()
    if args.hlo:
        with open(args.hlo, "w") as f:
            f.write(text)
    entry = text[text.index("\nENTRY"):]
    per_op, total = profile(run, args.steps)
    print(f"{args.impl} {args.model} b{args.batch}: {total / args.steps / 1e3:.1f} ms per step, "
          f"{sum(per_op.values()) / args.steps / 1e3:.1f} ms in traced operations")
    kinds = collections.defaultdict(float)
    for name, us in per_op.items():
        line = re.search(r"\n  %" + re.escape(name) + r" = [^\n]*", entry)
        kinds[kind(name, line.group(0)) if line else "not in the entry computation"] += us
    # an Eigen convolution's event covers its launch only (a 53 ms 3×3 convolution traces as 1.2 ms); its work
    # runs on the intra-op pool, outside every traced operation, and lands here
    kinds["untraced (Eigen convolutions' work, waits)"] = max(0.0, total - sum(per_op.values()))
    print(f"{'ms/step':>8}  kind")
    for k, us in sorted(kinds.items(), key=lambda kv: -kv[1])[:args.top]:
        print(f"{us / args.steps / 1e3:8.2f}  {k}")
    print()
    print(f"{'ms/step':>8}  {'operation':30s} {'output':36s} from")
    for name, us in sorted(per_op.items(), key=lambda kv: -kv[1])[:args.top]:
        line = re.search(r"\n  %" + re.escape(name) + r" = [^\n]*", entry)
        line = line.group(0) if line else ""
        shape = line.split("=", 1)[1].split()[0] if line else ""
        source = re.search(r'op_name="([^"]*)"', line)
        print(f"{us / args.steps / 1e3:8.2f}  {name:30s} {shape:36s} {source.group(1)[-60:] if source else ''}")


if __name__ == "__main__":
    main()
