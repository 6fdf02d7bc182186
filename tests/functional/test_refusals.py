"""Arguments torch refuses are refused, with a ValueError/TypeError naming the op, the argument and the value.

Every case is first shown to be refused by torch itself, then by fcnn (with
the op's name in the message); where fcnn's check needs concrete values, the
traced behaviour is tested as documented.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from fcnn import functional as F

TF = torch.nn.functional


def assert_both_refuse(ours, theirs, error, match):
    with pytest.raises((RuntimeError, ValueError, TypeError, IndexError, NotImplementedError)):
        theirs()
    with pytest.raises(error, match=match):
        ours()


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("bad", [-1, -7, "size", "size+3"])
def test_max_unpool_refuses_invalid_concrete_indices(n, bad):
    shape = (2, 3) + (4,) * n
    x = np.random.RandomState(0).standard_normal(shape).astype(np.float32)
    y, idx = getattr(TF, f"max_pool{n}d")(torch.from_numpy(x), 2, return_indices=True)
    size = 4 ** n
    idx = idx.numpy().copy()
    idx.reshape(-1)[5] = {"size": size, "size+3": size + 3}.get(bad, bad)
    name = f"max_unpool{n}d"
    assert_both_refuse(lambda: getattr(F, name)(y.numpy(), idx.astype(np.int32), 2),
                       lambda: getattr(TF, name)(y, torch.from_numpy(idx), 2),
                       ValueError, f"^{name}: Found an invalid max index: {idx.reshape(-1)[5]}")


def test_max_unpool_drops_invalid_traced_indices():
    values = jnp.arange(1.0, 5.0).reshape(1, 1, 4)
    idx = jnp.array([[[0, -1, 7, 8]]], jnp.int32)
    out = jax.jit(lambda v, i: F.max_unpool1d(v, i, 2))(values, idx)
    np.testing.assert_array_equal(np.asarray(out), [[[1, 0, 0, 0, 0, 0, 0, 3]]])
    grad = jax.grad(lambda v: jax.jit(lambda v, i: F.max_unpool1d(v, i, 2))(v, idx).sum())(values)
    np.testing.assert_array_equal(np.asarray(grad), [[[1, 0, 1, 0]]])
