"""Pooling ops: fcnn (jit) against torch, forward and forward+backward, on the same machine in one run.

Run: ``python -m benchmarks.ops_pool [--repeats 7] [--shape 32 64 56 56] [--alternatives] [--only NAME]``.
Each case is jitted as fcnn's steps are (:func:`fcnn.jit`, with ``fcnn.compiler_options()``)
and timed after a warm-up call; fcnn and torch calls are interleaved
(one fcnn call, one torch call, ...) so that load from other processes hits
both alike, and the median of the repeats is printed with the ratio fcnn/torch.
``--alternatives`` also times the other formulations tried for the slow cases
(``benchmarks/README.md`` lists them).
"""

from __future__ import annotations

import argparse
import itertools
import time

import jax
import jax.numpy as jnp
import numpy as np
import torch
import torch.nn.functional as TF
from jax import lax

from fcnn import functional as F
from fcnn import xla

CASES = [
    ("max_pool2d k2 s2", lambda x: F.max_pool2d(x, 2, 2), lambda x: TF.max_pool2d(x, 2, 2)),
    ("max_pool2d k3 s2 p1", lambda x: F.max_pool2d(x, 3, 2, 1), lambda x: TF.max_pool2d(x, 3, 2, 1)),
    ("avg_pool2d k2 s2", lambda x: F.avg_pool2d(x, 2, 2), lambda x: TF.avg_pool2d(x, 2, 2)),
    ("avg_pool2d k3 s1 p1", lambda x: F.avg_pool2d(x, 3, 1, 1), lambda x: TF.avg_pool2d(x, 3, 1, 1)),
    ("adaptive_avg_pool2d 56->7", lambda x: F.adaptive_avg_pool2d(x, 7), lambda x: TF.adaptive_avg_pool2d(x, 7)),
    ("adaptive_avg_pool2d ->1", lambda x: F.adaptive_avg_pool2d(x, 1), lambda x: TF.adaptive_avg_pool2d(x, 1)),
    ("adaptive_max_pool2d 56->7", lambda x: F.adaptive_max_pool2d(x, 7), lambda x: TF.adaptive_max_pool2d(x, 7)),
]


def _alt_max_xla(k, s, p):
    """XLA's own max pooling: reduce_window forward, select_and_scatter_add gradient."""
    pads = ((0, 0), (0, 0), (p, p), (p, p))
    return lambda x: lax.reduce_window(x, -jnp.inf, lax.max, (1, 1, k, k), (1, 1, s, s), pads)


def _alt_max_custom(k, s, p, fwd_impl, bwd_impl):
    """A custom VJP (fcnn's former formulation) with a given forward (values, arg-max) and backward."""
    from fcnn.functional import pool as P

    kernel, stride, padding, dilation = P.pool_args(k, s, p, 1, 2, "bench")

    def f(x):
        out = P.pool_output_size(x.shape[2:], kernel, stride, padding, dilation, False)
        geom = (kernel, stride, padding, dilation, out, P._pads(x.shape[2:], out, kernel, stride, padding, dilation))

        @jax.custom_vjp
        def core(x):
            return fwd_impl(x, geom)[0]

        def fwd(x):
            best, arg = fwd_impl(x, geom)
            return best, arg

        def bwd(arg, g):
            return (bwd_impl(g, arg, x.shape[2:], geom),)

        core.defvjp(fwd, bwd)
        return core(x)

    return f


def _scan_fwd(x, geom):
    """The general elementwise window scan, also for tiling windows."""
    from fcnn.functional import pool as P

    kernel, stride, padding, dilation, out, pads = geom
    xp = lax.pad(x, np.array(-np.inf, x.dtype), [(0, 0, 0), (0, 0, 0)] + [(lo, hi, 0) for lo, hi in pads])
    items = [(P._window_slice(xp, o, out, stride, dilation), None) for o in P._offsets(kernel)]
    return P._scan_max(items, x.shape[:2] + out, x.dtype)


def _scatter(g, arg, spatial, geom):
    from fcnn.functional import pool as P

    kernel, stride, padding, dilation, out, pads = geom
    idx = P._flat_indices(arg, kernel, stride, padding, dilation, spatial, out)
    n, c = g.shape[:2]
    dx = jnp.zeros((n, c, int(np.prod(spatial))), g.dtype)
    dx = dx.at[jnp.arange(n)[:, None, None], jnp.arange(c)[None, :, None], idx.reshape(n, c, -1)].add(
        g.reshape(n, c, -1), mode="drop")
    return dx.reshape((n, c) + tuple(spatial))


def _phase_bwd(g, arg, spatial, geom):
    """Tiling-window backward of fcnn's former custom VJP (now the transpose of the
    one-hot tangent rule): route ``g`` to the arg-max elements phase by phase of the stride.

    Input position ``i = q·s + r`` (phase ``r``) is element ``k`` of window
    ``o = q + (r + p − k·d) / s`` exactly when ``r + p − k·d`` is divisible by
    ``s``; so each kernel offset feeds exactly one phase, through a shifted
    copy of ``where(arg == k, g, 0)``. The phases are then interleaved by a
    reshape.
    """
    from fcnn.functional import pool as P

    kernel, stride, padding, dilation, out, pads = geom
    n = len(kernel)
    lead = g.shape[:2]
    zero = jnp.array(0, g.dtype)
    q = tuple(-(-length // s) for length, s in zip(spatial, stride))  # positions per phase
    phases = {}
    for k, offs in enumerate(P._offsets(kernel)):
        phase, cfg = [], [(0, 0, 0), (0, 0, 0)]
        for off, o, s, p, d, qq in zip(offs, out, stride, padding, dilation, q):
            r = (off * d - p) % s
            c = (r + p - off * d) // s  # window o = q + c
            phase.append(r)
            cfg.append((-c, qq - o + c, 0))
        part = lax.pad(jnp.where(arg == k, g, zero), zero, cfg)
        phase = tuple(phase)
        phases[phase] = part if phase not in phases else phases[phase] + part
    zeros = None
    stacked = []
    for phase in itertools.product(*(range(s) for s in stride)):
        if phase not in phases:
            zeros = jnp.zeros(lead + q, g.dtype) if zeros is None else zeros
        stacked.append(phases.get(phase, zeros))
    dx = jnp.stack(stacked, axis=-1).reshape(lead + q + tuple(stride))
    perm = (0, 1) + tuple(a for i in range(n) for a in (2 + i, 2 + n + i))
    dx = dx.transpose(perm).reshape(lead + tuple(qq * s for qq, s in zip(q, stride)))
    if dx.shape[2:] != tuple(spatial):
        dx = dx[(slice(None), slice(None)) + tuple(slice(0, length) for length in spatial)]
    return dx


def _fwd_impl(x, geom):
    from fcnn.functional import pool as P

    return P._max_pool_fwd_impl(x, geom)


def _alt_avg_slices(k, s, p):
    """Sum of k·k strided slices of the zero-padded input (instead of reduce_window)."""

    def f(x):
        xp = jnp.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        ho = (x.shape[2] + 2 * p - k) // s + 1
        wo = (x.shape[3] + 2 * p - k) // s + 1
        acc = None
        for i in range(k):
            for j in range(k):
                sl = xp[:, :, i:i + (ho - 1) * s + 1:s, j:j + (wo - 1) * s + 1:s]
                acc = sl if acc is None else acc + sl
        return acc / (k * k)  # count_include_pad=True with no ceil_mode: a constant divisor

    return f


def _alt_avg_reshape(k):
    """Non-overlapping windows: reshape and mean."""

    def f(x):
        n, c, h, w = x.shape
        return x.reshape(n, c, h // k, k, w // k, k).mean((3, 5))

    return f


def _alt_adaptive_matmul(o):
    """Adaptive average as two bin-matrix products (the path used for non-divisible sizes)."""

    def f(x):
        h = x.shape[2]
        m = np.zeros((o, h), np.float32)
        for i in range(o):
            m[i, (i * h) // o: -((-(i + 1) * h) // o)] = 1.0
        m = jnp.asarray(m / m.sum(1, keepdims=True))
        return jnp.einsum("nchw,ph,qw->ncpq", x, m, m, precision=lax.Precision.HIGHEST)

    return f


ALTERNATIVES = [
    # fcnn's custom VJP before the max-pool derivative became a custom JVP (for forward-mode
    # autodiff): the same forward, the backward written by hand instead of transposed by JAX
    ("max_pool2d k2 s2 [former custom VJP: reduce + phase backward]", _alt_max_custom(2, 2, 0, _fwd_impl, _phase_bwd),
     lambda x: TF.max_pool2d(x, 2, 2)),
    ("max_pool2d k3 s2 p1 [former custom VJP: window scan + scatter backward]",
     _alt_max_custom(3, 2, 1, _fwd_impl, _scatter), lambda x: TF.max_pool2d(x, 3, 2, 1)),
    ("max_pool2d k2 s2 [window scan + scatter backward]", _alt_max_custom(2, 2, 0, _scan_fwd, _scatter),
     lambda x: TF.max_pool2d(x, 2, 2)),
    ("max_pool2d k2 s2 [window scan + phase backward]", _alt_max_custom(2, 2, 0, _scan_fwd, _phase_bwd),
     lambda x: TF.max_pool2d(x, 2, 2)),
    ("max_pool2d k3 s2 p1 [window scan + elementwise phase backward]",
     _alt_max_custom(3, 2, 1, _scan_fwd, _phase_bwd), lambda x: TF.max_pool2d(x, 3, 2, 1)),
    ("max_pool2d k2 s2 [XLA reduce_window + select_and_scatter]", _alt_max_xla(2, 2, 0), lambda x: TF.max_pool2d(x, 2, 2)),
    ("max_pool2d k3 s2 p1 [XLA reduce_window + select_and_scatter]", _alt_max_xla(3, 2, 1),
     lambda x: TF.max_pool2d(x, 3, 2, 1)),
    ("avg_pool2d k2 s2 [reshape-mean]", _alt_avg_reshape(2), lambda x: TF.avg_pool2d(x, 2, 2)),
    ("avg_pool2d k2 s2 [sum of strided slices]", _alt_avg_slices(2, 2, 0), lambda x: TF.avg_pool2d(x, 2, 2)),
    ("avg_pool2d k3 s1 p1 [sum of strided slices]", _alt_avg_slices(3, 1, 1), lambda x: TF.avg_pool2d(x, 3, 1, 1)),
    ("adaptive_avg_pool2d 56->7 [bin-matrix einsum]", _alt_adaptive_matmul(7), lambda x: TF.adaptive_avg_pool2d(x, 7)),
]


def _fcnn_fns(f, x):
    fwd = xla.jit(f)
    g = jnp.ones(jax.eval_shape(f, x).shape, x.dtype)
    def fwd_bwd_fn(x, g):
        # returns the output too: for linear ops XLA would otherwise drop the forward
        y, vjp = jax.vjp(f, x)
        return y, vjp(g)[0]

    fwd_bwd = xla.jit(fwd_bwd_fn)
    return (lambda: fwd(x)), (lambda: fwd_bwd(x, g))


def _torch_fns(f, x):
    xt = torch.from_numpy(np.array(x))
    xg = xt.clone().requires_grad_(True)
    g = torch.ones_like(f(xt))

    def fwd():
        with torch.no_grad():
            return f(xt)

    def fwd_bwd():
        xg.grad = None
        y = f(xg)
        y.backward(g)
        return y, xg.grad

    return fwd, fwd_bwd


def _time_pair(a, b, repeats):
    for fn in (a, b):  # warm-up (compilation for fcnn)
        jax.block_until_ready(fn())
    ta, tb = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(a())
        ta.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        b()
        tb.append(time.perf_counter() - t0)
    return float(np.median(ta)), float(np.median(tb))


def run(cases, shape, repeats, only=""):
    x = jnp.asarray(np.random.RandomState(0).standard_normal(shape).astype(np.float32))
    rows = []
    for name, fj, ft in cases:
        if only and only not in name:
            continue
        jf, jfb = _fcnn_fns(fj, x)
        tf, tfb = _torch_fns(ft, x)
        f_ms, t_ms = (v * 1e3 for v in _time_pair(jf, tf, repeats))
        fb_ms, tb_ms = (v * 1e3 for v in _time_pair(jfb, tfb, repeats))
        rows.append((name, f_ms, t_ms, fb_ms, tb_ms))
        print(f"| {name} | {f_ms:.1f} | {t_ms:.1f} | {f_ms / t_ms:.2f} | {fb_ms:.1f} | {tb_ms:.1f} | {fb_ms / tb_ms:.2f} |",
              flush=True)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--shape", type=int, nargs=4, default=(32, 64, 56, 56))
    ap.add_argument("--alternatives", action="store_true")
    ap.add_argument("--only", default="", help="run only the cases whose name contains this")
    args = ap.parse_args()
    print(f"jax {jax.__version__} ({jax.devices()[0].platform}), torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), input {tuple(args.shape)} float32, median of {args.repeats}")
    print("| op | fcnn fwd ms | torch fwd ms | ratio | fcnn fwd+bwd ms | torch fwd+bwd ms | ratio |")
    print("|---|---|---|---|---|---|---|")
    run(CASES, tuple(args.shape), args.repeats, args.only)
    if args.alternatives:
        run(ALTERNATIVES, tuple(args.shape), args.repeats, args.only)


if __name__ == "__main__":
    main()
