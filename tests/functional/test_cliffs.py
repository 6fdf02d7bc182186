"""Sizes where a formulation's cost grows faster than the data: values against torch, never timings.

Large pooling windows (arg-max one axis at a time), long 1-D resampling (taps,
not a dense matrix) and NaN hyper-parameters (one compiled program, not one per call).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from fcnn import functional as F
from fcnn.functional import _compiled
from oracle import assert_close

LARGE_WINDOWS = [
    # (input shape, kernel, stride, padding, dilation, ceil_mode): Π kernel above the unrolled limit
    ((2, 3, 20, 21), (7, 6), (2, 3), (3, 2), 1, True),
    ((1, 2, 30, 30), 6, 1, 3, 2, False),
    ((2, 64, 17, 17), 7, 1, 3, 1, False),   # channels-last inside
    ((2, 3, 45), 40, 1, 20, 1, False),
    ((1, 2, 12, 11, 9), (5, 3, 3), (2, 1, 2), (2, 1, 0), (1, 2, 1), False),
]


@pytest.mark.parametrize("shape,k,s,p,d,ceil", LARGE_WINDOWS)
def test_large_window_max_pool_matches_torch(shape, k, s, p, d, ceil):
    rs = np.random.RandomState(sum(shape))
    name = f"max_pool{len(shape) - 2}d"
    x = rs.randint(0, 4, shape).astype(np.float32)  # many ties: torch's first-in-row-major choice decides
    flat = x.reshape(-1)
    flat[rs.choice(x.size, 5, replace=False)] = -np.inf
    with_nan = x.copy()
    with_nan.reshape(-1)[rs.choice(x.size, 3, replace=False)] = np.nan  # the last NaN of a window wins
    for data in (x, with_nan):
        ty, ti = getattr(torch.nn.functional, name)(torch.from_numpy(data), k, s, p, d, ceil, True)
        y, i = getattr(F, name)(data, k, s, p, d, ceil, True)
        np.testing.assert_array_equal(np.asarray(y), ty.numpy())
        np.testing.assert_array_equal(np.asarray(i), ti.numpy())
        np.testing.assert_array_equal(np.asarray(getattr(F, name)(data, k, s, p, d, ceil)), ty.numpy())
    xt = torch.from_numpy(x).requires_grad_(True)
    cot = rs.standard_normal(ty.shape).astype(np.float32)
    (getattr(torch.nn.functional, name)(xt, k, s, p, d, ceil) * torch.from_numpy(cot)).sum().backward()
    grad = jax.grad(lambda a: jnp.sum(getattr(F, name)(a, k, s, p, d, ceil) * cot))(jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(grad), xt.grad.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("mode,size,kwargs", [
    ("linear", 40_000, {}),
    ("linear", 30_001, {"align_corners": True}),
    ("area", 7_000, {}),
])
def test_long_1d_interpolate_matches_torch(mode, size, kwargs):
    x = np.random.RandomState(0).standard_normal((1, 2, 20_000)).astype(np.float32)
    xt = torch.from_numpy(x).requires_grad_(True)
    ty = torch.nn.functional.interpolate(xt, size=size, mode=mode, **kwargs)
    cot = np.random.RandomState(1).standard_normal(ty.shape).astype(np.float32)
    (ty * torch.from_numpy(cot)).sum().backward()
    f = jax.jit(lambda a: F.interpolate(a, size=size, mode=mode, **kwargs))
    y, vjp = jax.vjp(f, jnp.asarray(x))
    assert_close(y, ty, rtol=1e-6, atol=1e-6)
    assert_close(vjp(jnp.asarray(cot))[0], xt.grad, rtol=1e-5, atol=1e-5)


def test_a_nan_hyper_parameter_compiles_once():
    x = jnp.linspace(-1, 1, 12).reshape(3, 4)

    def misses(value):
        before = _compiled._program.cache_info().misses
        F.leaky_relu(x, value)
        return _compiled._program.cache_info().misses - before

    misses(float("nan"))
    assert misses(float("nan")) == 0
    assert misses(np.float64(math.nan)) == 0
    assert misses(-float("nan")) == 0
    np.testing.assert_array_equal(np.isnan(np.asarray(F.leaky_relu(x, math.nan))),
                                  torch.nn.functional.leaky_relu(torch.from_numpy(np.array(x)), math.nan).isnan())
