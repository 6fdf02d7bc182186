"""Pooling's window scan against the reduce-window form, selected by the policy's ``window_scan_taps``.

Max and average pooling compute windows of at most ``window_scan_taps`` taps
slice by slice and larger ones with ``lax.reduce_window`` (max pooling's
arg-max one axis at a time). Each form is held to torch here for windows on
both sides of the threshold: values, indices and input gradients.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch.nn.functional as TF

from fcnn import backends
from fcnn import functional as F
from oracle import assert_close, randn, to_torch

# every window scanned, none scanned, and the default
SCANS = {"scan": 10**6, "reduce_window": 0, "default": backends.Policy("cpu").window_scan_taps}
CASES = [  # kernel, stride, padding, dilation, ceil_mode
    (2, 2, 0, 1, False), (3, 2, 1, 1, False), (3, 1, 1, 2, True), ((2, 3), (1, 2), (1, 0), 1, False), (7, 3, 3, 1, True),
]


@pytest.mark.parametrize("scan", SCANS)
@pytest.mark.parametrize("case", CASES)
def test_max_and_avg_pool_in_every_form_match_torch(scan, case):
    k, s, p, d, ceil = case
    x = randn((2, 3, 15, 14), seed=3)
    x[0, 0, :4, :4] = 1.0  # ties: torch's first maximum
    g = randn(TF.max_pool2d(to_torch(x), k, s, p, d, ceil).shape, seed=4)
    ga = randn(TF.avg_pool2d(to_torch(x), k, s, p, ceil).shape, seed=5)
    with backends.use(backends.Policy(jax.default_backend(), window_scan_taps=SCANS[scan])):
        y, vjp = jax.vjp(lambda a: F.max_pool2d(a, k, s, p, d, ceil), jnp.asarray(x))
        gx = vjp(jnp.asarray(g))[0]
        _, idx = jax.jit(lambda a: F.max_pool2d(a, k, s, p, d, ceil, True))(jnp.asarray(x))
        ya, vjpa = jax.vjp(lambda a: F.avg_pool2d(a, k, s, p, ceil), jnp.asarray(x))
        gxa = vjpa(jnp.asarray(ga))[0]
    tx = to_torch(x, requires_grad=True)
    ty, tidx = TF.max_pool2d(tx, k, s, p, d, ceil, True)
    ty.backward(to_torch(g))
    assert_close(y, ty, 0, 0, "max values")
    np.testing.assert_array_equal(np.asarray(idx), tidx.numpy())
    assert_close(gx, tx.grad, 1e-6, 1e-6, "max gradient")
    tx = to_torch(x, requires_grad=True)
    ty = TF.avg_pool2d(tx, k, s, p, ceil)
    ty.backward(to_torch(ga))
    assert_close(ya, ty, 1e-5, 1e-5, "avg values")
    assert_close(gxa, tx.grad, 1e-5, 1e-5, "avg gradient")
