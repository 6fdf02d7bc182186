"""fcnn.interop.torch: the same networks in torch and fcnn, weights moved both ways."""

import struct
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from fcnn import models, nn
from fcnn.functional import cross_entropy
from fcnn.interop import torch as interop
from torch_twins import TLeNet5, TResNet, TUNet, TVGG

T = torch.nn


def _randomize_bn(module, seed=0):
    """Non-trivial BatchNorm affine params and running stats, so eval mode tests them."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, T.BatchNorm2d):
                m.weight.copy_(1 + 0.2 * torch.randn(m.weight.shape, generator=g))
                m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=g))
                m.running_mean.copy_(0.2 * torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
                m.num_batches_tracked.fill_(7)


def _rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.abs(a - b).max() / max(np.abs(b).max(), 1e-12)


# name: (fcnn model, torch twin, input shape, targets: class per image or per pixel)
TWINS = {
    # small images keep it fast; layer4 is 2×2 at 40×40: its BatchNorm statistics over 16 values (1×1 × 4 images
    # at 32×32 make the training gradients ill-conditioned: ~1e-4 float32 noise)
    "resnet18": (lambda: models.resnet18(num_classes=10), lambda: TResNet(num_classes=10), (4, 3, 40, 40), "image"),
    "lenet5": (lambda: models.LeNet5(num_classes=10, input_size=28), lambda: TLeNet5(10), (2, 1, 28, 28), "image"),
    "vgg": (lambda: models.VGG("small", dropout=0.0), lambda: TVGG(models.vgg.CONFIGS["small"], dropout=0.0),
            (2, 3, 16, 16), "image"),
    # transposed-conv up-sampling: its (in, out, kH, kW) weights are the layout most easily got wrong
    "unet": (lambda: models.UNet(in_channels=1, num_classes=3, base_channels=4, depth=2),
             lambda: TUNet(in_channels=1, num_classes=3, base_channels=4, depth=2), (2, 1, 16, 16), "pixel"),
}


def _perturbed(sd, seed):
    """Other weights than the twin's, made in numpy (an fcnn ``init`` compiles many small programs)."""
    rs = np.random.RandomState(seed)
    return {k: v + np.float32(0.1) * rs.standard_normal(v.shape).astype(v.dtype)
            if v.dtype == np.float32 and "running_var" not in k else v for k, v in sd.items()}


@pytest.mark.parametrize("name", sorted(TWINS))
def test_same_network_both_ways(name):
    make, make_torch, shape, targets = TWINS[name]
    model, tmodel = make(), make_torch()
    torch.manual_seed(0)
    _randomize_bn(tmodel)
    rs = np.random.RandomState(0)
    x = rs.standard_normal(shape).astype(np.float32)
    y = np.arange(shape[0]) % 3 if targets == "image" else rs.randint(0, 3, (shape[0],) + shape[2:])

    # torch → fcnn: eval outputs (eval_fn compiles once and serves the export check below too)
    params, state = interop.load_state_dict(model, tmodel.state_dict())
    eval_fn = jax.jit(lambda p, s, x: model.apply(p, s, x)[0])
    tmodel.eval()
    with torch.no_grad():
        ref = tmodel(torch.from_numpy(x)).numpy()
    assert _rel(eval_fn(params, state, x), ref) <= 1e-5

    # one training step: gradients of every parameter and the updated buffers
    def loss_fn(p):
        out, new_state = model.apply(p, state, x, train=True, rng=jax.random.key(0))
        return cross_entropy(out, y), new_state

    (loss, new_state), grads = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(params)
    tmodel.train()
    tloss = T.functional.cross_entropy(tmodel(torch.from_numpy(x)), torch.from_numpy(y))
    tloss.backward()
    np.testing.assert_allclose(loss, tloss.item(), rtol=2e-5)
    tgrads = {k: v.grad.numpy() for k, v in tmodel.named_parameters()}
    assert list(interop.state_dict(grads)) == sorted(tgrads)  # jax returns sorted dicts…
    fgrads = interop.state_dict(grads, model=model)  # …the model restores torch's order
    assert list(fgrads) == list(tgrads)
    for k in tgrads:
        assert _rel(fgrads[k], tgrads[k]) <= 1e-4, k
    new_sd = interop.state_dict(params, new_state)
    for k, v in tmodel.state_dict().items():
        if "running" in k or "num_batches" in k:
            assert _rel(new_sd[k], v.numpy()) <= 1e-5, k

    # fcnn → torch: other weights, exported and loaded strictly into a fresh twin
    params, state = interop.load_state_dict(model, _perturbed(new_sd, seed=1))
    sd = interop.state_dict(params, state)
    tmodel = make_torch()
    assert list(sd) == list(tmodel.state_dict())
    tmodel.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()}, strict=True)
    tmodel.eval()
    with torch.no_grad():
        ref = tmodel(torch.from_numpy(x)).numpy()
    assert _rel(eval_fn(params, state, x), ref) <= 1e-5


def test_round_trip_is_exact_and_keeps_torch_order():
    model = models.resnet18(num_classes=5)
    tsd = TResNet(num_classes=5).state_dict()
    params, state = interop.load_state_dict(model, tsd)
    sd = interop.state_dict(params, state)
    assert list(sd) == list(tsd)
    for k, v in tsd.items():
        assert sd[k].dtype == (np.int32 if k.endswith("num_batches_tracked") else np.float32)
        np.testing.assert_array_equal(sd[k], v.numpy())
    p2, s2 = interop.load_state_dict(model, sd)  # numpy in, no torch needed
    for a, b in zip(jax.tree_util.tree_leaves((params, state)), jax.tree_util.tree_leaves((p2, s2))):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


@settings(max_examples=8)
@given(st.sampled_from([np.float64, np.float16, np.float32]), st.booleans())
def test_dtype_conversion(dtype, as_tensor):
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3))
    tm = T.Sequential(T.Conv2d(2, 3, 3), T.BatchNorm2d(3))
    sd = {k: (v.to(getattr(torch, np.dtype(dtype).name)) if v.is_floating_point() else v)
          for k, v in tm.state_dict().items()}
    if not as_tensor:
        sd = {k: v.numpy() for k, v in sd.items()}
    params, state = interop.load_state_dict(model, sd)
    assert params["0"]["weight"].dtype == jnp.float32
    np.testing.assert_array_equal(params["0"]["weight"], np.asarray(sd["0.weight"], np.float32))
    assert state["1"]["num_batches_tracked"].dtype == jax.eval_shape(model.init, jax.random.key(0))[1]["1"]["num_batches_tracked"].dtype


def test_bfloat16_tensors():
    model = nn.Conv2d(1, 2, 1, bias=False)
    w = torch.randn(2, 1, 1, 1).to(torch.bfloat16)
    params, _ = interop.load_state_dict(model, {"weight": w})
    np.testing.assert_array_equal(params["weight"], w.float().numpy())


def test_strict_false_and_error_messages():
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3))
    tsd = T.Sequential(T.Conv2d(2, 3, 3), T.BatchNorm2d(3)).state_dict()
    partial = {k: v for k, v in tsd.items() if not k.startswith("1.")}
    partial["head.weight"] = torch.zeros(2)
    with pytest.raises(RuntimeError) as e:
        interop.load_state_dict(model, partial)
    msg = str(e.value)
    assert 'Missing key(s) in state_dict: "1.weight", "1.bias", "1.running_mean"' in msg
    assert 'Unexpected key(s) in state_dict: "head.weight"' in msg
    # torch says the same about the same dict (num_batches_tracked may be missing in both)
    with pytest.raises(RuntimeError) as te:
        T.Sequential(T.Conv2d(2, 3, 3), T.BatchNorm2d(3)).load_state_dict(partial)
    assert msg.split("\n", 1)[1] == str(te.value).split("\n", 1)[1]

    params, state = interop.load_state_dict(model, partial, strict=False, key=jax.random.key(3))
    np.testing.assert_array_equal(params["0"]["weight"], tsd["0.weight"].numpy())
    ref_p, ref_s = model.init(jax.random.key(3))
    np.testing.assert_array_equal(params["1"]["weight"], ref_p["1"]["weight"])  # kept from init
    np.testing.assert_array_equal(state["1"]["running_var"], ref_s["1"]["running_var"])
    assert int(state["1"]["num_batches_tracked"]) == 0
    assert interop.incompatible_keys(model, partial) == (
        ["1.weight", "1.bias", "1.running_mean", "1.running_var", "1.num_batches_tracked"], ["head.weight"])

    bad = dict(tsd)
    bad["0.weight"] = torch.zeros(3, 2, 5, 5)
    for strict in (True, False):  # as torch, size mismatches raise even when not strict
        with pytest.raises(RuntimeError, match=r"size mismatch for 0.weight: copying a param with shape "
                                               r"torch.Size\(\[3, 2, 5, 5\]\) from checkpoint, the shape in "
                                               r"current model is torch.Size\(\[3, 2, 3, 3\]\)"):
            interop.load_state_dict(model, bad, strict=strict)
    with pytest.raises(TypeError, match="0.weight"):
        interop.load_state_dict(model, {**tsd, "0.weight": "zeros"})
    with pytest.raises(TypeError, match="strict"):
        interop.load_state_dict(model, tsd, strict="yes")


def test_safetensors_reader_matches_the_spec(tmp_path):
    # A file assembled by hand from the format description: u64 header size, JSON, raw LE bytes.
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.array([1, -2], dtype=np.int64)
    header = {"__metadata__": {"format": "pt"},
              "b": {"dtype": "I64", "shape": [2], "data_offsets": [24, 40]},
              "a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}}
    blob = json.dumps(header).encode()
    path = tmp_path / "m.safetensors"
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + a.tobytes() + b.tobytes())
    got = interop.read_safetensors(path)
    np.testing.assert_array_equal(got["a"], a)
    np.testing.assert_array_equal(got["b"], b)

    interop.write_safetensors(tmp_path / "w.safetensors", {"x": a, "y": b}, metadata={"k": "v"})
    raw = (tmp_path / "w.safetensors").read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    assert n % 8 == 0 and json.loads(raw[8:8 + n])["x"] == {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}
    back = interop.read_safetensors(tmp_path / "w.safetensors")
    np.testing.assert_array_equal(back["y"], b)

    (tmp_path / "cut.safetensors").write_bytes(raw[:-4])
    with pytest.raises(ValueError, match="invalid data offsets"):
        interop.read_safetensors(tmp_path / "cut.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\xff" * 16)
    with pytest.raises(ValueError, match="header length"):
        interop.read_safetensors(tmp_path / "junk.safetensors")


def test_load_torchvision_resnet_from_pth_and_safetensors(tmp_path):
    tmodel = TResNet(num_classes=7)
    _randomize_bn(tmodel, seed=1)
    torch.save(tmodel.state_dict(), tmp_path / "resnet18.pth")
    interop.write_safetensors(tmp_path / "resnet18.safetensors", tmodel.state_dict())
    for name in ("resnet18.pth", "resnet18.safetensors"):
        model, params, state = interop.load_torchvision_resnet(tmp_path / name)
        assert isinstance(model, models.ResNet)
        sd = interop.state_dict(params, state)
        for k, v in tmodel.state_dict().items():
            np.testing.assert_array_equal(sd[k], v.numpy())
    # an explicit model; a 34-layer checkpoint is recognised by its block counts
    model, _, _ = interop.load_torchvision_resnet(tmp_path / "resnet18.pth", models.resnet18(num_classes=7))
    torch.save(TResNet(layers=(3, 4, 6, 3), num_classes=3).state_dict(), tmp_path / "r34.pth")
    model, params, _ = interop.load_torchvision_resnet(tmp_path / "r34.pth")
    assert len(model.layer3) == 6 and params["fc"]["weight"].shape == (3, 512)


def test_load_torchvision_resnet_refuses_pickled_code_and_other_files(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"conv1.weight": Evil()}, tmp_path / "evil.pth")
    with pytest.raises(Exception, match="[Ww]eights only load failed|Unsupported"):
        interop.load_torchvision_resnet(tmp_path / "evil.pth")
    torch.save(TLeNet5().state_dict(), tmp_path / "lenet.pth")
    with pytest.raises(ValueError, match="does not look like a torchvision ResNet"):
        interop.load_torchvision_resnet(tmp_path / "lenet.pth")
    with pytest.raises(FileNotFoundError):
        interop.load_torchvision_resnet(tmp_path / "missing.pth")
