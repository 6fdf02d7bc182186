"""Forward and forward+backward timings of fcnn's resampling ops vs torch (CPU), with alternatives.

    .venv/bin/python -m benchmarks.ops_resample [--batch 32 --channels 64 --size 56 --repeats 7] [--slow-alternatives]
        [--only NAME]

Each op is jitted as fcnn's steps are (:func:`fcnn.jit`, with ``fcnn.compiler_options()``;
on CPU, Eigen convolutions) and warmed up; fcnn and torch runs are interleaved in the
same process (the machine may be shared), and medians are printed together
with the ratio fcnn/torch. Alternative formulations that fcnn does not use
are timed too (marked ``alt:``), to document the choice.
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import torch

from fcnn import functional as F
from fcnn import xla
from fcnn.functional.upsample import _linear_matrix, _matmul_axis

TF = torch.nn.functional


# --- alternatives (not used by fcnn) -----------------------------------------

def bilinear_by_matrices(x, scale):
    """Alternative to fcnn's two gathers + lerp forward: the (out, in) matrix contracted both ways."""
    for axis in (3, 2):
        n = x.shape[axis]
        x = _matmul_axis(x, _linear_matrix(n, int(n * scale), False, scale), axis)
    return x


def bilinear_by_gather(x, scale):
    """Alternative: two gathers + lerp per axis with JAX's automatic gradient (scatter-adds)."""
    for axis in (3, 2):
        n = x.shape[axis]
        m = _linear_matrix(n, int(n * scale), False, scale)
        i0 = np.array([np.flatnonzero(r)[0] for r in m])
        i1 = np.array([np.flatnonzero(r)[-1] for r in m])
        w1 = m[np.arange(len(m)), i1] * (i1 != i0)
        shape = [1] * x.ndim
        shape[axis] = -1
        w1 = jnp.asarray(w1.reshape(shape))
        x = jnp.take(x, jnp.asarray(i0), axis=axis) * (1 - w1) + jnp.take(x, jnp.asarray(i1), axis=axis) * w1
    return x


def nearest_by_broadcast(x, r):
    """Alternative: broadcast + reshape with JAX's automatic gradient (a reduce over a size-r inner axis)."""
    for axis in (3, 2):
        y = jnp.broadcast_to(jnp.expand_dims(x, axis + 1), x.shape[: axis + 1] + (r,) + x.shape[axis + 1:])
        x = y.reshape(x.shape[:axis] + (x.shape[axis] * r,) + x.shape[axis + 1:])
    return x


def bilinear_former_custom_vjp(x, scale):
    """fcnn's former formulation (before forward-mode support): gathers + lerp forward under a
    custom VJP whose backward is the transposed matrix. fcnn now gets the same backward by
    transposing a custom JVP's matrix-form tangent."""
    for axis in (3, 2):
        n = x.shape[axis]
        m = _linear_matrix(n, int(n * scale), False, scale)
        i0 = np.array([np.flatnonzero(r)[0] for r in m]).astype(np.int32)
        i1 = np.array([np.flatnonzero(r)[-1] for r in m]).astype(np.int32)
        shape = [1] * x.ndim
        shape[axis] = -1
        w0 = np.asarray(m[np.arange(len(m)), i0].reshape(shape), np.float32)
        w1 = np.asarray((m[np.arange(len(m)), i1] * (i1 != i0)).reshape(shape), np.float32)

        def interp(a, axis=axis, m=m, i0=i0, i1=i1, w0=w0, w1=w1):
            f = jax.custom_vjp(lambda a: jnp.take(a, i0, axis=axis) * w0 + jnp.take(a, i1, axis=axis) * w1)
            f.defvjp(lambda a: (f(a), None), lambda _, g: (_matmul_axis(g, m.T, axis),))
            return f(a)

        x = interp(x)
    return x


def nearest_former_custom_vjp(x, r):
    """fcnn's former formulation: broadcast + reshape forward, custom VJP summing r strided slices.
    fcnn now gets that backward by transposing a tangent made of r interleaving pads."""
    for axis in (3, 2):
        def rep(a, axis=axis):
            f = jax.custom_vjp(lambda a: jnp.repeat(a, r, axis=axis))
            f.defvjp(lambda a: (f(a), None),
                     lambda _, g: (sum(jax.lax.slice_in_dim(g, j, None, r, axis) for j in range(r)),))
            return f(a)

        x = rep(x)
    return x


def nearest_by_gather(x, r):
    """Alternative: a gather per axis (gradient: scatter-add)."""
    for axis in (3, 2):
        x = jnp.take(x, jnp.arange(x.shape[axis] * r) // r, axis=axis)
    return x


def conv_transpose_lhs_dilation(x, w, stride, padding):
    """The textbook formulation (what jax.lax.conv_transpose does): dilate the input by the stride."""
    k = w.shape[2:]
    wt = jnp.flip(w, (2, 3)).transpose(1, 0, 2, 3)
    pads = [(kk - 1 - padding, kk - 1 - padding) for kk in k]
    return jax.lax.conv_general_dilated(x, wt, (1, 1), pads, lhs_dilation=(stride, stride),
                                        dimension_numbers=("NCHW", "OIHW", "NCHW"))


def conv_transpose_vjp(x, w, stride, padding):
    """Transposed conv as the input-gradient of a forward conv (jax.vjp)."""
    n, _, h, wd = x.shape
    k = w.shape[2]
    out = (h - 1) * stride - 2 * padding + k
    fwd = lambda z: jax.lax.conv_general_dilated(z, w, (stride, stride), [(padding, padding)] * 2,
                                                 dimension_numbers=("NCHW", "OIHW", "NCHW"))
    _, vjp = jax.vjp(fwd, jnp.zeros((n, w.shape[1], out, out), x.dtype))
    return vjp(x)[0]


# --- timing ------------------------------------------------------------------

def time_once(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


ONLY = ""  # --only: run the benchmarks whose name contains this


def bench(name, jax_fn, jax_args, torch_fn, torch_args, repeats, grad_argnums=(0,)):
    """Median seconds of fcnn and torch, forward and forward+backward, interleaved."""
    if ONLY not in name:
        return None
    fwd = xla.jit(jax_fn)
    out = fwd(*jax_args)
    cot = jnp.asarray(np.random.RandomState(0).standard_normal(out.shape).astype(np.float32))

    def fb(cotangent, *args):
        # the cotangent is an argument: a closed-over constant would let XLA constant-fold the backward pass
        y, vjp = jax.vjp(lambda *a: jax_fn(*a), *args)
        return y, vjp(cotangent)

    fwdbwd = xla.jit(fb)
    t_cot = torch.from_numpy(np.array(cot))
    t_req = [a.detach().clone().requires_grad_(i in grad_argnums) for i, a in enumerate(torch_args)]

    def torch_fwd():
        with torch.no_grad():
            torch_fn(*torch_args)

    def torch_fb():
        for a in t_req:
            a.grad = None
        torch_fn(*t_req).backward(t_cot)

    jax_f = lambda: jax.block_until_ready(fwd(*jax_args))
    jax_fb = lambda: jax.block_until_ready(fwdbwd(cot, *jax_args))
    for f in (jax_f, jax_fb, torch_fwd, torch_fb):  # warm-up (compilation, allocator)
        f()
    times = {k: [] for k in ("jf", "tf", "jb", "tb")}
    for _ in range(repeats):
        times["jf"].append(time_once(jax_f))
        times["tf"].append(time_once(torch_fwd))
        times["jb"].append(time_once(jax_fb))
        times["tb"].append(time_once(torch_fb))
    med = {k: statistics.median(v) for k, v in times.items()}
    row = (name, med["jf"] * 1e3, med["tf"] * 1e3, med["jf"] / med["tf"],
           med["jb"] * 1e3, med["tb"] * 1e3, med["jb"] / med["tb"])
    print("| {} | {:.1f} | {:.1f} | {:.2f} | {:.1f} | {:.1f} | {:.2f} |".format(*row), flush=True)
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--channels", type=int, default=64)
    ap.add_argument("--size", type=int, default=56)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--no-alternatives", action="store_true")
    ap.add_argument("--only", default="", help="run only the benchmarks whose name contains this")
    ap.add_argument("--slow-alternatives", action="store_true",
                    help="also time conv_transpose2d via lhs_dilation / vjp (~20x slower backward: minutes)")
    args = ap.parse_args()
    global ONLY
    ONLY = args.only
    shape = (args.batch, args.channels, args.size, args.size)
    x = np.random.RandomState(0).standard_normal(shape).astype(np.float32)
    c = args.channels
    w = (np.random.RandomState(1).standard_normal((c, c, 4, 4)) * 0.05).astype(np.float32)
    jx, tx = jnp.asarray(x), torch.from_numpy(x)
    jw, tw = jnp.asarray(w), torch.from_numpy(w)
    print(f"input {shape} float32, jax {jax.__version__} ({jax.default_backend()}), torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), medians of {args.repeats} interleaved runs, times in ms")
    print("| op | fcnn fwd | torch fwd | ratio | fcnn fwd+bwd | torch fwd+bwd | ratio |")
    print("|---|---|---|---|---|---|---|")
    r = args.repeats
    bench("interpolate bilinear x2", lambda a: F.interpolate(a, scale_factor=2, mode="bilinear"), (jx,),
          lambda a: TF.interpolate(a, scale_factor=2, mode="bilinear"), (tx,), r)
    bench("interpolate nearest x2", lambda a: F.interpolate(a, scale_factor=2), (jx,),
          lambda a: TF.interpolate(a, scale_factor=2), (tx,), r)
    bench("interpolate bicubic x2", lambda a: F.interpolate(a, scale_factor=2, mode="bicubic"), (jx,),
          lambda a: TF.interpolate(a, scale_factor=2, mode="bicubic"), (tx,), r)
    bench("conv_transpose2d k4 s2 p1", lambda a, b: F.conv_transpose2d(a, b, stride=2, padding=1), (jx, jw),
          lambda a, b: TF.conv_transpose2d(a, b, stride=2, padding=1), (tx, tw), r, grad_argnums=(0, 1))
    if not args.no_alternatives:
        bilinear_ref = lambda a: TF.interpolate(a, scale_factor=2, mode="bilinear")
        nearest_ref = lambda a: TF.interpolate(a, scale_factor=2)
        bench("alt: bilinear x2 by dense matrices", lambda a: bilinear_by_matrices(a, 2.0), (jx,), bilinear_ref, (tx,), r)
        bench("alt: bilinear x2 by gathers, autodiff", lambda a: bilinear_by_gather(a, 2.0), (jx,), bilinear_ref, (tx,), r)
        bench("alt: bilinear x2, former custom VJP", lambda a: bilinear_former_custom_vjp(a, 2.0), (jx,), bilinear_ref,
              (tx,), r)
        bench("alt: nearest x2 by broadcast, autodiff", lambda a: nearest_by_broadcast(a, 2), (jx,), nearest_ref, (tx,), r)
        bench("alt: nearest x2, former custom VJP", lambda a: nearest_former_custom_vjp(a, 2), (jx,), nearest_ref, (tx,), r)
        bench("alt: nearest x2 by gathers", lambda a: nearest_by_gather(a, 2), (jx,), nearest_ref, (tx,), r)
    if args.slow_alternatives:
        ct_ref = lambda a, b: TF.conv_transpose2d(a, b, stride=2, padding=1)
        bench("alt: conv_transpose2d via lhs_dilation", lambda a, b: conv_transpose_lhs_dilation(a, b, 2, 1),
              (jx, jw), ct_ref, (tx, tw), r, grad_argnums=(0, 1))
        bench("alt: conv_transpose2d via vjp of conv2d", lambda a, b: conv_transpose_vjp(a, b, 2, 1),
              (jx, jw), ct_ref, (tx, tw), r, grad_argnums=(0, 1))

if __name__ == "__main__":
    main()
