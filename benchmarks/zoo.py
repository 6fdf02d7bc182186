"""torchvision's networks, train step and inference: ``python -m benchmarks.zoo``.

Run: ``python -m benchmarks.zoo [--models resnet50,mobilenet_v2] [--modes train:8:96,eval:1:224]
[--impls fcnn,fcnn_jit,torch,lax,flax_linen,equinox] [--rounds 7] [--dtype bfloat16] [--accumulate-steps K]
[--time-limit S] [--json FILE]``.

Each implementation runs one case (model, mode, batch, image size) from the
same torchvision weights and the same batch, as its users write it:

  ``fcnn``       ``fcnn.models.get(name)`` with torchvision's ``state_dict``
                 (``fcnn.interop.torch.load_state_dict``); training through
                 ``fcnn.train.make_train_step``, inference through
                 ``fcnn.freeze`` (the weights compiled in as constants).
  ``fcnn_jit``   inference only: ``fcnn.jit`` of ``model.apply(..., train=False)``
                 with the weights as arguments, as a step that is handed new
                 weights each call runs.
  ``torch``      the torchvision model, eager (``torch.no_grad`` and ``eval()``
                 for inference); on CUDA when there is one (cuDNN autotuning and
                 TF32 allowed, as XLA's default precision on that hardware), and
                 then each call synchronises before the timer stops.
  ``lax``, ``flax_linen``, ``equinox``
                 hand-written in each (``benchmarks/zoo_<impl>.py``), for the
                 models listed in its ``MODELS``.

A train step is SGD with momentum 0.9 on cross-entropy in training mode
(batch statistics); inference is the eval-mode forward. ``--dtype bfloat16``
is mixed precision: bfloat16 compute over float32 parameters, optimizer state
and BN statistics (fcnn's ``compute_dtype``, torch's ``autocast``, the lax
reference's cast inside the step); the Flax and Equinox peers have no such
variant and are reported n/a. ``--accumulate-steps K`` splits each training
batch into ``K`` micro-batches whose gradients are summed before the update:
fcnn's ``make_train_step(accumulate_steps=K)`` (one ``lax.scan`` over them),
torch's ``backward()`` per micro-batch of the loss divided by ``K``; the
others are reported n/a. All cases of a model
run in one process, interleaved round by round in a rotated order, so a noisy
machine slows every implementation alike; each call is timed from Python to
the result being ready. Reported: median ms, its ratio to torch, the
implementation's first call (tracing + compilation for JAX), and the achieved
GFLOP/s: the convolution and matrix-product FLOPs torch's ``FlopCounterMode``
counts for the case (on the meta device: shapes only), over the median time. The machine's own matrix-product
rate (float32 2048² × 2048²; XLA and torch) is printed with the table, the
practical upper bound for these networks. Results: ``benchmarks/README.md``.

On a CPU shared with other work, torch's OpenMP threads spin while they wait
for each other and lose their cores to the other processes: on the 2-core
machine at load 5–8, torch's ResNet-50 eval took 2.3 s instead of 0.16 s.
There, run with ``OMP_WAIT_POLICY=PASSIVE`` in the environment (XLA's thread
pool does not spin that way) and say so beside the numbers; on a quiet machine
leave torch's default.
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

import numpy as np

from benchmarks.run import report, versions as library_versions

MODELS = ["resnet50", "mobilenet_v2", "mobilenet_v3_large", "efficientnet_b0", "convnext_tiny", "densenet121",
          "regnet_y_400mf", "shufflenet_v2_x1_0"]
MODES = ["train:8:96", "train:32:128", "eval:1:224", "eval:32:224"]
IMPLS = ["fcnn", "fcnn_jit", "torch", "lax", "flax_linen", "equinox"]
LR, MOMENTUM = 0.01, 0.9

# The two networks every hand-written peer (benchmarks/zoo_<impl>.py) builds, described once as torchvision has them.
# ResNet-50: per stage (bottleneck width, blocks, stride of the first block); a block's output has 4 × width channels.
RESNET50_STAGES = ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2))
# MobileNet-V2: (expansion t, output channels c, blocks n, first stride s), after a 3×3 stride-2 stem of 32 channels
# and before a 1×1 convolution to 1280 channels; torchvision's ``inverted_residual_setting``.
MOBILENET_V2_SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                        (6, 320, 1, 1))


def mobilenet_v2_blocks():
    """MobileNet-V2's inverted residual blocks as ``(index in features, in channels, out channels, stride, t)``."""
    blocks, cin = [], 32
    for t, c, n, s in MOBILENET_V2_SETTING:
        for i in range(n):
            blocks.append((len(blocks) + 1, cin, c, s if i == 0 else 1, t))
            cin = c
    return blocks


def parse_mode(text: str):
    mode, batch, size = text.split(":")
    if mode not in ("train", "eval"):
        raise ValueError(f"mode must be train or eval, got {mode!r}")
    return mode, int(batch), int(size)


def data(batch: int, size: int, seed: int = 0):
    """``(images (batch, 3, size, size) float32, labels (batch,) int64)``, the same for every implementation."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch, 3, size, size), dtype=np.float32), rng.integers(0, 1000, batch)


def _torchvision():
    """torchvision beside the CPU torch (``tests/torchvision_cpu.py`` says why it needs help to import)."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
    try:
        from torchvision_cpu import import_torchvision
    finally:
        sys.path.pop(0)
    return import_torchvision()


def torch_model(name: str, seed: int = 0, device=None):
    """torchvision's ``name`` with random weights (``torch.manual_seed(seed)``), built on ``device``."""
    import torch

    torchvision = _torchvision()

    torch.manual_seed(seed)
    with torch.device(device or "cpu"):
        return torchvision.models.get_model(name, weights=None)


def torch_device():
    """CUDA when there is one (the GPU run), else the CPU."""
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _block(out):
    """Wait for ``out``: a JAX array, or a torch tensor (on CUDA: the device synchronised)."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(out, torch.Tensor):
        if out.is_cuda:
            torch.cuda.synchronize()
        return out
    if hasattr(out, "block_until_ready"):
        return out.block_until_ready()
    import jax

    return jax.block_until_ready(out)


def _bfloat16(dtype) -> bool:
    if dtype not in ("float32", "bfloat16"):
        raise ValueError(f"dtype must be float32 or bfloat16, got {dtype!r}")
    return dtype == "bfloat16"


def cast_floating(tree, dtype):
    """``tree`` with its floating arrays cast to ``dtype`` (integer leaves stay)."""
    import jax
    import jax.numpy as jnp

    return jax.tree.map(lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a, tree)


# --- the two implementations every model has -------------------------------------------------------------------------

def setup_fcnn(name, mode, batch, size, state_dict, seed=0, dtype="float32", frozen=True, accumulate_steps=1):
    import jax.numpy as jnp

    import fcnn
    from fcnn import models, nn, optim, train
    from fcnn.interop.torch import load_state_dict

    net = models.get(name)
    params, state = load_state_dict(net, state_dict)
    x, y = (jnp.asarray(a) for a in data(batch, size, seed))
    half = _bfloat16(dtype)
    if mode == "eval":
        if half:  # bfloat16 params and input, float32 BN statistics: as make_train_step's compute_dtype
            params, x = cast_floating(params, jnp.bfloat16), x.astype(jnp.bfloat16)
        if frozen:
            forward = fcnn.freeze(net, params, state)
            run = lambda: forward(x)  # noqa: E731
            run.compiled = lambda: forward.lower(x).compile()
        else:
            forward = fcnn.jit(lambda p, s, x: net.apply(p, s, x, train=False)[0])
            run = lambda: forward(params, state, x)  # noqa: E731
            run.compiled = lambda: forward.lower(params, state, x).compile()
        return run
    if not frozen:
        raise NotImplementedError("inference only")
    opt = optim.SGD(LR, momentum=MOMENTUM)
    ts = train.create_train_state(net, opt, seed)
    ts = ts._replace(params=params, state=state, opt_state=opt.init(params))
    step = train.make_train_step(net, nn.CrossEntropyLoss(), opt, compute_dtype=jnp.bfloat16 if half else None,
                                 accumulate_steps=accumulate_steps)
    carry = [ts]

    def run():
        carry[0], metrics = step(carry[0], (x, y))
        return metrics["loss"]

    run.compiled = lambda: step.lower(carry[0], (x, y)).compile()
    return run


def setup_torch(name, mode, batch, size, state_dict, seed=0, dtype="float32", accumulate_steps=1):
    import torch

    dev = torch_device()
    if dev.type == "cuda":
        # cuDNN picks its fastest algorithms (XLA autotunes too); TF32 for float32 as XLA's default precision.
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    net = torch_model(name, seed)
    net.load_state_dict(state_dict)
    net.to(dev)
    x, y = (torch.from_numpy(a).to(dev) for a in data(batch, size, seed))
    half = _bfloat16(dtype)
    if mode == "eval":
        net.eval()

        def forward():
            with torch.no_grad(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=half):
                return net(x)

        return forward
    net.train()
    opt = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM)
    loss_fn = torch.nn.CrossEntropyLoss()

    k = accumulate_steps

    def step():
        opt.zero_grad(set_to_none=True)
        total = 0.0
        for j in range(k):  # micro-batch j: rows j, j + k, ... as fcnn's split
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=half):
                logits = net(x[j::k])
            loss = loss_fn(logits.float(), y[j::k]) / k
            loss.backward()
            total = total + loss.detach()
        opt.step()
        return total

    return step


def flops(name, mode, batch, size) -> float:
    """Convolution and matrix-product FLOPs of one call, as torch's ``FlopCounterMode`` counts them."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    try:
        device = "meta"
        net = torch_model(name, device=device)
    except NotImplementedError:  # an initialiser that reads its tensor (RegNet's): count on the CPU
        device = "cpu"
        net = torch_model(name, device=device)
    x = torch.zeros((batch, 3, size, size), device=device)
    y = torch.zeros(batch, dtype=torch.long, device=device)
    counter = FlopCounterMode(display=False)
    if mode == "eval":
        net.eval()
        with counter, torch.no_grad():
            net(x)
    else:
        with counter:
            torch.nn.functional.cross_entropy(net(x), y).backward()
    return float(counter.get_total_flops())


def matmul_gflops(n: int = 2048, repeats: int = 5, dtype: str = "float32") -> dict:
    """The machine's ``n×n @ n×n`` rate in ``dtype`` in GFLOP/s, through XLA and through torch (best of ``repeats``;
    on the device each runs on: JAX's default one, and CUDA for torch when there is one, with TF32 allowed)."""
    import jax
    import jax.numpy as jnp
    import torch

    a = jnp.asarray(np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)).astype(dtype)
    mm = jax.jit(jnp.dot)
    mm(a, a).block_until_ready()
    dev = torch_device()
    torch.backends.cuda.matmul.allow_tf32 = True
    ta = torch.from_numpy(np.array(a, np.float32)).to(dev, getattr(torch, dtype))
    _block(torch.mm(ta, ta))
    out = {}
    for impl, f in (("xla", lambda: mm(a, a).block_until_ready()), ("torch", lambda: _block(torch.mm(ta, ta)))):
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            f()
            best = min(best, time.perf_counter() - t0)
        out[impl] = 2 * n**3 / best / 1e9
    return out


def _setup(impl, name, mode, batch, size, state_dict, dtype="float32", accumulate_steps=1):
    k = accumulate_steps if mode == "train" else 1
    if impl in ("fcnn", "fcnn_jit"):
        return setup_fcnn(name, mode, batch, size, state_dict, dtype=dtype, frozen=impl == "fcnn", accumulate_steps=k)
    if impl == "torch":
        return setup_torch(name, mode, batch, size, state_dict, dtype=dtype, accumulate_steps=k)
    if k > 1:
        raise NotImplementedError(f"{impl} has no gradient accumulation")
    mod = importlib.import_module(f"benchmarks.zoo_{impl}")
    if name not in mod.MODELS:
        raise NotImplementedError(f"{impl} has no {name}")
    if dtype == "float32":
        return mod.setup(name, mode, batch, size, state_dict)
    if "dtype" not in inspect.signature(mod.setup).parameters:
        raise NotImplementedError(f"{impl} has no {dtype} variant")
    return mod.setup(name, mode, batch, size, state_dict, dtype=dtype)


def run_model(name, modes, impls, rounds, calls, seconds_per_case, dtype="float32", over=lambda frac: False,
              accumulate_steps=1):
    """Time every (mode, impl) of one model, interleaved; returns the result rows.

    ``over(frac)``: whether that fraction of the run's time limit has passed (no new setup after 0.6 of
    it, no new round after all of it).
    """
    state_dict = {k: v.detach().clone() for k, v in torch_model(name).state_dict().items()}
    runners, first, notes = {}, {}, {}
    for mode_text in modes:
        mode, batch, size = parse_mode(mode_text)
        for impl in impls:
            if over(0.6):
                notes[mode_text, impl] = "not run (--time-limit)"
                continue
            try:
                t0 = time.perf_counter()
                run = _setup(impl, name, mode, batch, size, state_dict, dtype, accumulate_steps)
                _block(run())
                first[mode_text, impl] = time.perf_counter() - t0
                runners[mode_text, impl] = run
            except (ImportError, NotImplementedError) as e:
                notes[mode_text, impl] = f"n/a ({e})"[:80]
    times = {key: [] for key in runners}
    order = list(runners)
    deadline = time.perf_counter() + seconds_per_case * max(1, len(modes))
    for r in range(rounds):
        if r >= 2 and (time.perf_counter() > deadline or over(1.0)):
            break
        k = r % max(1, len(order))
        for key in order[k:] + order[:k]:
            for _ in range(calls):
                t0 = time.perf_counter()
                _block(runners[key]())
                times[key].append(time.perf_counter() - t0)
    rows = []
    for mode_text in modes:
        mode, batch, size = parse_mode(mode_text)
        n_flops = flops(name, mode, batch, size)
        ref = times.get((mode_text, "torch"))
        ref = statistics.median(ref) if ref else None
        for impl in impls:
            row = {"model": name, "mode": mode, "batch": batch, "size": size, "impl": impl}
            t = times.get((mode_text, impl))
            if t:
                med = statistics.median(t)
                row.update(median_ms=med * 1e3, vs_torch=med / ref if ref else None, first_s=first[mode_text, impl],
                           gflops=n_flops / med / 1e9, n=len(t))
            else:
                row["note"] = notes.get((mode_text, impl), "skipped")
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def table(rows, meta) -> str:
    lines = [
        f"{meta['date']} — {meta['machine']}; load average before/after: "
        f"{' '.join(f'{v:.2f}' for v in meta['load_before'])} / {' '.join(f'{v:.2f}' for v in meta['load_after'])}",
        "versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()),
        f"{meta['dtype']} matrix product 2048²: XLA {meta['matmul_gflops']['xla']:.0f} GFLOP/s, "
        f"torch {meta['matmul_gflops']['torch']:.0f} GFLOP/s",
        f"train steps: gradients accumulated over {meta.get('accumulate_steps', 1)} micro-batch(es)",
        "",
        "| model | case | implementation | median ms | × torch | GFLOP/s | first call s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        case = f"{r['mode']} b{r['batch']} {r['size']}²"
        if "median_ms" in r:
            ratio = "—" if r["vs_torch"] is None else f"{r['vs_torch']:.2f}"
            lines.append(f"| {r['model']} | {case} | {r['impl']} | {r['median_ms']:.1f} | {ratio} | "
                         f"{r['gflops']:.0f} | {r['first_s']:.1f} |")
        else:
            lines.append(f"| {r['model']} | {case} | {r['impl']} | {r['note']} | | | |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks.zoo", description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--modes", default=",".join(MODES), help="comma-separated train|eval:BATCH:SIZE")
    ap.add_argument("--impls", default=",".join(IMPLS))
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--calls", type=int, default=2, help="calls per implementation per round")
    ap.add_argument("--seconds-per-case", type=float, default=60.0,
                    help="after two rounds, stop a model's rounds once this many seconds per mode have passed")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                    help="compute dtype (bfloat16: mixed precision, for the implementations that have it)")
    ap.add_argument("--accumulate-steps", type=int, default=1,
                    help="train steps: gradients summed over this many micro-batches of each batch (fcnn, torch)")
    ap.add_argument("--time-limit", type=float, default=None,
                    help="seconds for the whole run: no new setup after 60%% of it, no new round after it "
                         "(for runs on a lent machine; what was measured is still reported)")
    ap.add_argument("--inline-dispatch", action="store_true",
                    help="run XLA:CPU's programs on the calling thread (jax_cpu_enable_async_dispatch off), as "
                         "`fcnn train` does; see fcnn.xla.host_memory_environment")
    ap.add_argument("--keep-host-memory", action="store_true",
                    help="call fcnn.xla.keep_host_memory() first (malloc keeps large blocks mapped, inline dispatch), "
                         "as a notebook or script can at run time")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    import jax
    import torch

    if args.inline_dispatch:  # before JAX creates its CPU client, which reads the flag once
        jax.config.update("jax_cpu_enable_async_dispatch", False)
    kept = False
    if args.keep_host_memory:
        from fcnn import xla

        kept = xla.keep_host_memory()

    models = [m for m in args.models.split(",") if m]
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        sys.exit(f"unknown model(s) {unknown}; choose from {MODELS}")
    modes = [m for m in args.modes.split(",") if m]
    for m in modes:
        parse_mode(m)
    impls = [i for i in args.impls.split(",") if i]
    versions = {**library_versions(("torch", "flax", "equinox")), "torchvision": _torchvision().__version__}
    meta = {"date": datetime.datetime.now().isoformat(timespec="minutes"),
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
                       f"jax backend {jax.default_backend()} ({jax.devices()[0].device_kind}), "
                       f"torch on {torch_device().type}, torch threads {torch.get_num_threads()}, "
                       f"GLIBC_TUNABLES={os.environ.get('GLIBC_TUNABLES', '(unset)')}, "
                       f"async dispatch {'on' if jax.config.read('jax_cpu_enable_async_dispatch') else 'off'}, "
                       f"fcnn.xla.keep_host_memory() {'called' if kept else 'not called'}",
            "versions": versions, "dtype": args.dtype, "accumulate_steps": args.accumulate_steps,
            "load_before": os.getloadavg(),
            "matmul_gflops": matmul_gflops(dtype=args.dtype)}
    print(json.dumps(meta), flush=True)
    start, limit = time.perf_counter(), args.time_limit or float("inf")
    rows = []
    for name in models:
        rows += run_model(name, modes, impls, args.rounds, args.calls, args.seconds_per_case, args.dtype,
                          over=lambda frac: time.perf_counter() - start > frac * limit,
                          accumulate_steps=args.accumulate_steps)
    report(meta, rows, table, args.json)


if __name__ == "__main__":
    main()
