"""Run the training-step benchmark: ``python -m benchmarks.run [--quick]``.

Every implementation trains the same network with the same SGD-momentum step
on a fixed batch. All run in this one process, interleaved round by round
(each round runs every implementation for ``--steps`` steps, in a rotated
order), so a noisy shared machine slows everyone alike. Each step is timed
from the Python call to the loss being ready (dispatch included).
Reported: median step time, its ratio to the hand-written ``jax.lax``
reference, the time of the first step (tracing + compilation), and the peak
host-RSS growth during one step on CPU, or on a GPU the step's device memory
(XLA's buffer assignment for the JAX steps that expose their lowering; torch's
``max_memory_allocated`` over one step).

``--dtype bfloat16`` runs the mixed-precision step (bf16 compute, float32
params, optimizer state and BatchNorm statistics) where an implementation has
one: fcnn (``compute_dtype``), the lax reference and torch (``autocast``).
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import inspect
import json
import os
import platform
import statistics
import sys
import time

IMPLS = ["lax", "fcnn", "flax_linen", "flax_nnx", "equinox", "haiku", "torch"]
# formulation experiments, run only when named in --impls
EXTRA_IMPLS = ["lax_nhwc", "lax_default"]


def _parse(argv):
    ap = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="LeNet and BN-CNN only, few rounds (~1-2 min)")
    ap.add_argument("--rounds", type=int, default=None, help="rounds (default 15, quick 4)")
    ap.add_argument("--steps", type=int, default=None, help="steps per implementation per round (default 5, quick 3)")
    ap.add_argument("--impls", default=",".join(IMPLS), help=f"comma-separated subset of {IMPLS}")
    ap.add_argument("--cases", default=None, help="e.g. lenet:128,bncnn:64 (default: all for the run size)")
    ap.add_argument("--xla-flags", default=None, help="extra XLA_FLAGS (set before jax is imported)")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                    help="compute dtype (bfloat16: mixed precision, for the implementations that have it)")
    ap.add_argument("--time-limit", type=float, default=None,
                    help="seconds for the whole run: no new setup after 60%% of it, no new round after it "
                         "(for runs on a lent machine; what was measured is still reported)")
    ap.add_argument("--json", default=None, help="also write the raw results to this JSON file")
    return ap.parse_args(argv)


def _proc_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _peak_step_mb(run, block):
    """Peak RSS growth during one step (Linux: reset VmHWM via clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return None
    before = _proc_kb("VmRSS")
    block(run())
    return max(0, _proc_kb("VmHWM") - before) / 1024


def _device_step_mb(run, block):
    """Device memory of one step on an accelerator (None where not measurable)."""
    if hasattr(run, "lower"):  # JAX: XLA's own buffer assignment for the compiled step
        mem = run.lower().compile().memory_analysis()
        if mem is None:
            return None
        total = (mem.argument_size_in_bytes + mem.output_size_in_bytes - mem.alias_size_in_bytes
                 + mem.temp_size_in_bytes)
        return total / 2**20
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and getattr(run, "__module__", "").endswith("impl_torch"):
        torch.cuda.reset_peak_memory_stats()
        block(run())
        return torch.cuda.max_memory_allocated() / 2**20
    return None


def _setup(mod, model, batch, dtype):
    if dtype == "float32":
        return mod.setup(model, batch)
    if "dtype" not in inspect.signature(mod.setup).parameters:
        raise NotImplementedError(f"no {dtype} variant")
    return mod.setup(model, batch, dtype=dtype)


def _block(out):
    if hasattr(out, "block_until_ready"):
        out.block_until_ready()
    return out


def main(argv=None):
    args = _parse(argv)
    if args.xla_flags:
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + args.xla_flags).strip()
    import warnings

    warnings.filterwarnings("ignore")
    import jax

    from benchmarks import spec

    rounds = args.rounds or (4 if args.quick else 15)
    steps = args.steps or (3 if args.quick else 5)
    if args.cases:
        cases = [(c.split(":")[0], int(c.split(":")[1])) for c in args.cases.split(",")]
    else:
        cases = spec.CASES_QUICK if args.quick else spec.CASES_FULL
    impls = [i for i in args.impls.split(",") if i]
    for i in impls:
        if i not in IMPLS + EXTRA_IMPLS:
            sys.exit(f"unknown implementation {i!r}; choose from {IMPLS}")

    meta = {
        "date": datetime.datetime.now().isoformat(timespec="minutes"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, jax backend {jax.default_backend()} ({jax.devices()[0].device_kind})",
        "versions": versions(("jaxlib", "torch", "flax", "equinox", "haiku", "optax")),
        "load_before": os.getloadavg(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "dtype": args.dtype,
        "rounds": rounds,
        "steps": steps,
    }
    print(json.dumps(meta), flush=True)
    results = []
    on_cpu = jax.default_backend() == "cpu"
    start = time.perf_counter()
    limit = args.time_limit or float("inf")
    over = lambda frac: time.perf_counter() - start > frac * limit
    for model, batch in cases:
        runners, first, mem, notes, loss0 = {}, {}, {}, {}, {}
        for name in impls:
            if over(0.6):
                notes[name] = "not run (--time-limit)"
                continue
            try:
                mod = importlib.import_module(f"benchmarks.impl_{name}")
                t0 = time.perf_counter()
                run = _setup(mod, model, batch, args.dtype)
                loss0[name] = float(_block(run()))
                first[name] = time.perf_counter() - t0
                _block(run())
                mem[name] = _peak_step_mb(run, _block) if on_cpu else _device_step_mb(run, _block)
                runners[name] = run
            except (KeyError, ImportError, NotImplementedError, AttributeError, TypeError) as e:
                notes[name] = f"n/a ({type(e).__name__}: {e})"[:120]
        times = {name: [] for name in runners}
        slow = model == "resnet18" and on_cpu  # seconds per step on a CPU
        r_rounds = max(2, rounds // 5) if slow else rounds
        r_steps = 1 if slow else steps
        order = list(runners)
        for r in range(r_rounds):
            if not order or (r >= 2 and over(1.0)):
                break
            k = r % len(order)
            for name in order[k:] + order[:k]:
                run = runners[name]
                for _ in range(r_steps):
                    t0 = time.perf_counter()
                    _block(run())
                    times[name].append(time.perf_counter() - t0)
        ref = statistics.median(times["lax"]) if "lax" in times else None
        for name in impls:
            row = {"model": model, "batch": batch, "impl": name}
            if name in times:
                med = statistics.median(times[name])
                q = statistics.quantiles(times[name], n=4) if len(times[name]) > 1 else [med, med, med]
                row.update(median_ms=med * 1e3, q1_ms=q[0] * 1e3, q3_ms=q[2] * 1e3,
                           ratio=(med / ref) if ref else None, first_s=first[name], peak_mb=mem[name],
                           n=len(times[name]), first_loss=loss0[name])
            else:
                row["note"] = notes.get(name, "skipped")
            results.append(row)
            print(json.dumps(row), flush=True)
        del runners
    report(meta, results, table, args.json)


def versions(modules) -> dict:
    """The versions of python, jax and each of ``modules`` that imports (for a benchmark's header)."""
    import jax

    found = {"python": platform.python_version(), "jax": jax.__version__}
    for mod in modules:
        try:
            found[mod] = importlib.import_module(mod).__version__
        except Exception:
            pass
    return found


def report(meta, results, table, json_path=None):
    """Print ``table(results, meta)`` with the load average at the end, and write the raw results to ``json_path``."""
    meta["load_after"] = os.getloadavg()
    print()
    print(table(results, meta))
    if json_path:
        with open(json_path, "w") as f:
            json.dump({"meta": meta, "results": results}, f, indent=1)


def table(results, meta) -> str:
    lines = [
        f"{meta['date']} — {meta['machine']}; load average before/after: "
        f"{' '.join(f'{v:.2f}' for v in meta['load_before'])} / {' '.join(f'{v:.2f}' for v in meta['load_after'])}",
        "versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
        + f"; dtype {meta.get('dtype', 'float32')}"
        + (f"; XLA_FLAGS={meta['xla_flags']}" if meta["xla_flags"] else ""),
        "",
        "| model | batch | implementation | median ms/step (IQR) | × lax | first step s | "
        + ("peak step RSS MB |" if "cpu" in meta["machine"].split("jax backend")[-1] else "step device MB |")
        + " first loss |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if "median_ms" in r:
            mem = "—" if r["peak_mb"] is None else f"{r['peak_mb']:.1f}"
            ratio = "—" if r["ratio"] is None else f"{r['ratio']:.2f}"
            lines.append(
                f"| {r['model']} | {r['batch']} | {r['impl']} | {r['median_ms']:.2f} "
                f"({r['q1_ms']:.2f}–{r['q3_ms']:.2f}) | {ratio} | {r['first_s']:.2f} | {mem} | "
                f"{r.get('first_loss', float('nan')):.4f} |"
            )
        else:
            lines.append(f"| {r['model']} | {r['batch']} | {r['impl']} | {r['note']} | | | | |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
