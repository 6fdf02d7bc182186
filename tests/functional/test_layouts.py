"""Both internal layouts of the channel-first ops agree with torch.

On the CPU, convolution (1-D, 2-D), max pooling, the normalisations and the
per-element ops compute channels-last inside (the backend's layout rule,
:meth:`fcnn.backends.Policy.channels_last`); elsewhere they compute
channel-first. The other test modules exercise whichever the test machine's
backend picks, so this one runs each op under a policy of each layout, values
and gradients against torch.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings, strategies as st

from fcnn import backends
from fcnn import functional as F
from oracle import assert_close, to_torch, torch_pool_output, windows_reach_input

LAYOUTS = [False, True]


def layout(last: bool):
    """Trace fcnn's ops under XLA:CPU's policy with every input channels-last (or none)."""
    return backends.use(backends.Policy("cpu", channels_last_min_elements=0 if last else 2**62))


def _grads(f, args, cot):
    y, vjp = jax.vjp(f, *args)
    return y, vjp(cot)


def _torch_grads(f, args, cot):
    ts = [to_torch(a, requires_grad=True) for a in args]
    y = f(*ts)
    y.backward(torch.from_numpy(np.asarray(cot)))
    return y, [t.grad for t in ts]


def _check(f, tf, args, seed, tol=1e-4):
    cot_shape = tuple(tf(*[to_torch(a) for a in args]).shape)
    cot = np.random.RandomState(seed).standard_normal(cot_shape).astype(np.float32)
    y, g = _grads(f, [jnp.asarray(a) for a in args], jnp.asarray(cot))
    yt, gt = _torch_grads(tf, args, cot)
    assert_close(y, yt, tol, tol, "forward")
    for i, (a, b) in enumerate(zip(g, gt)):
        assert_close(a, b, tol, tol, f"gradient {i}")


@st.composite
def conv_configs(draw):
    n = draw(st.sampled_from([1, 2]))
    groups = draw(st.sampled_from([1, 2]))
    cin, cout = groups * draw(st.integers(1, 3)), groups * draw(st.integers(1, 3))
    k = draw(st.integers(1, 3))
    stride, dilation, padding = draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(st.integers(0, 2))
    size = (draw(st.integers(dilation * (k - 1) + 1, 7)),) * n
    rs = np.random.RandomState(draw(st.integers(0, 2**16)))
    x = rs.standard_normal((2, cin) + size).astype(np.float32)
    w = rs.standard_normal((cout, cin // groups) + (k,) * n).astype(np.float32)
    return n, x, w, dict(stride=stride, padding=padding, dilation=dilation, groups=groups)


@pytest.mark.parametrize("last", LAYOUTS)
@settings(max_examples=6, deadline=None)
@given(cfg=conv_configs())
def test_conv_and_conv_transpose_both_layouts(last, cfg):
    n, x, w, kw = cfg
    with layout(last):
        _check(lambda x, w: getattr(F, f"conv{n}d")(x, w, **kw),
               lambda x, w: getattr(TF, f"conv{n}d")(x, w, **kw), (x, w), 0)
        # the transposed convolution of the same shapes: (C_in, C_out/groups, k) weights
        wt = np.ascontiguousarray(w.reshape(kw["groups"], -1, *w.shape[1:]).swapaxes(1, 2).reshape(
            x.shape[1], -1, *w.shape[2:]))
        tkw = dict(kw, padding=0)
        _check(lambda x, w: getattr(F, f"conv_transpose{n}d")(x, w, **tkw),
               lambda x, w: getattr(TF, f"conv_transpose{n}d")(x, w, **tkw), (x, wt), 1)


@st.composite
def pool_configs(draw):
    n = draw(st.sampled_from([1, 2]))
    k = draw(st.integers(1, 3))
    d = draw(st.integers(1, 2))
    p = draw(st.integers(0, k // 2))
    s = draw(st.sampled_from([None, 1, 2, 3]))
    ceil = draw(st.booleans())
    size = (draw(st.integers(d * (k - 1) + 1, d * (k - 1) + 5)),) * n
    # a window entirely outside the input: torch's gradient for it is a known torch bug (see test_pool)
    out = torch_pool_output(size, k, s or k, p, d, ceil)
    if out is None or not windows_reach_input(size, out, k, s or k, p, d):
        s, ceil = None, False
    rs = np.random.RandomState(draw(st.integers(0, 2**16)))
    x = rs.randint(-2, 3, (2, 3) + size).astype(np.float32) if draw(st.booleans()) else \
        rs.standard_normal((2, 3) + size).astype(np.float32)
    return n, x, (k, s, p, d, ceil)


@pytest.mark.parametrize("last", LAYOUTS)
@settings(max_examples=8, deadline=None)
@given(cfg=pool_configs())
def test_max_pool_both_layouts(last, cfg):
    n, x, (k, s, p, d, ceil) = cfg
    fj, ft = getattr(F, f"max_pool{n}d"), getattr(TF, f"max_pool{n}d")
    with layout(last):
        _check(lambda a: fj(a, k, s, p, d, ceil), lambda a: ft(a, k, s, p, d, ceil), (x,), 3, 1e-6)
        _, idx = jax.jit(lambda a: fj(a, k, s, p, d, ceil, True))(jnp.asarray(x))
    _, idx_t = ft(to_torch(x), k, s, p, d, ceil, True)
    np.testing.assert_array_equal(np.asarray(idx), idx_t.numpy())


@pytest.mark.parametrize("last", LAYOUTS)
def test_max_pool_large_windows_both_layouts(last):
    # windows over 32 elements: the values come from one reduce_window over the spatial axes
    x = np.random.RandomState(0).standard_normal((2, 3, 13, 17)).astype(np.float32)
    args = ((6, 6), (2, 3), (3, 1), (1, 2), True)
    with layout(last):
        _check(lambda a: F.max_pool2d(a, *args), lambda a: TF.max_pool2d(a, *args), (x,), 3, 1e-6)


# name, keyword arguments, values placed on the kinks (where torch picks a one-sided gradient)
ACTIVATIONS = [
    ("relu", {}, (0.0,)), ("leaky_relu", {"negative_slope": 0.2}, (0.0,)), ("elu", {"alpha": 0.7}, (0.0,)),
    ("relu6", {}, (0.0, 6.0)), ("hardsigmoid", {}, (-3.0, 3.0)), ("hardswish", {}, (-3.0, 3.0)),
    ("tanh", {}, ()), ("sigmoid", {}, ()), ("silu", {}, ()), ("gelu", {}, ()), ("gelu", {"approximate": "tanh"}, ()),
]


@pytest.mark.parametrize("last", LAYOUTS)
@settings(max_examples=12, deadline=None)
@given(act=st.sampled_from(ACTIVATIONS), ndim=st.sampled_from([3, 4]), seed=st.integers(0, 2**16))
def test_activations_both_layouts(last, act, ndim, seed):
    name, kw, kinks = act
    rs = np.random.RandomState(seed)
    x = (4 * rs.standard_normal((2, 3) + (5,) * (ndim - 2))).astype(np.float32)
    if kinks:
        x.flat[rs.choice(x.size, 4, replace=False)] = rs.choice(kinks, 4)
    with layout(last):
        _check(lambda a: getattr(F, name)(a, **kw), lambda a: getattr(TF, name)(a, **kw), (x,), seed, 1e-5)


@pytest.mark.parametrize("last", LAYOUTS)
@settings(max_examples=6, deadline=None)
@given(ndim=st.sampled_from([3, 4]), shared=st.booleans(), seed=st.integers(0, 2**16))
def test_prelu_both_layouts(last, ndim, shared, seed):
    rs = np.random.RandomState(seed)
    x = (4 * rs.standard_normal((2, 3) + (5,) * (ndim - 2))).astype(np.float32)
    x.flat[rs.choice(x.size, 3, replace=False)] = 0.0
    w = rs.standard_normal(1 if shared else 3).astype(np.float32)
    with layout(last):
        _check(F.prelu, TF.prelu, (x, w), seed, 1e-5)


@pytest.mark.parametrize("last", LAYOUTS)
@settings(max_examples=8, deadline=None)
@given(ndim=st.sampled_from([3, 4]), training=st.booleans(), affine=st.booleans(),
       momentum=st.sampled_from([0.1, 0.5]), seed=st.integers(0, 2**16))
def test_batch_norm_both_layouts(last, ndim, training, affine, momentum, seed):
    rs = np.random.RandomState(seed)
    c = 3
    x = (rs.standard_normal((4, c) + (5,) * (ndim - 2)) * 2 + 1).astype(np.float32)
    w, b = rs.standard_normal(c).astype(np.float32), rs.standard_normal(c).astype(np.float32)
    rm, rv = rs.standard_normal(c).astype(np.float32), rs.rand(c).astype(np.float32) + 0.5
    kw = dict(training=training, momentum=momentum, eps=1e-3)
    rm_t, rv_t = torch.from_numpy(rm.copy()), torch.from_numpy(rv.copy())
    if affine:
        fj = lambda a, w, b: F.batch_norm(a, rm, rv, w, b, **kw)[0]
        ft = lambda a, w, b: TF.batch_norm(a, rm_t, rv_t, w, b, **kw)
        args = (x, w, b)
    else:
        fj = lambda a: F.batch_norm(a, rm, rv, **kw)[0]
        ft = lambda a: TF.batch_norm(a, rm_t, rv_t, **kw)
        args = (x,)
    with layout(last):
        _check(fj, ft, args, seed)
        _, new_rm, new_rv = F.batch_norm(jnp.asarray(x), rm, rv, w, b, **kw)
    rm_t, rv_t = torch.from_numpy(rm.copy()), torch.from_numpy(rv.copy())
    TF.batch_norm(to_torch(x), rm_t, rv_t, to_torch(w), to_torch(b), **kw)  # updates the buffers in place
    assert_close(new_rm, rm_t, 1e-5, 1e-5, "running_mean")
    assert_close(new_rv, rv_t, 1e-5, 1e-5, "running_var")


@pytest.mark.parametrize("op", ["dropout", "dropout2d"])
def test_dropout_same_mask_in_both_layouts(op):
    x = jnp.asarray(np.random.RandomState(0).standard_normal((2, 3, 5, 5)).astype(np.float32))
    key = jax.random.key(7)
    out = {}
    for last in LAYOUTS:
        with layout(last):
            out[last] = jax.value_and_grad(lambda a: jnp.sum(getattr(F, op)(a, 0.4, key=key) ** 2))(x)
    np.testing.assert_array_equal(out[False][0], out[True][0])
    np.testing.assert_array_equal(out[False][1], out[True][1])
    # and the mask is jax.random's draw for the mask's shape, whatever the layout
    shape = x.shape if op == "dropout" else x.shape[:2] + (1, 1)
    keep = jnp.broadcast_to(jax.random.bernoulli(key, 0.6, shape), x.shape)
    np.testing.assert_array_equal(np.asarray(out[True][1]) != 0, np.asarray(keep) & (np.asarray(x) != 0))


@pytest.mark.parametrize("last", LAYOUTS)
@settings(max_examples=8, deadline=None)
@given(ndim=st.sampled_from([3, 4]), tracked=st.booleans(), use_input_stats=st.booleans(), affine=st.booleans(),
       seed=st.integers(0, 2**16))
def test_instance_norm_both_layouts(last, ndim, tracked, use_input_stats, affine, seed):
    if not (tracked or use_input_stats):
        use_input_stats = True
    rs = np.random.RandomState(seed)
    c = 4
    x = (rs.standard_normal((3, c) + (5,) * (ndim - 2)) * 2 + 1).astype(np.float32)
    w, b = (rs.standard_normal(c).astype(np.float32) if affine else None for _ in range(2))
    rm, rv = rs.standard_normal(c).astype(np.float32), rs.rand(c).astype(np.float32) + 0.5
    rm, rv = (rm, rv) if tracked else (None, None)
    kw = dict(use_input_stats=use_input_stats, momentum=0.3, eps=1e-3)
    tt = lambda a: None if a is None else torch.from_numpy(a.copy())

    def fj(a):
        out = F.instance_norm(a, rm, rv, w, b, **kw)
        return out[0] if tracked else out

    with layout(last):
        _check(fj, lambda a: TF.instance_norm(a, tt(rm), tt(rv), tt(w), tt(b), **kw), (x,), seed)
        if tracked:
            _, new_rm, new_rv = F.instance_norm(jnp.asarray(x), rm, rv, w, b, **kw)
            rm_t, rv_t = tt(rm), tt(rv)
            TF.instance_norm(to_torch(x), rm_t, rv_t, tt(w), tt(b), **kw)
            assert_close(new_rm, rm_t, 1e-5, 1e-5, "running_mean")
            assert_close(new_rv, rv_t, 1e-5, 1e-5, "running_var")


@pytest.mark.parametrize("last", LAYOUTS)
@settings(max_examples=8, deadline=None)
@given(ndim=st.sampled_from([3, 4]), groups=st.sampled_from([1, 2, 3, 6]), seed=st.integers(0, 2**16))
def test_group_norm_both_layouts(last, ndim, groups, seed):
    rs = np.random.RandomState(seed)
    c = 6
    x = (rs.standard_normal((2, c) + (4,) * (ndim - 2)) * 2 + 1).astype(np.float32)
    w, b = rs.standard_normal(c).astype(np.float32), rs.standard_normal(c).astype(np.float32)
    with layout(last):
        _check(lambda a, w, b: F.group_norm(a, groups, w, b, eps=1e-3),
               lambda a, w, b: TF.group_norm(a, groups, w, b, eps=1e-3), (x, w, b), seed)


@pytest.mark.parametrize("last", LAYOUTS)
def test_synchronised_batch_norm_both_layouts(last):
    """Statistics reduced over a named axis too (sync BN) agree with one batch norm over the whole batch."""
    rs = np.random.RandomState(5)
    x = jnp.asarray((rs.standard_normal((6, 3, 4, 4)) * 2 + 1).astype(np.float32))
    w, b = jnp.asarray(rs.standard_normal(3).astype(np.float32)), jnp.asarray(rs.standard_normal(3).astype(np.float32))
    rm, rv = jnp.zeros(3), jnp.ones(3)
    cot = jnp.asarray(rs.standard_normal(x.shape).astype(np.float32))

    def whole(x, w, b):
        return F.batch_norm(x, rm, rv, w, b, training=True)

    def synced(x, w, b):  # three participants of two samples each
        out = jax.vmap(lambda xs: F.batch_norm(xs, rm, rv, w, b, training=True, axis_name="p"),
                       out_axes=(0, None, None), axis_name="p")(x.reshape(3, 2, 3, 4, 4))
        return out[0].reshape(x.shape), out[1], out[2]

    with layout(last):
        results = []
        for f in (whole, synced):
            (y, new_rm, new_rv), vjp = jax.vjp(f, x, w, b)
            results.append((y, new_rm, new_rv) + vjp((cot, jnp.zeros(3), jnp.zeros(3))))
    for a, e in zip(*results):
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-5)
