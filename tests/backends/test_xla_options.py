"""fcnn.xla: the compiler options fcnn's compiled steps use, and fcnn.jit."""

import re

import jax
import jax.numpy as jnp
import optax
import pytest
import torch

import fcnn
from fcnn import functional as F
from fcnn import nn, train, xla
from oracle import assert_close, randn, to_torch


def _conv_grads(x, w):
    return jax.grad(lambda x, w: jnp.sum(jnp.tanh(F.conv2d(x, w, padding=1)) ** 2), argnums=(0, 1))(x, w)


def _ynnpack_convolutions(compiled) -> int:
    """How many convolutions XLA:CPU handed to YNNPACK (fusions of kind ``__ynn_fusion``)."""
    text = compiled.as_text()
    bodies, name = {}, None
    for line in text.splitlines():
        head = re.match(r"^(?:ENTRY )?%([\w.\-]+) \(", line)
        if head:
            name = head.group(1)
        if name is not None:
            bodies[name] = bodies.get(name, "") + line + "\n"
    called = [re.search(r"calls=%([\w.\-]+)", line).group(1)
              for line in text.splitlines() if '"kind":"__ynn_fusion"' in line]
    return sum(" convolution(" in bodies[c] for c in called)


@pytest.fixture(scope="module")
def conv_case():
    # 32 channels: XLA:CPU's default sends this convolution to YNNPACK
    return jnp.asarray(randn((2, 32, 6, 6), seed=0)), jnp.asarray(randn((32, 32, 3, 3), seed=1) * 0.1)


def test_options_move_convolutions_off_ynnpack_on_cpu(conv_case):
    if jax.default_backend() != "cpu" or not xla.compiler_options():
        pytest.skip("the options only exist for XLA:CPU with a jaxlib that knows them")
    default = jax.jit(_conv_grads).lower(*conv_case).compile()
    ours = fcnn.jit(_conv_grads).lower(*conv_case).compile()
    assert _ynnpack_convolutions(default) >= 2  # otherwise the options have nothing left to do
    assert _ynnpack_convolutions(ours) == 0
    assert " convolution(" in ours.as_text()


def test_jit_values_and_gradients_match_torch(conv_case):
    x, w = conv_case
    gx, gw = fcnn.jit(_conv_grads)(x, w)
    tx, tw = to_torch(x, requires_grad=True), to_torch(w, requires_grad=True)
    torch.sum(torch.tanh(torch.nn.functional.conv2d(tx, tw, padding=1)) ** 2).backward()
    assert_close(gx, tx.grad, 1e-4, 1e-4, "input gradient")
    assert_close(gw, tw.grad, 1e-4, 1e-4, "weight gradient")


def test_options_per_platform_and_precedence():
    assert xla.compiler_options("gpu") == {} and xla.compiler_options("tpu") == {}
    cpu = xla.compiler_options("cpu")
    assert cpu is not xla.compiler_options("cpu")  # a fresh dict: callers may change theirs
    fn = fcnn.jit(lambda v: v * 2, compiler_options={"xla_cpu_enable_fast_math": False})
    assert float(fn(jnp.float32(3))) == 6.0


def test_unknown_option_falls_back_to_defaults(monkeypatch):
    monkeypatch.setattr(xla, "_CPU", {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_NO_SUCH_THING",
                                      "xla_cpu_no_such_option": True,
                                      "xla_cpu_enable_fast_math": False})
    xla._supported_cpu_options.cache_clear()
    try:
        assert xla.compiler_options("cpu") == {"xla_cpu_enable_fast_math": False}  # only the unknown ones dropped
        assert float(fcnn.jit(lambda v: v + 1, platform="cpu")(jnp.float32(1))) == 2.0
    finally:
        xla._supported_cpu_options.cache_clear()


def _independent_chains(x, ws):
    return sum(jnp.sum(jnp.tanh(jnp.tanh(x @ w) @ w.T) ** 2) for w in ws)


_MEMORY_SCHEDULE = {"xla_cpu_scheduler_type": "CPU_SCHEDULER_TYPE_MEMORY_OPTIMIZED"}


def test_options_schedule_for_memory_on_cpu():
    if jax.default_backend() != "cpu":
        pytest.skip("the option only exists for XLA:CPU")
    try:  # asked of XLA itself, not of fcnn.xla, so that dropping the option from fcnn fails this test
        jax.jit(lambda v: v + 1, compiler_options=_MEMORY_SCHEDULE).lower(jnp.float32(0)).compile()
    except Exception:
        pytest.skip("this jaxlib does not know XLA:CPU's memory-optimized scheduler")
    # eight independent chains: XLA's default schedule interleaves them, keeping every chain's buffers alive
    x = jnp.asarray(randn((128, 128), seed=4))
    ws = [jnp.asarray(randn((128, 128), seed=5 + i) * 0.1) for i in range(8)]
    grad = jax.grad(_independent_chains, argnums=1)
    default = jax.jit(grad).lower(x, ws).compile().memory_analysis().temp_size_in_bytes
    ours = fcnn.jit(grad).lower(x, ws).compile().memory_analysis().temp_size_in_bytes
    assert 2 * ours <= default, (ours, default)
    for a, b in zip(fcnn.jit(grad)(x, ws), jax.jit(grad)(x, ws)):
        assert_close(a, b, 1e-6, 1e-6, "gradient under the memory-optimized schedule")


def test_train_step_compiles_with_the_options():
    if jax.default_backend() != "cpu" or not xla.compiler_options():
        pytest.skip("the options only exist for XLA:CPU with a jaxlib that knows them")
    model = nn.Sequential(nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(32 * 36, 2))
    ts = train.create_train_state(model, optax.sgd(0.1), 0)
    batch = (jnp.asarray(randn((2, 32, 6, 6), seed=2)), jnp.array([0, 1]))
    step = train.make_train_step(model, nn.CrossEntropyLoss(), optax.sgd(0.1), donate=False)
    assert _ynnpack_convolutions(jax.jit(train.train_step_fn(model, nn.CrossEntropyLoss(), optax.sgd(0.1)))
                                 .lower(ts, batch).compile()) >= 1
    assert _ynnpack_convolutions(step.lower(ts, batch).compile()) == 0


def _parameter_copies(compiled) -> int:
    """How many entry parameters the program copies before using them."""
    entry = compiled.as_text().split("\nENTRY", 1)[1]
    params = set(re.findall(r"%([\w.\-]+) = \S+ parameter\(", entry))
    return sum(name in params for name in re.findall(r" copy\(%([\w.\-]+)\)", entry))


def test_donated_train_step_updates_weights_in_place():
    if jax.default_backend() != "cpu" or not xla.compiler_options():
        pytest.skip("the options only exist for XLA:CPU with a jaxlib that knows them")
    # the second Linear's weight is read by the input gradient, which its own update does not wait for
    model = nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 4))
    opt = optax.sgd(0.1, momentum=0.9)
    ts = train.create_train_state(model, opt, 0)
    batch = (jnp.asarray(randn((8, 16), seed=3)), jnp.arange(8) % 4)
    default = jax.jit(train.train_step_fn(model, nn.CrossEntropyLoss(), opt), donate_argnums=0)
    assert _parameter_copies(default.lower(ts, batch).compile()) >= 1  # otherwise the option has nothing to do
    step = train.make_train_step(model, nn.CrossEntropyLoss(), opt)
    assert _parameter_copies(step.lower(ts, batch).compile()) == 0
    expected = jax.jit(train.train_step_fn(model, nn.CrossEntropyLoss(), opt))(ts, batch)
    new, metrics = step(ts, batch)
    for a, b in zip(jax.tree.leaves((new.params, metrics)), jax.tree.leaves((expected[0].params, expected[1]))):
        assert_close(a, b, 0, 0, "donated step")
