"""F.add, F.mul and F.cat against torch.add, torch.mul and torch.cat: values and gradients of every operand (with
broadcasting for add and mul), on shapes below and above the size where the backend computes them channels-last."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from fcnn import functional as F

SHAPES = [((2, 3, 4, 5), (2, 3, 4, 5)), ((2, 3, 4, 5), (2, 3, 1, 1)), ((1, 3, 1, 1), (2, 3, 4, 5)),
          ((2, 8, 32, 32), (2, 8, 32, 32)), ((2, 8, 32, 32), (2, 8, 1, 1)), ((4, 7), (7,)), ((5,), ())]


@pytest.mark.parametrize("name", ["add", "mul"])
@pytest.mark.parametrize("a_shape, b_shape", SHAPES)
def test_values_and_gradients_match_torch(name, a_shape, b_shape):
    rs = np.random.RandomState(len(a_shape) + 7 * len(b_shape))
    a, b = rs.standard_normal(a_shape).astype(np.float32), rs.standard_normal(b_shape).astype(np.float32)
    ta, tb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    ty = getattr(torch, name)(ta, tb)
    g = rs.standard_normal(tuple(ty.shape)).astype(np.float32)
    ty.backward(torch.tensor(g))
    y, vjp = jax.vjp(jax.jit(getattr(F, name)), jnp.asarray(a), jnp.asarray(b))
    ga, gb = vjp(jnp.asarray(g))
    np.testing.assert_allclose(np.asarray(y), ty.detach().numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.asarray(ga), ta.grad.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(gb), tb.grad.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["add", "mul"])
def test_shapes_that_do_not_broadcast_are_refused_naming_the_op(name):
    with torch.no_grad(), pytest.raises(RuntimeError):
        getattr(torch, name)(torch.zeros(2, 3), torch.zeros(4))
    with pytest.raises(ValueError, match=rf"{name}: input \(2, 3\) and other \(4,\) do not broadcast"):
        getattr(F, name)(jnp.zeros((2, 3)), jnp.zeros(4))


# (shapes, dim): along the channels of 4-D maps above and below the size computed channels-last, other dims,
# negative dims, 1-D and mixed dtypes
CAT_CASES = [([(2, 3, 4, 5), (2, 1, 4, 5)], 1), ([(2, 8, 32, 32), (2, 16, 32, 32), (2, 4, 32, 32)], 1),
             ([(2, 8, 32, 32), (2, 8, 32, 32)], -3), ([(2, 8, 32, 32), (3, 8, 32, 32)], 0),
             ([(2, 3, 4, 5), (2, 3, 4, 2)], -1), ([(4, 8, 300), (4, 2, 300)], 1), ([(3,), (5,)], 0)]


def _check_cat(shapes, dim, seed):
    """F.cat's values and gradients equal torch.cat's exactly."""
    rs = np.random.RandomState(seed)
    arrays = [rs.standard_normal(s).astype(np.float32) for s in shapes]
    tensors = [torch.tensor(a, requires_grad=True) for a in arrays]
    ty = torch.cat(tensors, dim)
    g = rs.standard_normal(tuple(ty.shape)).astype(np.float32)
    ty.backward(torch.tensor(g))
    y, vjp = jax.vjp(jax.jit(lambda *xs: F.cat(list(xs), dim)), *map(jnp.asarray, arrays))
    np.testing.assert_array_equal(np.asarray(y), ty.detach().numpy())
    for got, t in zip(vjp(jnp.asarray(g)), tensors):
        np.testing.assert_array_equal(np.asarray(got), t.grad.numpy())


@pytest.mark.parametrize("shapes, dim", CAT_CASES)
def test_cat_values_and_gradients_match_torch(shapes, dim):
    _check_cat(shapes, dim, len(shapes) + 3 * dim + 11)


def test_cat_promotes_dtypes_as_torch():
    for a, b in ((np.int32, np.float32), (np.uint8, np.int8), (np.float16, np.float32)):
        want = torch.cat([torch.zeros(2, dtype=getattr(torch, np.dtype(a).name)),
                          torch.ones(3, dtype=getattr(torch, np.dtype(b).name))])
        got = F.cat([jnp.zeros(2, a), jnp.ones(3, b)])
        assert np.dtype(got.dtype).name == str(want.dtype).replace("torch.", "")
        np.testing.assert_array_equal(np.asarray(got), want.numpy())


def test_cat_refusals_name_the_argument():
    x = jnp.zeros((2, 3, 4))
    for bad, torch_args in (([x, jnp.zeros((2, 5, 5))], ([torch.zeros(2, 3, 4), torch.zeros(2, 5, 5)], 1)),
                            ([x, jnp.zeros((2, 3))], ([torch.zeros(2, 3, 4), torch.zeros(2, 3)], 1))):
        with pytest.raises(RuntimeError):
            torch.cat(*torch_args)
    with pytest.raises(ValueError, match=r"cat: sizes must match except in dimension 1: tensors\[0\] has shape "
                                         r"\(2, 3, 4\), tensors\[1\] has \(2, 5, 5\)"):
        F.cat([x, jnp.zeros((2, 5, 5))], 1)
    with pytest.raises(ValueError, match=r"cat: tensors must have the same number of dimensions: tensors\[0\] has 3, "
                                         r"tensors\[1\] has 2"):
        F.cat([x, jnp.zeros((2, 3))], 1)
    with pytest.raises(IndexError, match=r"cat: dim out of range \(expected to be in range of \[-3, 2\], but got 3\)"):
        F.cat([x, x], 3)
    with pytest.raises(TypeError, match="cat: tensors must be a non-empty list or tuple of arrays"):
        F.cat([], 0)
    with pytest.raises(TypeError, match="cat: tensors must be a non-empty list or tuple of arrays"):
        F.cat(x, 0)
    with pytest.raises(TypeError, match="cat: dim must be an int"):
        F.cat([x, x], 1.0)


def test_cat_along_channels_is_computed_channels_last_inside_a_trace():
    from fcnn import backends
    xs = [jnp.ones((2, 8, 32, 32)), jnp.ones((2, 4, 32, 32))]
    jaxpr = str(jax.make_jaxpr(lambda *xs: F.cat(list(xs), 1))(*xs))
    assert "concatenate" in jaxpr and "dimension=3" in jaxpr
    with backends.use(backends.policy().replace(fast_paths=False)):
        assert "dimension=1" in str(jax.make_jaxpr(lambda *xs: F.cat(list(xs), 1))(*xs))


@st.composite
def _cat_configs(draw):
    """``(shapes, dim)`` torch.cat accepts: 1 to 4 arrays of 1 to 4 dimensions, equal but in ``dim`` (which may be
    negative), sometimes large enough along the channels of 3-D/4-D maps to be joined channels-last."""
    ndim = draw(st.integers(1, 4))
    base = [draw(st.integers(1, 4)) for _ in range(ndim)]
    if ndim >= 3 and draw(st.booleans()):  # 4 maps of 1024 pixels
        base[0], base[2:] = 4, [32, 32] if ndim == 4 else [1024]
    dim = draw(st.integers(-ndim, ndim - 1))
    shapes = [tuple(draw(st.integers(0, 5)) if d == dim % ndim else b for d, b in enumerate(base))
              for _ in range(draw(st.integers(1, 4)))]
    return shapes, dim


@settings(max_examples=20)
@given(cfg=_cat_configs(), seed=st.integers(0, 2**16))
def test_cat_over_generated_configurations_matches_torch(cfg, seed):
    _check_cat(*cfg, seed)
