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
"""

from __future__ import annotations

import functools

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
