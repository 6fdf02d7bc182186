"""A/B of two checkouts on one benchmark: ``python -m benchmarks.ab BASE_DIR [--alternations 3] -- MODULE [ARGS…]``.

Runs ``python -m benchmarks.MODULE ARGS`` alternately from ``BASE_DIR`` (e.g.
a ``git worktree`` of the base commit) and from this checkout, each in a
subprocess that imports its own ``fcnn`` (``PYTHONPATH`` set to the checkout),
in the order A B B A A B …, so that a shared machine's load falls on both
alike. It reads the timings each run prints (``benchmarks.run``'s JSON rows,
the op benchmarks' markdown rows) and reports, per case and column, the
median over the alternations for each checkout and their ratio (this
checkout / base; below 1 is faster), with the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


def parse(text: str) -> dict[tuple[str, str], float]:
    """``{(case, column): value}`` from a benchmark's output (its JSON rows if it prints any, else its table rows)."""
    values, header = {}, None
    json_rows = any(line.strip().startswith("{") and '"median_ms"' in line for line in text.splitlines())
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{") and '"median_ms"' in line:
            row = json.loads(line)
            values[(f"{row['model']} b{row['batch']} {row['impl']}", "step ms")] = row["median_ms"]
        elif line.startswith("|") and not line.startswith("|---") and not json_rows:
            cells = [c.strip() for c in line.strip("|").split("|")]
            if not any(_NUMBER.match(c) for c in cells[1:]):
                header = cells
                continue
            for i, c in enumerate(cells[1:], 1):
                if _NUMBER.match(c) and header and i < len(header) and "ratio" not in header[i] \
                        and "/" not in header[i]:
                    values[(cells[0], header[i])] = float(c)
    return values


def run(checkout: str, module: str, args: list[str]) -> dict:
    env = dict(os.environ, PYTHONPATH=checkout)
    out = subprocess.run([sys.executable, "-m", f"benchmarks.{module}", *args], cwd=checkout, env=env,
                         capture_output=True, text=True, check=True)
    return parse(out.stdout)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks.ab", description=__doc__.split("\n\n")[0])
    ap.add_argument("base", help="the base checkout's directory")
    ap.add_argument("--alternations", type=int, default=3, help="runs of each checkout")
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--" not in argv:
        ap.error("give the benchmark after --: python -m benchmarks.ab BASE_DIR -- MODULE [ARGS…]")
    split = argv.index("--")
    args = ap.parse_args(argv[:split])
    module, rest = argv[split + 1], argv[split + 2:]
    checkouts = {"base": os.path.abspath(args.base), "new": HERE}
    results = {"base": [], "new": []}
    load_before = os.getloadavg()
    for i in range(args.alternations):
        for name in (("base", "new") if i % 2 == 0 else ("new", "base")):
            results[name].append(run(checkouts[name], module, rest))
            print(f"# {name} run {i + 1} done, load {os.getloadavg()[0]:.2f}", file=sys.stderr, flush=True)
    load_after = os.getloadavg()
    keys = [k for k in results["base"][0] if all(k in r for rs in results.values() for r in rs)]
    print(f"A/B of `benchmarks.{module} {' '.join(rest)}`: {args.alternations} alternations; load average "
          f"{load_before[0]:.2f}/{load_before[1]:.2f} before, {load_after[0]:.2f}/{load_after[1]:.2f} after")
    print("| case | column | base median | new median | new / base |")
    print("|---|---|---|---|---|")
    for case, column in keys:
        base = statistics.median(r[(case, column)] for r in results["base"])
        new = statistics.median(r[(case, column)] for r in results["new"])
        print(f"| {case} | {column} | {base:.2f} | {new:.2f} | {new / base if base else float('nan'):.3f} |")


if __name__ == "__main__":
    main()
