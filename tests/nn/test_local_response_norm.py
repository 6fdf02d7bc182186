"""LocalResponseNorm against torch: values and gradients over generated sizes, constants and ranks."""

import jax.numpy as jnp
import pytest
import torch
from hypothesis import given, settings, strategies as st

from fcnn import functional as F, nn
from oracle import assert_close, check_layer, randn, to_torch


@given(size=st.integers(1, 6), alpha=st.sampled_from([1e-4, 0.1, 2.0]), beta=st.sampled_from([0.75, 0.5, 1.3]),
       k=st.sampled_from([1.0, 2.0, 0.5]), shape=st.sampled_from([(2, 5, 4), (2, 4, 3, 3), (1, 3, 2, 2, 2), (1, 7, 3)]))
@settings(max_examples=6)
def test_local_response_norm_matches_torch(size, alpha, beta, k, shape):
    x = 3 * randn(shape, seed=size)
    check_layer(nn.LocalResponseNorm(size, alpha, beta, k), torch.nn.LocalResponseNorm(size, alpha, beta, k), x,
                atol=2e-5)


def test_alexnet_and_googlenet_settings_and_errors():
    x = 10 * randn((2, 8, 5, 5))
    assert_close(F.local_response_norm(jnp.asarray(x), 5, 1e-4, 0.75, 2.0),  # AlexNet's
                 torch.nn.functional.local_response_norm(to_torch(x), 5, 1e-4, 0.75, 2.0))
    with pytest.raises(ValueError, match="3 or more dimensions"):
        F.local_response_norm(jnp.ones((2, 3)), 2)
    with pytest.raises(ValueError):  # torch refuses it too
        torch.nn.functional.local_response_norm(torch.ones(2, 3), 2)
    with pytest.raises(ValueError, match="size must be a positive int"):
        nn.LocalResponseNorm(0)
    with pytest.raises(TypeError, match="beta must be a number"):
        nn.LocalResponseNorm(2, beta="x")


def test_torchs_default_constants():
    # only size given: alpha, beta and k are torch's defaults (values large enough that each shows)
    x = 30 * randn((2, 6, 3, 4), seed=1)
    ref = torch.nn.functional.local_response_norm(to_torch(x), 3)
    assert_close(F.local_response_norm(jnp.asarray(x), 3), ref)
    check_layer(nn.LocalResponseNorm(3), torch.nn.LocalResponseNorm(3), x)
