"""Every layer refuses params/state that are not its own, with the key, the shape and the path.

The oracle is torch's ``load_state_dict(strict=True)``: an fcnn layer accepts the
parameters and buffers of a torch module exactly when its torch twin accepts
that module's state_dict (fcnn additionally refuses an integer array where a
floating one belongs, which torch would cast).
"""

import itertools
import re
from collections import OrderedDict

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from fcnn import nn
from fcnn.interop.torch import _nest as nest
from fcnn.nn import module as fmodule

# family: (input shape, [(name, fcnn layer, torch module[, own input shape])]); every pair in a family is tried.
FAMILIES = {
    "conv2d": ((2, 4, 8, 8), [
        ("3x3", lambda: nn.Conv2d(4, 6, 3), lambda: torch.nn.Conv2d(4, 6, 3)),
        ("5x5", lambda: nn.Conv2d(4, 6, 5), lambda: torch.nn.Conv2d(4, 6, 5)),
        ("nobias", lambda: nn.Conv2d(4, 6, 3, bias=False), lambda: torch.nn.Conv2d(4, 6, 3, bias=False)),
        ("groups", lambda: nn.Conv2d(4, 6, 3, groups=2), lambda: torch.nn.Conv2d(4, 6, 3, groups=2)),
        ("out4", lambda: nn.Conv2d(4, 4, 3), lambda: torch.nn.Conv2d(4, 4, 3)),
        ("1d", lambda: nn.Conv1d(4, 6, 3), lambda: torch.nn.Conv1d(4, 6, 3), (2, 4, 8)),
    ]),
    "conv_transpose": ((2, 4, 5, 5), [
        ("3x3", lambda: nn.ConvTranspose2d(4, 6, 3), lambda: torch.nn.ConvTranspose2d(4, 6, 3)),
        ("in2", lambda: nn.ConvTranspose2d(2, 6, 3), lambda: torch.nn.ConvTranspose2d(2, 6, 3), (2, 2, 5, 5)),
        ("nobias", lambda: nn.ConvTranspose2d(4, 6, 3, bias=False),
         lambda: torch.nn.ConvTranspose2d(4, 6, 3, bias=False)),
    ]),
    "linear": ((3, 6), [
        ("6to3", lambda: nn.Linear(6, 3), lambda: torch.nn.Linear(6, 3)),
        ("4to3", lambda: nn.Linear(4, 3), lambda: torch.nn.Linear(4, 3), (3, 4)),
        ("nobias", lambda: nn.Linear(6, 3, bias=False), lambda: torch.nn.Linear(6, 3, bias=False)),
    ]),
    "batch_norm": ((3, 4, 5, 5), [
        ("default", lambda: nn.BatchNorm2d(4), lambda: torch.nn.BatchNorm2d(4)),
        ("c5", lambda: nn.BatchNorm2d(5), lambda: torch.nn.BatchNorm2d(5), (3, 5, 4, 4)),
        ("noaffine", lambda: nn.BatchNorm2d(4, affine=False), lambda: torch.nn.BatchNorm2d(4, affine=False)),
        ("notrack", lambda: nn.BatchNorm2d(4, track_running_stats=False),
         lambda: torch.nn.BatchNorm2d(4, track_running_stats=False)),
        ("instance", lambda: nn.InstanceNorm2d(4, affine=True, track_running_stats=True),
         lambda: torch.nn.InstanceNorm2d(4, affine=True, track_running_stats=True)),
        ("group", lambda: nn.GroupNorm(2, 4), lambda: torch.nn.GroupNorm(2, 4)),
    ]),
    "layer_norm": ((3, 4, 5), [
        ("45", lambda: nn.LayerNorm((4, 5)), lambda: torch.nn.LayerNorm((4, 5))),
        ("5", lambda: nn.LayerNorm(5), lambda: torch.nn.LayerNorm(5), (3, 2, 5)),
        ("nobias", lambda: nn.LayerNorm((4, 5), bias=False), lambda: torch.nn.LayerNorm((4, 5), bias=False)),
        ("prelu", lambda: nn.PReLU(4), lambda: torch.nn.PReLU(4)),
        ("prelu1", lambda: nn.PReLU(), lambda: torch.nn.PReLU()),
        ("relu", lambda: nn.ReLU(), lambda: torch.nn.ReLU()),
    ]),
}

PAIRS = [pytest.param(family, a, b, id=f"{family}-{a[0]}<-{b[0]}")
         for family, (_, members) in FAMILIES.items() for a, b in itertools.product(members, repeat=2)]


def torch_params_state(module):
    """A torch module's parameters and buffers as fcnn's (params, state) trees of jax arrays."""
    params = {k: jnp.asarray(v.detach().numpy()) for k, v in module.named_parameters()}
    state = {k: jnp.asarray(v.numpy()) for k, v in module.named_buffers()}
    return nest(params), nest(state)


def torch_accepts(module, other):
    try:
        module.load_state_dict(other.state_dict())
    except RuntimeError:
        return False
    return True


@pytest.mark.parametrize("family,ours,theirs", PAIRS)
def test_layer_accepts_exactly_what_torch_load_state_dict_accepts(family, ours, theirs):
    shape = ours[3] if len(ours) > 3 else FAMILIES[family][0]
    layer, module = ours[1](), ours[2]()
    other = theirs[2]()
    params, state = torch_params_state(other)
    x = jnp.zeros(shape, jnp.float32)
    if torch_accepts(module, other):
        out = jax.eval_shape(lambda p, s: layer.apply(p, s, x, train=True)[0], params, state)
        assert out.shape == tuple(module(torch.zeros(shape)).shape)
    else:
        with pytest.raises(ValueError, match=f"^{type(layer).__name__}: params/state do not match"):
            layer.apply(params, state, x, train=True)


def leaves(tree, prefix=()):
    for k, v in tree.items():
        if isinstance(v, dict):
            yield from leaves(v, prefix + (k,))
        else:
            yield prefix + (k,), v


def replaced(tree, path, value):
    """A copy of ``tree`` with the entry at ``path`` replaced (``value=None`` removes it)."""
    tree = dict(tree)
    if len(path) == 1:
        if value is None:
            del tree[path[0]]
        else:
            tree[path[0]] = value
    else:
        tree[path[0]] = replaced(tree[path[0]], path[1:], value)
    return tree


LAYERS = [
    pytest.param(member[1], member[3] if len(member) > 3 else shape, id=f"{family}-{member[0]}")
    for family, (shape, members) in FAMILIES.items() for member in members
] + [pytest.param(lambda: nn.Sequential(OrderedDict(conv=nn.Conv2d(4, 4, 3, padding=1), bn=nn.BatchNorm2d(4),
                                                    block=nn.Sequential(nn.ReLU(), nn.Conv2d(4, 2, 1)))),
                  (2, 4, 6, 6), id="sequential")]


@pytest.mark.parametrize("make,shape", LAYERS)
def test_every_wrong_entry_is_named(make, shape):
    layer = make()
    params, state = layer.init(jax.random.key(0))
    x = jnp.zeros(shape)
    name = type(layer).__name__
    for which, tree in (("params", params), ("state", state)):
        for path, value in leaves(tree):
            dotted = ".".join(path)
            other = lambda t: (t, state) if which == "params" else (params, t)  # noqa: E731
            missing = other(replaced(tree, path, None))
            with pytest.raises(ValueError, match=f"^{name}:(.|\\n)*missing {which} entry '{dotted}'"):
                layer.apply(*missing, x, train=True)
            bigger = jnp.zeros(value.shape + (2,), value.dtype)
            with pytest.raises(ValueError, match=re.escape(f"{which} entry '{dotted}' has shape {value.shape + (2,)}, "
                                                           f"expected {value.shape}")):
                layer.apply(*other(replaced(tree, path, bigger)), x, train=True)
            wrong_kind = jnp.zeros(value.shape, jnp.float32 if jnp.issubdtype(value.dtype, jnp.integer)
                                   else jnp.int32)
            with pytest.raises(ValueError, match=f"{which} entry '{dotted}' has dtype"):
                layer.apply(*other(replaced(tree, path, wrong_kind)), x, train=True)
            if len(path) > 1:  # in a composite, the message names the child layer the entry belongs to
                with pytest.raises(ValueError, match=f"in \\w+ '{'.'.join(path[:-1])}'"):
                    layer.apply(*missing, x, train=True)
        extra = replaced(tree, ("surplus",), jnp.zeros(3))
        with pytest.raises(ValueError, match=f"unexpected {which} entry 'surplus'"):
            layer.apply(*((extra, state) if which == "params" else (params, extra)), x, train=True)
    if params or state:
        for empty in ({}, None):
            with pytest.raises(ValueError, match="apply called before init"):
                layer.apply(empty, empty, x)


@pytest.mark.parametrize("make,shape", LAYERS)
def test_train_must_be_a_bool_and_rng_a_key(make, shape):
    layer = make()
    params, state = layer.init(jax.random.key(0))
    x = jnp.zeros(shape)
    for train in ("yes", 1, np.bool_(True), None):
        with pytest.raises(TypeError, match=f"^{type(layer).__name__}: train must be a Python bool"):
            layer.apply(params, state, x, train=train)
    with pytest.raises(TypeError, match="must be static"):
        jax.jit(layer.apply)(params, state, x, train=True)
    for rng in (3, "key", np.float32(1.0), jnp.zeros(2, jnp.float32)):
        with pytest.raises(TypeError, match=f"^{type(layer).__name__}: rng must be None or a PRNG key"):
            layer.apply(params, state, x, train=True, rng=rng)


def test_mixed_precision_params_and_legacy_keys_are_accepted():
    layer = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Dropout(0.5))
    params, state = layer.init(jax.random.key(0))
    half = jax.tree.map(lambda a: a.astype(jnp.bfloat16), params)
    x = jnp.ones((2, 3, 6, 6), jnp.bfloat16)
    y, _ = jax.eval_shape(lambda p, x: layer.apply(p, state, x, train=True, rng=jax.random.PRNGKey(1)), half, x)
    assert y.dtype == jnp.bfloat16
    # state of int64 (loaded from torch) in place of int32: the same kind
    state64 = jax.tree.map(lambda a: np.asarray(a, np.int64) if a.dtype == jnp.int32 else a, state)
    jax.eval_shape(lambda x: layer.apply(params, state64, x, train=False), x.astype(jnp.float32))


def test_empty_sub_dicts_count_as_absent():
    layer = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    params, state = layer.init(jax.random.key(0))
    layer.apply({**params, "1": {}}, {"0": {}, "1": {}}, jnp.ones((1, 3, 5, 5)))


def test_misnamed_entry_of_a_sequential_is_refused_with_its_path():
    layer = nn.Sequential(OrderedDict(conv=nn.Conv2d(3, 4, 3), bn=nn.BatchNorm2d(4)))
    params, state = layer.init(jax.random.key(0))
    bad = {"conv": params["conv"], "norm": params["bn"]}
    with pytest.raises(ValueError) as info:
        layer.apply(bad, state, jnp.ones((2, 3, 5, 5)), train=True)
    message = str(info.value)
    assert "unexpected params entry 'norm.weight'" in message
    assert "missing params entry 'bn.weight' (floating, shape (4,)) (in BatchNorm2d 'bn')" in message
    # the same through the public hook entry point, and an array where a dict belongs
    with pytest.raises(ValueError, match="params entry 'conv' is an array, expected a dict"):
        nn.apply_with_hook(layer, {**params, "conv": jnp.zeros(3)}, state, jnp.ones((2, 3, 5, 5)))
    with pytest.raises(ValueError, match="params entry 'bn.weight' is a dict, expected an array"):
        layer.apply({**params, "bn": {"weight": {"x": jnp.zeros(4)}, "bias": params["bn"]["bias"]}}, state,
                    jnp.ones((2, 3, 5, 5)))
    with pytest.raises(TypeError, match="Sequential: params must be a dict"):
        layer.apply([params], state, jnp.ones((2, 3, 5, 5)))


def test_the_spec_follows_children_added_after_the_first_apply():
    layer = nn.Sequential(nn.Linear(4, 4))
    params, state = layer.init(jax.random.key(0))
    layer.apply(params, state, jnp.ones((2, 4)))
    layer.add_module("1", nn.Linear(4, 2))
    with pytest.raises(ValueError, match="missing params entry '1.weight'"):
        layer.apply(params, state, jnp.ones((2, 4)))
    params, state = layer.init(jax.random.key(0))
    assert layer.apply(params, state, jnp.ones((2, 4)))[0].shape == (2, 2)


@pytest.mark.parametrize("make,shape", [LAYERS[0], LAYERS[-1]])
def test_init_records_the_spec_that_param_spec_computes(make, shape, monkeypatch):
    layer = make()
    params, state = layer.init(jax.random.key(0))
    recorded = layer.__dict__["_fcnn_param_spec"]
    traced = []
    real = jax.eval_shape
    monkeypatch.setattr(jax, "eval_shape", lambda *a, **k: (traced.append(a[0]), real(*a, **k))[1])
    layer.apply(params, state, jnp.ones(shape))
    assert traced == []  # apply's check read the spec init recorded
    object.__delattr__(layer, "_fcnn_param_spec")
    layer.apply(params, state, jnp.ones(shape))
    assert len(traced) == 1 and layer.__dict__["_fcnn_param_spec"] == recorded


def test_a_model_built_from_blocks_records_the_spec_of_its_whole_tree():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Sequential(nn.ReLU(), nn.Conv2d(4, 2, 1)))
    model.init(jax.random.key(0))
    recorded = model.__dict__["_fcnn_param_spec"]
    spec = model.param_spec()
    assert recorded == (fmodule._spec_token(model), (fmodule._flat_spec(spec[0]), fmodule._flat_spec(spec[1])))
    assert ("2", "1", "weight") in recorded[1][0] and ("1", "running_mean") in recorded[1][1]


class Scaled(nn.Layer):
    """A layer whose parameter's shape is not known to init: it declares its spec itself."""

    def __init__(self, n=None):
        self.n = n

    def init(self, key):
        return {"scale": jnp.ones((self.n or 1,))}, {}

    def param_spec(self):
        if self.n is None:
            return None  # any dicts; the layer checks for itself
        return {"scale": jax.ShapeDtypeStruct((self.n,), jnp.float32)}, {}

    def apply(self, params, state, x, *, train=False, rng=None):
        return x * params["scale"], state


class ScaledTwice(Scaled):
    calls = 0

    def apply(self, params, state, x, *, train=False, rng=None):
        y, state = super().apply(params, state, x, train=train, rng=rng)
        return 2 * y, state


def test_a_layer_declares_its_own_spec_and_super_apply_checks_once(monkeypatch):
    x = jnp.ones((3, 4))
    assert Scaled().apply({"scale": jnp.ones((4,))}, {}, x)[0].shape == (3, 4)
    scaled = Scaled(4)
    scaled.init(jax.random.key(0))  # records nothing: the layer's own param_spec states its spec
    assert "_fcnn_param_spec" not in scaled.__dict__
    with pytest.raises(ValueError, match="'scale' has shape \\(3,\\), expected \\(4,\\)"):
        Scaled(4).apply({"scale": jnp.ones((3,))}, {}, x)
    seen = []
    real = fmodule.check_apply_args
    monkeypatch.setattr(fmodule, "check_apply_args", lambda *a: (seen.append(type(a[0])), real(*a))[1])
    layer = ScaledTwice(4)
    assert float(layer.apply({"scale": jnp.full((4,), 3.0)}, {}, x)[0][0, 0]) == 6.0
    assert seen == [ScaledTwice]
    # children run by a composite are covered by the composite's check of the whole tree
    seen.clear()
    model = nn.Sequential(ScaledTwice(4), nn.Sequential(nn.ReLU(), Scaled(4)))
    model.apply(*model.init(jax.random.key(0)), x)
    assert seen == [nn.Sequential]


def test_every_layer_class_is_checked():
    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    classes = [c for c in subclasses(nn.Layer) if c.__module__.startswith("fcnn.")]
    assert len(classes) > 40
    for cls in classes:
        assert cls.apply is nn.Layer.apply or hasattr(cls.apply, "__wrapped__"), cls


@pytest.mark.parametrize("make,shape", [LAYERS[0], LAYERS[-1]])
def test_checks_leave_the_compiled_program_unchanged(make, shape):
    layer = make()
    params, state = layer.init(jax.random.key(0))
    x = jnp.ones(shape)

    def unchecked(p, s, x):
        return fmodule._apply(layer, p, s, x, train=True)

    checked = jax.jit(layer.apply, static_argnames="train").lower(params, state, x, train=True).as_text()
    assert checked == jax.jit(unchecked).lower(params, state, x).as_text().replace("jit_unchecked", "jit_apply")
