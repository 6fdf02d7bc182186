"""XLA compiler options for fcnn's networks, and :func:`jit` to compile your own functions with them.

fcnn's own compiled steps (:func:`fcnn.train.make_train_step`, ``make_eval_step``,
``fit``) already use these options. Pass them to your own ``jax.jit`` when you
write the training loop yourself::

    step = jax.jit(step, donate_argnums=0, compiler_options=fcnn.compiler_options())
    step = fcnn.jit(step, donate_argnums=0)          # the same

Why: XLA:CPU (jaxlib 0.10) sends 2-D float32 convolutions with more than 16
channels to its YNNPACK library by default. On the x86 CPUs measured
(``benchmarks/README.md``), YNNPACK's forward and input-gradient convolutions
are about 2× slower than XLA's Eigen convolutions, and its weight-gradient
convolution an order of magnitude slower (``benchmarks/README.md``). The options keep
YNNPACK for what it does well (matrix products, reductions) and give
convolutions back to Eigen. A second option has XLA:CPU's copy insertion
analyse live ranges by region: a train step that donates its state updates
each weight in place once its last reader has run, where XLA's default
analysis copies every weight read in the backward pass (MobileNet-V3-Large:
116 weight copies per step). A third has XLA:CPU order each program's
operations to keep the fewest buffers alive (its memory-optimized scheduler):
for large programs XLA's default picks the schedule that lets independent
operations run at once, which on a few cores gains little and spreads a step
over more memory than the caches hold, and more fresh pages to fault in on
every call (MobileNet-V2's train step at batch 32, 128×128: 11 % less CPU
time; ``benchmarks/README.md``). On GPU and TPU there is nothing to change and
the options are empty.

These are per-compilation options (``jax.jit(..., compiler_options=)``), not
process-wide flags: nothing else in the process is affected. A jaxlib that
does not know one of them leaves that one out (each is checked once, by
compiling a tiny function), so fcnn keeps working, with XLA's defaults for
what it lacks, across JAX versions. The process-wide equivalent, for code fcnn
does not compile, is
``XLA_FLAGS="--xla_cpu_experimental_ynn_fusion_type=individual_dot,reduce
--xla_cpu_copy_insertion_use_region_analysis=true
--xla_cpu_scheduler_type=CPU_SCHEDULER_TYPE_MEMORY_OPTIMIZED"`` set before JAX
starts.

Host memory (Linux): XLA:CPU allocates a program's temporaries, one block of
its temp size, afresh for every call and frees them after it (glibc's malloc
maps a block that large with ``mmap`` and returns it to the kernel). The
kernel then faults each 4 KiB page of the block in again on every call: for
MobileNet-V2's train step at batch 32, 128×128, 160,000 page faults and about
0.3 s of kernel time per step. Two settings of glibc's malloc, read when a
process starts (``GLIBC_TUNABLES``), avoid that; the second can also be made
at run time (:func:`keep_host_memory`):

- ``glibc.malloc.hugetlb=1`` (glibc 2.35 and later) has malloc ask for 2 MiB
  transparent huge pages where Linux grants them only on request
  (``/sys/kernel/mm/transparent_hugepage/enabled`` reads ``[madvise]``): the
  faults are 100 times fewer (:func:`huge_page_environment`).
- ``glibc.malloc.mmap_max=0`` and a large ``glibc.malloc.trim_threshold``
  keep large blocks in malloc's heap instead of mapping and unmapping them:
  the next call reuses the same, already faulted-in pages. This works only
  for memory allocated on the process's main thread (glibc's other arenas
  map large blocks regardless), so it also needs JAX to run CPU programs on
  the calling thread: ``jax.config.update("jax_cpu_enable_async_dispatch",
  False)`` before JAX's first computation. The cost is that the process keeps
  its peak heap: freed memory goes back to malloc, not to the kernel.

:func:`host_memory_environment` returns both, where they apply; ``fcnn
train`` restarts itself with them and runs its programs on the calling
thread. In a process already running (a notebook, a script), call
:func:`keep_host_memory` before JAX's first computation: glibc's ``mallopt``
sets the second of them at run time (huge pages can only be asked for at
start-up). ``benchmarks/README.md`` measures both on torchvision's networks.
"""

from __future__ import annotations

import ctypes
import functools
import os
import platform
import sys

import jax
import numpy as np

# jaxlib 0.10's default YNNPACK fusion list is (individual dot, individual
# convolution, reduce); the first option keeps it minus the convolutions.
_CPU = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE",
        "xla_cpu_copy_insertion_use_region_analysis": True,
        "xla_cpu_scheduler_type": "CPU_SCHEDULER_TYPE_MEMORY_OPTIMIZED"}


@functools.cache
def _supported_cpu_options() -> tuple[tuple[str, str | bool], ...]:
    """The items of :data:`_CPU` this jaxlib accepts (compiles a scalar function per option, once per process)."""
    cpu = jax.devices("cpu")[0]
    scalar = jax.ShapeDtypeStruct((), np.float32, sharding=jax.sharding.SingleDeviceSharding(cpu))
    supported = []
    for key, value in _CPU.items():
        try:
            jax.jit(lambda v: v + 1, compiler_options={key: value}).lower(scalar).compile()
        except Exception:  # an unknown option or enum value: keep XLA's default for it
            continue
        supported.append((key, value))
    return tuple(supported)


def compiler_options(platform: str | None = None) -> dict[str, str | bool]:
    """The XLA options fcnn compiles with on ``platform`` (default: JAX's default backend).

    Returns a new dict each call: on ``"cpu"`` the option that routes
    convolutions to XLA's Eigen kernels instead of YNNPACK (see the module
    docstring); on other platforms, or with a jaxlib that lacks the option,
    ``{}``. Pass it as ``jax.jit(fn, compiler_options=...)``.
    """
    platform = jax.default_backend() if platform is None else platform
    if platform == "cpu":
        return dict(_supported_cpu_options())
    return {}


def jit(fun, *, platform: str | None = None, **jit_kwargs):
    """``jax.jit(fun, **jit_kwargs)`` compiled with :func:`compiler_options` merged in.

    Options given in ``jit_kwargs["compiler_options"]`` take precedence.
    ``platform`` chooses the options (default: JAX's default backend); pass
    the platform your arrays live on if it differs.
    """
    options = {**compiler_options(platform), **(jit_kwargs.pop("compiler_options", None) or {})}
    return jax.jit(fun, compiler_options=options or None, **jit_kwargs)


_THP_ENABLED = "/sys/kernel/mm/transparent_hugepage/enabled"
_HUGETLB = "glibc.malloc.hugetlb"


def _linux_glibc_at_least(major: int, minor: int) -> bool:
    """Whether this process runs on Linux with glibc ``major.minor`` or later."""
    if not sys.platform.startswith("linux"):
        return False
    libc, version = platform.libc_ver()
    try:
        return libc == "glibc" and tuple(int(v) for v in version.split(".")[:2]) >= (major, minor)
    except ValueError:
        return False


def huge_page_environment(environ=None, *, thp_file: str = _THP_ENABLED) -> dict[str, str]:
    """The environment variables that have glibc's malloc ask for transparent huge pages, or ``{}``.

    ``{"GLIBC_TUNABLES": "…glibc.malloc.hugetlb=1"}`` (appended to the
    tunables already in ``environ``, default ``os.environ``) on Linux with
    glibc 2.35 or later where transparent huge pages are granted on request
    (``thp_file`` reads ``[madvise]``); ``{}`` where they are always or never
    granted, on other systems, and where ``environ`` already sets
    ``glibc.malloc.hugetlb`` (any value: ``GLIBC_TUNABLES=glibc.malloc.hugetlb=0``
    is how to keep 4 KiB pages). Start a process with these variables (glibc
    reads them at start-up only); see the module docstring for why.
    """
    environ = os.environ if environ is None else environ
    tunables = environ.get("GLIBC_TUNABLES", "")
    if _HUGETLB in tunables or not _linux_glibc_at_least(2, 35):
        return {}
    try:
        with open(thp_file) as f:
            granted_on_request = "[madvise]" in f.read()
    except OSError:
        return {}
    if not granted_on_request:
        return {}
    return {"GLIBC_TUNABLES": f"{tunables}:{_HUGETLB}=1" if tunables else f"{_HUGETLB}=1"}


# Large blocks from malloc's heap, never unmapped (mmap_max=0), and a freed block at the heap's top kept, not
# returned to the kernel (any trim threshold above the largest program's temporaries; 1 TiB).
_KEEP_MAPPED = {"glibc.malloc.mmap_max": "0", "glibc.malloc.trim_threshold": str(1 << 40)}


def host_memory_environment(environ=None, *, thp_file: str = _THP_ENABLED) -> dict[str, str]:
    """The environment variables under which XLA:CPU's temporaries stay mapped from call to call, or ``{}``.

    ``{"GLIBC_TUNABLES": …}`` on Linux with glibc 2.26 or later: the tunables
    already in ``environ`` (default ``os.environ``), then
    ``glibc.malloc.mmap_max=0`` and ``glibc.malloc.trim_threshold=2**40``
    unless ``environ`` sets them (any value), then what
    :func:`huge_page_environment` adds. ``{}`` on other systems and where
    nothing would be added. Start a process with these variables and run
    ``jax.config.update("jax_cpu_enable_async_dispatch", False)`` in it
    before JAX's first computation: the module docstring says why both are
    needed, and that the process then keeps its peak heap.
    """
    environ = os.environ if environ is None else environ
    if not _linux_glibc_at_least(2, 26):  # glibc's tunables
        return {}
    tunables = environ.get("GLIBC_TUNABLES", "")
    named = {item.split("=", 1)[0] for item in tunables.split(":") if item}
    items = [tunables] if tunables else []
    items += [f"{name}={value}" for name, value in _KEEP_MAPPED.items() if name not in named]
    huge = huge_page_environment({**environ, "GLIBC_TUNABLES": ":".join(items)}, thp_file=thp_file)
    merged = huge.get("GLIBC_TUNABLES", ":".join(items))
    return {"GLIBC_TUNABLES": merged} if merged != tunables else {}


# mallopt's parameters (glibc's malloc.h) and the largest trim threshold it takes (a C int).
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_INT_MAX = 2**31 - 1


def _jax_computed() -> bool:
    """Whether JAX has created its clients (run a computation) in this process."""
    from jax._src import xla_bridge  # no public API says so
    initialized = getattr(xla_bridge, "backends_are_initialized", None)
    return bool(initialized and initialized())


def keep_host_memory() -> bool:
    """Keep XLA:CPU's temporaries mapped from call to call in this running process, where it is Linux with glibc.

    The run-time form of :func:`host_memory_environment`'s ``mmap_max`` and
    ``trim_threshold`` (this module's docstring says why): glibc's
    ``mallopt`` has malloc serve large blocks from its heap and keep up to
    2 GiB (the largest threshold ``mallopt`` takes) free at its top, and JAX
    runs CPU programs on the calling thread
    (``jax_cpu_enable_async_dispatch`` off), the only one whose blocks that
    heap serves. A program's temporaries of up to 2 GiB are then faulted in
    once, not on every call (MobileNet-V2's train step at batch 32, 128×128:
    a third shorter, ``benchmarks/README.md``); larger ones, and huge pages,
    need a process started under :func:`host_memory_environment`. The process
    keeps its peak heap, as there. Call it before JAX's first computation,
    such as at the top of a notebook.

    Returns:
      ``True`` where applied, ``False`` off Linux/glibc (nothing changed).

    Raises:
      RuntimeError: JAX has already run a computation with async dispatch
        on, which it reads once, when it creates its CPU client (nothing
        changed).
    """
    if not _linux_glibc_at_least(2, 0):
        return False
    if _jax_computed() and jax.config.read("jax_cpu_enable_async_dispatch"):
        raise RuntimeError("keep_host_memory: JAX has already run a computation with jax_cpu_enable_async_dispatch "
                           "on, which JAX reads once; call keep_host_memory() before JAX's first computation (at "
                           "the top of the notebook or script)")
    libc = ctypes.CDLL(None)
    if not (libc.mallopt(_M_MMAP_MAX, 0) and libc.mallopt(_M_TRIM_THRESHOLD, _INT_MAX)):
        raise OSError("keep_host_memory: glibc's mallopt refused M_MMAP_MAX=0 or M_TRIM_THRESHOLD=2**31-1")
    jax.config.update("jax_cpu_enable_async_dispatch", False)
    return True
