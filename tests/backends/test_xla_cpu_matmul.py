"""The product by a ``(out, in)`` weight whose weight gradient takes the input first, against torch and dot_general.

:func:`fcnn.backends.xla_cpu.matmul.product` is ``linear`` (and a 1×1
convolution) with a custom JVP; it is held here to ``torch.nn.functional.linear``
and to the plain ``dot_general``: values, both gradients, the JVP, second
order, per-example gradients under ``vmap``; and to the program it promises
(the weight gradient as a product with the input first, no product for a zero
tangent).
"""

import jax
import jax.numpy as jnp
import pytest
import torch
from hypothesis import given, settings, strategies as st

import fcnn
from fcnn import backends, functional as F
from fcnn.backends import Policy
from fcnn.backends.xla_cpu import matmul
from oracle import assert_close, equations, randn, to_torch


def _dot(x, w, axis):
    return jax.lax.dot_general(x, w, (((axis,), (1,)), ((), ())))


@st.composite
def product_configs(draw):
    """Leading axes (none to three), in_features and out_features either way round, and the contracted axis."""
    lead = tuple(draw(st.lists(st.integers(1, 4), max_size=3)))
    fin, fout = draw(st.integers(1, 6)), draw(st.integers(1, 9))
    axis = draw(st.integers(0, len(lead)))
    return lead, fin, fout, axis


@settings(max_examples=12)
@given(cfg=product_configs(), seed=st.integers(0, 100))
def test_the_product_matches_torch_and_dot_general(cfg, seed):
    lead, fin, fout, axis = cfg
    x, w = randn(lead + (fin,), seed=seed), randn((fout, fin), seed=seed + 1)
    xa = jnp.moveaxis(jnp.asarray(x), -1, axis)  # in_features at ``axis``
    f = lambda x, w: matmul.product(x, w, axis)  # noqa: E731
    y, vjp = jax.vjp(f, xa, jnp.asarray(w))
    g = randn(y.shape, seed=seed + 2)
    gx, gw = vjp(jnp.asarray(g))
    tx, tw = to_torch(x, requires_grad=True), to_torch(w, requires_grad=True)
    ty = torch.nn.functional.linear(tx, tw)
    ty.backward(to_torch(g))
    assert_close(y, ty, what="output against torch")
    assert_close(jnp.moveaxis(gx, axis, -1), tx.grad, what="grad input against torch")
    assert_close(gw, tw.grad, what="grad weight against torch")
    ry, rvjp = jax.vjp(lambda x, w: _dot(x, w, axis), xa, jnp.asarray(w))
    rgx, rgw = rvjp(jnp.asarray(g))
    assert_close(y, ry, 1e-6, 1e-6, "output against dot_general")
    assert_close(gx, rgx, 1e-5, 1e-5, "grad input against dot_general")
    assert_close(gw, rgw, 1e-5, 1e-5, "grad weight against dot_general")
    dx, dw = jnp.asarray(randn(xa.shape, seed=seed + 3)), jnp.asarray(randn(w.shape, seed=seed + 4))
    _, tangent = jax.jvp(f, (xa, jnp.asarray(w)), (dx, dw))
    _, want = torch.func.jvp(torch.nn.functional.linear, (to_torch(x), to_torch(w)),
                             (to_torch(jnp.moveaxis(dx, axis, -1)), to_torch(dw)))
    assert_close(tangent, want, 1e-5, 1e-5, "jvp against torch")


@pytest.mark.parametrize("x_shape,w_shape", [((4, 0), (5, 0)), ((0, 3), (5, 3)), ((2, 0, 3), (5, 3))],
                         ids=["no-in-features", "no-rows", "no-rows-batched"])
def test_the_product_of_empty_operands_and_its_gradients_match_torch(x_shape, w_shape):
    x, w = randn(x_shape, seed=11), randn(w_shape, seed=12)
    y, vjp = jax.vjp(lambda x, w: matmul.product(x, w, x.ndim - 1), jnp.asarray(x), jnp.asarray(w))
    g = randn(y.shape, seed=13)
    gx, gw = vjp(jnp.asarray(g))
    tx, tw = to_torch(x, requires_grad=True), to_torch(w, requires_grad=True)
    ty = torch.nn.functional.linear(tx, tw)
    ty.backward(to_torch(g))
    assert y.shape == tuple(ty.shape) and gx.shape == x.shape
    assert_close(y, ty.detach())
    assert_close(gw, tw.grad, what="grad weight")


def test_the_products_hessian_and_per_example_gradients_match_torch():
    x, w = randn((5, 3), seed=3), randn((7, 3), seed=4) * 0.5

    def loss_j(w, x):
        return jnp.sum(jnp.tanh(matmul.product(x, w, x.ndim - 1)) ** 2)

    def loss_t(w, x):
        return torch.sum(torch.tanh(torch.nn.functional.linear(x, w)) ** 2)

    assert_close(jax.hessian(loss_j)(jnp.asarray(w), jnp.asarray(x)),
                 torch.autograd.functional.hessian(lambda w: loss_t(w, to_torch(x)), to_torch(w)), 1e-4, 1e-4)
    # the input's second derivative goes through the weight term's transpose too
    mixed = jax.grad(lambda x: jnp.sum(jax.grad(loss_j)(jnp.asarray(w), x) ** 2))(jnp.asarray(x))
    tx = to_torch(x, requires_grad=True)
    tw = to_torch(w, requires_grad=True)
    gw, = torch.autograd.grad(loss_t(tw, tx), tw, create_graph=True)
    torch.sum(gw ** 2).backward()
    assert_close(mixed, tx.grad, 1e-4, 1e-4, "grad of the weight gradient's norm by the input")
    per_example = jax.vmap(jax.grad(loss_j), in_axes=(None, 0))(jnp.asarray(w), jnp.asarray(x))
    for i in range(x.shape[0]):
        tw = to_torch(w, requires_grad=True)
        loss_t(tw, to_torch(x[i])).backward()
        assert_close(per_example[i], tw.grad, 1e-5, 1e-5, f"example {i}")


def _convolutions(jaxpr):
    """The (lhs shape, rhs shape) of every convolution in ``jaxpr`` and the jaxprs it calls."""
    return [(tuple(eqn.invars[0].aval.shape), tuple(eqn.invars[1].aval.shape))
            for eqn in equations(jaxpr, "conv_general_dilated")]


def _products(jaxpr):
    return len(equations(jaxpr, "dot_general"))


def test_the_weight_gradient_takes_the_input_first_and_a_zero_tangent_costs_nothing():
    """The weight gradient is a convolution of the input's rows, transposed, by the output gradient (XLA's product
    with the input first); a gradient by the input alone, or by the weight alone, has no product for the other."""
    x, w = jnp.asarray(randn((2, 5, 3), seed=5)), jnp.asarray(randn((8, 3), seed=6))
    loss = lambda x, w: jnp.sum(matmul.product(x, w, 2) ** 2)  # noqa: E731
    by_weight = jax.make_jaxpr(jax.grad(loss, 1))(x, w).jaxpr
    assert _convolutions(by_weight) == [((3, 10), (10, 8))]
    assert _products(by_weight) == 1  # the forward
    by_input = jax.make_jaxpr(jax.grad(loss, 0))(x, w).jaxpr
    assert _convolutions(by_input) == [] and _products(by_input) == 2  # the forward, the input gradient
    assert _convolutions(jax.make_jaxpr(loss)(x, w).jaxpr) == []  # the forward reads the weight as it is


def test_the_weight_gradient_is_a_product_also_inside_a_loop():
    """XLA:CPU canonicalizes convolutions in the entry computation only; in a loop body (gradient accumulation's
    scan) the weight gradient's convolution must already be in the form XLA turns into a matrix product (left as a
    convolution it runs 20× slower). The accumulated gradient equals the loop-free one."""
    x, w = jnp.asarray(randn((2, 24, 3), seed=11)), jnp.asarray(randn((8, 3), seed=12))
    loss = lambda w, x: jnp.sum(jnp.tanh(matmul.product(x, w, 1)))  # noqa: E731

    def looped(w, x):
        return jax.lax.scan(lambda acc, xc: (acc + jax.grad(loss)(w, xc), None), jnp.zeros_like(w), x)[0]

    text = jax.jit(looped, compiler_options=fcnn.compiler_options()).lower(w, x).compile().as_text()
    assert "while" in text and "convolution(" not in text
    assert_close(looped(w, x), jax.grad(loss)(w, x[0]) + jax.grad(loss)(w, x[1]), 1e-5, 1e-5)


def test_the_policy_picks_the_product_where_the_input_is_the_smaller_operand():
    """Where the input's rows × (out − in) elements outnumber the weight's in × out (transposed once more)."""
    cpu = Policy("cpu")
    first = (32, 32, 32, 96), (384, 96)  # ConvNeXt-Tiny's first MLP layer at batch 32, 128×128
    assert cpu.linear(*first) is matmul.product
    assert cpu.linear((2, 2, 2), (6, 2)) is matmul.product and cpu.linear((3, 2), (6, 2)) is None  # 16 > 12 = 12
    assert cpu.linear((4096, 384), (96, 384)) is None and cpu.linear((4096, 64), (64, 64)) is None
    assert cpu.linear((8, 3, 3, 768), (3072, 768)) is None  # its last stage at batch 8, 96×96: 72 rows
    assert cpu.replace(weight_gradient_input_first=False).linear(*first) is None
    assert Policy("gpu").linear(*first) is None and Policy("cpu", fast_paths=False).linear(*first) is None


@pytest.mark.parametrize("fast", [True, False], ids=["input_first", "dot_general"])
def test_linear_under_either_policy_matches_torch(fast):
    """``F.linear`` inside a trace (the policy's product where in < out) and its gradients equal torch's."""
    x, w, b = randn((4, 2, 3), seed=7), randn((6, 3), seed=8), randn((6,), seed=9)
    with backends.use(Policy("cpu", weight_gradient_input_first=fast)):
        # a function of its own: jit's cache is keyed on the function, not on the policy
        y, vjp = jax.vjp(jax.jit(lambda *a: F.linear(*a)), jnp.asarray(x), jnp.asarray(w), jnp.asarray(b))
        jaxpr = jax.make_jaxpr(jax.grad(lambda w: jnp.sum(F.linear(jnp.asarray(x), w, jnp.asarray(b)))))(
            jnp.asarray(w)).jaxpr
    g = randn(y.shape, seed=10)
    grads = vjp(jnp.asarray(g))
    tx, tw, tb = (to_torch(a, requires_grad=True) for a in (x, w, b))
    torch.nn.functional.linear(tx, tw, tb).backward(to_torch(g))
    assert_close(y, torch.nn.functional.linear(*(to_torch(a) for a in (x, w, b))))
    for got, want, name in zip(grads, (tx, tw, tb), ("input", "weight", "bias")):
        assert_close(got, want.grad, what=f"grad {name}")
    assert (_convolutions(jaxpr) == [((3, 8), (8, 6))]) is fast
