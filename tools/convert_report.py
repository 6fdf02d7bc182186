"""Convert every torchvision CNN builder and one model per timm CNN family; write the table of docs/converter.md.

    python tools/convert_report.py --json runs/convert.json          # measure (resumable: done rows are kept)
    python tools/convert_report.py --json runs/convert.json --markdown docs/converter.md   # write the table
    (measuring in two processes: --only timm: / --only torchvision: into two files, merged by --markdown)

Each model is built at random initialisation (``tests/convert_zoo.py``: non-trivial BatchNorm statistics, dropout
off), converted with ``fcnn.interop.torch.convert`` and compared with torch run in float64: the eval logits for
every model, and one train-mode step's gradients for the models in ``--train`` (default: the small ones). The
JSON file is rewritten after every model, so an interrupted run continues where it stopped.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

BEGIN, END = "<!-- convert-table:begin -->", "<!-- convert-table:end -->"
# Train-mode gradients are checked where compiling the gradient stays within minutes on a 2-core CPU.
TRAIN = {"resnet18", "alexnet", "squeezenet1_1", "shufflenet_v2_x0_5", "densenet121", "googlenet", "vgg11_bn",
         "regnet_x_400mf", "mobilenet_v2", "convnext_tiny", "timm:resnet18", "timm:seresnet18", "timm:resnest14d",
         "timm:convnext_atto", "timm:regnetx_002", "timm:repvgg_a0", "timm:nf_resnet26", "timm:darknet17"}


def rows():
    import convert_zoo

    for name in convert_zoo.torchvision_builders():
        yield f"torchvision:{name}", "torchvision", name, name
    for family, name in convert_zoo.TIMM_FAMILIES.items():
        yield f"timm:{name}", "timm", name, family


def measure_all(path: Path, only: list[str]) -> None:
    import torch

    import convert_zoo

    torch.set_num_threads(1)
    results = json.loads(path.read_text()) if path.exists() else {}
    for key, source, name, label in rows():
        if key in results or (only and not any(o in key for o in only)):
            continue
        start = time.time()
        train = name in TRAIN if source == "torchvision" else f"timm:{name}" in TRAIN
        try:
            module = convert_zoo.build(source, name)
            entry = convert_zoo.measure(module, convert_zoo.SIZES.get(name, 32), train)
            entry["converted"] = True
        except Exception as e:  # noqa: BLE001 - the report records why
            unsupported = getattr(e, "unsupported", None)
            entry = {"converted": False,
                     "reason": _summarise(unsupported) if unsupported else f"{type(e).__name__}: {str(e)[:300]}"}
            if not unsupported:
                traceback.print_exc()
        entry.update(source=source, name=name, label=label, size=convert_zoo.SIZES.get(name, 32),
                     seconds=round(time.time() - start, 1))
        results[key] = entry
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=1))
        print(key, entry, flush=True)
        module = None
        gc.collect()


def _summarise(unsupported) -> str:
    """Distinct reasons (each with its first path and a count)."""
    seen: dict[str, list[str]] = {}
    for where, what in unsupported:
        seen.setdefault(what, []).append(where or "<root>")
    return "; ".join(f"{what} ({paths[0]}{f' and {len(paths) - 1} more' if len(paths) > 1 else ''})"
                     for what, paths in seen.items())


def markdown(results: dict) -> str:
    def fmt(v):
        return "—" if v is None else f"{v:.1e}"

    out = []
    all_rows = list(rows())
    for source, title in (("torchvision", "torchvision 0.28 builders"), ("timm", "timm CNN families")):
        keys = [(key, name, label) for key, src, name, label in all_rows if src == source]
        measured = [results[k] for k, _, _ in keys if k in results]
        ok = sum(e["converted"] for e in measured)
        out.append(f"### {title}: {ok} of {len(keys)} converted and checked"
                   + (f" ({len(keys) - len(measured)} not measured in this run)" if len(measured) < len(keys) else "")
                   + "\n")
        first = "builder" if source == "torchvision" else "family (model)"
        out.append(f"| {first} | input | converted | eval logits: fcnn / torch f32 | train gradients: fcnn / "
                   "torch f32 | note |")
        out.append("|---|---|---|---|---|---|")
        for key, name, label in sorted(keys, key=lambda k: k[2].lower()):
            shown = name if source == "torchvision" else f"{label} (`{name}`)"
            e = results.get(key)
            if e is None:
                out.append(f"| {shown} | | not measured | | | the report run stopped before this model |")
            elif e["converted"]:
                ev = f"{fmt(e['eval'])} / {fmt(e['eval_torch32'])}"
                gr = f"{fmt(e['grad'])} / {fmt(e['grad_torch32'])}" if "grad" in e else "eval only"
                out.append(f"| {shown} | {e['size']}² | yes | {ev} | {gr} | |")
            else:
                out.append(f"| {shown} | {e['size']}² | **no** | | | {e['reason'].replace('|', '/')} |")
        out.append("")
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", required=True, type=Path, nargs="+",
                   help="results file (read, extended and rewritten); with --markdown, the files to merge")
    p.add_argument("--markdown", type=Path, help="write the table between the markers in this file")
    p.add_argument("--only", nargs="*", default=[], help="measure only the keys containing these strings")
    args = p.parse_args(argv)
    if args.markdown is None:
        measure_all(args.json[0], args.only)
        return 0
    results = {}
    for path in args.json:
        results.update(json.loads(path.read_text()))
    text = args.markdown.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{args.markdown} has no {BEGIN} ... {END} markers")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    args.markdown.write_text(f"{head}{BEGIN}\n{markdown(results)}\n{END}{tail}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
