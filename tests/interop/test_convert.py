"""fcnn.interop.torch.convert: torch modules become fcnn source + weights with torch's numbers.

Every comparison is against torch: eval outputs, train-mode outputs, updated BatchNorm
buffers and the gradient of every parameter, with fcnn's float32 judged against torch in
float64 (it must be as close to it as torch's own float32 is). Each torch model is built
and converted once per module; each fcnn function is compiled once.
"""

import copy
import os
import pathlib
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from torchvision_cpu import import_torchvision

torchvision = import_torchvision()

import convert_nets  # noqa: E402
from fcnn import cli  # noqa: E402
from fcnn.interop import torch as fit  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _randomize(module, seed=0):
    """Non-trivial BatchNorm affine params and running statistics (torch initialises them to 1/0)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.weight.copy_(1 + 0.2 * torch.randn(m.weight.shape, generator=g))
                m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=g))
                m.running_mean.copy_(0.2 * torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
    return module


def _no_dropout(module):
    """p = 0 for dropout and stochastic depth, so that train mode is deterministic on both sides."""
    for m in module.modules():
        if isinstance(m, (torch.nn.Dropout, torchvision.ops.StochasticDepth)):
            m.p = 0.0
    return module


def assert_as_close_as_torch(got, t32, t64, what, slack=8.0):
    """fcnn's float32 ``got`` is within ``slack`` times torch float32's distance from the float64 reference."""
    got, t32, t64 = (np.asarray(a, np.float64) for a in (got, t32, t64))
    assert got.shape == t64.shape, (what, got.shape, t64.shape)
    scale = max(np.abs(t64).max(), 1e-30)
    err, torch_err = np.abs(got - t64).max() / scale, np.abs(t32 - t64).max() / scale
    assert err <= slack * torch_err + 2e-6, f"{what}: fcnn error {err:.3g}, torch float32 error {torch_err:.3g}"


def _torch_step(module, x, w):
    """Train-mode output, gradients of sum(out * w) and the buffers after the step."""
    module.train()
    for p in module.parameters():
        p.grad = None
    out = module(x)
    (out * w).sum().backward()
    grads = {k: p.grad.detach().numpy().copy() for k, p in module.named_parameters()}
    buffers = {k: b.detach().numpy().copy() for k, b in module.named_buffers() if b.is_floating_point()}
    return out.detach().numpy(), grads, buffers


def _flat(tree, prefix=""):
    out = {}
    for k, v in tree.items():
        key = f"{prefix}.{k}" if prefix else k
        out.update(_flat(v, key) if isinstance(v, dict) else {key: v})
    return out


class Converted:
    """A torch model, its float64 twin and the fcnn conversion, with one compiled eval and train step."""

    def __init__(self, module, x):
        self.t32 = module.eval()
        self.t64 = copy.deepcopy(module).double()
        self.x = x
        self.model, self.params, self.state = fit.convert(module, x)
        model = self.model
        self.eval_fn = jax.jit(lambda p, s, x: model.apply(p, s, x, train=False)[0])

        def loss(p, s, x, w):
            out, new_state = model.apply(p, s, x, train=True, rng=jax.random.key(0))
            return jnp.sum(out * w), (out, new_state)

        self.train_fn = jax.jit(jax.grad(loss, has_aux=True))

    def check_eval(self):
        with torch.no_grad():
            r32, r64 = self.t32.eval()(self.x).numpy(), self.t64.eval()(self.x.double()).numpy()
        got = self.eval_fn(self.params, self.state, jnp.asarray(self.x.numpy()))
        assert_as_close_as_torch(got, r32, r64, "eval output")

    def check_train(self):
        out = self.t32(self.x)
        w = torch.from_numpy(np.random.RandomState(1).standard_normal(tuple(out.shape)).astype(np.float32))
        o32, g32, b32 = _torch_step(self.t32, self.x, w)
        o64, g64, b64 = _torch_step(self.t64, self.x.double(), w.double())
        grads, (out, new_state) = self.train_fn(self.params, self.state, jnp.asarray(self.x.numpy()),
                                                jnp.asarray(w.numpy()))
        assert_as_close_as_torch(out, o32, o64, "train output")
        grads, new_state = _flat(grads), _flat(new_state)
        assert sorted(grads) == sorted(g64)
        for k in g64:
            assert_as_close_as_torch(grads[k], g32[k], g64[k], f"gradient of {k}")
        for k in b64:
            assert_as_close_as_torch(new_state[k], b32[k], b64[k], f"buffer {k}")


def _keys_match(conv, module):
    keys = set(_flat(conv.params)) | set(_flat(conv.state))
    assert keys == set(module.state_dict())
    for k, v in module.state_dict().items():
        got = (_flat(conv.params) | _flat(conv.state))[k]
        assert tuple(got.shape) == tuple(v.shape), k


# ----------------------------------------------------------------------------- torchvision models

@pytest.fixture(scope="module")
def resnet18():
    # Every torchvision builder and timm's CNN families are checked by test_convert_zoo.py (marked sweep);
    # the default suite keeps one (depthwise networks' gradients take minutes to compile on the CPU).
    torch.manual_seed(0)
    module = _randomize(torchvision.models.resnet18(num_classes=10))
    conv = Converted(module, torch.randn(2, 3, 32, 32))
    _keys_match(conv, module)
    return conv


def test_torchvision_resnet18_eval(resnet18):
    resnet18.check_eval()


@pytest.mark.sweep  # its gradient compiles for a minute on 2 cores; the glue network's train check stays default
def test_torchvision_resnet18_train_gradients_and_buffers(resnet18):
    resnet18.check_train()


# ----------------------------------------------------------------------------- glue between modules

@pytest.fixture(scope="module")
def glue():
    torch.manual_seed(0)
    module = _randomize(convert_nets.GlueNet())
    return Converted(module, torch.randn(3, 3, 16, 16))


def test_glue_matches_torch(glue):
    _keys_match(glue, glue.t32)
    glue.check_eval()
    glue.check_train()


def test_glue_source_reads_like_fcnn(glue):
    src = fit.source_of(glue.model)
    assert "class Branch(nn.Module):" in src and "class GlueNet(nn.Module):" in src
    assert "def forward(self, ctx, x):" in src
    assert "mul = ctx.scale * relu" in src  # the block's own parameter
    assert "ctx.blocks[0](" in src and "ctx.heads['a'](" in src  # ModuleList / ModuleDict children
    assert "jnp.split(stem, 2, axis=1)" in src and "jnp.concatenate(" in src
    assert "torch" not in src.split('"""', 2)[2]  # nothing after the docstring mentions torch


def test_jit_grad_vmap_jvp_on_converted_model(glue):
    model, params, state = glue.model, glue.params, glue.state
    x = jnp.asarray(glue.x.numpy())
    batched = glue.eval_fn(params, state, x)  # jit (train-mode jit and grad: test_glue_matches_torch)
    f = lambda xx: model.apply(params, state, xx)[0]  # noqa: E731
    v = jax.random.normal(jax.random.key(1), x.shape)
    u = jax.random.normal(jax.random.key(2), batched.shape)

    @jax.jit  # one program: vmap, forward mode and reverse mode together
    def transformed(x, v, u):
        per = jax.vmap(lambda xi: f(xi[None])[0])(x)
        jv = jax.jvp(f, (x,), (v,))[1]
        jtu = jax.vjp(f, x)[1](u)[0]
        return per, jnp.vdot(jv, u), jnp.vdot(v, jtu)

    per, jvu, vjtu = transformed(x, v, u)
    np.testing.assert_allclose(per, batched, rtol=1e-5, atol=1e-6)  # per-example == batched
    np.testing.assert_allclose(jvu, vjtu, rtol=1e-4)  # <J v, u> == <v, J^T u>


def test_dropout_written_as_glue_follows_the_train_flag():
    module = convert_nets.DropNet()
    x = torch.randn(4, 6)
    model, params, state = fit.convert(module, x)
    assert "if ctx.train:" in fit.source_of(model)
    xj = jnp.asarray(x.numpy())
    ref, _ = model.apply(params, state, xj, train=False)
    with torch.no_grad():
        np.testing.assert_allclose(ref, module.eval()(x).numpy(), rtol=1e-5, atol=1e-6)
    out, _ = model.apply(params, state, xj, train=True, rng=jax.random.key(3))
    kept = np.asarray(out) != 0
    assert 0.3 < kept.mean() < 0.7  # p = 0.5 of 256 values
    np.testing.assert_allclose(np.asarray(out)[kept], 2 * np.asarray(ref)[kept], rtol=1e-6)
    with pytest.raises(ValueError, match="key is required"):
        model.apply(params, state, xj, train=True)


def test_unsupported_things_are_listed_together_with_their_paths():
    with pytest.raises(fit.ConversionError) as info:
        fit.convert(convert_nets.Unsupported(), torch.randn(1, 3, 8, 8))
    err = info.value
    assert isinstance(err, ValueError)
    paths = {path: what for path, what in err.unsupported}
    assert set(paths) == {"", "gate", "inner.1"}, err.unsupported
    msg = str(err)
    assert "4 thing(s)" in msg
    assert "<root>: function torch.roll" in msg and "<root>: tensor method .cumsum()" in msg
    assert "inner.1: torch.nn.modules.activation.Softmin (no fcnn layer)" in msg
    assert "gate: convert_nets.DataDependent (torch.fx cannot trace it" in msg


def test_bad_arguments():
    with pytest.raises(TypeError, match="torch.nn.Module"):
        fit.convert(lambda x: x, torch.randn(1))
    with pytest.raises(TypeError, match="example_input"):
        fit.convert(torch.nn.ReLU(), np.ones(3))


# ----------------------------------------------------------------------------- saved source, without torch

CHILD = textwrap.dedent("""
    import sys
    sys.modules["torch"] = None  # any 'import torch' now raises ImportError
    import numpy as np
    import jax.numpy as jnp
    from fcnn.interop import torch as fit

    model, params, state = fit.load_converted(sys.argv[1])
    import jax
    out = jax.jit(lambda p, s, x: model.apply(p, s, x, train=False)[0])(params, state, np.load(sys.argv[2]))
    np.save(sys.argv[3], np.asarray(out))
    assert sys.modules["torch"] is None and "torchvision" not in sys.modules
""")


def test_saved_source_and_weights_run_without_torch(glue, tmp_path):
    out_dir = fit.save_converted(tmp_path / "glue", glue.model, glue.params, glue.state)
    assert sorted(p.name for p in out_dir.iterdir()) == ["model.py", "model.safetensors"]
    x = glue.x.numpy()
    np.save(tmp_path / "x.npy", x)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    subprocess.run([sys.executable, "-c", CHILD, str(out_dir), str(tmp_path / "x.npy"), str(tmp_path / "y.npy")],
                   check=True, env=env, timeout=300, cwd=tmp_path)
    expected = glue.eval_fn(glue.params, glue.state, jnp.asarray(x))
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), np.asarray(expected))
    # in this process too: same source, same weights
    model, params, state = fit.load_converted(out_dir)
    assert fit.source_of(model) == fit.source_of(glue.model)
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), params, glue.params))


# ----------------------------------------------------------------------------- fcnn convert

def test_cli_convert(tmp_path, capsys):
    code = cli.main(["convert", "convert_nets:tiny_net", "--out", str(tmp_path / "g"), "--input", "3,8,8"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "model.py" in out and "model.safetensors" in out and "max relative difference" in out
    model, params, state = fit.load_converted(tmp_path / "g")
    assert "nn.Sequential(" in fit.source_of(model)
    torch.manual_seed(0)
    module = convert_nets.tiny_net().eval()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        np.testing.assert_allclose(model.apply(params, state, jnp.asarray(x.numpy()))[0], module(x).numpy(),
                                   rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("argv, message", [
    (["convert", "convert_nets", "--out", "x"], "MODULE:BUILDER"),
    (["convert", "no_such_module_xyz:f", "--out", "x"], "no_such_module_xyz"),
    (["convert", "convert_nets:nothing", "--out", "x"], "nothing"),
    (["convert", "convert_nets:glue_net", "--out", "x", "--input", "3,a"], "--input"),
])
def test_cli_convert_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 2
    assert message in capsys.readouterr().err
