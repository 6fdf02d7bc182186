"""Hardtanh, SELU, CELU, Mish, Softplus, Softsign, LogSigmoid, Tanhshrink, Threshold, Hard/Softshrink, GLU and
Softmax2d against torch: values and gradients on random inputs, at every kink, over generated hyper-parameters."""

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from fcnn import functional as F, nn
from oracle import assert_close, check_layer, randn, to_torch

T = torch.nn
TF = torch.nn.functional

# name -> (fcnn layer, torch module); hyper-parameters chosen so that their kinks are among KINKS
LAYERS = {
    "hardtanh": (lambda: nn.Hardtanh(), lambda: T.Hardtanh()),
    "hardtanh_args": (lambda: nn.Hardtanh(-0.5, 1.5), lambda: T.Hardtanh(-0.5, 1.5)),
    "selu": (lambda: nn.SELU(), lambda: T.SELU()),
    "celu": (lambda: nn.CELU(), lambda: T.CELU()),
    "celu_alpha": (lambda: nn.CELU(-1.5), lambda: T.CELU(-1.5)),
    "mish": (lambda: nn.Mish(), lambda: T.Mish()),
    "softplus": (lambda: nn.Softplus(), lambda: T.Softplus()),
    "softplus_args": (lambda: nn.Softplus(2.0, 3.0), lambda: T.Softplus(2.0, 3.0)),
    "softsign": (lambda: nn.Softsign(), lambda: T.Softsign()),
    "logsigmoid": (lambda: nn.LogSigmoid(), lambda: T.LogSigmoid()),
    "tanhshrink": (lambda: nn.Tanhshrink(), lambda: T.Tanhshrink()),
    "threshold": (lambda: nn.Threshold(0.5, 2.0), lambda: T.Threshold(0.5, 2.0)),
    "hardshrink": (lambda: nn.Hardshrink(), lambda: T.Hardshrink()),
    "hardshrink_1": (lambda: nn.Hardshrink(1.0), lambda: T.Hardshrink(1.0)),
    "softshrink": (lambda: nn.Softshrink(), lambda: T.Softshrink()),
    "softshrink_0": (lambda: nn.Softshrink(0.0), lambda: T.Softshrink(0.0)),
    "glu": (lambda: nn.GLU(), lambda: T.GLU()),
    "softmax2d": (lambda: nn.Softmax2d(), lambda: T.Softmax2d()),
}

# kinks of every layer above (±0.5, ±1, 1.5 = 3/2 for softplus_args, 0), saturation and overflow regions
KINKS = np.array([-100.0, -25.0, -6.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 3.0, 6.0,
                  10.0, 20.0, 25.0, 100.0, -0.25, 0.75], np.float32)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_values_and_gradients_at_the_kinks(name):
    make, make_t = LAYERS[name]
    x = KINKS.reshape(1, 2, 3, 3) if name == "softmax2d" else KINKS.reshape(3, 6)
    check_layer(make(), make_t(), x)


# hyper-parameters drawn, inputs of any rank
SWEEP = {
    "hardtanh": (st.tuples(st.floats(-3, 0), st.floats(0, 3)), lambda a: (nn.Hardtanh(*a), T.Hardtanh(*a))),
    "celu": (st.floats(0.1, 3).map(lambda v: (v,)), lambda a: (nn.CELU(*a), T.CELU(*a))),
    "softplus": (st.tuples(st.sampled_from([0.5, 1.0, 3.0]), st.sampled_from([1.0, 5.0, 20.0])),
                 lambda a: (nn.Softplus(*a), T.Softplus(*a))),
    "threshold": (st.tuples(st.floats(-2, 2), st.floats(-5, 5)), lambda a: (nn.Threshold(*a), T.Threshold(*a))),
    "hardshrink": (st.floats(0, 2).map(lambda v: (v,)), lambda a: (nn.Hardshrink(*a), T.Hardshrink(*a))),
    "softshrink": (st.floats(0, 2).map(lambda v: (v,)), lambda a: (nn.Softshrink(*a), T.Softshrink(*a))),
    "glu": (st.sampled_from([(0,), (1,), (-1,), (-2,)]), lambda a: (nn.GLU(*a), T.GLU(*a))),
    "others": (st.sampled_from(["selu", "mish", "softsign", "logsigmoid", "tanhshrink", "softmax2d"]),
               lambda a: (LAYERS[a][0](), LAYERS[a][1]())),
}


@given(st.data(), st.sampled_from(sorted(SWEEP)), st.sampled_from([(4, 6), (2, 4, 6), (2, 2, 4, 2)]),
       st.floats(0.1, 8.0))
@settings(max_examples=16)
def test_layers_match_torch_over_generated_hyper_parameters(data, family, shape, scale):
    args_strategy, build = SWEEP[family]
    args = data.draw(args_strategy)
    layer, module = build(args)
    if family == "others" and args == "softmax2d":
        shape = (2, 4, 3) if len(shape) < 3 else shape
    check_layer(layer, module, scale * randn(shape, seed=len(shape)), atol=2e-5)


@pytest.mark.parametrize("fn,ref,kw", [
    (F.hardtanh, TF.hardtanh, {"min_val": -2.0, "max_val": 0.5}),
    (F.selu, TF.selu, {}), (F.celu, TF.celu, {"alpha": 0.5}), (F.mish, TF.mish, {}),
    (F.softplus, TF.softplus, {"beta": 0.5, "threshold": 4.0}), (F.softsign, TF.softsign, {}),
    (F.logsigmoid, TF.logsigmoid, {}), (F.tanhshrink, TF.tanhshrink, {}),
    (F.threshold, TF.threshold, {"threshold": -0.5, "value": 7.0}),
    (F.hardshrink, TF.hardshrink, {"lambd": 0.3}), (F.softshrink, TF.softshrink, {"lambd": 0.3}),
    (F.glu, TF.glu, {"dim": 0}),
])
def test_functional_matches_torch(fn, ref, kw):
    x = 4 * randn((4, 5))
    assert_close(fn(jnp.asarray(x), **kw), ref(to_torch(x), **kw))


def test_nan_propagates_as_in_torch():
    x = np.array([np.nan, -1.0, 2.0], np.float32)
    for fn, ref in [(F.hardtanh, TF.hardtanh), (F.threshold, None), (F.hardshrink, TF.hardshrink),
                    (F.softshrink, TF.softshrink), (F.selu, TF.selu), (F.softplus, TF.softplus)]:
        if fn is F.threshold:
            assert_close(fn(jnp.asarray(x), 0.0, 5.0), TF.threshold(to_torch(x), 0.0, 5.0))
        else:
            assert_close(fn(jnp.asarray(x)), ref(to_torch(x)))


def test_bad_arguments_are_refused_where_torch_refuses():
    with pytest.raises(ValueError, match="min_val cannot be greater than max_val"):
        nn.Hardtanh(2.0, 1.0)
    with pytest.raises(ValueError, match="min_val cannot be greater"):
        F.hardtanh(jnp.ones(2), 2.0, 1.0)
    with pytest.raises(ValueError, match="lambd must be non-negative"):
        nn.Softshrink(-1.0)
    with pytest.raises(RuntimeError):
        TF.softshrink(torch.ones(2), -1.0)
    with pytest.raises(ValueError, match="alpha cannot be 0"):
        nn.CELU(0.0)
    with pytest.raises(ValueError, match="dimension 1 is size 5"):
        F.glu(jnp.ones((2, 5)))
    with pytest.raises(ValueError, match="0-D"):
        F.glu(jnp.ones(()))
    with pytest.raises(IndexError, match="dim"):
        F.glu(jnp.ones((2, 4)), dim=2)
    with pytest.raises(ValueError, match="Softmax2d: expected a 3-D or 4-D input"):
        nn.Softmax2d().apply({}, {}, jnp.ones((2, 3)))
    with pytest.raises(TypeError, match="beta must be a number"):
        nn.Softplus("1")
    with pytest.raises(TypeError, match="floating-point"):
        F.mish(jnp.ones(3, jnp.int32))
