"""Derivatives of the public convolutions: forward mode and second order agree with torch.

Each backend implementation is held to the reference and to torch in
``tests/backends/test_xla_cpu_conv.py``; these tests take the public ops as
the policy in force computes them.
"""

import jax
import jax.numpy as jnp
import pytest
import torch
from hypothesis import given, settings

from fcnn import functional as F
from conv_configs import forward_configs
from oracle import assert_close, check_conv_against_torch, randn, to_torch

TORCH_CONV = {1: torch.nn.functional.conv1d, 2: torch.nn.functional.conv2d, 3: torch.nn.functional.conv3d}


@settings(max_examples=5)
@given(forward_configs())
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


@pytest.mark.parametrize("op", ["conv2d", "conv_transpose2d"])
def test_conv_hessian_matches_torch(op):
    """Second order through the custom JVP: the Hessian of a scalar loss w.r.t. the weight."""
    x = randn((2, 3, 5, 5), seed=8)
    # conv2d weight (O=2, I=3, 2, 2); conv_transpose2d weight (I=3, O=2, 2, 2)
    w = randn((3, 2, 2, 2) if op == "conv_transpose2d" else (2, 3, 2, 2), seed=9) * 0.5
    jf, tf = {"conv2d": (F.conv2d, torch.nn.functional.conv2d),
              "conv_transpose2d": (F.conv_transpose2d, torch.nn.functional.conv_transpose2d)}[op]
    kw = {"stride": 2} if op == "conv_transpose2d" else {"padding": 1}

    def loss_j(w):
        return jnp.sum(jnp.tanh(jf(jnp.asarray(x), w, **kw)) ** 2)

    def loss_t(w):
        return torch.sum(torch.tanh(tf(to_torch(x), w, **kw)) ** 2)

    hess = jax.hessian(loss_j)(jnp.asarray(w))
    ref = torch.autograd.functional.hessian(loss_t, to_torch(w))
    assert_close(hess, ref, 1e-4, 1e-4)  # jax.hessian is jacfwd(jacrev): forward over reverse


@pytest.mark.parametrize("batch", [1, 2, 5])
def test_single_channel_conv2d_stencil_in_a_batch_loop(batch):
    """A 2-D convolution of one input channel to few outputs (LeNet's first layer; on CPU the stencil over
    the two halves of the batch, an odd batch padded and cut, ``tests/backends``):
    values, both gradients, per-example gradients under vmap and the Hessian match torch."""
    x, w = randn((batch, 1, 9, 8), seed=20), randn((3, 1, 3, 3), seed=21)
    f = lambda x, w: F.conv2d(x, w, None, 1, 1)  # noqa: E731
    check_conv_against_torch(f, x, w, 2, (1, 1), (1, 1), (1, 1), 1, seed=22)

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
