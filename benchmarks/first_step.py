"""Time to the first step of torchvision's networks in fcnn, cold and from the persistent cache.

Run: ``python -m benchmarks.first_step [--models resnet50,mobilenet_v2] [--modes train:8:96,eval:1:224]
[--cache-dir DIR] [--json FILE]``.

For each model a fresh child process builds the network (``fcnn.models.get``,
``model.init``; the train state through ``fcnn.train.create_train_state``) and
takes each case's compiled function — the train step of
``fcnn.train.make_train_step`` (SGD with momentum, cross-entropy) or the
eval forward ``fcnn.freeze(net, params, state)`` — through JAX's stages, each timed: ``trace`` (Python runs the model and
records the program), ``lower`` (to StableHLO), ``compile`` (XLA, or a read
from the persistent cache) and the first execution. ``first call`` is their
sum: what the first ``step(...)`` costs (``run`` is mostly the step itself).
``init`` is building the network and its parameters, which ``fit`` also does
before the first step; the cases of a model share a process, so a later case's
``init`` finds the operations' programs compiled by an earlier one.

The child runs twice with the same JAX compilation cache directory, set as
``fit`` sets it (:func:`fcnn.compilation_cache.enable`: every program is
cached, ``model.init``'s small ones too): ``cold`` starts
from an empty directory, ``warm`` is a new process that finds the programs
the cold run wrote. ``hits`` counts the compilations served from the cache
(JAX's ``/jax/compilation_cache/cache_hits`` event).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from benchmarks.zoo import data, parse_mode

MODELS = ["resnet50", "mobilenet_v2", "efficientnet_b0", "convnext_tiny"]
MODES = ["train:8:96", "eval:1:224"]


def child(name: str, modes: list[str], cache_dir: str) -> list[dict]:
    """One fresh process's measurements of ``name`` (every case), with JAX's cache in ``cache_dir``."""
    start = time.perf_counter()
    import jax
    import jax.numpy as jnp
    import fcnn
    from fcnn import compilation_cache, models, nn, optim, train

    hits = [0]
    jax.monitoring.register_event_listener(
        lambda event, **kw: hits.__setitem__(0, hits[0] + (event == "/jax/compilation_cache/cache_hits")))
    compilation_cache.enable(cache_dir)
    imported = time.perf_counter() - start
    rows = []
    for text in modes:
        mode, batch, size = parse_mode(text)
        t0 = time.perf_counter()
        net = models.get(name)
        x, y = (jnp.asarray(a) for a in data(batch, size))
        if mode == "eval":
            params, state = net.init(jax.random.key(0))
            fn, args = fcnn.freeze(net, params, state), (x,)
        else:
            opt = optim.SGD(0.01, momentum=0.9)
            ts = train.create_train_state(net, opt, 0)
            fn, args = train.make_train_step(net, nn.CrossEntropyLoss(), opt), (ts, (x, y))
        jax.block_until_ready(args)
        t1 = time.perf_counter()
        before = hits[0]
        traced = fn.trace(*args)
        t2 = time.perf_counter()
        lowered = traced.lower()
        t3 = time.perf_counter()
        compiled = lowered.compile()
        t4 = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        t5 = time.perf_counter()
        rows.append({"model": name, "case": text, "init": t1 - t0, "trace": t2 - t1, "lower": t3 - t2,
                     "compile": t4 - t3, "run": t5 - t4, "first_call": t5 - t1, "hits": hits[0] - before,
                     "import": imported})
    return rows


def measure(name: str, modes: list[str], cache_dir: str) -> list[dict]:
    """Cold and warm rows of ``name``: the child twice, in new processes, over one cache directory."""
    cmd = [sys.executable, "-m", "benchmarks.first_step", "--child", name, "--modes", ",".join(modes),
           "--cache-dir", cache_dir]
    out = []
    for run in ("cold", "warm"):
        done = subprocess.run(cmd, check=True, capture_output=True, text=True,
                              cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        rows = json.loads(done.stdout.strip().splitlines()[-1])
        out += [{**row, "run_kind": run} for row in rows]
    return out


def table(rows: list[dict]) -> str:
    head = ("| model | case | cold: init s | trace s | lower s | compile s | run s | first call s "
            "| warm: init s | trace s | lower s | compile s (cache read) | run s | first call s | hits |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    by = {(r["model"], r["case"], r["run_kind"]): r for r in rows}
    for model, case in dict.fromkeys((r["model"], r["case"]) for r in rows):
        c, w = by[model, case, "cold"], by[model, case, "warm"]
        cells = [f"{r[k]:.{1 if k == 'init' else 2}f}" for r in (c, w)
                 for k in ("init", "trace", "lower", "compile", "run", "first_call")]
        lines.append(f"| {model} | {case} | " + " | ".join(cells) + f" | {w['hits']} |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks.first_step", description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--modes", default=",".join(MODES), help="comma-separated train|eval:BATCH:SIZE")
    ap.add_argument("--cache-dir", default=None,
                    help="JAX's compilation cache for the runs (default: a new temporary directory, so the "
                         "first run is cold)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    modes = args.modes.split(",")
    if args.child:
        print(json.dumps(child(args.child, modes, args.cache_dir)))
        return 0
    rows = []
    print(f"load average before: {os.getloadavg()[0]:.1f}", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix="fcnn-first-step-") as tmp:
        for name in args.models.split(","):
            cache_dir = args.cache_dir or os.path.join(tmp, name)
            rows += measure(name, modes, cache_dir)
            print(table([r for r in rows if r["model"] == name]), file=sys.stderr, flush=True)
    print(table(rows))
    print(f"\nload average (1 min) at the end: {os.getloadavg()[0]:.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
