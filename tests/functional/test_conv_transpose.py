import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from fcnn import functional as F
from conv_configs import transposed
from oracle import assert_close, randn, to_torch

FCNN = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
TORCH = {1: torch.nn.functional.conv_transpose1d, 2: torch.nn.functional.conv_transpose2d,
         3: torch.nn.functional.conv_transpose3d}


@st.composite
def conv_transpose_configs(draw, dims=(1, 2, 3)):
    n = draw(st.sampled_from(dims))
    cin, cout, groups, k, stride, padding, output_padding, dilation, size = draw(transposed(n, [1, 1, 2, 3], 5))
    batched = draw(st.booleans())
    bias = draw(st.booleans())
    return n, cin, cout, k, stride, padding, output_padding, groups, dilation, size, batched, bias


def compare(n, x, w, b, args, rtol=1e-4, atol=1e-5, seed=0):
    """Forward and the gradients w.r.t. input, weight and bias against torch."""
    f = lambda x_, w_, b_: FCNN[n](x_, w_, b_, *args)
    primals = (jnp.asarray(x), jnp.asarray(w), None if b is None else jnp.asarray(b))
    out, vjp = jax.vjp(f, *primals)
    tx, tw = to_torch(x, True), to_torch(w, True)
    tb = None if b is None else to_torch(b, True)
    ref = TORCH[n](tx, tw, tb, *args)
    assert_close(out, ref, rtol, atol, "forward")
    cot = np.random.RandomState(seed).standard_normal(ref.shape).astype(np.float32)
    gx, gw, gb = vjp(jnp.asarray(cot))
    ref.backward(torch.from_numpy(cot))
    assert_close(gx, tx.grad, rtol, atol, "grad of input")
    assert_close(gw, tw.grad, rtol, atol, "grad of weight")
    if b is not None:
        assert_close(gb, tb.grad, rtol, atol, "grad of bias")
    return out


@settings(max_examples=7)
@given(conv_transpose_configs())
def test_conv_transpose_matches_torch(cfg):
    n, cin, cout, k, stride, padding, output_padding, groups, dilation, size, batched, bias = cfg
    x = randn(((2,) if batched else ()) + (cin,) + size, seed=1)
    w = randn((cin, cout // groups) + k, seed=2)
    b = randn((cout,), seed=3) if bias else None
    compare(n, x, w, b, (stride, padding, output_padding, groups, dilation))


@pytest.mark.parametrize("n", [1, 2, 3])
def test_common_upsampling_configuration(n):
    # k4 s2 p1 (DCGAN / U-Net decoders) and k2 s2 (non-overlapping)
    x = randn((2, 4) + (5,) * n, seed=4)
    compare(n, x, randn((4, 3) + (4,) * n, seed=5), randn((3,), seed=6), (2, 1))
    compare(n, x, randn((4, 3) + (2,) * n, seed=7), None, (2, 0))


def test_output_padding_with_dilation_and_groups():
    x = randn((1, 4, 4, 3), seed=8)
    w = randn((4, 3, 3, 2), seed=9)
    # output_padding 2 is allowed because dilation 3 > stride 2
    compare(2, x, w, randn((6,), seed=10), ((2, 1), (1, 0), (2, 0), 2, (3, 1)))


def test_output_size_zero_is_refused():
    # torch refuses an empty output for a batch of one and returns it for larger batches (different
    # kernels); fcnn refuses it for every batch size, as it refuses a negative size
    x, w = randn((2, 1, 1)), randn((1, 2, 4))
    with pytest.raises(RuntimeError, match="Output size is too small"):
        torch.nn.functional.conv_transpose1d(to_torch(x[:1]), to_torch(w), None, 1, 2)
    for batch in (1, 2):
        with pytest.raises(ValueError, match="conv_transpose1d: .*calculated output size \\[0\\] is too small"):
            F.conv_transpose1d(x[:batch], w, None, 1, 2)


def test_jit_and_vmap():
    x = jnp.asarray(randn((3, 2, 5, 4), seed=11))
    w = jnp.asarray(randn((2, 3, 3, 3), seed=12))
    f = jax.jit(lambda a, b: F.conv_transpose2d(a, b, stride=2, padding=1, output_padding=1))
    ref = torch.nn.functional.conv_transpose2d(to_torch(x), to_torch(w), stride=2, padding=1, output_padding=1)
    assert_close(f(x, w), ref, 1e-4, 1e-5)
    per_example = jax.vmap(lambda a: F.conv_transpose2d(a, w, stride=2, padding=1, output_padding=1))(x)
    assert_close(per_example, ref, 1e-4, 1e-5)


@pytest.mark.parametrize(
    "call, err, match",
    [
        (lambda x, w: F.conv_transpose2d(x, w, stride=2, output_padding=2), ValueError,
         "output padding must be smaller than either stride or dilation"),
        (lambda x, w: F.conv_transpose2d(x, w, stride=0), ValueError, "stride"),
        (lambda x, w: F.conv_transpose2d(x, w, padding=-1), ValueError, "padding"),
        (lambda x, w: F.conv_transpose2d(x, w, padding="same"), TypeError, "padding"),
        (lambda x, w: F.conv_transpose2d(x, w, output_padding=-1), ValueError, "output_padding"),
        (lambda x, w: F.conv_transpose2d(x, w, dilation=(1, 0)), ValueError, "dilation"),
        (lambda x, w: F.conv_transpose2d(x, w, groups=3), ValueError, "groups"),
        (lambda x, w: F.conv_transpose2d(x[:, :1], w), ValueError, "channels"),
        (lambda x, w: F.conv_transpose2d(x, w[0]), ValueError, "weight"),
        (lambda x, w: F.conv_transpose2d(x, w, jnp.ones(5)), ValueError, "bias"),
        (lambda x, w: F.conv_transpose2d(x[0, 0], w), ValueError, "input"),
        (lambda x, w: F.conv_transpose2d(x, w, padding=5), ValueError, "output size"),
        (lambda x, w: F.conv_transpose2d(x, w.astype(jnp.float16)), TypeError, "dtype"),
    ],
)
def test_bad_arguments(call, err, match):
    with pytest.raises(err, match=match):
        call(jnp.ones((1, 2, 4, 4)), jnp.ones((2, 3, 3, 3)))
