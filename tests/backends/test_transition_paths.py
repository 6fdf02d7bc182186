"""DenseNet's transition fast paths against the reference formulation and torch.

:attr:`fcnn.backends.Policy.avg_pool_tiles` sums the windows of an average
pooling that tile its channels-last input as one reduction of a reshaped view;
:attr:`~fcnn.backends.Policy.transition_pool_first` pools DenseNet's
transitions before their 1×1 convolution. Each is held here to
the reference (the policy with the field off) and to torch: values, gradients,
the JVP, the Hessian and per-example gradients under ``vmap``.
"""

from collections import OrderedDict

import jax
import jax.numpy as jnp
import pytest
import torch
from hypothesis import given, strategies as st

from fcnn import backends
from fcnn import functional as F
from fcnn.models import densenet
from oracle import assert_close, check_layer, randn, to_torch

# the tiled sum (channels-last, which it needs, for any size) and the reference
POLICIES = {
    "tiles": backends.Policy("cpu", channels_last_min_elements=0),
    "reference": backends.Policy("cpu", channels_last_min_elements=0, avg_pool_tiles=False),
}
AVG = {1: (F.avg_pool1d, torch.nn.functional.avg_pool1d), 2: (F.avg_pool2d, torch.nn.functional.avg_pool2d),
       3: (F.avg_pool3d, torch.nn.functional.avg_pool3d)}


def _pool(n, kernel, ceil_mode, divisor):
    extra = {} if divisor is None else dict(divisor_override=divisor)
    fcnn_pool, torch_pool = AVG[n]
    return (lambda x: fcnn_pool(x, kernel, ceil_mode=ceil_mode, **extra),
            lambda x: torch_pool(x, kernel, ceil_mode=ceil_mode, **extra))


@st.composite
def _tiled_cases(draw):
    """Windows that tile the input (stride = kernel, no padding); the last row or column of windows may
    leave a remainder, which floor mode drops (ceil mode too, when the remainder is too short to start one)."""
    n = draw(st.sampled_from((1, 2, 3)))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(n))
    size = tuple(k * draw(st.integers(1, 4)) + draw(st.sampled_from((0, 0, 1))) for k in kernel)
    channels = draw(st.integers(1, 5))
    divisor = None if n == 1 else draw(st.sampled_from((None, 3)))
    return (draw(st.integers(1, 3)), channels) + size, kernel, divisor, draw(st.integers(0, 99))


@pytest.mark.parametrize("policy", POLICIES)
@given(case=_tiled_cases())
def test_tiled_average_pooling_matches_the_reference_and_torch(policy, case):
    shape, kernel, divisor, seed = case
    x, dx = randn(shape, seed=seed), randn(shape, seed=seed + 1)
    f, torch_f = _pool(len(kernel), kernel, False, divisor)
    with backends.use(POLICIES[policy]):
        y, vjp = jax.jit(lambda a: jax.vjp(f, a))(jnp.asarray(x))
        _, tangent = jax.jit(lambda a, t: jax.jvp(f, (a,), (t,)))(jnp.asarray(x), jnp.asarray(dx))
    with backends.use(POLICIES["reference"]):
        ry = jax.jit(f)(jnp.asarray(x))
    g = randn(y.shape, seed=seed + 2)
    gx = vjp(jnp.asarray(g))[0]
    tx = to_torch(x, requires_grad=True)
    ty = torch_f(tx)
    ty.backward(to_torch(g))
    assert_close(y, ty, 1e-6, 1e-6, "values")
    assert_close(y, ry, 1e-6, 1e-6, "values against the reference")
    assert_close(gx, tx.grad, 1e-6, 1e-6, "gradient")
    _, want = torch.func.jvp(torch_f, (to_torch(x),), (to_torch(dx),))
    assert_close(tangent, want, 1e-6, 1e-6, "jvp")


@pytest.mark.parametrize("policy", POLICIES)
def test_hessian_and_per_example_gradients_of_tiled_average_pooling(policy):
    x, w = randn((3, 2, 4, 6), seed=1), randn((2, 2, 3), seed=2)
    f, torch_f = _pool(2, 2, False, None)

    def loss(a, b):
        return jnp.sum(jnp.tanh(f(a)) * b)

    with backends.use(POLICIES[policy]):
        hess = jax.jit(jax.hessian(loss))(jnp.asarray(x[:1]), jnp.asarray(w))
        per_example = jax.jit(jax.vmap(jax.grad(loss), in_axes=(0, None)))(jnp.asarray(x[:, None]), jnp.asarray(w))
    want = torch.autograd.functional.hessian(lambda a: torch.sum(torch.tanh(torch_f(a)) * to_torch(w)),
                                             to_torch(x[:1]))
    assert_close(hess, want, 1e-5, 1e-5, "hessian")
    for i in range(3):
        tx = to_torch(x[i:i + 1], requires_grad=True)
        torch.sum(torch.tanh(torch_f(tx)) * to_torch(w)).backward()
        assert_close(per_example[i], tx.grad, 1e-5, 1e-5, f"per-example gradient {i}")


def _torch_transition(cin, cout):
    return torch.nn.Sequential(OrderedDict(
        norm=torch.nn.BatchNorm2d(cin), relu=torch.nn.ReLU(), conv=torch.nn.Conv2d(cin, cout, 1, bias=False),
        pool=torch.nn.AvgPool2d(2, 2)))


@pytest.mark.parametrize("pool_first", [True, False])
@pytest.mark.parametrize("shape", [(4, 6, 8, 8), (3, 5, 9, 7), (2, 32, 16, 16)])
def test_a_transition_pooled_first_matches_torch(pool_first, shape):
    """Outputs, input and parameter gradients, and the running statistics of a training step."""
    cin = shape[1]
    layer = densenet.Transition(cin, cin // 2 + 1)
    module = _torch_transition(cin, cin // 2 + 1)
    with backends.use(backends.Policy("cpu", transition_pool_first=pool_first)):
        check_layer(layer, module, randn(shape, seed=sum(shape)), train=True, rtol=1e-5, atol=1e-5)


def test_a_transition_pooled_first_matches_the_reference_in_forward_mode():
    layer = densenet.Transition(6, 3)
    params, state = layer.init(jax.random.key(0))
    x, dx = jnp.asarray(randn((2, 6, 6, 6), seed=3)), jnp.asarray(randn((2, 6, 6, 6), seed=4))

    def f(a):
        return layer.apply(params, state, a, train=True)[0]

    tangents = {}
    for pool_first in (True, False):
        with backends.use(backends.Policy("cpu", transition_pool_first=pool_first)):
            tangents[pool_first] = jax.jit(lambda a, t: jax.jvp(f, (a,), (t,)))(x, dx)
    assert_close(tangents[True][0], tangents[False][0], 1e-5, 1e-5, "values")
    assert_close(tangents[True][1], tangents[False][1], 1e-5, 1e-5, "jvp")
