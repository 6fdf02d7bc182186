"""Convolution forward+backward: fcnn's weight-gradient formulations against XLA's and torch's.

Run: ``python -m benchmarks.ops_conv [--repeats 7] [--batch-scale 1] [--cases bncnn,lenet,resnet,other,regnet]``.

For each layer shape of the benchmarked networks (and a few others) it times,
interleaved in one process, one jitted forward+backward (gradients for input
and weight) of:
  ``xla``     the convolution with XLA's own derivative, compiled with XLA's default
              options (on CPU: YNNPACK convolutions);
  ``window``  the per-tap matrix-product weight gradient (``ConvPlan(weight_grad="window")``),
              XLA's default options;
  ``fcnn``    ``fcnn.functional.conv*`` compiled as fcnn's steps compile it
              (``fcnn.compiler_options()``: on CPU, Eigen convolutions);
  ``torch``   ``torch.nn.functional.conv*`` forward + ``backward`` (CUDA when present).
It also prints the weight gradient alone for each of the three JAX forms.
Results: ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from fcnn import functional as F
from fcnn import backends, xla
from fcnn.backends import ConvPlan
from fcnn.backends.xla_cpu import conv as xla_cpu_conv

# name -> (batch, C_in, C_out, spatial, kernel, stride, padding, groups)
CASES = {
    "bncnn": [
        ("bncnn conv0 3→32 32²", 64, 3, 32, (32, 32), 3, 1, 1, 1),
        ("bncnn conv1 32→32 32²", 64, 32, 32, (32, 32), 3, 1, 1, 1),
        ("bncnn conv2 32→64 16²", 64, 32, 64, (16, 16), 3, 1, 1, 1),
        ("bncnn conv3 64→64 16²", 64, 64, 64, (16, 16), 3, 1, 1, 1),
    ],
    "lenet": [
        ("lenet conv1 1→6 28² k5", 128, 1, 6, (28, 28), 5, 1, 2, 1),
        ("lenet conv2 6→16 14² k5", 128, 6, 16, (14, 14), 5, 1, 0, 1),
    ],
    "resnet": [
        ("resnet stem 3→64 224² k7 s2", 4, 3, 64, (224, 224), 7, 2, 3, 1),
        ("resnet 64→64 56²", 4, 64, 64, (56, 56), 3, 1, 1, 1),
        ("resnet 64→128 56² s2", 4, 64, 128, (56, 56), 3, 2, 1, 1),
        ("resnet 1x1 64→128 s2", 4, 64, 128, (56, 56), 1, 2, 0, 1),
        ("resnet 128→128 28²", 4, 128, 128, (28, 28), 3, 1, 1, 1),
        ("resnet 256→256 14²", 4, 256, 256, (14, 14), 3, 1, 1, 1),
        ("resnet 512→512 7²", 4, 512, 512, (7, 7), 3, 1, 1, 1),
    ],
    "other": [
        ("depthwise 32 56² g32", 8, 32, 32, (56, 56), 3, 1, 1, 32),
        ("grouped 64→64 28² g4", 8, 64, 64, (28, 28), 3, 1, 1, 4),
        ("alexnet stem 3→64 224² k11 s4", 4, 3, 64, (224, 224), 11, 4, 2, 1),
        ("conv1d 64→64 L1024 k5", 16, 64, 64, (1024,), 5, 1, 2, 1),
        ("conv3d 16→16 16³", 4, 16, 16, (16, 16, 16), 3, 1, 1, 1),
    ],
    # RegNet-Y-400MF's grouped 3×3 convolutions (8 channels per group) in its train b32 128² step
    "regnet": [
        ("regnet 48 g6 64² s2", 32, 48, 48, (64, 64), 3, 2, 1, 6),
        ("regnet 104 g13 32² s2", 32, 104, 104, (32, 32), 3, 2, 1, 13),
        ("regnet 104 g13 16²", 32, 104, 104, (16, 16), 3, 1, 1, 13),
        ("regnet 208 g26 16² s2", 32, 208, 208, (16, 16), 3, 2, 1, 26),
        ("regnet 208 g26 8²", 32, 208, 208, (8, 8), 3, 1, 1, 26),
        ("regnet 440 g55 8² s2", 32, 440, 440, (8, 8), 3, 2, 1, 55),
        ("regnet 440 g55 4²", 32, 440, 440, (4, 4), 3, 1, 1, 55),
    ],
}


def _time_into(f, times):
    t0 = time.perf_counter()
    f()
    times.append(time.perf_counter() - t0)


def run_case(case, repeats, batch_scale, torch_mod):
    name, n, cin, cout, spatial, k, s, p, groups = case
    n = max(1, n * batch_scale)
    nd = len(spatial)
    rs = np.random.RandomState(0)
    x = rs.standard_normal((n, cin) + spatial).astype(np.float32)
    w = (rs.standard_normal((cout, cin // groups) + (k,) * nd) * 0.1).astype(np.float32)
    stride, pads, dil = (s,) * nd, ((p, p),) * nd, (1,) * nd
    fn = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[nd]
    xj, wj = jnp.asarray(x), jnp.asarray(w)
    gj = jnp.asarray(rs.standard_normal(fn(xj, wj, stride=s, padding=p, groups=groups).shape).astype(np.float32))

    fcnn_options = xla.compiler_options()

    def both(core, options):
        return jax.jit(lambda x, w, g: jax.vjp(core, x, w)[1](g), compiler_options=options)

    def wonly(core, options):
        return jax.jit(lambda x, w, g: jax.vjp(lambda w_: core(x, w_), w)[1](g)[0], compiler_options=options)

    def core(weight_grad):  # XLA's forward convolution in the policy's layout, the given weight gradient
        plan = ConvPlan("xla", weight_grad, backends.policy().channels_last(x.shape))
        return lambda x, w: xla_cpu_conv.conv(x, w, stride, pads, dil, groups, plan)

    def user(x, w):
        return fn(x, w, stride=s, padding=p, groups=groups)

    fs = {
        "xla": both(core("xla"), {}),
        "window": both(core("window"), {}),
        "fcnn": both(user, fcnn_options),
        "xla wgrad": wonly(core("xla"), {}),
        "window wgrad": wonly(core("window"), {}),
        "fcnn wgrad": wonly(user, fcnn_options),
    }
    calls = {key: (lambda f=f: jax.block_until_ready(f(xj, wj, gj))) for key, f in fs.items()}
    ref = fs["xla"](xj, wj, gj)
    got = fs["window"](xj, wj, gj)
    err = max(float(jnp.max(jnp.abs(a - b)) / (jnp.max(jnp.abs(b)) + 1e-30)) for a, b in zip(got, ref))
    if torch_mod is not None:
        torch = torch_mod
        dev = "cuda" if torch.cuda.is_available() else "cpu"
        tx = torch.tensor(x, device=dev, requires_grad=True)
        tw = torch.tensor(w, device=dev, requires_grad=True)
        tg = torch.tensor(np.asarray(gj), device=dev)
        tconv = {1: torch.nn.functional.conv1d, 2: torch.nn.functional.conv2d, 3: torch.nn.functional.conv3d}[nd]

        def tcall():
            y = tconv(tx, tw, stride=s, padding=p, groups=groups)
            torch.autograd.grad(y, (tx, tw), tg)
            if dev == "cuda":
                torch.cuda.synchronize()

        calls["torch"] = tcall
    for c in calls.values():  # warm up (compile, cuDNN autotune)
        c()
    times = {key: [] for key in calls}
    for r in range(repeats):
        for key in list(calls)[r % len(calls):] + list(calls)[: r % len(calls)]:
            _time_into(calls[key], times[key])
    med = {key: statistics.median(v) * 1e3 for key, v in times.items()}
    line = (f"| {name} (N={n}) | {med['xla']:.2f} | {med['window']:.2f} | {med['fcnn']:.2f} | "
            + (f"{med['torch']:.2f} | {med['fcnn'] / med['torch']:.2f} | " if "torch" in med else "— | — | ")
            + f"{med['xla wgrad']:.2f} | {med['window wgrad']:.2f} | {med['fcnn wgrad']:.2f} | {err:.1e} |")
    return line


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks.ops_conv", description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--batch-scale", type=int, default=1, help="multiply every batch size (e.g. 32 on a GPU)")
    ap.add_argument("--cases", default="bncnn,lenet,resnet,other,regnet")
    ap.add_argument("--no-torch", action="store_true")
    args = ap.parse_args(argv)
    torch_mod = None
    if not args.no_torch:
        import torch

        torch.backends.cudnn.benchmark = True
        torch_mod = torch
    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}; "
          + (f"torch {torch_mod.__version__}" if torch_mod else "no torch"), flush=True)
    print("| case | xla fwd+bwd ms | window fwd+bwd ms | fcnn fwd+bwd ms | torch fwd+bwd ms | fcnn/torch "
          "| xla wgrad ms | window wgrad ms | fcnn wgrad ms | max rel diff (window vs xla) |")
    print("|---|---|---|---|---|---|---|---|---|---|", flush=True)
    for group in args.cases.split(","):
        for case in CASES[group]:
            print(run_case(case, args.repeats, args.batch_scale, torch_mod), flush=True)


if __name__ == "__main__":
    main()
