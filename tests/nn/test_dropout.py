"""Dropout can't reproduce torch's random stream, so these tests check its exact structure
(kept = x/(1−p), dropped = 0, whole channels), its statistics and its gradient, and that
eval mode and p=0 are the identity as in torch."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from fcnn import functional as F, nn
from oracle import check_layer, randn

KEY = jax.random.key(0)


def binomial_ok(kept: int, total: int, keep_prob: float) -> bool:
    """Kept count within 5 standard deviations of its binomial mean."""
    sd = np.sqrt(total * keep_prob * (1 - keep_prob))
    return abs(kept - total * keep_prob) <= 5 * sd + 1


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_keeps_scaled_values_and_zeros_the_rest(p):
    x = jnp.asarray(randn((64, 32)) + 3.0)  # no zeros in x, so zeros in y are drops
    y, _ = nn.Dropout(p).apply({}, {}, x, train=True, rng=KEY)
    y, x = np.asarray(y), np.asarray(x)
    kept = y != 0
    np.testing.assert_allclose(y[kept], x[kept] * np.float32(1 / (1 - p)), rtol=1e-6)
    assert binomial_ok(kept.sum(), x.size, 1 - p)


@pytest.mark.parametrize("layer_cls,shape,fn", [
    (nn.Dropout1d, (16, 8, 5), F.dropout1d), (nn.Dropout2d, (16, 8, 3, 4), F.dropout2d),
    (nn.Dropout3d, (8, 8, 2, 2, 3), F.dropout3d), (nn.Dropout2d, (40, 3, 4), F.dropout2d),
    (nn.Dropout1d, (40, 5), F.dropout1d),
])
def test_channel_dropout_zeroes_whole_channels(layer_cls, shape, fn):
    p = 0.4
    x = jnp.asarray(np.abs(randn(shape)) + 1.0)
    y, _ = layer_cls(p).apply({}, {}, x, train=True, rng=KEY)
    np.testing.assert_array_equal(y, fn(x, p, key=KEY))
    n_spatial = {nn.Dropout1d: 1, nn.Dropout2d: 2, nn.Dropout3d: 3}[layer_cls]
    y, x = np.asarray(y), np.asarray(x)
    # the channels are the first len(shape) - n_spatial dims: each is all-kept or all-dropped
    chans = y.reshape(shape[: len(shape) - n_spatial] + (-1,))
    kept = (chans != 0).all(-1)
    assert ((chans == 0).all(-1) | kept).all()
    np.testing.assert_allclose(y[kept], x[kept] / (1 - p), rtol=1e-6)
    assert 0 < kept.sum() < kept.size and binomial_ok(kept.sum(), kept.size, 1 - p)


def test_unbatched_channel_dropout_matches_vmap_over_examples():
    x = jnp.asarray(randn((4, 6, 3, 3)))
    keys = jax.random.split(KEY, 4)
    per_ex = jax.vmap(lambda v, k: F.dropout2d(v, 0.5, key=k))(x, keys)
    for i in range(4):
        np.testing.assert_array_equal(per_ex[i], F.dropout2d(x[i], 0.5, key=keys[i]))
    layer = nn.Dropout2d(0.5)
    y, _ = jax.vmap(lambda v, k: layer.apply({}, {}, v, train=True, rng=k))(x, keys)
    np.testing.assert_array_equal(y, per_ex)


@pytest.mark.parametrize("layer,torch_layer", [
    (nn.Dropout(0.3), torch.nn.Dropout(0.3)), (nn.Dropout2d(0.3), torch.nn.Dropout2d(0.3)),
    (nn.Dropout1d(0.3), torch.nn.Dropout1d(0.3)), (nn.Dropout3d(), torch.nn.Dropout3d()),
    (nn.AlphaDropout(0.2), torch.nn.AlphaDropout(0.2)),
])
def test_eval_mode_is_identity_as_torch(layer, torch_layer):
    shape = {nn.Dropout3d: (2, 3, 2, 2, 2), nn.Dropout1d: (2, 3, 4)}.get(type(layer), (2, 3, 4, 4))
    check_layer(layer, torch_layer, randn(shape), train=False)


@pytest.mark.parametrize("layer,torch_layer", [
    (nn.Dropout(0.0), torch.nn.Dropout(0.0)), (nn.Dropout2d(0.0), torch.nn.Dropout2d(0.0)),
    (nn.Dropout(1.0), torch.nn.Dropout(1.0)), (nn.Dropout2d(1.0), torch.nn.Dropout2d(1.0)),
    (nn.AlphaDropout(0.0), torch.nn.AlphaDropout(0.0)),
])
def test_p_zero_and_one_in_training_match_torch(layer, torch_layer):
    # p=0 is the identity, p=1 gives zeros (and zero gradients), as torch; neither needs randomness.
    check_layer(layer, torch_layer, randn((2, 3, 4, 4)), train=True, rng=KEY)


def test_gradient_is_mask_over_keep_probability():
    p = 0.25
    x = jnp.asarray(randn((8, 4, 5, 5)) + 3.0)
    for fn in (F.dropout, F.dropout2d):
        y = fn(x, p, key=KEY)
        g = jax.grad(lambda v: (fn(v, p, key=KEY) * 1.0).sum())(x)
        mask = np.asarray(y) != 0
        np.testing.assert_allclose(g, mask / np.float32(1 - p), rtol=1e-6)


def test_deterministic_given_key_different_across_keys_and_jit():
    x = jnp.ones((32, 32))
    layer = nn.Dropout(0.5)
    a, _ = layer.apply({}, {}, x, train=True, rng=jax.random.key(1))
    b, _ = jax.jit(lambda r: layer.apply({}, {}, x, train=True, rng=r))(jax.random.key(1))
    c, _ = layer.apply({}, {}, x, train=True, rng=jax.random.key(2))
    np.testing.assert_array_equal(a, b)
    assert (np.asarray(a) != np.asarray(c)).any()


def test_dropout_in_a_model_gets_distinct_keys_per_layer():
    model = nn.Sequential(nn.Dropout(0.5), nn.Identity(), nn.Dropout(0.5))
    x = jnp.ones((64, 64))
    y, _ = model.apply({}, {}, x, train=True, rng=KEY)
    kept = np.asarray(y) != 0
    # two independent masks keep (1-p)^2 = 1/4 of the values, scaled by 4
    assert binomial_ok(kept.sum(), x.size, 0.25)
    np.testing.assert_allclose(np.asarray(y)[kept], 4.0)
    y_eval, _ = model.apply({}, {}, x)
    np.testing.assert_array_equal(y_eval, x)


def test_alpha_dropout_keeps_mean_and_variance():
    x = jnp.asarray(randn((200, 200)))
    y = np.asarray(F.alpha_dropout(x, 0.3, training=True, key=KEY))
    assert abs(y.mean()) < 0.02 and abs(y.std() - 1.0) < 0.02
    # dropped units all take the value a·α' + b (α' = −SELU scale·alpha)
    alpha_p, p = -1.7580993408473766, 0.3
    a = ((1 - p) * (1 + p * alpha_p**2)) ** -0.5
    dropped = np.isclose(y, a * alpha_p - a * alpha_p * p, atol=1e-6)
    assert binomial_ok(dropped.sum(), y.size, p)


def test_bad_arguments_name_the_problem():
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1, but got 1.5"):
        nn.Dropout(1.5)
    with pytest.raises(ValueError, match="dropout probability"):
        F.dropout(jnp.ones(3), -0.1)
    with pytest.raises(TypeError, match="dropout probability"):
        nn.Dropout2d("0.5")
    with pytest.raises(ValueError, match="rng"):
        nn.Dropout(0.5).apply({}, {}, jnp.ones(3), train=True)
    with pytest.raises(ValueError, match="key"):
        F.dropout(jnp.ones(3), 0.5)
    with pytest.raises(ValueError, match="3D .*4D"):
        F.dropout2d(jnp.ones((2, 3)), 0.5, key=KEY)
    with pytest.raises(TypeError, match="floating"):
        F.dropout(jnp.ones(3, jnp.int32), 0.5, key=KEY)
    # no rng needed in eval or with p=0
    nn.Dropout(0.5).apply({}, {}, jnp.ones(3))
    nn.Dropout(0.0).apply({}, {}, jnp.ones(3), train=True)
