"""XLA compiler options for fcnn's networks, and :func:`jit` to compile your own functions with them.

fcnn's own compiled steps (:func:`fcnn.train.make_train_step`, ``make_eval_step``,
``fit``) already use these options. Pass them to your own ``jax.jit`` when you
write the training loop yourself::

    step = jax.jit(step, donate_argnums=0, compiler_options=fcnn.compiler_options())
    step = fcnn.jit(step, donate_argnums=0)          # the same

Why: XLA:CPU (jaxlib 0.10) sends 2-D float32 convolutions with more than 16
channels to its YNNPACK library by default. On the x86 CPUs measured
(``benchmarks/README.md``), YNNPACK's forward and input-gradient convolutions
are about 2× slower than XLA's Eigen convolutions. Its weight-gradient
convolution is 10-20× slower (489 ms against 26 ms for a 32→32 3×3 layer
at batch 64, 32×32; ``benchmarks/results_conv.md``). The options keep
YNNPACK for what it does well (matrix products, reductions) and give
convolutions back to Eigen. On GPU and TPU there is nothing to change and
the options are empty.

These are per-compilation options (``jax.jit(..., compiler_options=)``), not
process-wide flags: nothing else in the process is affected. A jaxlib that
does not know them gets empty options (checked once, by compiling a tiny
function), so fcnn keeps working, with XLA's defaults, across JAX versions.
The process-wide equivalent, for code fcnn does not compile, is
``XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=individual_dot,reduce``
set before JAX starts.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

# jaxlib 0.10's default YNNPACK fusion list is (individual dot, individual
# convolution, reduce); these options keep it minus the convolutions.
_CPU = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE"}


@functools.cache
def _cpu_options_supported() -> bool:
    """Whether this jaxlib accepts :data:`_CPU` (compiles a scalar function once per process)."""
    cpu = jax.devices("cpu")[0]
    try:
        fn = jax.jit(lambda v: v + 1, compiler_options=_CPU)
        fn.lower(jax.ShapeDtypeStruct((), np.float32, sharding=jax.sharding.SingleDeviceSharding(cpu))).compile()
    except Exception:  # an unknown option or enum value: keep XLA's defaults
        return False
    return True


def compiler_options(platform: str | None = None) -> dict[str, str]:
    """The XLA options fcnn compiles with on ``platform`` (default: JAX's default backend).

    Returns a new dict each call: on ``"cpu"`` the option that routes
    convolutions to XLA's Eigen kernels instead of YNNPACK (see the module
    docstring); on other platforms, or with a jaxlib that lacks the option,
    ``{}``. Pass it as ``jax.jit(fn, compiler_options=...)``.
    """
    platform = jax.default_backend() if platform is None else platform
    if platform == "cpu" and _cpu_options_supported():
        return dict(_CPU)
    return {}


def jit(fun, *, platform: str | None = None, **jit_kwargs):
    """``jax.jit(fun, **jit_kwargs)`` compiled with :func:`compiler_options` merged in.

    Options given in ``jit_kwargs["compiler_options"]`` take precedence.
    ``platform`` chooses the options (default: JAX's default backend); pass
    the platform your arrays live on if it differs.
    """
    options = {**compiler_options(platform), **(jit_kwargs.pop("compiler_options", None) or {})}
    return jax.jit(fun, compiler_options=options or None, **jit_kwargs)


def channels_last(shape, platform: str | None = None) -> bool:
    """Whether fcnn's channel-first ops compute a ``shape`` input channels-last inside.

    ``platform`` defaults to JAX's default backend. The ops that ask: 1-D and
    2-D convolutions and max pooling, and, for 3-D and 4-D inputs, the
    normalisations, the per-element activations, dropout and ResNet's residual
    sums (:func:`pointwise`).

    XLA:CPU's convolutions work on channels-last data. When each of these ops
    transposes its ``(N, C, *spatial)`` input to ``(N, *spatial, C)``,
    computes, and transposes back, XLA removes the transposes between
    consecutive ones. The API, the values and the gradients stay channel-first
    (only float rounding can differ). Measured on the CPU
    (``benchmarks/README.md``): LeNet-5's step about 10 % faster with
    convolutions and pooling channels-last; BN-CNN's 18 % faster once batch
    norm and ReLU are channels-last too (with batch norm alone channels-last it
    was slower: the ReLU between kept the transposes). Other platforms keep the
    direct channel-first formulation, not yet measured against this one.
    Inputs under 2^14 elements stay channel-first: there the transposes are
    extra work in a step bound by per-op overhead (LeNet-5 at batch 1 was 0.1 ms
    slower channels-last).
    """
    return (jax.default_backend() if platform is None else platform) == "cpu" and math.prod(shape) >= 2**14


def pointwise(f, *xs):
    """``f(*xs)`` for a per-element ``f`` (an activation, a residual sum), written channels-last where convolutions are.

    ``xs`` are arrays of one shape. Where :func:`channels_last` holds for a 3-D
    or 4-D shape (the inputs that 1-D/2-D convolutions and max pooling compute
    channels-last), ``f`` runs on the ``(N, *spatial, C)`` views between two
    transposes; elsewhere on ``xs`` as they are. The values are the same
    either way; only the program XLA sees differs.

    Why: the transposes around a channels-last convolution cancel against those
    of the next op only when that op is written channels-last too. An
    activation written channel-first between a convolution and batch norm
    leaves its derivative (the ReLU mask) channel-first. XLA:CPU then
    materialises it in that layout, and the weight-gradient convolutions read it
    through strided transposes. Measured on the CPU (``benchmarks/README.md``),
    with batch norm, the activations and the residual sums channels-last: BN-CNN's
    training step 227 → 187 ms, ResNet-18's 682 → 622 ms, a U-Net's 161 → 139 ms.
    """
    if not xs:
        raise TypeError("pointwise: give at least one array after the function")
    shape = xs[0].shape
    if any(x.shape != shape for x in xs):
        raise ValueError(f"pointwise: the arrays must have one shape, got {[tuple(x.shape) for x in xs]}")
    if follows_convolutions(shape):
        return to_channels_first(f(*(to_channels_last(x) for x in xs)))
    return f(*xs)


def follows_convolutions(shape, platform: str | None = None) -> bool:
    """:func:`channels_last` for the ops between convolutions: 3-D and 4-D ``shape`` only.

    Those are the inputs that 1-D and 2-D convolutions compute channels-last;
    :func:`pointwise` and the normalisations ask this.
    """
    return len(shape) in (3, 4) and channels_last(shape, platform)


def to_channels_last(x):
    """``(N, C, *spatial)`` -> ``(N, *spatial, C)``."""
    return jnp.moveaxis(x, 1, -1)


def to_channels_first(x):
    """``(N, *spatial, C)`` -> ``(N, C, *spatial)``."""
    return jnp.moveaxis(x, -1, 1)
