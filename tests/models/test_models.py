import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn as tnn
from hypothesis import given, settings, strategies as st

from fcnn import models
from fcnn.models import LeNet5, VGG
from oracle import assert_close, check_layer, flatten, load_into_torch, randn, to_torch
from torch_twins import TBasicBlock, TBottleneck, TLeNet5, TResNet, TUNet, TVGG


def _flat_shapes(tree, prefix=""):
    out = {}
    for k, v in tree.items():
        key = f"{prefix}.{k}" if prefix else k
        out.update(_flat_shapes(v, key) if isinstance(v, dict) else {key: tuple(v.shape)})
    return out


def assert_same_state_dict_layout(layer, module, key=0, materialize=True):
    """Keys and shapes equal torch's state_dict; returns (params, state) from one jitted init."""
    # eval_shape: no arrays are made, so big models are checked for free
    params, state = jax.eval_shape(layer.init, jax.random.key(key))
    assert {**_flat_shapes(params), **_flat_shapes(state)} == {k: tuple(v.shape) for k, v in module.state_dict().items()}
    assert set(_flat_shapes(params)) == {k for k, _ in module.named_parameters()}
    return jax.jit(layer.init)(jax.random.key(key)) if materialize else None


# ---------------------------------------------------------------- tests

# 28×28 tanh/avg (the classic) is compared with torch in tests/interop; here the 8×8 variant
@pytest.mark.parametrize("size,act,pool", [(8, "relu", "max")])
def test_lenet5_matches_torch(size, act, pool):
    layer = LeNet5(10, 1, size, act, pool)
    pad1 = 0 if size >= 32 else 2
    pad2, s2 = {8: (2, 2), 28: (0, 5)}[size]
    module = TLeNet5(10, 1, pad1, pad2, s2, {"relu": tnn.ReLU, "tanh": tnn.Tanh}[act],
                     {"max": tnn.MaxPool2d, "avg": tnn.AvgPool2d}[pool])
    assert_same_state_dict_layout(layer, module)
    check_layer(layer, module, randn((2, 1, size, size)), rtol=1e-4, atol=1e-5)


@given(size=st.integers(5, 40), cin=st.sampled_from([1, 3]))
@settings(max_examples=15)
def test_lenet5_any_size_builds_and_keeps_keys(size, cin):
    layer = LeNet5(7, cin, size)
    params, _ = jax.eval_shape(layer.init, jax.random.key(0))
    out = jax.eval_shape(lambda k, x: layer.apply(layer.init(k)[0], {}, x)[0], jax.random.key(0),
                         jax.ShapeDtypeStruct((2, cin, size, size), jnp.float32))
    assert out.shape == (2, 7)
    assert set(flatten(params)) == {f"{n}.{w}" for n in ("conv1", "conv2", "fc1", "fc2", "fc3") for w in ("weight", "bias")}


def test_lenet5_unbatched_and_vmap():
    layer = LeNet5(10, 1, 8, "relu", "max")
    params, state = jax.jit(layer.init)(jax.random.key(1))
    x = jnp.asarray(randn((3, 1, 8, 8)))
    apply = jax.jit(lambda x: layer.apply(params, state, x)[0])
    batched, single = apply(x), apply(x[0])
    assert single.shape == (10,)
    mapped = jax.jit(jax.vmap(apply))(x)
    assert_close(single, batched[0], 1e-5, 1e-6)
    assert_close(mapped, batched, 1e-5, 1e-6)


def test_vgg_matches_torch_train_and_eval():
    cfg = (8, "M", 16, 16, "M")
    layer = VGG(cfg, in_channels=3, num_classes=5, hidden=12, dropout=0.0, pool_size=2)
    module = TVGG(cfg, 3, 5, 12, 0.0, 2)
    params, state = assert_same_state_dict_layout(layer, module)
    x = randn((4, 3, 12, 12))
    # train mode: batch statistics, updated running stats, gradients
    _, new_state = check_layer(layer, module, x, train=True, rng=jax.random.key(0), rtol=1e-4, atol=1e-5)
    # eval mode with the updated running statistics
    check_layer(layer, module, x, params=params, state=new_state, rtol=1e-4, atol=1e-5, grads=False)


def test_vgg_dropout_is_active_in_training_only():
    layer = VGG("small", in_channels=1, num_classes=10)
    params, state = jax.jit(layer.init)(jax.random.key(0))
    x = jnp.asarray(randn((4, 1, 8, 8)))
    ev = jax.jit(lambda x: layer.apply(params, state, x)[0])
    tr = jax.jit(lambda x, k: layer.apply(params, state, x, train=True, rng=k)[0])
    e1, e2 = ev(x), ev(x)
    t1, t2 = tr(x, jax.random.key(1)), tr(x, jax.random.key(2))
    np.testing.assert_array_equal(e1, e2)
    assert not np.allclose(t1, t2)
    with pytest.raises(ValueError, match="rng"):
        layer.apply(params, state, x, train=True)


def test_resnet18_matches_torchvision_structure_and_outputs():
    layer = models.get("resnet18", num_classes=10)
    module = TResNet(TBasicBlock, (2, 2, 2, 2), 10)
    params, state = assert_same_state_dict_layout(layer, module)
    # non-trivial running statistics, so eval mode really uses them
    rs = np.random.RandomState(0)
    state = jax.tree.map(lambda v: jnp.asarray(rs.uniform(0.5, 1.5, v.shape).astype(np.float32))
                         if v.dtype == jnp.float32 else v, state)
    load_into_torch(module, params, state)
    module.eval()
    x = randn((1, 3, 64, 64))
    # one jitted program: much faster to build than op-by-op for a deep net
    out = jax.jit(lambda p, s, x: layer.apply(p, s, x)[0])(params, state, x)
    with torch.no_grad():
        ref = module(to_torch(x))
    assert_close(out, ref, 1e-4, 1e-4, "resnet18 eval output")


@pytest.mark.parametrize("name,block,layers", [("resnet34", TBasicBlock, (3, 4, 6, 3)),
                                               ("resnet50", TBottleneck, (3, 4, 6, 3))])
def test_resnet34_50_state_dict_layout(name, block, layers):
    assert_same_state_dict_layout(models.get(name), TResNet(block, layers), materialize=False)


def test_resnet_init_is_torchvisions():
    params, state = jax.jit(models.resnet18(num_classes=10).init)(jax.random.key(0))
    w = np.asarray(params["layer3"]["0"]["conv1"]["weight"])  # (256, 128, 3, 3), fan_out = 256*9
    np.testing.assert_allclose(w.std(), np.sqrt(2.0 / (256 * 9)), rtol=0.02)
    assert np.all(np.asarray(params["bn1"]["weight"]) == 1) and np.all(np.asarray(params["bn1"]["bias"]) == 0)


def test_resnet_small_input_variant():
    layer = models.resnet18(num_classes=10, in_channels=1, small_input=True)
    params, state = jax.eval_shape(layer.init, jax.random.key(0))
    assert params["conv1"]["weight"].shape == (64, 1, 3, 3)
    out = jax.eval_shape(lambda k, x: layer.apply(*layer.init(k), x)[0], jax.random.key(0),
                         jax.ShapeDtypeStruct((2, 1, 8, 8), jnp.float32))
    assert out.shape == (2, 10)


def test_registry_and_bad_args():
    assert {"lenet5", "vgg", "resnet18", "resnet34", "resnet50"} <= set(models.names())
    assert isinstance(models.get("lenet5", input_size=8), LeNet5)
    with pytest.raises(ValueError, match="unknown model 'resnet9'.*lenet5.*resnet18"):
        models.get("resnet9")
    with pytest.raises(ValueError, match="already registered"):
        models.register("vgg", VGG)
    with pytest.raises(ValueError, match="activation"):
        LeNet5(activation="sigmoid")
    with pytest.raises(ValueError, match="input_size"):
        LeNet5(input_size=4)
    with pytest.raises(ValueError, match="cfg"):
        VGG("huge")
    with pytest.raises(ValueError, match="cfg"):
        VGG((8, "X"))
    with pytest.raises(ValueError, match="dropout"):
        VGG(dropout=1.5)
    with pytest.raises(ValueError, match="layers"):
        models.ResNet(models.BasicBlock, (2, 2, 2))
    with pytest.raises(ValueError, match="expected 3D"):
        LeNet5(input_size=8).apply(*LeNet5(input_size=8).init(jax.random.key(0)), jnp.zeros((8, 8)))


# ---------------------------------------------------------------- U-Net

@pytest.mark.parametrize("bilinear,size", [(False, (8, 8)), (True, (9, 7))])
def test_unet_matches_torch_in_training(bilinear, size):
    layer = models.get("unet", in_channels=2, num_classes=3, base_channels=4, depth=2, bilinear=bilinear)
    module = TUNet(2, 3, 4, 2, bilinear)
    params, state = assert_same_state_dict_layout(layer, module)
    x = randn((2, 2) + size)
    f = jax.jit(lambda p, s, x: layer.apply(p, s, x, train=True, rng=jax.random.key(0)))
    (out, new_state), vjp = jax.vjp(lambda p: f(p, state, x), params)
    load_into_torch(module, params, state)
    module.train()
    tx = to_torch(x, requires_grad=True)
    ref = module(tx)
    assert out.shape == (2, 3) + size
    assert_close(out, ref, 1e-4, 1e-4, "unet output")
    cot = randn(out.shape, seed=5)
    (g,) = vjp((jnp.asarray(cot), jax.tree.map(jnp.zeros_like, new_state)))
    ref.backward(to_torch(cot))
    named = dict(module.named_parameters())
    for k, v in flatten(g).items():
        assert_close(v, named[k].grad, 1e-3, 1e-4, f"grad {k}")
    sd = module.state_dict()
    for k, v in flatten(new_state).items():
        assert_close(v, sd[k], 1e-4, 1e-5, f"state {k}")


def test_unet_bad_args():
    with pytest.raises(ValueError, match="base_channels"):
        models.UNet(base_channels=5)
    with pytest.raises(ValueError, match="too small"):
        layer = models.UNet(depth=3)
        jax.eval_shape(lambda k: layer.apply(*layer.init(k), jnp.zeros((1, 1, 4, 4))), jax.random.key(0))
