"""The padding layers against torch.nn's: values and gradients over generated amounts, ranks and modes."""

import jax.numpy as jnp
import pytest
import torch
from hypothesis import given, settings, strategies as st

from fcnn import nn, summary
from oracle import check_layer, randn

T = torch.nn
MODES = ("Zero", "Constant", "Reflection", "Replication", "Circular")


def _pair(mode, n, padding, value=1.5):
    name = f"{mode}Pad{n}d"
    args = (padding, value) if mode == "Constant" else (padding,)
    return getattr(nn, name)(*args), getattr(T, name)(*args)


@given(mode=st.sampled_from(MODES), n=st.sampled_from([1, 2, 3]), batched=st.booleans(), data=st.data())
@settings(max_examples=14)
def test_padding_layers_match_torch(mode, n, batched, data):
    sizes = data.draw(st.lists(st.integers(2, 4), min_size=n, max_size=n))
    # the amounts torch accepts: reflect < size, circular <= size, constant/zero may crop
    hi = {"Reflection": lambda s: s - 1, "Circular": lambda s: s}.get(mode, lambda s: 3)
    lo = -1 if mode in ("Zero", "Constant") else 0
    amounts = []
    for s in reversed(sizes):
        amounts += [data.draw(st.integers(lo, hi(s))), data.draw(st.integers(lo, hi(s)))]
    padding = data.draw(st.sampled_from([tuple(amounts), min(hi(min(sizes)), 1)]))
    shape = ((2,) if batched else ()) + (3,) + tuple(sizes)
    layer, module = _pair(mode, n, padding)
    check_layer(layer, module, randn(shape, seed=n))


def test_constant_padding_of_any_rank_and_reprs():
    check_layer(nn.ConstantPad2d((1, 0, 2, 1), -2.0), T.ConstantPad2d((1, 0, 2, 1), -2.0), randn((3, 4)))
    check_layer(nn.ZeroPad1d((0, -2)), T.ZeroPad1d((0, -2)), randn((2, 3, 2, 5)))
    assert repr(nn.ConstantPad1d(2, 3.0)) == "ConstantPad1d((2, 2), value=3.0)"
    assert repr(nn.ReflectionPad2d((1, 0, 2, 1))) == repr(T.ReflectionPad2d((1, 0, 2, 1)))


def test_bad_padding_is_refused():
    with pytest.raises(ValueError, match="ZeroPad2d: padding must be an int or a tuple of 4 ints, got \\(1, 2\\)"):
        nn.ZeroPad2d((1, 2))  # torch would pad only the last dimension
    with pytest.raises(ValueError, match="ReflectionPad2d: expected a 3-D or 4-D input"):
        nn.ReflectionPad2d(1).apply({}, {}, jnp.ones((3, 3)))
    with pytest.raises(ValueError, match="Padding size should be less than"):
        nn.ReflectionPad1d(3).apply({}, {}, jnp.ones((1, 3)))
    with pytest.raises(ValueError, match="wrapping around more than once"):
        nn.CircularPad1d(4).apply({}, {}, jnp.ones((1, 3)))
    with pytest.raises(ValueError, match="negative padding"):
        nn.ReplicationPad1d(-1).apply({}, {}, jnp.ones((1, 3)))
    with pytest.raises(TypeError, match="value must be a number"):
        nn.ConstantPad1d(1, "0")


def test_summary_composes_the_receptive_field_through_padding():
    model = nn.Sequential(nn.ZeroPad2d((1, 1, 2, 0)), nn.Conv2d(1, 2, 3), nn.Conv2d(2, 2, 3))
    rows = {r.name: r for r in summary(model, (1, 8, 8)).rows}
    # output position o of a zero pad reads input o - before: the field starts `before` earlier
    assert rows["0"].receptive_field == (1, 1) and rows["0"].start == (-2, -1)
    assert rows["2"].receptive_field == (5, 5) and rows["2"].start == (-2, -1) and rows["2"].output_shape == (1, 2, 6, 6)
    # a reflected border copies positions from the inside: rows 0..2 of the output read rows 2, 1, 0, and the
    # last column reads column 6, so the smallest translation-uniform window is 5 wide
    rows = {r.name: r for r in summary(nn.Sequential(nn.ReflectionPad2d((1, 1, 2, 0)), nn.Conv2d(1, 1, 1)),
                                       (1, 8, 8)).rows}
    assert rows["0"].receptive_field == (5, 5) and rows["0"].start == (-2, -3)
    s1d = summary(nn.Sequential(nn.Conv2d(1, 1, 1), nn.ConstantPad1d((2, 0), 0.0), nn.Conv2d(1, 1, 3)), (1, 6, 6))
    assert {r.name: r for r in s1d.rows}["2"].start == (0, -2)  # only the last axis is padded
