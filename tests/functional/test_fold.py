"""F.unfold / F.fold and nn.Unfold / nn.Fold against torch: values and gradients over generated geometries."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from fcnn import functional as F, nn
from oracle import assert_close, check_layer, randn, to_torch

T = torch.nn
pair = st.one_of(st.integers(1, 3), st.tuples(st.integers(1, 3), st.integers(1, 3)))


@given(k=pair, d=pair, p=st.one_of(st.integers(0, 2), st.tuples(st.integers(0, 2), st.integers(0, 1))), s=pair,
       batched=st.booleans(), data=st.data())
@settings(max_examples=10)
def test_unfold_and_fold_match_torch(k, d, p, s, batched, data):
    h, w = data.draw(st.integers(3, 7)), data.draw(st.integers(3, 7))
    shape = ((2,) if batched else ()) + (3, h, w)
    x = randn(shape, seed=h * w)
    try:  # the geometries torch accepts decide the cases
        cols = T.Unfold(k, d, p, s)(to_torch(x))
    except RuntimeError:
        with pytest.raises(ValueError, match="sliding blocks"):
            F.unfold(jnp.asarray(x), k, d, p, s)
        return
    check_layer(nn.Unfold(k, d, p, s), T.Unfold(k, d, p, s), x)
    check_layer(nn.Fold((h, w), k, d, p, s), T.Fold((h, w), k, d, p, s), 2 * cols.numpy() - 1)


def test_fold_is_the_adjoint_of_unfold_and_exact_with_infinities():
    x = randn((1, 2, 5, 5))
    cols = randn((1, 2 * 9, 9), seed=1)
    lhs = np.vdot(np.asarray(F.unfold(jnp.asarray(x), 3, padding=0)), cols)
    rhs = np.vdot(x, np.asarray(F.fold(jnp.asarray(cols), 5, 3)))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-5)
    x[0, 0, 2, 2] = np.inf  # one infinite pixel reaches only the columns of the blocks covering it
    ours, theirs = F.unfold(jnp.asarray(x), 3), T.functional.unfold(to_torch(x), 3)
    assert_close(ours, theirs)
    assert np.isnan(np.asarray(ours)).sum() == 0
    assert_close(jax.jit(F.fold, static_argnums=(1, 2))(ours, 5, 3), T.functional.fold(theirs, 5, 3))


def test_errors_where_torch_refuses():
    with pytest.raises(ValueError, match="3-D .* or 4-D"):
        F.unfold(jnp.ones((1, 1, 2, 3, 3)), 2)
    with pytest.raises(ValueError, match="divisible by the product of kernel_size"):
        F.fold(jnp.ones((1, 7, 9)), 4, 2)
    with pytest.raises(ValueError, match="3 \\* 3 = 9, but got input.size\\(2\\)=8"):
        nn.Fold(4, 2).apply({}, {}, jnp.ones((1, 8, 8)))
    with pytest.raises(ValueError, match="stride must be positive"):
        nn.Unfold(2, stride=0)
    with pytest.raises(ValueError, match="padding must be non-negative"):
        nn.Fold(4, 2, padding=-1)
