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


X = np.random.RandomState(1).uniform(0.1, 0.9, (1, 2, 3, 3)).astype(np.float32)
W = np.random.RandomState(2).uniform(-1, 1, (2, 3, 3, 3)).astype(np.float32)
T = torch.from_numpy


def _bce(target):
    return (lambda: F.binary_cross_entropy(np.full(3, 0.5, np.float32), np.asarray(target, np.float32)),
            lambda: TF.binary_cross_entropy(torch.full((3,), 0.5), torch.tensor(target, dtype=torch.float32)))


REFUSED = {
    # name: (fcnn call, torch call, error, message pattern)
    "conv_transpose2d-negative-output": (lambda: F.conv_transpose2d(X, W, padding=3),
                                         lambda: TF.conv_transpose2d(T(X), T(W), padding=3), ValueError,
                                         r"^conv_transpose2d: .*calculated output size \[-1, -1\] is too small"),
    "conv_transpose2d-empty-output": (lambda: F.conv_transpose2d(X[:, :, :1, :1], W[:, :, :2, :2], padding=1),
                                      lambda: TF.conv_transpose2d(T(X[:, :, :1, :1]), T(W[:, :, :2, :2]), padding=1),
                                      ValueError, r"^conv_transpose2d: .*calculated output size \[0, 0\]"),
    "conv_transpose1d-empty-output": (lambda: F.conv_transpose1d(X[:, :, 0, :1], W[:, :, 0, :2], padding=1),
                                      lambda: TF.conv_transpose1d(T(X[:, :, 0, :1]), T(W[:, :, 0, :2]), padding=1),
                                      ValueError, r"^conv_transpose1d: .*too small"),
    "pad-float": (lambda: F.pad(X, (1.5, 1)), lambda: TF.pad(T(X), (1.5, 1)), TypeError,
                  r"^pad: pad must be a tuple of ints, got \(1.5, 1\)"),
    "pad-integral-float": (lambda: F.pad(X, (1, 1.0)), lambda: TF.pad(T(X), (1, 1.0)), TypeError, "^pad: pad must"),
    "conv2d-zero-out-channels": (lambda: F.conv2d(X, np.zeros((0, 2, 3, 3), np.float32)),
                                 lambda: TF.conv2d(T(X), torch.zeros(0, 2, 3, 3)), ValueError,
                                 r"^conv2d: expected weight to be at least 1"),
    "conv1d-zero-out-channels": (lambda: F.conv1d(X[0], np.zeros((0, 2, 3), np.float32)),
                                 lambda: TF.conv1d(T(X[0]), torch.zeros(0, 2, 3)), ValueError, r"^conv1d: "),
    "batch_norm-eps0-training": (lambda: F.batch_norm(X, None, None, training=True, eps=0.0),
                                 lambda: TF.batch_norm(T(X), None, None, training=True, eps=0.0), ValueError,
                                 "^batch_norm: eps must be positive during training, but got 0.0"),
    "batch_norm-eps-negative": (lambda: F.batch_norm(X, np.zeros(2, np.float32), np.ones(2, np.float32), eps=-1e-5),
                                lambda: TF.batch_norm(T(X), torch.zeros(2), torch.ones(2), eps=-1e-5), ValueError,
                                "^batch_norm: eps must be non-negative"),
    "batch_norm-training-int": (lambda: F.batch_norm(X, None, None, training=1),
                                lambda: TF.batch_norm(T(X), None, None, training=1), TypeError,
                                "^batch_norm: training must be a bool"),
    "dropout-training-str": (lambda: F.dropout(X, 0.5, "yes", key=jax.random.key(0)),
                             lambda: TF.dropout(T(X), 0.5, "yes"), TypeError, "^dropout: training must be a bool"),
    "bce-target-above-1": (*_bce([0.0, 1.5, 1.0]), ValueError, "^binary_cross_entropy: all elements of target"),
    "bce-target-negative": (*_bce([0.0, -0.1, 1.0]), ValueError, "^binary_cross_entropy: all elements of target"),
    "interpolate-scale-inf": (lambda: F.interpolate(X, scale_factor=math.inf),
                              lambda: TF.interpolate(T(X), scale_factor=math.inf), ValueError,
                              "^interpolate: scale_factor must be finite, got inf"),
    "interpolate-scale-nan": (lambda: F.interpolate(X, scale_factor=(2.0, math.nan), mode="bilinear"),
                              lambda: TF.interpolate(T(X), scale_factor=(2.0, math.nan), mode="bilinear"), ValueError,
                              "^interpolate: scale_factor must be finite"),
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_refused_as_torch_refuses(name):
    ours, theirs, error, match = REFUSED[name]
    assert_both_refuse(ours, theirs, error, match)


@pytest.mark.parametrize("output_size,error,match", [
    (12, TypeError, "output_size must be a sequence of 2 or 4 ints, got 12"),
    ((8, 8, 1), ValueError, r"output_size must have 2 elements \(or 4 with batch and channels\), got 3"),
    ((1, 2, 3, 8, 8), ValueError, "output_size must have 2 elements"),
    ((7.0, 7.0), TypeError, r"output_size must contain ints, got \(7.0, 7.0\)"),
    ((1, 3, 7.0, 7), TypeError, "output_size must contain ints"),
    ((20, 20), ValueError, "valid sizes range"),
])
def test_conv_transpose_layer_refuses_bad_output_size(output_size, error, match):
    from fcnn import nn

    layer = nn.ConvTranspose2d(2, 3, 3, stride=2)
    params, state = layer.init(jax.random.key(0))
    module = torch.nn.ConvTranspose2d(2, 3, 3, stride=2)
    assert_both_refuse(lambda: layer.apply(params, state, X, output_size=output_size),
                       lambda: module(T(X), output_size=output_size), error, f"^ConvTranspose2d: .*{match}")
    # what torch accepts: the spatial sizes alone or with (N, C), or with (C,) for an unbatched input
    for size in ((8, 8), (1, 3, 8, 8), [1, 2, 7, 8]):
        ours = layer.apply(params, state, X, output_size=size)[0]
        assert ours.shape == tuple(module(T(X), output_size=size).shape)
    assert layer.apply(params, state, X[0], output_size=(3, 8, 7))[0].shape == (3, 8, 7)
    assert tuple(module(T(X[0]), output_size=(3, 8, 7)).shape) == (3, 8, 7)


@pytest.mark.parametrize("scale_factor", [0, 0.0, -1.0, math.nan, math.inf, (2.0, 0.0)])
def test_upsample_refuses_bad_scale_factor_when_built(scale_factor):
    from fcnn import nn

    # torch builds the layer and fails at the first call (or silently takes 0 for "no scale_factor")
    with pytest.raises((RuntimeError, ValueError)):
        torch.nn.Upsample(scale_factor=scale_factor)(T(X))
    with pytest.raises(ValueError, match="^Upsample: scale_factor must be positive and finite"):
        nn.Upsample(scale_factor=scale_factor)


KEYED = {
    "dropout": lambda key: F.dropout(X, 0.5, True, key=key),
    "dropout2d": lambda key: F.dropout2d(X, 0.5, True, key=key),
    "alpha_dropout": lambda key: F.alpha_dropout(X, 0.5, True, key=key),
    "stochastic_depth": lambda key: F.stochastic_depth(X, 0.5, "row", True, key=key),
}


@pytest.mark.parametrize("name", list(KEYED))
@pytest.mark.parametrize("key", [3, "seed", np.float32(1.0), np.zeros(2, np.float32), np.zeros(2, np.int32)])
def test_a_non_key_is_refused_naming_the_op(name, key):
    with pytest.raises(TypeError, match=f"^{name}: key must be None or a PRNG key"):
        KEYED[name](key)
    assert KEYED[name](jax.random.PRNGKey(0)).shape == X.shape  # raw uint32 key data is a key


TRAINING = {
    "dropout": lambda flag: F.dropout(X, 0.5, flag, key=jax.random.key(0)),
    "dropout2d": lambda flag: F.dropout2d(X, 0.5, flag, key=jax.random.key(0)),
    "alpha_dropout": lambda flag: F.alpha_dropout(X, 0.5, flag, key=jax.random.key(0)),
    "stochastic_depth": lambda flag: F.stochastic_depth(X, 0.5, "row", flag, key=jax.random.key(0)),
    "batch_norm": lambda flag: F.batch_norm(X, np.zeros(2, np.float32), np.ones(2, np.float32), training=flag),
    "instance_norm": lambda flag: F.instance_norm(X, use_input_stats=flag),
}


@pytest.mark.parametrize("name", list(TRAINING))
def test_a_traced_training_flag_is_refused_saying_it_must_be_static(name):
    with pytest.raises(TypeError, match=f"^{name}: .* must be a Python bool, got a traced value.*must be static"):
        jax.jit(TRAINING[name])(True)
    static = jax.jit(TRAINING[name], static_argnums=0)
    assert jax.tree.leaves(static(True))[0].shape == X.shape
