"""Derivatives of the convolutions: both weight-gradient formulations, forward mode, second order.

fcnn's convolutions carry a custom JVP (``fcnn.functional.conv.conv_core``)
whose weight term may be written per kernel tap; these tests hold every
formulation to torch's gradients and check that forward-mode and higher-order
differentiation (which a custom VJP would forbid) agree with torch.
"""

import jax
import jax.numpy as jnp
import pytest
import torch
from hypothesis import given, settings, strategies as st

from fcnn import functional as F
from fcnn.functional import conv as C
from oracle import assert_close, randn, to_torch

TORCH_CONV = {1: torch.nn.functional.conv1d, 2: torch.nn.functional.conv2d, 3: torch.nn.functional.conv3d}


@st.composite
def core_configs(draw, one_channel_per_group=False):
    n = draw(st.sampled_from([1, 2, 2, 3]))
    groups = draw(st.integers(1, 3) if one_channel_per_group else st.sampled_from([1, 1, 2]))
    cin = groups * (1 if one_channel_per_group else draw(st.integers(1, 3)))
    cout = groups * draw(st.integers(1, 2))
    k = tuple(draw(st.integers(1, 3)) for _ in range(n))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(n))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(n))
    padding = tuple(draw(st.integers(0, 2)) for _ in range(n))
    size = tuple(draw(st.integers(d * (kk - 1) + 1, d * (kk - 1) + 6)) for kk, d in zip(k, dilation))
    batch = draw(st.integers(1, 3))
    return n, batch, cin, cout, k, stride, padding, dilation, groups, size


@settings(max_examples=8)
@given(core_configs(), st.sampled_from(["window", "xla", "auto"]))
def test_conv_core_gradients_match_torch(cfg, weight_grad):
    n, batch, cin, cout, k, stride, padding, dilation, groups, size = cfg
    x = randn((batch, cin) + size, seed=1)
    w = randn((cout, cin // groups) + k, seed=2)
    pads = tuple((p, p) for p in padding)

    _check_against_torch(lambda x, w: C.conv_core(x, w, stride, pads, dilation, groups, weight_grad),
                         x, w, n, stride, padding, dilation, groups, seed=3)


def _check_against_torch(f, x, w, n, stride, padding, dilation, groups, seed):
    """``f(x, w)``'s value and both gradients (for a random cotangent) equal torch's conv."""
    y, vjp = jax.vjp(f, jnp.asarray(x), jnp.asarray(w))
    g = randn(y.shape, seed=seed)
    gx, gw = vjp(jnp.asarray(g))
    tx, tw = to_torch(x, requires_grad=True), to_torch(w, requires_grad=True)
    ty = TORCH_CONV[n](tx, tw, None, stride, padding, dilation, groups)
    ty.backward(to_torch(g))
    assert_close(y, ty, 1e-4, 1e-5, "output")
    assert_close(gx, tx.grad, 1e-4, 1e-4, "grad input")
    assert_close(gw, tw.grad, 1e-4, 1e-4, "grad weight")


def _check_all_against_torch(f, x, w, n, stride, padding, dilation, groups, seed):
    """:func:`_check_against_torch` and the jvp for random tangents of both arguments."""
    _check_against_torch(f, x, w, n, stride, padding, dilation, groups, seed)
    dx, dw = randn(x.shape, seed=seed + 1), randn(w.shape, seed=seed + 2)
    _, tangent = jax.jvp(f, (jnp.asarray(x), jnp.asarray(w)), (jnp.asarray(dx), jnp.asarray(dw)))
    _, ref = torch.func.jvp(lambda a, b: TORCH_CONV[n](a, b, None, stride, padding, dilation, groups),
                            (to_torch(x), to_torch(w)), (to_torch(dx), to_torch(dw)))
    assert_close(tangent, ref, 1e-4, 1e-4, "jvp")


@settings(max_examples=5)
@given(core_configs())
def test_conv_forward_mode_matches_torch(cfg):
    n, batch, cin, cout, k, stride, padding, dilation, groups, size = cfg
    x, w = randn((batch, cin) + size, seed=4), randn((cout, cin // groups) + k, seed=5)
    dx, dw = randn(x.shape, seed=6), randn(w.shape, seed=7)
    fn = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[n]
    _, tangent = jax.jvp(lambda x, w: fn(x, w, None, stride, padding, dilation, groups),
                         (jnp.asarray(x), jnp.asarray(w)), (jnp.asarray(dx), jnp.asarray(dw)))
    _, ref = torch.func.jvp(lambda x, w: TORCH_CONV[n](x, w, None, stride, padding, dilation, groups),
                            (to_torch(x), to_torch(w)), (to_torch(dx), to_torch(dw)))
    assert_close(tangent, ref, 1e-4, 1e-4)
    # the per-tap formulation's tangent too (auto picks XLA's for problems this small)
    pads = tuple((p, p) for p in padding)
    _, tangent = jax.jvp(lambda x, w: C.conv_core(x, w, stride, pads, dilation, groups, "window"),
                         (jnp.asarray(x), jnp.asarray(w)), (jnp.asarray(dx), jnp.asarray(dw)))
    assert_close(tangent, ref, 1e-4, 1e-4, "window")


def _window_conv2d(x, w, padding):
    return C.conv_core(x, w, (1, 1), ((padding, padding),) * 2, (1, 1), 1, "window")


@pytest.mark.parametrize("op", ["conv2d", "conv2d_window", "conv_transpose2d"])
def test_conv_hessian_matches_torch(op):
    """Second order through the custom JVP: the Hessian of a scalar loss w.r.t. the weight."""
    x = randn((2, 3, 5, 5), seed=8)
    # conv2d weight (O=2, I=3, 2, 2); conv_transpose2d weight (I=3, O=2, 2, 2)
    w = randn((3, 2, 2, 2) if op == "conv_transpose2d" else (2, 3, 2, 2), seed=9) * 0.5
    jf, tf = {"conv2d": (F.conv2d, torch.nn.functional.conv2d),
              "conv2d_window": (_window_conv2d, torch.nn.functional.conv2d),
              "conv_transpose2d": (F.conv_transpose2d, torch.nn.functional.conv_transpose2d)}[op]
    kw = {"stride": 2} if op == "conv_transpose2d" else {"padding": 1}

    def loss_j(w):
        return jnp.sum(jnp.tanh(jf(jnp.asarray(x), w, **kw)) ** 2)

    def loss_t(w):
        return torch.sum(torch.tanh(tf(to_torch(x), w, **kw)) ** 2)

    hess = jax.hessian(loss_j)(jnp.asarray(w))
    ref = torch.autograd.functional.hessian(loss_t, to_torch(w))
    assert_close(hess, ref, 1e-4, 1e-4)  # jax.hessian is jacfwd(jacrev): forward over reverse


@pytest.mark.parametrize("weight_grad", ["xla", "window"])
def test_per_example_gradients_under_vmap(weight_grad):
    """vmap(grad) through the custom JVP equals torch's per-example gradients (one backward each)."""
    x, w = randn((4, 3, 6, 6), seed=10), randn((5, 3, 3, 3), seed=11)

    def loss(w, xi):  # xi unbatched (3, 6, 6)
        y = C.conv_core(xi[None], w, (1, 1), ((1, 1), (1, 1)), (1, 1), 1, weight_grad)
        return jnp.sum(y ** 2)

    grads = jax.vmap(jax.grad(loss), in_axes=(None, 0))(jnp.asarray(w), jnp.asarray(x))
    for i in range(4):
        tw = to_torch(w, requires_grad=True)
        torch.sum(torch.nn.functional.conv2d(to_torch(x[i]), tw, padding=1) ** 2).backward()
        assert_close(grads[i], tw.grad, 1e-4, 1e-3, f"example {i}")


@settings(max_examples=10)
@given(core_configs(one_channel_per_group=True))
def test_stencil_forward_matches_torch(cfg):
    """The window-product formulation (depthwise and single-channel convolutions): values, both gradients, jvp."""
    n, batch, cin, cout, k, stride, padding, dilation, groups, size = cfg
    x, w = randn((batch, cin) + size, seed=8), randn((cout, 1) + k, seed=9)
    pads = tuple((p, p) for p in padding)

    def f(x, w):
        return C.conv_core(x, w, stride, pads, dilation, groups, "xla", forward="stencil")

    _check_all_against_torch(f, x, w, n, stride, padding, dilation, groups, seed=10)


@settings(max_examples=12)
@given(core_configs())
def test_channels_last_conv_matches_torch(cfg):
    """The channels-last formulation (fcnn's CPU path for large inputs, forced here on small ones), whose
    tangent terms are written for Eigen's form: values, both gradients and the jvp, strides, dilations, groups."""
    n, batch, cin, cout, k, stride, padding, dilation, groups, size = cfg
    if n == 3:  # 3-D convolutions stay channel-first
        return
    x, w = randn((batch, cin) + size, seed=13), randn((cout, cin // groups) + k, seed=14)
    pads = tuple((p, p) for p in padding)

    def f(x, w):
        return C.conv_core(x, w, stride, pads, dilation, groups, "xla", channels_last=True, forward="xla")

    _check_all_against_torch(f, x, w, n, stride, padding, dilation, groups, seed=15)


def test_channels_last_conv_hessian_matches_torch():
    """Second order through the Eigen-form tangent terms (forward over reverse), with a stride."""
    x, w = randn((2, 3, 7, 6), seed=18), randn((2, 3, 3, 2), seed=19) * 0.5

    def loss_j(w):
        y = C.conv_core(jnp.asarray(x), w, (2, 1), ((1, 1), (0, 0)), (1, 1), 1, "xla", channels_last=True)
        return jnp.sum(jnp.tanh(y) ** 2)

    def loss_t(w):
        return torch.sum(torch.tanh(torch.nn.functional.conv2d(to_torch(x), w, stride=(2, 1), padding=(1, 0))) ** 2)

    assert_close(jax.hessian(loss_j)(jnp.asarray(w)), torch.autograd.functional.hessian(loss_t, to_torch(w)),
                 1e-4, 1e-4)


def test_stencil_needs_one_input_channel_per_group():
    x, w = jnp.ones((1, 4, 5, 5)), jnp.ones((4, 2, 3, 3))
    with pytest.raises(ValueError, match="one input channel per group"):
        C.conv_core(x, w, (1, 1), ((0, 0), (0, 0)), (1, 1), 2, forward="stencil")


@pytest.mark.parametrize("batch", [1, 2, 5])
def test_single_channel_conv2d_stencil_in_a_batch_loop(batch):
    """A 2-D convolution of one input channel to few outputs (LeNet's first layer) takes the stencil on CPU,
    computed over the two halves of the batch in a scan (an odd batch padded and cut):
    values, both gradients, per-example gradients under vmap and the Hessian match torch."""
    x, w = randn((batch, 1, 9, 8), seed=20), randn((3, 1, 3, 3), seed=21)
    f = lambda x, w: F.conv2d(x, w, None, 1, 1)  # noqa: E731
    if jax.default_backend() == "cpu":
        assert "scan" in str(jax.make_jaxpr(f)(jnp.asarray(x), jnp.asarray(w)))
        # more than 8 outputs: XLA's convolution (faster there)
        assert "scan" not in str(jax.make_jaxpr(f)(jnp.asarray(x), jnp.ones((16, 1, 3, 3))))
    _check_against_torch(f, x, w, 2, (1, 1), (1, 1), (1, 1), 1, seed=22)

    per_example = jax.vmap(jax.grad(lambda w, xi: jnp.sum(f(xi[None], w) ** 2)), in_axes=(None, 0))
    grads = per_example(jnp.asarray(w), jnp.asarray(x))
    for i in range(batch):
        tw = to_torch(w, requires_grad=True)
        torch.sum(torch.nn.functional.conv2d(to_torch(x[i:i + 1]), tw, padding=1) ** 2).backward()
        assert_close(grads[i], tw.grad, 1e-4, 1e-3, f"example {i}")

    hess = jax.hessian(lambda w: jnp.sum(jnp.tanh(f(jnp.asarray(x), w)) ** 2))(jnp.asarray(w))
    ref = torch.autograd.functional.hessian(
        lambda w: torch.sum(torch.tanh(torch.nn.functional.conv2d(to_torch(x), w, padding=1)) ** 2), to_torch(w))
    assert_close(hess, ref, 1e-4, 1e-4, "hessian")


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="XLA:CPU's Eigen convolution form")
@pytest.mark.parametrize("n", [1, 2])
def test_conv_gradients_inside_a_loop_stay_on_eigen(n):
    """Inside a loop body XLA:CPU runs only convolutions already in Eigen's form
    (b01f_01io->b01f) on Eigen; fcnn writes the value and both gradients that way
    (gradient accumulation was 26x slower without it). Values equal the loop-free ones."""
    import re

    import fcnn

    size = (1024,) if n == 1 else (64, 64)
    x, w = jnp.asarray(randn((4, 8) + size, seed=30)), jnp.asarray(randn((8, 8) + (3,) * n, seed=31))
    conv = {1: F.conv1d, 2: F.conv2d}[n]

    def looped(x, w):
        _, ys = jax.lax.scan(lambda c, xc: (c, conv(xc, w, padding=1)), None, x.reshape((2, 2) + x.shape[1:]))
        return ys.reshape((4, 8) + size)

    def grads(f):
        return jax.jit(jax.grad(lambda x, w: jnp.sum(jnp.tanh(f(x, w))), argnums=(0, 1)),
                       compiler_options=fcnn.compiler_options())

    hlo = grads(looped).lower(x, w).compile().as_text()
    labels = re.findall(r"convolution\([^\n]*dim_labels=([\w>-]+)", hlo)
    canonical = "b0f_0io->b0f" if n == 1 else "b01f_01io->b01f"
    assert len(labels) == 3 and set(labels) == {canonical}, labels
    for got, want in zip(grads(looped)(x, w), grads(lambda x, w: conv(x, w, padding=1))(x, w)):
        assert_close(got, want, 1e-5, 1e-4)
