"""The backend policy: its layout rule, what it selects, and the compiled structure it is there for.

These tests pin programs (jaxprs, HLO), not values; the values of every
implementation are compared with the reference and torch elsewhere
(``test_xla_cpu_conv.py``, ``tests/functional/test_layouts.py``).
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fcnn
from fcnn import backends
from fcnn import functional as F
from fcnn.backends import ConvPlan, Policy
from fcnn.functional import _compiled
from oracle import assert_close, randn

CPU = jax.default_backend() == "cpu"


def test_channels_last_only_on_cpu_and_for_large_inputs():
    big, small = (8, 16, 32, 32), (1, 6, 14, 14)
    assert Policy("cpu").channels_last(big) and not Policy("cpu").channels_last(small)
    assert not Policy("gpu").channels_last(big) and not Policy("tpu").channels_last(big)
    # 3-D convolutions' inputs, an op compiled alone, and the reference policy stay channel-first
    assert not Policy("cpu").channels_last((2, 8, 8, 32, 32))
    assert not Policy("cpu", eager=True).channels_last(big)
    assert not Policy("cpu", fast_paths=False).channels_last(big)


def test_the_layout_rule_changes_the_traced_program():
    x = jnp.ones((2, 3, 4, 4))
    ops = {  # fresh lambdas: make_jaxpr caches by function, and the policy is not part of its key
        "max_pool2d": lambda: lambda x: F.max_pool2d(x, 2),
        "conv2d": lambda: lambda x: F.conv2d(x, jnp.ones((2, 3, 3, 3))),
        "relu": lambda: lambda x: F.relu(x),
        "batch_norm": lambda: lambda x: F.batch_norm(x, None, None, training=True)[0],
        "instance_norm": lambda: lambda x: F.instance_norm(x),
        "group_norm": lambda: lambda x: F.group_norm(x, 3),
        "dropout": lambda: lambda x: F.dropout(x, key=jax.random.key(0)),
        "add": lambda: lambda x: F.add(x, x),
    }
    for last in (False, True):
        with backends.use(Policy("cpu", channels_last_min_elements=0 if last else 2**62)):
            for name, make in ops.items():
                assert ("transpose" in str(jax.make_jaxpr(make())(x))) == last, (name, last)


def test_the_policy_picks_the_convolutions_formulation():
    cpu = Policy("cpu")
    plan = lambda x, w, groups=1, pads=((1, 1), (1, 1)), stride=None: cpu.conv(  # noqa: E731
        x, w, groups, pads, stride).keywords["plan"]
    assert plan((8, 16, 32, 32), (32, 16, 3, 3)) == ConvPlan("xla", "xla", True)
    assert plan((64, 1, 28, 28), (6, 1, 5, 5)) == ConvPlan("stencil", "xla", True)  # LeNet's first layer
    assert plan((8, 1, 28, 28), (16, 1, 5, 5)).forward == "xla"  # more outputs than stencil_max_outputs
    assert plan((8, 512, 3, 3), (512, 512, 3, 3)) == ConvPlan("patches")  # 72 output pixels, 0.14 × the weight
    assert plan((8, 256, 6, 6), (256, 256, 3, 3)) == ConvPlan("patches")  # 288 pixels, 1.125 ×
    assert plan((32, 512, 4, 4), (512, 512, 3, 3)).forward == "xla"  # 512 pixels
    assert plan((4, 64, 8, 8), (32, 64, 3, 3)).forward == "xla"  # 256 pixels, 8 × the weight
    assert plan((1, 64, 7, 7), (64, 64, 3, 3)).forward == "xla"  # under the layout threshold
    # windows that tile the input (kernel = stride, no padding or dilation): patches at any size
    unpadded = ((0, 0), (0, 0))
    assert plan((32, 96, 32, 32), (192, 96, 2, 2), pads=unpadded, stride=(2, 2)) == ConvPlan("patches")
    assert plan((32, 3, 128, 128), (96, 3, 4, 4), pads=unpadded, stride=(4, 4)) == ConvPlan("patches")
    assert plan((32, 96, 33, 31), (192, 96, 2, 2), pads=unpadded, stride=(2, 2)) == ConvPlan("patches")
    assert plan((32, 96, 32, 32), (192, 96, 2, 2), pads=unpadded, stride=(2, 1)).forward == "xla"  # overlapping
    assert plan((32, 96, 32, 32), (192, 96, 2, 2), stride=(2, 2)).forward == "xla"  # padded
    assert plan((32, 96, 32, 32), (192, 96, 2, 2), 2, unpadded, (2, 2)).forward == "xla"  # grouped
    assert cpu.conv((32, 96, 32, 32), (192, 96, 2, 2), 1, unpadded, (2, 2), (2, 2)).keywords["plan"].forward == "xla"
    assert Policy("cpu", patches_non_overlapping=False).conv(
        (32, 96, 32, 32), (192, 96, 2, 2), 1, unpadded, (2, 2)).keywords["plan"].forward == "xla"
    assert plan((1, 3, 8, 8), (4, 3, 2, 2), pads=unpadded, stride=(2, 2)).forward == "xla"  # under the threshold
    # depthwise: stencils, written by conditionals from stencil_branch_min_taps (3×3)
    assert plan((2, 32, 28, 28), (32, 1, 3, 3), 32) == ConvPlan("stencil", "xla", True, branch=True)
    assert not plan((2, 32, 28, 28), (32, 1, 1, 3), 32, ((0, 0), (1, 1))).branch  # 3 taps
    # strided, undilated depthwise: the input gradient by output phases (stencil_strided_phases)
    assert plan((2, 32, 28, 28), (32, 1, 3, 3), 32, stride=(2, 2)) == ConvPlan("stencil", "xla", True, branch=True,
                                                                                phases=True)
    assert plan((2, 32, 28, 28), (32, 1, 5, 5), 32, ((2, 2), (2, 2)), (1, 2)).phases
    assert not plan((2, 32, 28, 28), (32, 1, 3, 3), 32, stride=(1, 1)).phases
    assert not cpu.conv((2, 32, 28, 28), (32, 1, 3, 3), 32, ((1, 1), (1, 1)), (2, 2), (2, 2)).keywords["plan"].phases
    assert not Policy("cpu", stencil_strided_phases=False).conv(
        (2, 32, 28, 28), (32, 1, 3, 3), 32, ((1, 1), (1, 1)), (2, 2)).keywords["plan"].phases
    # strided, undilated XLA convolutions of at least conv_strided_phases_min_rows output pixels: by phases too
    assert plan((32, 48, 64, 64), (48, 8, 3, 3), 6, stride=(2, 2)).phases  # 32 · 32² rows
    assert plan((16, 64, 64, 64), (64, 64, 3, 3), stride=(2, 2)).phases  # 16 · 32²
    assert not plan((8, 64, 64, 64), (64, 64, 3, 3), stride=(2, 2)).phases  # 8 · 32²
    assert not plan((32, 64, 64, 64), (64, 64, 3, 3)).phases  # stride 1
    assert not cpu.conv((32, 64, 64, 64), (64, 64, 3, 3), 1, ((2, 2), (2, 2)), (2, 2), (2, 2)).keywords["plan"].phases
    assert not Policy("cpu", conv_strided_phases_min_rows=2**62).conv(
        (32, 48, 64, 64), (48, 8, 3, 3), 6, ((1, 1), (1, 1)), (2, 2)).keywords["plan"].phases
    # the depthwise weight gradient over batch chunks of at most stencil_chunk_elements
    assert plan((8, 32, 28, 28), (32, 1, 3, 3), 32) == ConvPlan("stencil", "xla", True, 1, branch=True)  # fits
    assert plan((32, 32, 64, 64), (32, 1, 3, 3), 32) == ConvPlan("stencil", "xla", True, 4, branch=True)  # 2²⁰ each
    assert plan((32, 96, 64, 64), (96, 1, 3, 3), 96) == ConvPlan("stencil", "xla", True, 16, branch=True)
    assert Policy("cpu", stencil_chunk_elements=2**16).conv(
        (8, 32, 28, 28), (32, 1, 3, 3), 32, ((1, 1), (1, 1))).keywords["plan"].batch_chunks == 4
    assert plan((3, 8, 256, 256), (8, 1, 3, 3), 8) == ConvPlan("stencil", "xla", True, 3,  # one image per chunk
                                                              branch=True)
    # 7×7 depthwise: the row halves where conditionals are not used (stencil_branch_min_taps)
    assert plan((1, 96, 56, 56), (96, 1, 7, 7), 96, ((3, 3), (3, 3))) == ConvPlan("stencil", "xla", True, 1, True,
                                                                                   branch=True)
    assert Policy("cpu", stencil_branch_min_taps=50).conv(
        (1, 96, 56, 56), (96, 1, 7, 7), 96, ((3, 3), (3, 3))).keywords["plan"] == ConvPlan("stencil", "xla", True, 1,
                                                                                            True)
    # ConvNeXt's 7×7 depthwise convolutions: Toeplitz products up to toeplitz_max_pixels_per_tap pixels per tap
    pad3 = ((3, 3), (3, 3))
    assert plan((8, 384, 6, 6), (384, 1, 7, 7), 384, pad3) == ConvPlan("toeplitz")
    assert plan((32, 384, 8, 8), (384, 1, 7, 7), 384, pad3) == ConvPlan("toeplitz")  # 64 pixels, 1.3 a tap
    assert plan((32, 768, 7, 7), (768, 1, 7, 7), 768, pad3) == ConvPlan("toeplitz")
    assert plan((32, 192, 16, 16), (192, 1, 7, 7), 192, pad3).forward == "stencil"  # 256 pixels
    assert plan((1, 768, 7, 7), (768, 1, 7, 7), 768, pad3).forward == "stencil"  # under toeplitz_min_batch
    assert plan((8, 576, 3, 3), (576, 1, 3, 3), 576).forward == "stencil"  # under toeplitz_min_taps
    # the matrix over the last axis only, up to toeplitz_last_axis_max_width (0: off)
    assert plan((8, 192, 12, 12), (192, 1, 7, 7), 192, pad3).forward == "stencil"
    last_axis = cpu.replace(toeplitz_last_axis_max_width=12).conv((8, 192, 12, 12), (192, 1, 7, 7), 192, pad3)
    assert last_axis.keywords["plan"] == ConvPlan("toeplitz", matrix_axes=1)
    assert plan((8, 32, 56, 56), (32, 8, 3, 3), 4) == ConvPlan("xla", "window", True, groups_per_block=4)  # grouped
    assert plan((1, 128, 12, 12), (128, 8, 3, 3), 16) == ConvPlan("xla", "window", True)  # 144 pixels for 4 groups
    # RegNet-Y-400MF's 8 channels per group, batch 32 at 224²: the groups per block
    per_block = lambda x, g, stride=(1, 1): cpu.conv(  # noqa: E731
        x, (x[1], 8, 3, 3), g, ((1, 1), (1, 1)), stride).keywords["plan"].groups_per_block
    assert per_block((32, 48, 112, 112), 6, (2, 2)) == 6  # strided, at most grouped_dense_max_channels: dense
    assert per_block((32, 104, 56, 56), 13, (2, 2)) == 13
    assert per_block((32, 104, 28, 28), 13) == 4  # no block of 2-6 dividing 13: 16 groups, 3 of them zeros
    assert per_block((32, 208, 28, 28), 26, (2, 2)) == 2  # wider than grouped_dense_max_channels
    assert per_block((32, 440, 7, 7), 55) == 5  # 40 channels a block
    # at least grouped_block_rows_per_group output pixels per group in a block
    assert per_block((8, 440, 3, 3), 55) == 1  # 72 output pixels for 5 groups
    assert per_block((8, 208, 6, 6), 26) == 2  # 288 for 2
    assert per_block((1, 104, 56, 56), 13, (2, 2)) == 1  # 784 for 13
    # groups wider than grouped_block_channels and grouped_pad_block_channels (ResNeXt-101 32x8d, RegNet-X-8GF)
    wide = lambda x, w, g, stride=(1, 1): cpu.conv(x, w, g, ((1, 1), (1, 1)), stride).keywords["plan"]  # noqa: E731
    assert wide((8, 2048, 14, 14), (2048, 64, 3, 3), 32) == ConvPlan("xla", "window", True)
    assert wide((8, 720, 28, 28), (720, 120, 3, 3), 6, (2, 2)) == ConvPlan("xla", "window", True)
    assert plan((2, 4, 8, 16, 16), (8, 4, 3, 3, 3)) == ConvPlan("xla", "window", False)  # 3-D
    assert plan((2, 4, 8, 16, 16), (8, 4, 5, 5, 5)).weight_grad == "xla"  # more taps than small_kernel_taps
    # 1x1, also strided; the weight gradient with the input first where rows × (out − in) > in × out
    assert plan((8, 64, 28, 28), (128, 64, 1, 1), pads=unpadded) == ConvPlan("matmul", "input_first")
    assert plan((8, 64, 28, 28), (64, 64, 1, 1), pads=unpadded) == ConvPlan("matmul")
    assert Policy("cpu", weight_gradient_input_first=False).conv(
        (8, 64, 28, 28), (128, 64, 1, 1), 1, unpadded).keywords["plan"] == ConvPlan("matmul")
    # the weight gradient per example from pointwise_per_example_min_elements output-gradient elements and
    # pointwise_per_example_pixels_per_channel
    assert plan((32, 32, 64, 64), (16, 32, 1, 1), pads=unpadded) == ConvPlan("matmul", "per_example")
    # (MobileNet-V2's first projection); an expansion takes the input first instead
    assert plan((8, 16, 48, 48), (96, 16, 1, 1), pads=unpadded) == ConvPlan("matmul", "input_first")
    assert plan((8, 96, 48, 48), (24, 96, 1, 1), pads=unpadded) == ConvPlan("matmul")  # 442,368 elements
    assert plan((32, 192, 32, 32), (32, 192, 1, 1), pads=unpadded) == ConvPlan("matmul")  # 5.3 pixels a channel
    assert plan((32, 256, 8, 8), (1024, 256, 1, 1), pads=unpadded) == ConvPlan("matmul", "input_first")
    # ResNet-50's strided shortcuts at batch 32, 128×128: 2048 and 512 rows
    assert plan((32, 512, 16, 16), (1024, 512, 1, 1), pads=unpadded, stride=(2, 2)) == ConvPlan("matmul", "input_first")
    assert plan((32, 1024, 8, 8), (2048, 1024, 1, 1), pads=unpadded, stride=(2, 2)) == ConvPlan("matmul")
    assert plan((32, 512, 4, 4), (2048, 512, 1, 1), pads=unpadded) == ConvPlan("matmul")  # 512 rows against 512²·4
    assert plan((32, 2048, 4, 4), (512, 2048, 1, 1), pads=unpadded) == ConvPlan("matmul")
    assert plan((1, 320, 7, 7), (1280, 320, 1, 1), pads=unpadded) == ConvPlan("matmul")  # under the layout threshold
    assert plan((8, 64, 28, 28), (128, 64, 1, 1)).forward == "xla"  # padded
    assert plan((8, 64, 28, 28), (128, 16, 1, 1), 4, unpadded).forward == "xla"  # grouped
    assert Policy("gpu").conv((8, 16, 32, 32), (32, 16, 3, 3), 1, unpadded) is None
    assert Policy("cpu", fast_paths=False).conv((8, 16, 32, 32), (32, 16, 1, 1), 1, unpadded) is None


def test_an_op_alone_is_traced_under_the_eager_policy():
    seen = []

    @_compiled.compiled
    def probe(x):
        seen.append(backends.policy().eager)
        return x + 1

    # a new shape for each call, so that each one traces (traces are cached by shape)
    probe(jnp.ones(3))                             # called outside any transformation
    jax.jit(probe)(jnp.ones(4))                    # traced inside a caller's jit
    jax.grad(lambda v: probe(v).sum())(jnp.ones(5))
    jax.vmap(probe)(jnp.ones((2, 6)))
    probe(jnp.ones(4))                             # alone again: its own program, not the jit's
    assert seen == [True, False, False, False, True]
    assert not backends.policy().eager             # only the op's own trace is eager


def test_batch_norm_alone_stays_channel_first_and_equals_its_jitted_self():
    """Alone, channels-last would only add transposes; inside jit it is kept (where the backend computes so)."""
    x = jnp.asarray(randn((4, 8, 32, 32)))  # 2^15 elements: channels-last size on the CPU
    eager = F.batch_norm(x, None, None, training=True)[0]
    jitted = jax.jit(lambda v: F.batch_norm(v, None, None, training=True)[0])
    np.testing.assert_allclose(eager, jitted(x), rtol=1e-5, atol=1e-5)
    alone = str(jax.make_jaxpr(_compiled._program(F.batch_norm.__wrapped__, (("training", True),),
                                                  ((tuple, ()),), backends.policy().replace(eager=True)))(
        {"input": x, "running_mean": None, "running_var": None}))
    inside = str(jax.make_jaxpr(jitted)(x))
    assert "transpose" not in alone
    assert ("transpose" in inside) == backends.policy().channels_last(x.shape)


def test_pointwise_is_the_same_function_written_channels_last():
    big = jnp.asarray(randn((2, 8, 32, 32), seed=2))  # 2^14 elements: channels-last on the CPU
    other = jnp.asarray(randn((2, 8, 32, 32), seed=3))
    f = lambda a, b: jnp.where(a > 0, a * b, b)  # noqa: E731
    assert (jnp.asarray(backends.pointwise(f, big, other)) == f(big, other)).all()
    small = big[:, :, :4, :4]
    jaxpr = lambda x: str(jax.make_jaxpr(lambda x: backends.pointwise(jnp.tanh, x))(x))  # noqa: E731
    assert ("transpose" in jaxpr(big)) == backends.policy().channels_last(big.shape)
    assert "transpose" not in jaxpr(small) and "transpose" not in jaxpr(big.reshape(2, 8, 2, 16, 32))
    with pytest.raises(ValueError, match=r"pointwise: the arrays must have one shape"):
        backends.pointwise(jnp.add, big, small)
    with pytest.raises(TypeError, match=r"pointwise: give at least one array"):
        backends.pointwise(jnp.tanh)


def test_add_and_mul_keep_the_layout_of_the_convolutions_around_them():
    a, b = jnp.asarray(randn((2, 8, 32, 32), seed=4)), jnp.asarray(randn((2, 8, 1, 1), seed=5))
    assert (F.add(a, b) == a + b).all() and (F.mul(b, a) == b * a).all()
    for op in (F.add, F.mul):
        text = str(jax.make_jaxpr(op)(a, b))
        assert ("transpose" in text) == backends.policy().channels_last(a.shape)


@pytest.mark.parametrize("batch", [1, 2, 5])
def test_single_channel_conv2d_takes_the_stencil_materialised_on_cpu(batch):
    """Behind an optimization barrier without derivatives; differentiated, an even batch in a two-halves loop."""
    x, w = jnp.asarray(randn((batch, 1, 9, 8), seed=20)), jnp.asarray(randn((3, 1, 3, 3), seed=21))
    f = lambda x, w: F.conv2d(x, w, None, 1, 1)  # noqa: E731
    forward = str(jax.make_jaxpr(f)(x, w))
    assert ("optimization_barrier" in forward) == CPU and "scan" not in forward
    backward = str(jax.make_jaxpr(jax.grad(lambda x, w: jnp.sum(f(x, w) ** 2), (0, 1)))(x, w))
    assert ("scan" in backward) == (CPU and batch % 2 == 0)
    assert ("optimization_barrier" in backward) == (CPU and batch % 2 == 1)
    # more than 8 outputs: XLA's convolution (faster there)
    assert "optimization_barrier" not in str(jax.make_jaxpr(f)(x, jnp.ones((16, 1, 3, 3))))


@pytest.mark.skipif(not CPU, reason="XLA:CPU's Eigen convolution form")
@pytest.mark.parametrize("n,groups", [(1, 1), (2, 1), (2, 2)], ids=["1d", "2d", "2d-grouped"])
def test_conv_gradients_inside_a_loop_stay_on_eigen(n, groups):
    """Inside a loop body XLA:CPU runs only convolutions already in Eigen's form
    (b01f_01io->b01f) on Eigen; fcnn writes the value and both gradients that way
    (gradient accumulation runs many times slower otherwise), grouped convolutions
    too (their weight gradient is per-tap products). Values equal the loop-free ones."""
    size = (1024,) if n == 1 else (64, 64)
    x, w = jnp.asarray(randn((4, 8) + size, seed=30)), jnp.asarray(randn((8, 8 // groups) + (3,) * n, seed=31))
    conv = {1: F.conv1d, 2: F.conv2d}[n]

    def looped(x, w):
        _, ys = jax.lax.scan(lambda c, xc: (c, conv(xc, w, padding=1, groups=groups)), None,
                             x.reshape((2, 2) + x.shape[1:]))
        return ys.reshape((4, 8) + size)

    def grads(f):
        return jax.jit(jax.grad(lambda x, w: jnp.sum(jnp.tanh(f(x, w))), argnums=(0, 1)),
                       compiler_options=fcnn.compiler_options())

    hlo = grads(looped).lower(x, w).compile().as_text()
    labels = re.findall(r"convolution\([^\n]*dim_labels=([\w>-]+)", hlo)
    canonical = "b0f_0io->b0f" if n == 1 else "b01f_01io->b01f"
    assert len(labels) == (3 if groups == 1 else 2) and set(labels) == {canonical}, labels
    for got, want in zip(grads(looped)(x, w), grads(lambda x, w: conv(x, w, padding=1, groups=groups))(x, w)):
        assert_close(got, want, 1e-5, 1e-4)


@pytest.mark.skipif(not CPU, reason="XLA:CPU's stencil formulations")
def test_depthwise_gradients_compile_to_no_grouped_convolution_also_in_a_loop():
    """XLA:CPU expands a grouped convolution's transpose into a dense one with a masked (C, C) kernel, and runs
    grouped convolutions inside loop bodies far slower still; fcnn's depthwise value and both gradients are
    stencils and per-tap reductions, with no XLA convolution left, also under gradient accumulation's scan."""
    x, w = jnp.asarray(randn((4, 16, 12, 12), seed=40)), jnp.asarray(randn((16, 1, 3, 3), seed=41))

    def loss(x, w):
        return jnp.sum(jnp.sin(F.conv2d(x, w, padding=1, groups=16)))

    def looped(x, w):
        def body(acc, xc):
            gx, gw = jax.grad(loss, (0, 1))(xc, w)
            return acc + gw, gx
        return jax.lax.scan(body, jnp.zeros_like(w), x.reshape((2, 2) + x.shape[1:]))

    for f in (jax.grad(loss, (0, 1)), looped):
        text = jax.jit(f, compiler_options=fcnn.compiler_options()).lower(x, w).compile().as_text()
        assert "convolution(" not in text
    gw_loop = looped(x, w)[0]
    assert_close(gw_loop, jax.grad(loss, 1)(x, w), 1e-5, 1e-5, "accumulated weight gradient")


@pytest.mark.skipif(not CPU, reason="XLA:CPU's Eigen convolution form")
@pytest.mark.parametrize("batch", [2, 8])
def test_transposed_convolution_gradients_stay_on_eigen(batch):
    """The sub-pixel transposed convolution (k4 s2 p1: a 2×2 stride-1 convolution padded by 1, whose output is
    wider than its input) has its weight gradient in XLA:CPU's fast form, channel-first (batch 2) and in Eigen's
    channels-last (batch 8); with the padding inside the convolution XLA swaps the operands into a
    reversed-window convolution that XLA:CPU runs 100× slower. Its gradients equal the reference's."""
    x, w = jnp.asarray(randn((batch, 8, 24, 24), seed=50)), jnp.asarray(randn((8, 6, 4, 4), seed=51))

    def loss(x, w):
        return jnp.sum(jnp.tanh(F.conv_transpose2d(x, w, stride=2, padding=1)))

    hlo = jax.jit(jax.grad(loss, (0, 1)), compiler_options=fcnn.compiler_options()).lower(x, w).compile().as_text()
    convolutions = re.findall(r"convolution\([^\n]*", hlo)
    assert convolutions and not any("rhs_reversal" in c for c in convolutions), convolutions
    if backends.policy().channels_last(x.shape):
        assert set(re.findall(r"dim_labels=([\w>-]+)", "\n".join(convolutions))) == {"b01f_01io->b01f"}
    with fcnn.backends.use(fcnn.backends.policy().replace(fast_paths=False)):
        want = jax.grad(loss, (0, 1))(x, w)
    for got, ref, what in zip(jax.grad(loss, (0, 1))(x, w), want, ("input", "weight")):
        assert_close(got, ref, 1e-4, 1e-4, f"grad {what} against the reference")
