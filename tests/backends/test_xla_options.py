"""fcnn.xla: the compiler options fcnn's compiled steps use, and fcnn.jit."""

import os
import platform
import re
import subprocess
import sys

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


def _thp_file(tmp_path, text):
    path = tmp_path / f"enabled-{text.index('[')}"
    path.write_text(text + "\n")
    return str(path)


def _glibc_with_hugetlb() -> bool:
    libc, version = platform.libc_ver()
    return sys.platform.startswith("linux") and libc == "glibc" and tuple(map(int, version.split(".")[:2])) >= (2, 35)


@pytest.mark.skipif(not _glibc_with_hugetlb(), reason="glibc.malloc.hugetlb needs Linux with glibc 2.35 or later")
def test_huge_page_environment_asks_where_huge_pages_are_granted_on_request(tmp_path):
    on_request = _thp_file(tmp_path, "always [madvise] never")
    assert xla.huge_page_environment({}, thp_file=on_request) == {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}
    # the user's tunables are kept, and their own hugetlb choice (0 included) is left alone
    assert xla.huge_page_environment({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}, thp_file=on_request) == {
        "GLIBC_TUNABLES": "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"}
    assert xla.huge_page_environment({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}, thp_file=on_request) == {}
    # always granted, never granted, or no such file: nothing to ask for
    assert xla.huge_page_environment({}, thp_file=_thp_file(tmp_path, "[always] madvise never")) == {}
    assert xla.huge_page_environment({}, thp_file=_thp_file(tmp_path, "always madvise [never]")) == {}
    assert xla.huge_page_environment({}, thp_file=str(tmp_path / "missing")) == {}


def test_huge_page_environment_is_empty_off_glibc(monkeypatch, tmp_path):
    on_request = _thp_file(tmp_path, "always [madvise] never")
    monkeypatch.setattr(platform, "libc_ver", lambda: ("", ""))
    assert xla.huge_page_environment({}, thp_file=on_request) == {}
    monkeypatch.setattr(platform, "libc_ver", lambda: ("glibc", "2.34"))
    assert xla.huge_page_environment({}, thp_file=on_request) == {}


_KEEP = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=1099511627776"


@pytest.mark.skipif(not _glibc_with_hugetlb(), reason="the tunables need Linux with glibc 2.35 or later")
def test_host_memory_environment_keeps_large_blocks_mapped_and_adds_huge_pages(tmp_path):
    on_request, never = _thp_file(tmp_path, "always [madvise] never"), _thp_file(tmp_path, "always madvise [never]")
    assert xla.host_memory_environment({}, thp_file=on_request) == {
        "GLIBC_TUNABLES": f"{_KEEP}:glibc.malloc.hugetlb=1"}
    assert xla.host_memory_environment({}, thp_file=never) == {"GLIBC_TUNABLES": _KEEP}
    # the user's tunables come first and their own choices stay, whatever the value
    assert xla.host_memory_environment({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}, thp_file=never) == {
        "GLIBC_TUNABLES": f"glibc.malloc.arena_max=2:{_KEEP}"}
    assert xla.host_memory_environment({"GLIBC_TUNABLES": "glibc.malloc.mmap_max=4:glibc.malloc.hugetlb=0"},
                                       thp_file=on_request) == {
        "GLIBC_TUNABLES": "glibc.malloc.mmap_max=4:glibc.malloc.hugetlb=0:glibc.malloc.trim_threshold=1099511627776"}
    user = {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=0:glibc.malloc.mmap_max=1:glibc.malloc.hugetlb=1"}
    assert xla.host_memory_environment(user, thp_file=on_request) == {}


def test_host_memory_environment_is_empty_off_glibc(monkeypatch, tmp_path):
    on_request = _thp_file(tmp_path, "always [madvise] never")
    monkeypatch.setattr(platform, "libc_ver", lambda: ("", ""))
    assert xla.host_memory_environment({}, thp_file=on_request) == {}
    monkeypatch.setattr(platform, "libc_ver", lambda: ("glibc", "2.25"))
    assert xla.host_memory_environment({}, thp_file=on_request) == {}
    monkeypatch.setattr(platform, "libc_ver", lambda: ("glibc", "2.34"))  # tunables, but no hugetlb
    assert xla.host_memory_environment({}, thp_file=on_request) == {"GLIBC_TUNABLES": _KEEP}
    monkeypatch.setattr(sys, "platform", "darwin")
    assert xla.host_memory_environment({}, thp_file=on_request) == {}


_FAULTS = """
import os, resource, jax, jax.numpy as jnp, numpy as np
import fcnn
if os.environ.get("FCNN_TEST_INLINE"):
    jax.config.update("jax_cpu_enable_async_dispatch", False)
if os.environ.get("FCNN_TEST_KEEP"):
    assert fcnn.xla.keep_host_memory()
x, w = jnp.ones((8192, 256), jnp.float32), jnp.ones((256, 1024), jnp.float32)
# the two products (32 MiB each) are temporaries of the program: allocated and freed on every call
f = fcnn.jit(lambda x, w: jnp.sum(jnp.tanh(x @ w)) + jnp.sum(jnp.sin(x @ w)))
for _ in range(4):  # malloc's heap reaches its steady layout
    f(x, w).block_until_ready()
faults = []
for _ in range(9):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    f(x, w).block_until_ready()
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(*faults)
"""


def _faults_per_call(environ) -> int:
    """The median of nine calls' page faults: where other processes share the CPU, a kept heap still grows on the
    odd call (``brk``, seen with strace) and that call faults in the new pages."""
    out = subprocess.run([sys.executable, "-c", _FAULTS], env=environ, capture_output=True, text=True, check=True)
    faults = sorted(int(n) for n in out.stdout.strip().splitlines()[-1].split())
    print("page faults per call:", faults)  # pytest shows it where an assertion fails
    return faults[len(faults) // 2]


@pytest.mark.sweep  # three JAX processes each: 12-25 s of a worker
def test_huge_pages_cut_the_page_faults_of_a_programs_temporaries():
    small_pages = {**os.environ, "GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}
    extra = xla.huge_page_environment({k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"})
    if not extra:
        pytest.skip("this system grants huge pages always or never: nothing to ask for")
    default = _faults_per_call(small_pages)
    huge = _faults_per_call({**os.environ, **extra})
    assert default >= 4000  # every 4 KiB page of the 32 MiB temporary, on every call
    assert huge * 20 <= default


@pytest.mark.sweep
@pytest.mark.skipif(not _glibc_with_hugetlb(), reason="the tunables need Linux with glibc 2.35 or later")
def test_kept_mapped_temporaries_are_not_faulted_in_again_when_programs_run_inline():
    base = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", "FCNN_TEST_INLINE")}
    small_pages = {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}
    kept = {**base, **xla.host_memory_environment(small_pages)}
    assert "glibc.malloc.mmap_max=0" in kept["GLIBC_TUNABLES"] and "hugetlb=0" in kept["GLIBC_TUNABLES"]
    default = _faults_per_call({**base, **small_pages, "FCNN_TEST_INLINE": "1"})
    inline = _faults_per_call({**kept, "FCNN_TEST_INLINE": "1"})
    dispatched = _faults_per_call(kept)
    assert default >= 4000  # every 4 KiB page of the 32 MiB temporary, on every call
    assert inline * 100 <= default
    # run by JAX's dispatch thread the program allocates in another of malloc's arenas, which maps large blocks
    # whatever mmap_max says: why `fcnn train` also runs its programs inline
    assert dispatched >= 4000


@pytest.mark.sweep
@pytest.mark.skipif(not _glibc_with_hugetlb(), reason="needs Linux with glibc (2.35 or later: hugetlb=0 below)")
def test_keep_host_memory_at_run_time_stops_the_faults_of_a_programs_temporaries():
    """mallopt and inline dispatch set by the running process, before its first computation."""
    base = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", "FCNN_TEST_INLINE", "FCNN_TEST_KEEP")}
    small_pages = {**base, "GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}
    default = _faults_per_call({**small_pages, "FCNN_TEST_INLINE": "1"})
    kept = _faults_per_call({**small_pages, "FCNN_TEST_KEEP": "1"})
    assert default >= 4000  # every 4 KiB page of the 32 MiB temporary, on every call
    assert kept * 100 <= default


def test_keep_host_memory_refuses_once_jax_has_computed_with_async_dispatch(monkeypatch):
    """JAX reads the dispatch flag once, when it creates its CPU client: too late is an error, nothing changed."""
    jnp.ones(2).block_until_ready()  # JAX has computed in this process
    calls = []
    monkeypatch.setattr(xla.ctypes, "CDLL", lambda *a: calls.append(a))
    monkeypatch.setattr(xla, "_linux_glibc_at_least", lambda major, minor: True)
    was = jax.config.read("jax_cpu_enable_async_dispatch")
    try:
        jax.config.update("jax_cpu_enable_async_dispatch", True)
        with pytest.raises(RuntimeError, match=r"keep_host_memory: .*jax_cpu_enable_async_dispatch on.*before JAX's "
                                               r"first computation"):
            xla.keep_host_memory()
        assert calls == [] and jax.config.read("jax_cpu_enable_async_dispatch")
    finally:
        jax.config.update("jax_cpu_enable_async_dispatch", was)


def test_keep_host_memory_changes_nothing_off_glibc(monkeypatch):
    monkeypatch.setattr(xla, "_linux_glibc_at_least", lambda major, minor: False)
    monkeypatch.setattr(xla.ctypes, "CDLL", lambda *a: pytest.fail("mallopt called off glibc"))
    was = jax.config.read("jax_cpu_enable_async_dispatch")
    assert xla.keep_host_memory() is False
    assert jax.config.read("jax_cpu_enable_async_dispatch") == was


def test_fcnn_train_restarts_itself_with_the_host_memory_environment(monkeypatch):
    from fcnn import cli

    class Restarted(Exception):
        pass

    calls = []

    def execve(path, args, env):
        calls.append((path, args, env))
        raise Restarted

    monkeypatch.setattr(os, "execve", execve)
    monkeypatch.setattr(sys, "argv", ["fcnn", "train", "--epochs", "1"])
    monkeypatch.setattr(sys, "orig_argv", [sys.executable, "-m", "fcnn", "train", "--epochs", "1"])
    extra = {"GLIBC_TUNABLES": f"{_KEEP}:glibc.malloc.hugetlb=1"}
    monkeypatch.setattr(xla, "host_memory_environment", lambda: dict(extra))
    updates = []
    monkeypatch.setattr(jax.config, "update", lambda name, value: updates.append((name, value)))
    with pytest.raises(Restarted):
        cli.main()
    path, args, env = calls[0]
    assert (path, args) == (sys.executable, [sys.executable, "-m", "fcnn", "train", "--epochs", "1"])
    assert env["GLIBC_TUNABLES"] == extra["GLIBC_TUNABLES"] and env["PATH"] == os.environ["PATH"]
    assert updates == []  # the restarted process sets it
    # nothing to add (the restarted process): no restart, and the programs run inline
    calls.clear()
    extra.clear()
    monkeypatch.setattr(cli, "COMMANDS", {**cli.COMMANDS, "train": (*cli.COMMANDS["train"][:2], lambda args: 0)})
    assert cli.main() == 0
    assert calls == [] and updates == [("jax_cpu_enable_async_dispatch", False)]
    # main() called from Python with its arguments: neither, whatever the environment
    updates.clear()
    extra["GLIBC_TUNABLES"] = "glibc.malloc.hugetlb=1"
    assert cli.main(["train", "--epochs", "1"]) == 0
    assert calls == [] and updates == []
