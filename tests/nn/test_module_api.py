"""The composite-module API against torch: own parameters and buffers, ModuleDict, reaching into containers,
Sequential.append/extend/insert, the hints for common mistakes, and load_state_dict's dtype choice."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from torchvision_cpu import import_torchvision

torchvision = import_torchvision()
from torchvision.models.convnext import CNBlock as TCNBlock  # noqa: E402

from fcnn import nn, summary  # noqa: E402
from fcnn.interop import torch as fit  # noqa: E402
from oracle import assert_close, check_layer, randn  # noqa: E402

T = torch.nn


class CNBlock(nn.Module):
    """torchvision's ConvNeXt block written in fcnn: a bare parameter beside the children."""

    def __init__(self, dim, layer_scale, stochastic_depth_prob, kernel_size=7):
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim), nn.Permute([0, 2, 3, 1]), nn.LayerNorm(dim, eps=1e-6),
            nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim), nn.Permute([0, 3, 1, 2]))
        self.layer_scale = nn.Parameter((dim, 1, 1), nn.init.constant(layer_scale))
        self.stochastic_depth = nn.StochasticDepth(stochastic_depth_prob, "row")

    def forward(self, ctx, x):
        return ctx.stochastic_depth(ctx.layer_scale * ctx.block(x)) + x


def small_cnblock(dim, layer_scale, stochastic_depth_prob):
    """torchvision's CNBlock with a 3×3 depthwise convolution (a 7×7 one's gradients take seconds to compile)."""
    block = TCNBlock(dim, layer_scale, stochastic_depth_prob)
    block.block[0] = T.Conv2d(dim, dim, 3, padding=1, groups=dim)
    return block


@pytest.fixture(scope="module")
def convnext_pair():
    model = nn.Sequential(CNBlock(8, 0.5, 0.0, 3), nn.Sequential(CNBlock(8, 1e-6, 0.1, 3)))
    twin = T.Sequential(small_cnblock(8, 0.5, 0.0), T.Sequential(small_cnblock(8, 1e-6, 0.1)))
    return model, twin


def test_own_parameter_matches_torch_at_top_level_and_nested(convnext_pair):
    model, twin = convnext_pair
    params, state = model.init(jax.random.key(0))
    np.testing.assert_array_equal(params["0"]["layer_scale"], np.full((8, 1, 1), 0.5, np.float32))
    params["1"]["0"]["layer_scale"] = jnp.asarray(randn((8, 1, 1), seed=4))  # a gradient that isn't ~0
    check_layer(model, twin, randn((2, 8, 6, 5)), params=params, state=state, atol=2e-5)
    check_layer(model[0], small_cnblock(8, 0.5, 0.0), randn((2, 8, 6, 5), seed=1), atol=2e-5)  # top level
    # torch's state_dict order: a module's own parameters before its children's
    assert list(fit.state_dict(params, state, model=model)) == list(twin.state_dict())


def test_own_parameter_through_hooks_and_summary(convnext_pair):
    model, _ = convnext_pair
    params, state = model.init(jax.random.key(0))
    seen = []
    nn.apply_with_hook(model, params, state, jnp.ones((1, 8, 5, 5)), hook=lambda path, *_: seen.append(path))
    assert {"0", "0.block", "0.block.0", "0.stochastic_depth", "1.0", "1.0.block.5"} <= set(seen)
    rows = {r.name: r for r in summary(model, (8, 5, 5)).rows}
    assert rows["0.block.0"].layer_type == "Conv2d" and rows["1.0.block.3"].layer_type == "Linear"
    # the block's row counts its own parameter too; its FLOPs are its children's
    assert rows["0"].params == rows["0.block"].params + 8 == 8 * 3 * 3 + 8 + 16 + 8 * 32 + 32 + 32 * 8 + 8 + 8
    assert rows["0"].flops == rows["0.block"].flops > 0


def test_declaring_a_parameter_keeps_the_childrens_initial_values():
    class Plain(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 3, 3)

    class WithOwn(Plain):
        def __init__(self):
            super().__init__()
            self.gamma = nn.Parameter((3,), nn.init.normal())
            self.count = nn.Buffer((), nn.init.zeros)

    p0, _ = Plain().init(jax.random.key(3))
    p1, s1 = WithOwn().init(jax.random.key(3))
    np.testing.assert_array_equal(p0["conv"]["weight"], p1["conv"]["weight"])
    assert list(p1) == ["gamma", "conv"] and list(s1) == ["count"]
    assert p1["gamma"].shape == (3,) and np.std(np.asarray(p1["gamma"])) > 0


class TCounted(T.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("steps", torch.zeros((), dtype=torch.float32))
        self.register_buffer("mean", torch.zeros(3))
        self.lin = T.Linear(3, 3)

    def forward(self, x):
        y = self.lin(x)
        if self.training:
            self.steps += 1
            self.mean.mul_(0.9).add_(0.1 * y.detach().mean(0))
        return y - self.mean


class Counted(nn.Module):
    def __init__(self):
        super().__init__()
        self.steps = nn.Buffer((), nn.init.zeros)
        self.mean = nn.Buffer((3,), nn.init.zeros)
        self.lin = nn.Linear(3, 3)

    def forward(self, ctx, x):
        y = ctx.lin(x)
        if ctx.train:
            ctx.set_buffer("steps", ctx.steps + 1)
            ctx.set_buffer("mean", 0.9 * ctx.mean + 0.1 * jax.lax.stop_gradient(y).mean(0))
        return y - ctx.mean


@pytest.mark.parametrize("nested", [False, True])
def test_own_buffers_are_state_and_update_as_torch(nested):
    model, twin = Counted(), TCounted()
    if nested:
        model, twin = nn.Sequential(nn.Identity(), model), T.Sequential(T.Identity(), twin)
    _, new_state = check_layer(model, twin, randn((4, 3)), train=True)
    flat = fit.state_dict({}, new_state)
    assert float(flat["1.steps" if nested else "steps"]) == 1.0


def test_set_buffer_keeps_the_declared_shape_and_dtype():
    class Bad(Counted):
        def forward(self, ctx, x):
            ctx.set_buffer("mean", jnp.zeros(2))
            return x

    m = Bad()
    with pytest.raises(ValueError, match=r"buffer 'mean' is \(3,\) float32, got \(2,\) float32"):
        m.apply(*m.init(jax.random.key(0)), jnp.ones((4, 3)))

    class NotABuffer(Counted):
        def forward(self, ctx, x):
            ctx.set_buffer("lin", x)
            return x

    m = NotABuffer()
    with pytest.raises(AttributeError, match=r"'lin' is not a Buffer of the module \(buffers: \['steps', 'mean'\]\)"):
        m.apply(*m.init(jax.random.key(0)), jnp.ones((4, 3)))


# ------------------------------------------------------------------ containers


class TNet(T.Module):
    def __init__(self):
        super().__init__()
        self.blocks = T.ModuleList([T.Sequential(T.Conv2d(3, 3, 3, padding=1), T.BatchNorm2d(3)) for _ in range(3)])
        self.heads = T.ModuleDict({"a": T.Conv2d(3, 2, 1), "b": T.Sequential(T.BatchNorm2d(3), T.Conv2d(3, 2, 1))})

    def forward(self, x):
        for blk in list(self.blocks)[:-1]:
            x = blk(x)
        x = self.blocks[-1][1](self.blocks[2][0](x))
        return sum(head(x) for name, head in self.heads.items())


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.BatchNorm2d(3))
                                     for _ in range(3)])
        self.heads = nn.ModuleDict({"a": nn.Conv2d(3, 2, 1), "b": nn.Sequential(nn.BatchNorm2d(3), nn.Conv2d(3, 2, 1))})

    def forward(self, ctx, x):
        for blk in list(ctx.blocks)[:-1]:
            x = blk(x)
        x = ctx.blocks[-1][1](ctx("blocks.2.0", x))
        return sum(head(x) for name, head in ctx.heads.items())


@pytest.mark.parametrize("train", [False, True])
def test_reaching_into_module_list_and_dict_matches_torch(train):
    _, new_state = check_layer(Net(), TNet(), randn((2, 3, 5, 5)), train=train)
    if train:  # every BatchNorm reached through a container recorded its batch statistics
        counts = {k: int(v) for k, v in fit.state_dict({}, new_state).items() if k.endswith("num_batches_tracked")}
        assert counts == {"blocks.0.1.num_batches_tracked": 1, "blocks.1.1.num_batches_tracked": 1,
                          "blocks.2.1.num_batches_tracked": 1, "heads.b.0.num_batches_tracked": 1}
    seen = []
    model = Net()
    nn.apply_with_hook(model, *model.init(jax.random.key(0)), jnp.ones((1, 3, 4, 4)),
                       hook=lambda path, *_: seen.append(path))
    assert seen == ["blocks.0.0", "blocks.0.1", "blocks.0", "blocks.1.0", "blocks.1.1", "blocks.1", "blocks.2.0",
                    "blocks.2.1", "heads.a", "heads.b.0", "heads.b.1", "heads.b", ""]


class TDenseBlock(T.ModuleDict):
    def __init__(self):
        super().__init__()
        for i in range(3):
            self.add_module(f"denselayer{i + 1}", T.Sequential(T.BatchNorm2d(2 + 2 * i), T.Conv2d(2 + 2 * i, 2, 1)))

    def forward(self, x):
        features = [x]
        for name, layer in self.items():
            features.append(layer(torch.cat(features, 1)))
        return torch.cat(features, 1)


class DenseBlock(nn.ModuleDict):
    def __init__(self):
        super().__init__()
        for i in range(3):
            self.add_module(f"denselayer{i + 1}", nn.Sequential(nn.BatchNorm2d(2 + 2 * i), nn.Conv2d(2 + 2 * i, 2, 1)))

    def forward(self, ctx, x):
        features = [x]
        for name in self:
            features.append(ctx(name, jnp.concatenate(features, 1)))
        return jnp.concatenate(features, 1)


def test_module_dict_subclass_with_forward_matches_torch():
    check_layer(DenseBlock(), TDenseBlock(), randn((2, 2, 3, 3)), train=True)


def test_module_dict_operations_follow_torch():
    ours, theirs = nn.ModuleDict(), T.ModuleDict()
    for md, mod in ((ours, nn), (theirs, T)):
        md["b"] = mod.Conv2d(1, 2, 1)
        md.update([("a", mod.Linear(2, 2)), ("c", mod.ReLU())])
        md.update({"b": mod.Linear(3, 3)})   # replacing keeps the key's position
        md.pop("c")
        md["d"] = mod.Tanh()
        del md["a"]
    assert list(ours) == list(theirs) == ["b", "d"] and len(ours) == 2 and "b" in ours and "a" not in ours
    assert [type(v).__name__ for v in ours.values()] == [type(v).__name__ for v in theirs.values()]
    params, _ = ours.init(jax.random.key(0))
    assert list(fit.state_dict(params, model=ours)) == list(theirs.state_dict())
    with pytest.raises(KeyError, match="'zz'"):
        ours["zz"]
    with pytest.raises(TypeError, match="not a Layer"):
        ours["x"] = 3
    ours.clear()
    assert len(ours) == 0


def test_sequential_append_extend_insert_follow_torch():
    ours, theirs = nn.Sequential(nn.Conv2d(2, 3, 1)), T.Sequential(T.Conv2d(2, 3, 1))
    for seq, mod in ((ours, nn), (theirs, T)):
        assert seq.append(mod.ReLU()) is seq
        seq.extend(mod.Sequential(mod.Conv2d(3, 4, 1), mod.Tanh()))
        seq.insert(1, mod.BatchNorm2d(3))
        seq.insert(-1, mod.Sigmoid())
        seq.insert(len(seq), mod.Identity())
    assert [type(m).__name__ for m in ours] == [type(m).__name__ for m in theirs]
    assert [name for name in ours.children()] == [name for name, _ in theirs.named_children()]
    check_layer(ours, theirs, randn((2, 2, 3, 3)), train=True)
    ml = nn.ModuleList().append(nn.ReLU()).extend([nn.Tanh()])
    ml.insert(0, nn.Sigmoid())
    assert [type(m).__name__ for m in ml] == ["Sigmoid", "ReLU", "Tanh"] and list(ml.children()) == ["0", "1", "2"]
    with pytest.raises(IndexError, match="out of range"):
        ml.insert(5, nn.ReLU())
    with pytest.raises(ValueError, match="named '0', '1'"):
        nn.Sequential({"conv": nn.ReLU()}).insert(0, nn.ReLU())


# ------------------------------------------------------------------ mistakes get a hint


def test_calling_a_layer_directly_names_the_fix():
    class Wrong(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 1)

        def forward(self, ctx, x):
            return self.conv(x)

    m = Wrong()
    with pytest.raises(TypeError, match=r"ctx\.conv\(x\) rather than self\.conv\(x\)"):
        m.apply(*m.init(jax.random.key(0)), jnp.ones((1, 1, 2, 2)))
    with pytest.raises(TypeError, match=r"layer\.apply\(params, state, x"):
        m(jnp.ones((1, 1, 2, 2)))


def test_rng_error_names_the_layers_path():
    model = nn.Sequential(nn.Conv2d(1, 2, 1), nn.Sequential(nn.ReLU(), nn.Dropout(0.5)))
    params, state = model.init(jax.random.key(0))
    with pytest.raises(ValueError, match=r"^1\.1 \(Dropout\): rng is required when train=True"):
        model.apply(params, state, jnp.ones((1, 1, 2, 2)), train=True)
    net = nn.Sequential(CNBlock(4, 1.0, 0.5, 3))
    with pytest.raises(ValueError, match=r"^0\.stochastic_depth \(StochasticDepth\): rng is required"):
        net.apply(*net.init(jax.random.key(0)), jnp.ones((1, 4, 3, 3)), train=True)
    out, _ = net.apply(*net.init(jax.random.key(0)), jnp.ones((1, 4, 3, 3)), train=True, rng=jax.random.key(1))
    assert out.shape == (1, 4, 3, 3)


def test_declaration_errors():
    with pytest.raises(TypeError, match="shape"):
        nn.Parameter("3", nn.init.zeros)
    with pytest.raises(TypeError, match="init must be a function"):
        nn.Parameter((3,), 0.5)

    class Early(nn.Module):
        def __init__(self):
            self.w = nn.Parameter((3,), nn.init.zeros)

    with pytest.raises(AttributeError, match="before Module.__init__"):
        Early()

    class Own(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter((3,), nn.init.ones)

        def forward(self, ctx, x):
            return x * ctx.v

    m = Own()
    with pytest.raises(TypeError, match="cannot assign int to Parameter 'w'"):
        m.w = 3
    with pytest.raises(AttributeError, match=r"no child layer or tensor 'v' \(children: \[\], tensors: \['w'\]\)"):
        m.apply(*m.init(jax.random.key(0)), jnp.ones(3))
    m.w = None  # removes the declaration, as in torch
    assert m.init(jax.random.key(0)) == ({}, {})


# ------------------------------------------------------------------ load_state_dict's dtype


def test_load_state_dict_dtype_choice():
    torch.manual_seed(0)
    twin = T.Sequential(T.Conv2d(2, 3, 3), T.BatchNorm2d(3)).double()
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3))
    sd = twin.state_dict()
    params, state = fit.load_state_dict(model, sd)  # the model's dtypes, as ever
    assert params["0"]["weight"].dtype == jnp.float32
    with pytest.raises(ValueError, match="'0.weight' is float64.*x64"):
        fit.load_state_dict(model, sd, dtype="state_dict")
    params, state = fit.load_state_dict(model, sd, dtype=jnp.bfloat16)
    assert params["1"]["bias"].dtype == jnp.bfloat16 and state["1"]["running_var"].dtype == jnp.bfloat16
    assert state["1"]["num_batches_tracked"].dtype == jnp.int32
    half = {k: (v.half() if v.is_floating_point() else v) for k, v in sd.items()}
    params, _ = fit.load_state_dict(model, half, dtype="state_dict")
    assert params["0"]["weight"].dtype == jnp.float16
    with pytest.raises(TypeError, match="floating dtype"):
        fit.load_state_dict(model, sd, dtype=jnp.int32)
    with pytest.raises(ValueError, match="x64"):
        fit.load_state_dict(model, sd, dtype=jnp.float64)
    with jax.enable_x64(True):
        params, state = fit.load_state_dict(model, sd, dtype="state_dict")
        assert params["0"]["weight"].dtype == jnp.float64 and state["1"]["running_mean"].dtype == jnp.float64
        x = randn((2, 2, 5, 5), dtype=np.float64)
        out, _ = model.apply(params, state, jnp.asarray(x))
        assert out.dtype == jnp.float64
        assert_close(out, twin.eval()(torch.from_numpy(x)), rtol=1e-12, atol=1e-12)


def test_own_parameters_are_part_of_the_params_check():
    model = nn.Sequential(CNBlock(4, 1.0, 0.0, 3))
    params, state = model.init(jax.random.key(0))
    del params["0"]["layer_scale"]
    with pytest.raises(ValueError, match=r"missing params entry '0\.layer_scale' \(floating, shape \(4, 1, 1\)\)"):
        model.apply(params, state, jnp.ones((1, 4, 3, 3)))
    params["0"]["layer_scale"] = jnp.ones((4,))
    with pytest.raises(ValueError, match=r"'0\.layer_scale' has shape \(4,\), expected \(4, 1, 1\)"):
        model.apply(params, state, jnp.ones((1, 4, 3, 3)))


def test_state_dict_order_is_torchs_per_module():
    # per module: its own parameters, its own buffers, then its children in order, a buffer-only child included
    model = nn.Sequential(nn.BatchNorm2d(3, affine=False), Counted(), nn.Conv2d(3, 3, 1))
    twin = T.Sequential(T.BatchNorm2d(3, affine=False), TCounted(), T.Conv2d(3, 3, 1))
    params, state = model.init(jax.random.key(0))
    assert list(fit.state_dict(params, state, model=model)) == list(twin.state_dict())
