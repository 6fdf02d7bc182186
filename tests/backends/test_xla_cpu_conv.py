"""Every registered convolution implementation against the reference and torch.

:mod:`fcnn.backends.xla_cpu.conv` writes a convolution as one of its plans
(XLA's convolution or a stencil forward, XLA's or a per-tap weight gradient,
channel-first or channels-last) with a custom JVP. Each plan is held here to
the reference convolution (:func:`fcnn.functional.conv.reference_conv`) and to
torch: values, both gradients, the JVP, per-example gradients under ``vmap``
and the Hessian (forward over reverse), which a custom VJP would forbid.
"""

import re

import jax
import jax.numpy as jnp
import pytest
import torch
from hypothesis import given, settings, strategies as st

from fcnn import backends
from fcnn.backends import ConvPlan
from fcnn.backends.xla_cpu import conv as xla_cpu_conv
from fcnn.functional import conv as C
from conv_configs import forward_configs
from oracle import assert_close, check_conv_against_torch, equations, randn, to_torch

TORCH_CONV = {1: torch.nn.functional.conv1d, 2: torch.nn.functional.conv2d, 3: torch.nn.functional.conv3d}

PLANS = xla_cpu_conv.PLANS
BLOCKS = xla_cpu_conv.BLOCKS
XLA_FORWARD = [p for p in PLANS if p.forward == "xla"]
STENCIL = [p for p in PLANS if p.forward == "stencil"]


MATMUL = xla_cpu_conv.MATMUL
MATMUL_PER_EXAMPLE = xla_cpu_conv.MATMUL_PER_EXAMPLE
MATMUL_INPUT_FIRST = xla_cpu_conv.MATMUL_INPUT_FIRST
PATCHES = xla_cpu_conv.PATCHES
TOEPLITZ = (xla_cpu_conv.TOEPLITZ, xla_cpu_conv.TOEPLITZ_LAST_AXIS, ConvPlan("toeplitz", matrix_axes=2))
TOEPLITZ_IDS = ["toeplitz-every-axis", "toeplitz-last-axis", "toeplitz-last-two-axes"]
#: the plans JAX or a JVP rule of their own differentiates, beside PLANS
PRODUCTS = (MATMUL, MATMUL_PER_EXAMPLE, MATMUL_INPUT_FIRST, PATCHES) + TOEPLITZ
PRODUCT_IDS = ["matmul", "matmul-per_example", "matmul-input_first", "patches"] + TOEPLITZ_IDS
ONE_CHANNEL_PER_GROUP = ("stencil", "toeplitz")


def _ids(plans):
    return [p.forward if p in (MATMUL, PATCHES) else f"{p.forward}-{p.weight_grad}-{'last' if p.channels_last else 'first'}"
            + (f"-chunks{p.batch_chunks}" if p.batch_chunks > 1 else "")
            + (f"-blocks{p.groups_per_block}" if p.groups_per_block > 1 else "")
            + ("-row_halves" if p.row_halves else "") + ("-branch" if p.branch else "")
            + ("-phases" if p.phases else "") for p in plans]


def implementation(plan):
    """``plan``'s convolution, or the one the policy in force picks (``"policy"``), or the reference."""
    if plan == "policy":
        return C.conv_core
    if plan == "reference":
        return C.reference_conv
    return lambda x, w, stride, pads, dilation, groups: xla_cpu_conv.conv(x, w, stride, pads, dilation, groups, plan)


def _check_all(plan, cfg, seed):
    """Value, both gradients and the JVP of ``plan`` equal torch's and the reference's."""
    n, batch, cin, cout, k, stride, padding, dilation, groups, size = cfg
    x, w = randn((batch, cin) + size, seed=seed), randn((cout, cin // groups) + k, seed=seed + 1)
    pads = tuple((p, p) for p in padding)
    conv = implementation(plan)
    f = lambda x, w: conv(x, w, stride, pads, dilation, groups)  # noqa: E731
    y, gx, gw, g = check_conv_against_torch(f, x, w, n, stride, padding, dilation, groups, seed + 2)
    ref = lambda x, w: C.reference_conv(x, w, stride, pads, dilation, groups)  # noqa: E731
    ry, rvjp = jax.vjp(ref, jnp.asarray(x), jnp.asarray(w))
    rgx, rgw = rvjp(jnp.asarray(g))
    assert_close(y, ry, 1e-5, 1e-5, "output against the reference")
    assert_close(gx, rgx, 1e-5, 1e-5, "grad input against the reference")
    assert_close(gw, rgw, 1e-5, 1e-5, "grad weight against the reference")
    dx, dw = randn(x.shape, seed=seed + 3), randn(w.shape, seed=seed + 4)
    _, tangent = jax.jvp(f, (jnp.asarray(x), jnp.asarray(w)), (jnp.asarray(dx), jnp.asarray(dw)))
    _, want = torch.func.jvp(lambda a, b: TORCH_CONV[n](a, b, None, stride, padding, dilation, groups),
                             (to_torch(x), to_torch(w)), (to_torch(dx), to_torch(dw)))
    assert_close(tangent, want, 1e-4, 1e-4, "jvp")
    _, rtangent = jax.jvp(ref, (jnp.asarray(x), jnp.asarray(w)), (jnp.asarray(dx), jnp.asarray(dw)))
    assert_close(tangent, rtangent, 1e-5, 1e-5, "jvp against the reference")


@pytest.mark.parametrize("plan", XLA_FORWARD + ["policy", "reference"], ids=_ids(XLA_FORWARD) + ["policy", "reference"])
@settings(max_examples=6)
@given(cfg=forward_configs())
def test_every_plan_matches_the_reference_and_torch(plan, cfg):
    _check_all(plan, cfg, seed=1)


@pytest.mark.parametrize("plan", STENCIL, ids=_ids(STENCIL))
@settings(max_examples=4)  # and more in the sweep stage (test_the_stencil_and_phase_plans_over_more_geometries)
@given(cfg=forward_configs(one_channel_per_group=True))
def test_every_stencil_plan_matches_the_reference_and_torch(plan, cfg):
    """The window-product forward (depthwise and single-channel convolutions)."""
    _check_all(plan, cfg, seed=8)


PHASES = [p for p in STENCIL if p.phases]
XLA_PHASES = [p for p in PLANS + BLOCKS if p.forward == "xla" and p.phases]


def _strided_undilated(cfg):
    return any(s > 1 for s in cfg[5]) and all(d == 1 for d in cfg[7])


@pytest.mark.parametrize("plan", PHASES, ids=_ids(PHASES))
@settings(max_examples=5)
@given(cfg=forward_configs(one_channel_per_group=True).filter(_strided_undilated))
def test_the_strided_stencils_input_gradient_by_phases_matches_the_reference_and_torch(plan, cfg):
    """Strided, undilated stencils, whose input gradient is one stencil per output phase (kernels smaller
    than the stride included: phases no tap reaches)."""
    _check_all(plan, cfg, seed=12)


@pytest.mark.parametrize("plan", XLA_PHASES, ids=_ids(XLA_PHASES))
@settings(max_examples=3)
@given(cfg=forward_configs().filter(_strided_undilated))
def test_xlas_strided_input_gradient_by_phases_matches_the_reference_and_torch(plan, cfg):
    """Strided, undilated convolutions of any group count whose input gradient is one of XLA's stride-1
    convolutions per output phase (with two groups per block: its block-diagonal kernel's, zero groups padded)."""
    _check_all(plan, cfg, seed=14)


@pytest.mark.sweep
@pytest.mark.parametrize("plan", STENCIL + XLA_PHASES, ids=_ids(STENCIL + XLA_PHASES))
@settings(max_examples=10)
@given(data=st.data())
def test_the_stencil_and_phase_plans_over_more_geometries(plan, data):
    """The three tests above, over more geometries each (the default run checks a few per plan)."""
    configs = forward_configs(one_channel_per_group=plan.forward == "stencil")
    _check_all(plan, data.draw(configs.filter(_strided_undilated) if plan.phases else configs), seed=16)


@st.composite
def blocked_configs(draw):
    """A grouped convolution's geometry (:func:`forward_configs`) and a number of groups per block, up to one
    more than its groups (those it does not divide are padded with groups of zeros)."""
    cfg = draw(forward_configs(groups_from=(2, 3, 4, 6)))
    return cfg, draw(st.integers(2, cfg[8] + 1))


@pytest.mark.parametrize("plan", BLOCKS, ids=_ids(BLOCKS))
@settings(max_examples=6)
@given(case=blocked_configs())
def test_block_diagonal_groups_match_the_reference_and_torch(plan, case):
    """XLA's forward and input gradient convolving blocks of groups as one, with a block-diagonal kernel."""
    cfg, per_block = case
    _check_all(plan._replace(groups_per_block=per_block), cfg, seed=30)


def test_block_diagonal_groups_keep_a_non_finite_weight_in_its_group():
    """The kernel is zero between groups by selection: an infinite weight reaches only its group's outputs."""
    x, w = jnp.ones((1, 4, 5, 5)), jnp.ones((4, 2, 3, 3)).at[0, 0, 1, 1].set(jnp.inf)
    got = xla_cpu_conv.conv(x, w, (1, 1), ((1, 1), (1, 1)), (1, 1), 2, BLOCKS[0])
    want = C.reference_conv(x, w, (1, 1), ((1, 1), (1, 1)), (1, 1), 2)
    assert jnp.array_equal(jnp.isnan(got), jnp.isnan(want)) and jnp.array_equal(jnp.isinf(got), jnp.isinf(want))


def test_block_diagonal_groups_need_xla_forward():
    x, w = jnp.ones((1, 6, 5, 5)), jnp.ones((6, 1, 3, 3))
    with pytest.raises(ValueError, match="groups_per_block 2 needs XLA's forward, got forward 'stencil'"):
        xla_cpu_conv.conv(x, w, (1, 1), ((1, 1), (1, 1)), (1, 1), 6, ConvPlan("stencil", groups_per_block=2))


@pytest.mark.parametrize("plan", TOEPLITZ, ids=TOEPLITZ_IDS)
@settings(max_examples=8)
@given(cfg=forward_configs(one_channel_per_group=True))
def test_every_toeplitz_plan_matches_the_reference_and_torch(plan, cfg):
    """Depthwise and single-channel convolutions as products with the kernel's Toeplitz matrices, 1-D to 3-D
    (matrices over every axis, the last one, or the last two with windows over the others)."""
    _check_all(plan, cfg, seed=30)


@pytest.mark.parametrize("plan", TOEPLITZ, ids=TOEPLITZ_IDS)
def test_the_toeplitz_plans_on_convnext_depthwise_layers(plan):
    """ConvNeXt's 7×7 depthwise convolution (padding 3) on maps smaller than the kernel and as large as it."""
    for size in ((3, 3), (7, 7), (4, 6)):
        _check_all(plan, (2, 2, 4, 4, (7, 7), (1, 1), (3, 3), (1, 1), 4, size), seed=31)


def test_the_toeplitz_plan_needs_one_input_channel_per_group():
    x, w = jnp.ones((1, 4, 5, 5)), jnp.ones((4, 2, 3, 3))
    with pytest.raises(ValueError, match="toeplitz plan needs one input channel per group"):
        xla_cpu_conv.conv(x, w, (1, 1), ((0, 0), (0, 0)), (1, 1), 2, xla_cpu_conv.TOEPLITZ)


# Outputs wider than the inputs (padding above (kernel − 1)/2 at stride 1: the sub-pixel transposed
# convolution's 2×2 kernel padded by 1): the Eigen weight term pads its input beforehand there.
OVERPADDED = [(2, 2, 3, 4, (2, 2), (1, 1), (1, 1), (1, 1), 1, (5, 6)),
              (1, 1, 2, 3, (1,), (1,), (2,), (1,), 1, (4,)),
              (2, 3, 2, 2, (3, 2), (1, 1), (2, 1), (1, 2), 1, (4, 5))]
EIGEN = [p for p in XLA_FORWARD if p.channels_last]


@pytest.mark.parametrize("plan", EIGEN, ids=_ids(EIGEN))
@pytest.mark.parametrize("cfg", OVERPADDED)
def test_plans_with_outputs_wider_than_inputs_match_the_reference_and_torch(plan, cfg):
    _check_all(plan, cfg, seed=21)


@pytest.mark.parametrize("plan", EIGEN, ids=_ids(EIGEN))
def test_hessian_with_an_output_wider_than_the_input_matches_torch(plan):
    x, w = randn((2, 3, 5, 6), seed=22), randn((2, 3, 2, 2), seed=23) * 0.5

    def loss_j(w):
        return jnp.sum(jnp.tanh(xla_cpu_conv.conv(jnp.asarray(x), w, (1, 1), ((1, 1), (1, 1)), (1, 1), 1, plan)) ** 2)

    def loss_t(w):
        return torch.sum(torch.tanh(torch.nn.functional.conv2d(to_torch(x), w, padding=1)) ** 2)

    assert_close(jax.hessian(loss_j)(jnp.asarray(w)), torch.autograd.functional.hessian(loss_t, to_torch(w)),
                 1e-4, 1e-4)


@st.composite
def pointwise_configs(draw):
    """1×1 convolutions without padding or groups, strided or not, 1-D to 3-D."""
    n = draw(st.sampled_from([1, 2, 2, 3]))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(n))
    size = tuple(draw(st.integers(1, 7)) for _ in range(n))
    return (n, draw(st.integers(1, 3)), draw(st.integers(1, 5)), draw(st.integers(1, 4)), (1,) * n, stride,
            (0,) * n, tuple(draw(st.integers(1, 2)) for _ in range(n)), 1, size)


@pytest.mark.parametrize("plan", [MATMUL, MATMUL_PER_EXAMPLE, MATMUL_INPUT_FIRST, "policy"],
                         ids=["matmul", "per_example", "input_first", "policy"])
@settings(max_examples=8)
@given(cfg=pointwise_configs())
def test_the_matmul_plan_matches_the_reference_and_torch(plan, cfg):
    """1×1 convolutions as one matrix product (what the policy picks for them on XLA:CPU)."""
    _check_all(plan, cfg, seed=12)


@settings(max_examples=8)
@given(cfg=forward_configs(dims=(2,), groups_from=(1,)))
def test_the_patches_plan_matches_the_reference_and_torch(cfg):
    """XLA's convolution differentiated as a matrix product of the input's patches (one group)."""
    _check_all(PATCHES, cfg, seed=14)


@st.composite
def tiling_configs(draw):
    """2-D convolutions whose windows tile the input: kernel equal to stride, no padding or dilation, one
    group; the sizes need not be multiples of the kernel (the remainder is dropped, as torch drops it)."""
    k = tuple(draw(st.integers(1, 4)) for _ in range(2))
    size = tuple(draw(st.integers(kk, 3 * kk + 2)) for kk in k)
    return (2, draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 3)), k, k, (0, 0), (1, 1), 1,
            size)


@pytest.mark.parametrize("plan", [PATCHES, "policy"], ids=["patches", "policy"])
@settings(max_examples=8)
@given(cfg=tiling_configs())
def test_tiling_windows_match_the_reference_and_torch(plan, cfg):
    """ConvNeXt's stem and downsampling layers, patch embeddings: the patches plan, and the policy with every
    input over its layout threshold (so that it picks that plan for these)."""
    with backends.use(backends.policy().replace(channels_last_min_elements=0)):
        _check_all(plan, cfg, seed=15)


def test_the_patches_plan_refuses_groups():
    with pytest.raises(ValueError, match="patches plan needs groups=1"):
        xla_cpu_conv.conv(jnp.ones((1, 4, 5, 5)), jnp.ones((4, 2, 3, 3)), (1, 1), ((1, 1), (1, 1)), (1, 1), 2, PATCHES)


def test_the_matmul_plan_refuses_what_is_not_a_matrix_product():
    x, unpadded = jnp.ones((1, 4, 5, 5)), ((0, 0), (0, 0))
    for w, pads, groups in ((jnp.ones((4, 4, 3, 3)), unpadded, 1), (jnp.ones((4, 4, 1, 1)), ((1, 1), (0, 0)), 1),
                            (jnp.ones((4, 2, 1, 1)), unpadded, 2)):
        with pytest.raises(ValueError, match="matmul plan needs a 1x1 kernel"):
            xla_cpu_conv.conv(x, w, (1, 1), pads, (1, 1), groups, MATMUL)


def _dot_batch_dims(jaxpr):
    """The batch dimensions of every ``dot_general`` in ``jaxpr`` and the jaxprs it calls."""
    return [eqn.params["dimension_numbers"][1] for eqn in equations(jaxpr, "dot_general")]


def test_the_per_example_plan_differentiates_into_a_batched_product():
    """Its weight gradient is one product per example (summed), the plain plan's one product over the batch."""
    x, w = jnp.asarray(randn((4, 3, 5, 5), seed=22)), jnp.asarray(randn((6, 3, 1, 1), seed=23))

    def batch_dims(plan):
        loss = lambda w: jnp.sum(xla_cpu_conv.conv(x, w, (1, 1), ((0, 0), (0, 0)), (1, 1), 1, plan) ** 2)  # noqa: E731
        return _dot_batch_dims(jax.make_jaxpr(jax.grad(loss))(w).jaxpr)

    assert ((0,), (0,)) in batch_dims(MATMUL_PER_EXAMPLE)
    assert all(dims == ((), ()) for dims in batch_dims(MATMUL))


# (input shape, weight shape, stride, padding, groups): the stencil plans need one input channel per group
HESSIAN_CASES = {"xla": ((2, 3, 7, 6), (2, 3, 3, 2), (2, 1), (1, 0), 1),
                 "stencil": ((4, 2, 7, 6), (4, 1, 3, 2), (1, 2), (1, 0), 2),
                 "matmul": ((2, 3, 7, 6), (4, 3, 1, 1), (2, 3), (0, 0), 1),
                 "patches": ((2, 3, 7, 6), (2, 3, 3, 2), (2, 1), (1, 0), 1),
                 "blocks": ((2, 4, 7, 6), (6, 2, 3, 2), (2, 1), (1, 0), 2),
                 "toeplitz": ((4, 2, 7, 6), (4, 1, 3, 2), (1, 2), (1, 0), 2)}


def _hessian_case(plan):
    if plan == "policy":
        return "xla"
    return "blocks" if plan.groups_per_block > 1 else plan.forward


@pytest.mark.parametrize("plan", PLANS + BLOCKS + PRODUCTS + ("policy",),
                         ids=_ids(PLANS + BLOCKS) + PRODUCT_IDS + ["policy"])
def test_hessian_of_every_plan_matches_torch(plan):
    """Second order through the custom JVP (forward over reverse), with a stride and asymmetric padding."""
    xs, ws, stride, padding, groups = HESSIAN_CASES[_hessian_case(plan)]
    x, w = randn(xs, seed=18), randn(ws, seed=19) * 0.5
    conv = implementation(plan)
    pads = tuple((p, p) for p in padding)

    def loss_j(w):
        return jnp.sum(jnp.tanh(conv(jnp.asarray(x), w, stride, pads, (1, 1), groups)) ** 2)

    def loss_t(w):
        y = torch.nn.functional.conv2d(to_torch(x), w, stride=stride, padding=padding, groups=groups)
        return torch.sum(torch.tanh(y) ** 2)

    assert_close(jax.hessian(loss_j)(jnp.asarray(w)), torch.autograd.functional.hessian(loss_t, to_torch(w)),
                 1e-4, 1e-4)


@pytest.mark.parametrize("plan", PLANS + BLOCKS + PRODUCTS, ids=_ids(PLANS + BLOCKS) + PRODUCT_IDS)
def test_per_example_gradients_under_vmap(plan):
    """vmap(grad) through the custom JVP equals torch's per-example gradients (one backward each)."""
    groups = 2 if plan.groups_per_block > 1 else 1
    cin = 1 if plan.forward in ONE_CHANNEL_PER_GROUP else 3 * groups
    k, p = (1, 0) if plan.forward == "matmul" else (3, 1)
    x, w = randn((4, cin, 6, 6), seed=10), randn((5 * groups, cin // groups, k, k), seed=11)
    conv = implementation(plan)

    def loss(w, xi):  # xi unbatched (C, 6, 6)
        return jnp.sum(conv(xi[None], w, (1, 1), ((p, p), (p, p)), (1, 1), groups) ** 2)

    grads = jax.vmap(jax.grad(loss), in_axes=(None, 0))(jnp.asarray(w), jnp.asarray(x))
    for i in range(4):
        tw = to_torch(w, requires_grad=True)
        torch.sum(torch.nn.functional.conv2d(to_torch(x[i]), tw, padding=p, groups=groups) ** 2).backward()
        assert_close(grads[i], tw.grad, 1e-4, 1e-3, f"example {i}")


def test_stencil_needs_one_input_channel_per_group():
    x, w = jnp.ones((1, 4, 5, 5)), jnp.ones((4, 2, 3, 3))
    with pytest.raises(ValueError, match="one input channel per group"):
        xla_cpu_conv.conv(x, w, (1, 1), ((0, 0), (0, 0)), (1, 1), 2, ConvPlan(forward="stencil"))


def _loop_operand_shapes(jaxpr):
    """The operand shapes of every ``scan`` in ``jaxpr`` and the jaxprs it calls, one list per loop."""
    return [[tuple(v.aval.shape) for v in eqn.invars] for eqn in equations(jaxpr, "scan")]


def test_the_stencil_loops_take_their_weights_tap_major():
    """The stencils' loops (the halves of a training step's forward and input gradient, the row halves of a 7×7
    inference) never take the weight in torch's ``(C, 1, *k)`` layout: sliced from it inside the loop, each tap's
    weights lie ``prod(k)`` floats apart and XLA:CPU gathers them element by element."""
    x, w = jnp.asarray(randn((4, 6, 8, 8), seed=24)), jnp.asarray(randn((6, 1, 3, 3), seed=25))
    train = ConvPlan("stencil", "xla", True, 2)
    loss = lambda x, w: jnp.sum(jnp.tanh(xla_cpu_conv.conv(x, w, (1, 1), ((1, 1), (1, 1)), (1, 1), 6, train)) ** 2)  # noqa: E731
    loops = _loop_operand_shapes(jax.make_jaxpr(jax.grad(loss, (0, 1)))(x, w).jaxpr)
    assert len(loops) >= 3 and all(w.shape not in shapes for shapes in loops), loops

    w7 = jnp.asarray(randn((6, 1, 7, 7), seed=26))
    rows = ConvPlan("stencil", "xla", True, 1, True)
    forward = lambda x, w: xla_cpu_conv.conv(x, w, (1, 1), ((3, 3), (3, 3)), (1, 1), 6, rows)  # noqa: E731
    loops = _loop_operand_shapes(jax.make_jaxpr(forward)(x, w7).jaxpr)
    assert len(loops) == 1 and (7, 7, 6) in loops[0] and w7.shape not in loops[0], loops


def test_the_branch_plan_writes_its_stencils_from_conditionals_xla_keeps():
    """The forward and the input gradient each are one conditional, not a loop, in a training step (the predicate
    reads the weight) and in inference with the weight a constant, as :func:`fcnn.freeze` compiles it (it reads
    the input); XLA folds a conditional whose predicate it can compute, and then fuses the stencil into its
    consumers. The taken branch of each conditional calls one traced stencil; the other reads one element of
    its input and computes no window product, and no activation-sized fill becomes a residual of the forward
    pass."""
    x, w = jnp.asarray(randn((4, 6, 8, 8), seed=27)), jnp.asarray(randn((6, 1, 7, 7), seed=28))
    plan = ConvPlan("stencil", "xla", True, branch=True)
    conv = lambda x, w: xla_cpu_conv.conv(x, w, (1, 1), ((3, 3), (3, 3)), (1, 1), 6, plan)  # noqa: E731
    step = jax.grad(lambda x, w: jnp.sum(jnp.tanh(conv(x, w)) ** 2), (0, 1))
    jaxpr = jax.make_jaxpr(step)(x, w).jaxpr
    # (JAX's partial evaluation adds conditionals of the per-tap weights, the residuals: only those)
    stencils = [e for e in equations(jaxpr, "cond") if any(v.aval.shape == (4, 8, 8, 6) for v in e.outvars)]
    assert len(stencils) == 2 and not equations(jaxpr, "scan")
    for cond in stencils:
        never, taken = ([eqn.primitive.name for eqn in branch.jaxpr.eqns] for branch in cond.params["branches"])
        assert taken == ["jit"], taken  # one call of the traced stencil (trace time, `_branched`)
        assert len(never) <= 6 and "jit" not in never and never.count("mul") == 1, never  # 0 · x[0], its transpose
    hlo_stencils = re.compile(r"= \(f32\[4,8,8,6\][^)]*\) conditional\(")
    assert len(hlo_stencils.findall(jax.jit(step).lower(x, w).compile().as_text())) == 2
    frozen = jax.jit(lambda x: jnp.tanh(conv(x, w)))
    assert len(hlo_stencils.findall(frozen.lower(x).compile().as_text())) == 1
    assert_close(frozen(x), jnp.tanh(C.reference_conv(x, w, (1, 1), ((3, 3), (3, 3)), (1, 1), 6)), 1e-5, 1e-5)


def test_the_chunked_stencil_under_vmap():
    """Per-example gradients of a depthwise stencil whose weight gradient runs over batch chunks, inside vmap."""
    x, w = randn((3, 4, 2, 6, 6), seed=20), randn((4, 1, 3, 3), seed=21)
    pads = ((1, 1), (1, 1))

    def grads(conv):
        loss = lambda w, xi: jnp.sum(jnp.tanh(conv(xi, w, (1, 2), pads, (1, 1), 2)) ** 2)  # noqa: E731
        return jax.vmap(jax.grad(loss, (0, 1)), in_axes=(None, 0))(jnp.asarray(w), jnp.asarray(x))

    for got, want in zip(grads(implementation(ConvPlan("stencil", "xla", True, 2))), grads(C.reference_conv)):
        assert_close(got, want, 1e-5, 1e-5)
