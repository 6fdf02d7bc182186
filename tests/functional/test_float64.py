"""fcnn.functional under ``jax_enable_x64``: float64 inputs give float64 results equal to torch's float64.

Index arithmetic inside the ops (window offsets, gathers) must not mix int32 and int64 when x64 turns Python
ints into int64; each op runs forward and backward under ``jax.enable_x64`` on shapes that take its
gradient formulations (grouped, strided, dilated convolutions at sizes where the per-tap weight gradient
is used), compared with torch in float64.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as tF

from fcnn import functional as F

CONVS = [  # (N, C, H, W), (O, C/groups, kh, kw), stride, padding, dilation, groups
    ((2, 8, 9, 9), (8, 8, 3, 3), 1, 1, 1, 1),
    ((2, 64, 16, 16), (64, 2, 3, 3), 2, 1, 1, 32),
    ((2, 16, 12, 12), (16, 1, 3, 3), 1, 2, 2, 16),
    ((1, 4, 40, 40), (6, 4, 5, 5), 2, 2, 1, 1),
    ((2, 96, 8, 8), (96, 1, 5, 5), 2, 2, 1, 96),
    ((2, 72, 16, 16), (72, 1, 3, 3), 1, 1, 1, 72),
    ((2, 576, 2, 2), (576, 1, 5, 5), 1, 2, 1, 576),
]


@pytest.mark.parametrize("xs, ws, stride, padding, dilation, groups", CONVS)
def test_conv2d_value_and_gradients_in_float64(xs, ws, stride, padding, dilation, groups):
    rs = np.random.RandomState(0)
    x, w, b = rs.standard_normal(xs), rs.standard_normal(ws), rs.standard_normal(ws[0])
    args = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = tF.conv2d(tx, tw, tb, **args)
    g = rs.standard_normal(tuple(ty.shape))
    ty.backward(torch.tensor(g))
    with jax.enable_x64(True):
        y, vjp = jax.vjp(lambda x, w, b: F.conv2d(x, w, b, **args), *(jnp.asarray(a) for a in (x, w, b)))
        grads = jax.jit(vjp)(jnp.asarray(g))
        y, grads = np.asarray(y), [np.asarray(v) for v in grads]
    assert y.dtype == np.float64 and all(v.dtype == np.float64 for v in grads)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    for name, ours, t in zip("xwb", grads, (tx, tw, tb)):
        np.testing.assert_allclose(ours, t.grad.numpy(), rtol=1e-11, atol=1e-11, err_msg=f"grad {name}")
