"""fcnn.freeze: what the frozen program computes, what it compiles to, and what it refuses.

Its values against torchvision's networks are in ``tests/models/test_zoo.py``.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fcnn
from fcnn import nn


def _net():
    return nn.Sequential(nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
                         nn.Conv2d(32, 32, 3, padding=1, groups=32), nn.BatchNorm2d(32), nn.ReLU6(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(32, 5))


def _trained_state(net, key):
    """Parameters and non-trivial batch-norm statistics (one training step's worth)."""
    params, state = net.init(key)
    x = jax.random.normal(jax.random.key(1), (4, 16, 20, 20))
    _, state = net.apply(params, state, x, train=True)
    return params, state


def test_frozen_forward_equals_eval_apply():
    net = _net()
    params, state = _trained_state(net, jax.random.key(0))
    forward = fcnn.freeze(net, params, state)
    for shape in ((3, 16, 20, 20), (1, 16, 9, 9)):
        x = jax.random.normal(jax.random.key(2), shape)
        expected = net.apply(params, state, x, train=False)[0]
        np.testing.assert_allclose(np.asarray(forward(x)), np.asarray(expected), rtol=1e-5, atol=1e-5)


def _instructions(hlo: str):
    """``(shape, opcode)`` of every instruction of an optimized HLO module's text."""
    return re.findall(r"= (\w+\[[\d,]*\])\S* (\w[\w-]*)\(", hlo)


def test_frozen_program_has_the_input_as_its_only_argument_and_no_weight_relayout():
    # With the weights as arguments, XLA:CPU copies each 3×3 weight into its convolution's (kH, kW, I, O)
    # layout on every call; frozen, that layout is a constant of the program.
    net = nn.Sequential(nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU())
    params, state = net.init(jax.random.key(0))
    x = jnp.ones((1, 16, 32, 32))
    as_args = fcnn.jit(lambda p, s, x: net.apply(p, s, x)[0]).lower(params, state, x).compile().as_text()
    frozen = fcnn.freeze(net, params, state).lower(x).compile().as_text()
    weight = "f32[3,3,16,32]"
    assert any(shape == weight and op != "constant" for shape, op in _instructions(as_args)), \
        "the test no longer sees the per-call weight relayout it is about"
    assert [op for shape, op in _instructions(frozen) if shape == weight] == ["constant"]
    entry = frozen[frozen.index("ENTRY"):]
    assert len(re.findall(r"parameter\(\d+\)", entry.split("\n}\n")[0])) == 1


def test_freeze_refuses_mismatched_weights_before_tracing():
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8))
    params, state = net.init(jax.random.key(0))
    bad = {**params, "0": {**params["0"], "weight": jnp.zeros((8, 3, 5, 5))}}
    with pytest.raises(ValueError, match=r"'0\.weight' has shape \(8, 3, 5, 5\), expected \(8, 3, 3, 3\)"):
        fcnn.freeze(net, bad, state)
    with pytest.raises(ValueError, match="running_mean"):
        fcnn.freeze(net, params, {"1": {}})
    with pytest.raises(TypeError, match="freeze: model must be an fcnn layer"):
        fcnn.freeze(lambda x: x, params, state)
    with pytest.raises(TypeError, match="params must be a dict"):
        fcnn.freeze(net, [params], state)


def test_frozen_forward_reports_a_wrong_input_by_layer():
    net = nn.Sequential(nn.Conv2d(3, 8, 3))
    forward = fcnn.freeze(net, *net.init(jax.random.key(0)))
    with pytest.raises(ValueError, match="Conv2d"):
        forward(jnp.ones((1, 4, 8, 8)))
