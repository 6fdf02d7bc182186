"""torchvision.ops-style blocks against torchvision's own modules: values, gradients, buffers, state_dict keys."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from torchvision_cpu import import_torchvision

torchvision = import_torchvision()
from torchvision.models.convnext import LayerNorm2d as TLayerNorm2d  # noqa: E402
from torchvision.models.shufflenetv2 import channel_shuffle as tv_channel_shuffle  # noqa: E402
from torchvision import ops as tv_ops  # noqa: E402
from timm.layers.drop import DropPath as TDropPath  # noqa: E402

from fcnn import functional as F, nn  # noqa: E402
from oracle import assert_close, check_layer, randn, to_torch  # noqa: E402

T = torch.nn

# ------------------------------------------------------------------ StochasticDepth


def _torch_with_mask(monkeypatch, mask):
    """Make torch's next ``bernoulli_`` fill in ``mask``, so torchvision's formula can be checked on fcnn's draw."""
    def bernoulli_(self, p):
        assert tuple(self.shape) == mask.shape, (tuple(self.shape), mask.shape)
        return self.copy_(torch.from_numpy(mask.astype(np.float32)).to(self.dtype))
    monkeypatch.setattr(torch.Tensor, "bernoulli_", bernoulli_)


@pytest.mark.parametrize("mode,p,shape", [("row", 0.3, (6, 3, 4, 4)), ("batch", 0.5, (2, 3, 5)),
                                          ("row", 1.0, (3, 2)), ("batch", 0.9, (4,)), ("row", 0.5, (5,))])
def test_stochastic_depth_is_torchvisions_formula_on_fcnns_draw(monkeypatch, mode, p, shape):
    x = randn(shape, seed=3) + 10.0  # no zeros: the kept rows/batch are read off the output
    layer = nn.StochasticDepth(p, mode)
    key = jax.random.key(7)
    out, _ = layer.apply({}, {}, jnp.asarray(x), train=True, rng=key)
    mask_shape = (shape[0],) + (1,) * (len(shape) - 1) if mode == "row" else (1,) * len(shape)
    kept = np.asarray(out != 0)
    mask = kept.reshape(kept.shape[0], -1)[:, :1].reshape(mask_shape) if mode == "row" else kept.reshape(-1)[:1].reshape(mask_shape)
    assert (kept == np.broadcast_to(mask, shape)).all(), "whole rows / the whole batch are kept or dropped"
    _torch_with_mask(monkeypatch, mask)
    check_layer(layer, tv_ops.StochasticDepth(p, mode), x, train=True, rng=key)


@pytest.mark.parametrize("p,scale_by_keep,shape", [(0.4, True, (6, 3, 2, 2)), (0.4, False, (6, 5)), (1.0, False, (3, 2))])
def test_drop_path_is_timms_formula_on_fcnns_draw(monkeypatch, p, scale_by_keep, shape):
    x = randn(shape, seed=4) + 10.0
    layer, key = nn.DropPath(p, scale_by_keep), jax.random.key(3)
    out, _ = layer.apply({}, {}, jnp.asarray(x), train=True, rng=key)
    kept = np.asarray(out != 0).reshape(shape[0], -1)
    assert (kept == kept[:, :1]).all()
    _torch_with_mask(monkeypatch, kept[:, :1].reshape((shape[0],) + (1,) * (len(shape) - 1)))
    check_layer(layer, TDropPath(p, scale_by_keep), x, train=True, rng=key)
    assert_close(F.drop_path(jnp.asarray(x), p), x)  # timm's default training=False
    # with scaling, drop_path is stochastic_depth's 'row' mode: same key, same result
    if scale_by_keep:
        assert_close(F.stochastic_depth(jnp.asarray(x), p, "row", key=key), out)


def test_stochastic_depth_keeps_rows_with_probability_1_minus_p():
    x = jnp.ones((4000, 2))
    out = F.stochastic_depth(x, 0.25, "row", key=jax.random.key(0))
    kept = np.asarray(out[:, 0] != 0)
    # 4000 rows, keep 0.75: sd = 0.0068, so 0.72..0.78 is > 4 sd wide
    assert 0.72 < kept.mean() < 0.78
    np.testing.assert_allclose(np.asarray(out)[kept], 1 / 0.75, rtol=1e-6)
    batch = [float(F.stochastic_depth(jnp.ones(3), 0.5, "batch", key=jax.random.key(i))[0]) for i in range(40)]
    assert set(batch) == {0.0, 2.0}


def test_stochastic_depth_identity_in_eval_and_errors():
    x = randn((3, 4))
    for p in (0.0, 0.5, 1.0):
        out, _ = nn.StochasticDepth(p, "row").apply({}, {}, jnp.asarray(x))
        assert_close(out, tv_ops.stochastic_depth(to_torch(x), p, "row", training=False))
    out, _ = nn.StochasticDepth(0.0, "batch").apply({}, {}, jnp.asarray(x), train=True)  # p = 0 needs no rng
    assert_close(out, x)
    with pytest.raises(ValueError, match="StochasticDepth: rng is required"):
        nn.StochasticDepth(0.2, "row").apply({}, {}, jnp.asarray(x), train=True)
    with pytest.raises(ValueError, match="mode"):
        nn.StochasticDepth(0.2, "rows")
    with pytest.raises(ValueError, match="between 0 and 1"):
        nn.StochasticDepth(1.5, "row")
    with pytest.raises(ValueError, match="key is required"):
        F.stochastic_depth(jnp.asarray(x), 0.5, "row")
    with pytest.raises(ValueError, match="mode"):
        tv_ops.stochastic_depth(to_torch(x), 0.5, "rows")  # torchvision refuses it too


# ------------------------------------------------------------------ SqueezeExcitation

@pytest.mark.parametrize("act,scale,tact,tscale", [
    (nn.ReLU, nn.Sigmoid, T.ReLU, T.Sigmoid),
    (nn.SiLU, nn.Sigmoid, T.SiLU, T.Sigmoid),            # EfficientNet
    (nn.ReLU, nn.Hardsigmoid, T.ReLU, T.Hardsigmoid),    # MobileNetV3
])
def test_squeeze_excitation_matches_torchvision(act, scale, tact, tscale):
    layer = nn.SqueezeExcitation(6, 3, act, scale)
    assert list(layer.children()) == [n for n, _ in tv_ops.SqueezeExcitation(6, 3).named_children()]
    check_layer(layer, tv_ops.SqueezeExcitation(6, 3, tact, tscale), 2 * randn((2, 6, 5, 4), seed=1))
    if act is nn.ReLU and scale is nn.Sigmoid:  # unbatched (a fresh torch module: gradients accumulate in .grad)
        check_layer(layer, tv_ops.SqueezeExcitation(6, 3, tact, tscale), randn((6, 3, 3), seed=2))


# ------------------------------------------------------------------ Conv2dNormActivation

@given(k=st.sampled_from([1, 3, 5, (3, 1)]), stride=st.sampled_from([1, 2]), dilation=st.sampled_from([1, 2]),
       groups=st.sampled_from([1, 2]), norm=st.sampled_from(["bn", "bn_eps", "none", "gn"]),
       act=st.sampled_from(["relu", "hardswish", "silu", "none"]), bias=st.sampled_from([None, True, False]),
       train=st.booleans())
@settings(max_examples=6)
def test_conv2d_norm_activation_matches_torchvision(k, stride, dilation, groups, norm, act, bias, train):
    norms = {"bn": (nn.BatchNorm2d, T.BatchNorm2d),
             "bn_eps": (functools.partial(nn.BatchNorm2d, eps=1e-3, momentum=0.01),
                        functools.partial(T.BatchNorm2d, eps=1e-3, momentum=0.01)),
             "gn": (functools.partial(nn.GroupNorm, 2), functools.partial(T.GroupNorm, 2)),
             "none": (None, None)}
    acts = {"relu": (nn.ReLU, T.ReLU), "hardswish": (nn.Hardswish, T.Hardswish), "silu": (nn.SiLU, T.SiLU),
            "none": (None, None)}
    args = (4, 6, k, stride, None, groups)
    layer = nn.Conv2dNormActivation(*args, norms[norm][0], acts[act][0], dilation, bias=bias)
    module = tv_ops.Conv2dNormActivation(*args, norms[norm][1], acts[act][1], dilation, bias=bias)
    assert layer.out_channels == module.out_channels == 6
    check_layer(layer, module, randn((2, 4, 9, 8), seed=stride), train=train, atol=2e-5)


def test_conv3d_norm_activation_and_explicit_padding():
    check_layer(nn.Conv3dNormActivation(2, 4, 3), tv_ops.Conv3dNormActivation(2, 4, 3), randn((2, 2, 5, 4, 4)),
                train=True)
    check_layer(nn.Conv2dNormActivation(3, 4, 3, padding=0, norm_layer=None, inplace=None),
                tv_ops.Conv2dNormActivation(3, 4, 3, padding=0, norm_layer=None, inplace=None), randn((1, 3, 6, 6)))


# ------------------------------------------------------------------ Permute, LayerNorm2d, ChannelShuffle

@pytest.mark.parametrize("dims", [[0, 2, 3, 1], [0, 3, 1, 2], [3, 2, 1, 0], [0, -1, 1, 2]])
def test_permute_matches_torchvision(dims):
    tdims = [d % 4 for d in dims]  # torchvision's Permute passes dims to torch.permute, which takes negatives too
    check_layer(nn.Permute(dims), tv_ops.Permute(tdims), randn((2, 3, 4, 5)))


def test_permute_errors():
    with pytest.raises(ValueError, match="permutation"):
        nn.Permute([0, 1, 1])
    with pytest.raises(TypeError, match="dims"):
        nn.Permute(3)
    with pytest.raises(ValueError, match="4-D input"):
        nn.Permute([0, 2, 3, 1]).apply({}, {}, jnp.ones((2, 3, 4)))


@pytest.mark.parametrize("eps", [1e-6, 1e-5])
def test_layer_norm_2d_matches_torchvision(eps):
    layer = nn.LayerNorm2d(5, eps=eps)
    params, state = layer.init(jax.random.key(0))
    params = {"weight": jnp.asarray(1 + randn((5,), 1)), "bias": jnp.asarray(randn((5,), 2))}
    check_layer(layer, TLayerNorm2d(5, eps=eps), 3 * randn((2, 5, 4, 3)) + 1, params=params, state=state)
    with pytest.raises(ValueError, match="LayerNorm2d: expected a 4-D input"):
        layer.apply(params, state, jnp.ones((5, 4, 3)))


@pytest.mark.parametrize("shape,groups", [((2, 6, 3, 3), 3), ((2, 6, 3, 3), 2), ((1, 8, 5), 4),
                                          ((2, 4, 2, 2, 2), 2), ((3, 5, 2), 1), ((2, 6, 2, 2), 6)])
def test_channel_shuffle_matches_torch(shape, groups):
    check_layer(nn.ChannelShuffle(groups), T.ChannelShuffle(groups), randn(shape))
    if len(shape) == 4:
        assert_close(F.channel_shuffle(jnp.asarray(randn(shape)), groups),
                     tv_channel_shuffle(to_torch(randn(shape)), groups))


def test_channel_shuffle_errors_where_torch_refuses():
    for shape, groups, match in [((2, 5, 3), 3, "divisible"), ((2, 6), 3, "> 2 dims")]:
        with pytest.raises(ValueError, match=match):
            F.channel_shuffle(jnp.ones(shape), groups)
        with pytest.raises(RuntimeError):
            torch.nn.functional.channel_shuffle(torch.ones(shape), groups)
    with pytest.raises(ValueError, match="groups"):
        nn.ChannelShuffle(0)
