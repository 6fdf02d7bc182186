"""Forward-mode autodiff (jvp, jacfwd, Hessians) through the ops with custom derivative rules.

Max pooling, max unpooling, the interpolation modes and binary cross entropy
define their derivative with ``jax.custom_jvp`` (a tangent rule linear in the
tangents, which JAX transposes into the fast backward). For each: the ``jvp``
tangent equals torch's forward mode (``torch.func.jvp``) where torch's is
consistent with its own gradient, ``⟨u, J t⟩`` from ``jvp`` equals
``⟨Jᵀ u, t⟩`` from ``vjp``, and ``jacfwd`` equals ``jacrev`` on a small input.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import assume, given, settings, strategies as st

from fcnn import functional as F
from oracle import assert_close, to_torch, torch_pool_output, windows_reach_input


def _rand(shape, seed, ties=False):
    rs = np.random.RandomState(seed)
    if ties:  # few distinct values: windows with several equal maxima
        return rs.randint(-2, 3, shape).astype(np.float32)
    return rs.standard_normal(shape).astype(np.float32)


def check_forward_mode(f, x, f_torch=None, t=None, seed=0, jacobians=True, rtol=1e-5, atol=1e-5):
    """jvp vs torch's forward mode (if ``f_torch``), jvp vs vjp, and jacfwd vs jacrev of ``f`` at ``x``."""
    x = jnp.asarray(x)
    t = jnp.asarray(_rand(x.shape, seed + 1) if t is None else t)

    @jax.jit  # one compilation for everything
    def go(x, t):
        y, yt = jax.jvp(f, (x,), (t,))
        _, vjp = jax.vjp(f, x)
        u = jnp.asarray(_rand(y.shape, seed + 2))
        (g,) = vjp(u)
        # u·(J t) and (Jᵀu)·t, with the scale of their terms for the tolerance
        dots = (jnp.vdot(u, yt), jnp.vdot(g, t), jnp.vdot(jnp.abs(u), jnp.abs(yt)) + jnp.vdot(jnp.abs(g), jnp.abs(t)))
        jac = (jax.jacfwd(f)(x), jax.jacrev(f)(x)) if jacobians else None
        return y, yt, dots, jac

    y, yt, (ujt, jtut, scale), jac = go(x, t)
    assert yt.shape == y.shape and yt.dtype == y.dtype
    assert abs(float(ujt) - float(jtut)) <= 1e-5 * float(scale) + 1e-6, (float(ujt), float(jtut))
    if f_torch is not None:
        yt_torch = torch.func.jvp(f_torch, (to_torch(x),), (to_torch(t),))[1]
        assert_close(yt, yt_torch, rtol, atol, "jvp tangent vs torch.func.jvp")
    if jacobians:
        np.testing.assert_allclose(np.asarray(jac[0]), np.asarray(jac[1]), rtol=1e-6, atol=1e-6,
                                   err_msg="jacfwd vs jacrev")
    return y, yt


# --------------------------------------------------------------------------------------------
# max pooling


@st.composite
def max_configs(draw):
    n = draw(st.sampled_from([1, 2, 3]))
    k = tuple(draw(st.integers(1, 3)) for _ in range(n))
    d = tuple(draw(st.integers(1, 2)) for _ in range(n))
    p = tuple(draw(st.integers(0, kk // 2)) for kk in k)
    s = draw(st.one_of(st.none(), st.tuples(*[st.integers(1, 3)] * n)))
    ceil = draw(st.booleans())
    size = tuple(draw(st.integers(max(1, dd * (kk - 1) + 1 - 2 * pp), dd * (kk - 1) + (4 if n < 3 else 2)))
                 for kk, dd, pp in zip(k, d, p))
    # as in test_pool: a dilated window that skips the whole input has a torch-buggy gradient
    out = torch_pool_output(size, k, s or k, p, d, ceil)  # torch decides what is valid
    assume(out is not None and windows_reach_input(size, out, k, s or k, p, d))
    shape = ((2,) if draw(st.booleans()) else ()) + (2,) + size
    x = _rand(shape, draw(st.integers(0, 2**16)), ties=draw(st.booleans()))
    return n, k, s, p, d, ceil, draw(st.booleans()), x


@settings(max_examples=6)
@given(max_configs())
def test_max_pool_jvp_matches_torch_forward_mode_and_vjp(cfg):
    n, k, s, p, d, ceil, indices, x = cfg
    fj, ft = getattr(F, f"max_pool{n}d"), getattr(TF, f"max_pool{n}d")
    if indices:
        f = lambda a: fj(a, k, s, p, d, ceil, True)[0]
        _, yt = check_forward_mode(f, x, lambda a: ft(a, k, s, p, d, ceil, True)[0], jacobians=False)
        # the tangent is the input tangent read at the returned indices
        t = _rand(x.shape, 1)
        _, idx = jax.jit(lambda a: fj(a, k, s, p, d, ceil, True))(x)
        tb = t.reshape(t.shape[: t.ndim - n] + (-1,))
        ref = np.take_along_axis(tb, np.asarray(idx).reshape(idx.shape[: idx.ndim - n] + (-1,)), -1)
        np.testing.assert_array_equal(np.asarray(yt), ref.reshape(idx.shape))
    else:
        # (jacfwd vs jacrev: on a small input in the parametrised tests below)
        check_forward_mode(lambda a: fj(a, k, s, p, d, ceil), x, lambda a: ft(a, k, s, p, d, ceil), jacobians=False)


@pytest.mark.parametrize("n, size, args", [
    (3, (3, 4, 5), dict(kernel_size=2, ceil_mode=True)),  # tiling windows, one hanging over the edge
    (2, (6, 7), dict(kernel_size=3, stride=2, padding=1, dilation=(1, 2), ceil_mode=True)),  # overlapping
])
def test_max_pool_jacobians_with_ties(n, size, args):
    x = _rand((1, 2) + size, n, ties=True)
    check_forward_mode(lambda a: getattr(F, f"max_pool{n}d")(a, **args), x,
                       lambda a: getattr(TF, f"max_pool{n}d")(a, **args))


def test_max_pool_nan_and_inf_tangent_elsewhere_stay_out():
    # the tangent reads the arg-max element only: NaN/inf tangents elsewhere do not leak
    x = np.array([[[3.0, 1.0, 2.0, 5.0, 0.0, 4.0]]], np.float32)
    t = np.array([[[1.0, np.nan, np.inf, 2.0, -np.inf, 3.0]]], np.float32)
    for args in [(2,), (3, 1, 1)]:
        yt = jax.jit(lambda a, b: jax.jvp(lambda c: F.max_pool1d(c, *args), (a,), (b,))[1])(x, t)
        yt_torch = torch.func.jvp(lambda a: TF.max_pool1d(a, *args), (to_torch(x),), (to_torch(t),))[1]
        np.testing.assert_array_equal(np.asarray(yt), yt_torch.numpy())


@pytest.mark.parametrize("n, size, out", [(2, (6, 6), 3), (3, (4, 3, 5), (2, 3, 2))])
def test_adaptive_max_pool_forward_mode(n, size, out):
    # equal bins: max pooling's tiling path; uneven bins: a gather and a reduce
    # (average pooling, adaptive or not, has no custom rule: JAX differentiates it)
    x = _rand((1, 2) + size, n, ties=True)
    fj, ft = getattr(F, f"adaptive_max_pool{n}d"), getattr(TF, f"adaptive_max_pool{n}d")
    check_forward_mode(lambda a: fj(a, out), x, lambda a: ft(a, out))


def test_lp_pool_inf_forward_mode():
    x = _rand((1, 2, 5, 5), 2)
    check_forward_mode(lambda a: F.lp_pool2d(a, float("inf"), 2), x)  # max pooling of |x|


@pytest.mark.parametrize("k, s, p", [(2, 2, 0), (3, 2, 1)])
def test_max_unpool_forward_mode(k, s, p):
    x = _rand((2, 2, 7, 6), 3)
    y, idx = jax.jit(lambda a: F.max_pool2d(a, k, s, p, return_indices=True))(x)
    f = lambda v: F.max_unpool2d(v, idx, k, s, p, output_size=x.shape[2:])
    # k == s: every index once, so torch's forward mode (a scatter) is its
    # gradient's transpose; with repeated indices (k3 s2) torch's gradient
    # gives every duplicate the output gradient, and fcnn's tangent is the
    # matching sum (torch's jvp keeps one of them instead).
    f_torch = (lambda v: TF.max_unpool2d(v, to_torch(idx).long(), k, s, p, output_size=x.shape[2:])) if k == s else None
    check_forward_mode(f, np.asarray(y), f_torch)


# --------------------------------------------------------------------------------------------
# interpolation

_MODE_DIMS = {"nearest": (1, 2, 3), "nearest-exact": (1, 2, 3), "linear": (1,), "bilinear": (2,),
              "bicubic": (2,), "trilinear": (3,), "area": (1, 2)}


def _nearest_quirk(mode, n, shape, kwargs):
    """torch's 1-D/3-D nearest forward ignores its x1/x2 index shortcut that its gradient takes."""
    sf = kwargs.get("scale_factor")
    if mode != "nearest" or n == 2 or sf is None:
        return False
    sfs = sf if isinstance(sf, tuple) else (sf,) * n
    return any(int(np.floor(L * f)) in (L, 2 * L) and f not in (1.0, 2.0) for L, f in zip(shape[2:], sfs))


@st.composite
def interpolate_configs(draw):
    mode = draw(st.sampled_from(sorted(_MODE_DIMS)))
    n = draw(st.sampled_from(_MODE_DIMS[mode]))
    spatial = tuple(draw(st.integers(2, 5 if n < 3 else 3)) for _ in range(n))
    kwargs = {"mode": mode}
    if mode in ("linear", "bilinear", "bicubic", "trilinear"):
        kwargs["align_corners"] = draw(st.booleans())
    if draw(st.booleans()):
        kwargs["size"] = tuple(draw(st.integers(1, 9 if n < 3 else 5)) for _ in range(n))
    else:
        # (torch's linear modes copy the input when the output size equals it, whatever
        # the scale_factor, e.g. 1.1 on 2 or 3 pixels; fcnn's forward does not: not drawn here)
        factors = [0.5, 1.1, 1.5, 2.0, 2.1, 3.0] if mode.startswith("nearest") else [0.5, 1.5, 2.0, 2.1, 3.0]
        kwargs["scale_factor"] = tuple(draw(st.sampled_from(factors)) for _ in range(n))
    if mode in ("bilinear", "bicubic") and draw(st.booleans()):
        kwargs["antialias"] = True
    return (draw(st.integers(1, 2)), 2) + spatial, kwargs


@settings(max_examples=6)
@given(interpolate_configs(), st.integers(0, 100))
def test_interpolate_jvp_matches_torch_forward_mode_and_vjp(cfg, seed):
    shape, kwargs = cfg
    n = len(shape) - 2
    quirk = _nearest_quirk(kwargs["mode"], n, shape, kwargs)
    check_forward_mode(lambda a: F.interpolate(a, **kwargs), _rand(shape, seed),
                       None if quirk else (lambda a: TF.interpolate(a, **kwargs)), jacobians=False)


@pytest.mark.parametrize("mode, shape, align", [("linear", (2, 2, 5), False), ("bilinear", (1, 2, 4, 5), True),
                                                ("bicubic", (1, 2, 4, 5), False), ("trilinear", (1, 2, 3, 4, 3), True),
                                                ("nearest", (1, 2, 3, 2, 3), None)])
def test_interpolate_upsampling_forward_mode(mode, shape, align):
    # integer upsampling: the two-tap (linear modes) and repeat (nearest) rules
    kwargs = dict(scale_factor=2, mode=mode, align_corners=align)
    check_forward_mode(lambda a: F.interpolate(a, **kwargs), _rand(shape, 5), lambda a: TF.interpolate(a, **kwargs))


@pytest.mark.parametrize("shape, scale", [((1, 2, 5), 1.1), ((1, 2, 3, 3, 4), 2.1)])
def test_interpolate_nearest_index_quirk_forward_mode_follows_the_gradient(shape, scale):
    # fcnn's forward reads torch's forward index and its gradient goes to torch's
    # gradient index (they differ here); the tangent is consistent with the gradient
    f = lambda a: F.interpolate(a, scale_factor=scale)
    x = _rand(shape, 7)
    t = _rand(shape, 8)
    _, yt = check_forward_mode(f, x, t=t)
    u = _rand(yt.shape, 9)
    xt = to_torch(x, requires_grad=True)
    TF.interpolate(xt, scale_factor=scale).backward(torch.from_numpy(u))
    np.testing.assert_allclose(float(np.vdot(u, np.asarray(yt))), float(np.vdot(xt.grad.numpy(), t)), rtol=1e-5)


# --------------------------------------------------------------------------------------------
# binary cross entropy


def test_binary_cross_entropy_jvp_in_input_and_target_matches_torch():
    rs = np.random.RandomState(3)
    p = rs.uniform(0.02, 0.98, (3, 4)).astype(np.float32)
    t = rs.uniform(0, 1, (3, 4)).astype(np.float32)
    w = rs.uniform(0.5, 2, (4,)).astype(np.float32)
    dp, dt = _rand(p.shape, 4), _rand(t.shape, 5)
    f = lambda a, b: F.binary_cross_entropy(a, b, jnp.asarray(w))
    ft = lambda a, b: TF.binary_cross_entropy(a, b, torch.from_numpy(w))
    jvp = jax.jit(lambda prim, tan: jax.jvp(f, prim, tan)[1])
    for tangents, which in (((dp, dt), "both"), ((dp, np.zeros_like(dt)), "input")):
        yt = jvp((jnp.asarray(p), jnp.asarray(t)), tuple(jnp.asarray(v) for v in tangents))
        yt_torch = torch.func.jvp(ft, (to_torch(p), to_torch(t)), tuple(to_torch(v) for v in tangents))[1]
        assert_close(yt, yt_torch, 1e-5, 1e-5, f"jvp in {which}")
    # tangent in the input only (the target not differentiated), and in the target only
    check_forward_mode(lambda a: f(a, jnp.asarray(t)), p, lambda a: ft(a, to_torch(t)), t=dp)
    check_forward_mode(lambda b: f(jnp.asarray(p), b), t, lambda b: ft(to_torch(p), b), t=dt)


def test_binary_cross_entropy_forward_mode_is_finite_at_0_and_1():
    p = np.array([0.0, 1.0, 0.5, 1.0, 0.0], np.float32)
    t = np.array([0.0, 1.0, 0.5, 0.0, 1.0], np.float32)
    dp = np.ones_like(p)
    yt = jax.jit(lambda a, b: jax.jvp(lambda c: F.binary_cross_entropy(c, t, reduction="none"), (a,), (b,))[1])(p, dp)
    g = jax.jit(jax.grad(lambda a: F.binary_cross_entropy(a, t, reduction="sum")))(p)
    np.testing.assert_array_equal(np.asarray(yt), np.asarray(g))  # diagonal Jacobian: jvp of ones == gradient
    assert np.all(np.isfinite(np.asarray(yt)))


# --------------------------------------------------------------------------------------------
# second order: Hessians, forward-over-reverse and reverse-over-reverse


def _chain(a):
    """Every custom rule in one model-like function: bilinear, max pooling (scatter and tiling
    paths), nearest (repeat), max unpooling and binary cross entropy."""
    a = F.interpolate(a, scale_factor=2, mode="bilinear")
    a = F.max_pool2d(a, 3, 2, 1)
    a = F.interpolate(a, scale_factor=2)
    y, idx = F.max_pool2d(a, 2, return_indices=True)
    a = F.max_unpool2d(jnp.tanh(y), idx, 2)
    return F.binary_cross_entropy(jax.nn.sigmoid(a), jnp.full(a.shape, 0.3), reduction="none")


def test_second_order_forward_and_reverse_agree():
    x = jnp.asarray(_rand((1, 2, 4, 4), 11))
    v = jnp.asarray(_rand(x.shape, 12))
    w = jnp.asarray(_rand(jax.eval_shape(_chain, x).shape, 13))
    loss = lambda a: jnp.sum(w * _chain(a) ** 2)

    @jax.jit
    def go(a):
        hvp_fwd_rev = jax.jvp(jax.grad(loss), (a,), (v,))[1]
        hvp_rev_rev = jax.grad(lambda b: jnp.vdot(jax.grad(loss)(b), v))(a)
        return hvp_fwd_rev, hvp_rev_rev, jax.hessian(loss)(a)  # hessian: jacfwd over jacrev

    hvp_fwd_rev, hvp_rev_rev, h = go(x)
    h = np.asarray(h).reshape(x.size, x.size)
    assert np.abs(h).max() > 1e-3  # a curved loss, not a trivial check
    np.testing.assert_allclose(np.asarray(hvp_fwd_rev), np.asarray(hvp_rev_rev), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(h @ np.asarray(v).ravel(), np.asarray(hvp_rev_rev).ravel(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(h, h.T, rtol=1e-4, atol=1e-5)  # symmetric, as a Hessian must be
