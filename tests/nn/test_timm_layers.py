"""Weight-standardised convolutions, Conv2dSame, the 'SAME' pools and BatchNormAct2d against timm's: values, gradients (incl. gain) over generated
configurations, TF 'SAME' padding on odd and even sizes, params named and ordered as timm's state_dict."""

import copy
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from torchvision_cpu import import_torchvision

import_torchvision()
from timm.layers import std_conv as timm_std  # noqa: E402
from timm.layers.conv2d_same import Conv2dSame as TConv2dSame  # noqa: E402
from timm.layers.norm_act import BatchNormAct2d as TBatchNormAct2d  # noqa: E402
from timm.layers.pool2d_same import AvgPool2dSame as TAvgPool2dSame, MaxPool2dSame as TMaxPool2dSame  # noqa: E402

from fcnn import nn, summary  # noqa: E402
from fcnn.interop import torch as fit  # noqa: E402
from oracle import check_layer, flatten, load_into_torch, randn  # noqa: E402


def check_against_float64(layer, module, x, params, state):
    """fcnn's float32 output and gradients must be as close to torch's float64 ones as torch's float32 are.

    Standardising few weights (a 1×1 kernel over 2 input channels) divides by a small spread, so the weight
    gradient is a cancellation that float32 gets right only to ~1e-3 relative, in torch as in fcnn.
    """
    load_into_torch(module, params, state)
    out, vjp = jax.jit(lambda p, v: jax.vjp(lambda p, v: layer.apply(p, state, v)[0], p, v))(params, jnp.asarray(x))
    cot = randn(out.shape, seed=1)
    g_params, g_x = vjp(jnp.asarray(cot))
    ours = {"output": out, "input grad": g_x, **{f"grad {k}": v for k, v in flatten(g_params).items()}}
    ref = {}
    for dtype in (torch.float32, torch.float64):
        m = copy.deepcopy(module).to(dtype)
        xt = torch.tensor(x, dtype=dtype, requires_grad=True)
        o = m(xt)
        o.backward(torch.tensor(cot, dtype=dtype))
        ref[dtype] = {"output": o, "input grad": xt.grad, **{f"grad {k}": p.grad for k, p in m.named_parameters()}}
    for what, value in ours.items():
        exact = ref[torch.float64][what].detach().numpy()
        torch_err = np.abs(ref[torch.float32][what].detach().numpy() - exact).max()
        err = np.abs(np.asarray(value, np.float64) - exact).max()
        assert err <= 2 * torch_err + 1e-6 * (np.abs(exact).max() + 1), (what, err, torch_err)

CLASSES = ["StdConv2d", "StdConv2dSame", "ScaledStdConv2d", "ScaledStdConv2dSame"]


@given(cls=st.sampled_from(CLASSES), k=st.sampled_from([1, 2, 3, (3, 2)]), stride=st.sampled_from([1, 2]),
       dilation=st.sampled_from([1, 2]), groups=st.sampled_from([1, 2]), bias=st.booleans(),
       padding=st.sampled_from(["default", 0, 1, "same", "valid"]), size=st.sampled_from([(7, 7), (8, 6)]),
       eps=st.sampled_from([1e-6, 1e-2]))
@settings(max_examples=8)
def test_std_convs_match_timm(cls, k, stride, dilation, groups, bias, padding, size, eps):
    kwargs = dict(stride=stride, dilation=dilation, groups=groups, bias=bias, eps=eps)
    if padding != "default":
        if padding == "same" and not cls.endswith("Same") and stride != 1:
            padding = 1  # torch's own 'same' refuses strides; the timm 'Same' classes compute TF's
        kwargs["padding"] = padding
    if cls.startswith("Scaled"):
        kwargs.update(gamma=1.7, gain_init=0.5)
    layer = getattr(nn, cls)(4, 6, k, **kwargs)
    module = getattr(timm_std, cls)(4, 6, k, **kwargs)
    params, state = layer.init(jax.random.key(0))
    assert list(params) == list(module.state_dict())  # weight, bias, gain: timm's order
    if "gain" in params:  # a gain that differs per channel, so its gradient is checked where it matters
        params["gain"] = jnp.asarray(1 + randn((6, 1, 1, 1), seed=2))
    check_against_float64(layer, module, randn((2, 4) + size, seed=sum(size)), params, state)


@pytest.mark.parametrize("size", [(7, 7), (8, 5)])
@pytest.mark.parametrize("stride,dilation", [(2, 1), (1, 2), (3, 1)])
def test_conv2d_same_matches_timm(size, stride, dilation):
    layer = nn.Conv2dSame(3, 4, (3, 2), stride=stride, dilation=dilation)
    out, _ = check_layer(layer, TConv2dSame(3, 4, (3, 2), stride=stride, dilation=dilation),
                         randn((2, 3) + size))
    assert out.shape[2:] == tuple(-(-n // stride) for n in size)  # TF's ceil(size / stride)


@pytest.mark.parametrize("size", [(7, 7), (8, 5)])
def test_same_pools_match_timm(size):
    x = randn((2, 3) + size, seed=5)
    for kernel, stride, dilation in [(3, 2, 1), ((3, 2), (2, 1), 1), (2, 2, 2)]:
        out, _ = check_layer(nn.MaxPool2dSame(kernel, stride, dilation=dilation),
                             TMaxPool2dSame(kernel, stride, dilation=dilation), x)
        assert np.isfinite(np.asarray(out)).all()
    for kernel, stride in [(3, 2), ((3, 2), (2, 1)), (3, 1)]:
        check_layer(nn.AvgPool2dSame(kernel, stride), TAvgPool2dSame(kernel, stride), x)


def test_summary_follows_the_same_padding():
    # 7 wide, stride 2: TF pads 2 (1 before, 1 after); 8 wide: 1 (after only)
    for cls in (nn.Conv2dSame, nn.StdConv2dSame):
        model = nn.Sequential(cls(1, 1, 3, stride=2), nn.MaxPool2dSame(3, 2), nn.AvgPool2dSame(2, 2))
        rows = {r.name: r for r in summary(model, (1, 7, 8)).rows}
        assert rows["0"].output_shape == (1, 1, 4, 4) and rows["0"].start == (-1, 0) and rows["0"].receptive_field == (3, 3)
        assert rows["1"].start == (-1, 0) and rows["1"].receptive_field == (7, 7)  # 4 → 2: pads 1, after only
        assert rows["2"].output_shape == (1, 1, 1, 1) and rows["2"].receptive_field == (11, 11)
    assert {r.name: r for r in summary(nn.Sequential(nn.StdConv2d(1, 1, 3, 2)), (1, 7, 7)).rows}["0"].start == (-1, -1)


def test_std_conv_counts_flops_as_a_convolution_and_refuses_bad_eps():
    rows = {r.name: r for r in summary(nn.Sequential(nn.StdConv2d(3, 8, 3)), (3, 8, 8)).rows}
    assert rows["0"].flops == 2 * 8 * 8 * 8 * 3 * 9
    with pytest.raises(ValueError, match="StdConv2d: eps must be a non-negative number"):
        nn.StdConv2d(3, 8, 3, eps=-1.0)
    with pytest.raises(TypeError, match="gamma must be a number"):
        nn.ScaledStdConv2d(3, 8, 3, gamma="1")
    sd = fit.state_dict(*nn.ScaledStdConv2d(3, 8, 3).init(jax.random.key(0)))
    assert float(sd["gain"].min()) == float(sd["gain"].max()) == 1.0


@pytest.mark.parametrize("kwargs,train", [
    ({}, True), ({}, False), ({"act_layer": "silu", "momentum": None}, True),
    ({"apply_act": False, "affine": False}, True), ({"track_running_stats": False, "act_layer": "leaky"}, False),
    ({"act_layer": "prelu", "eps": 1e-3}, True),
])
def test_batch_norm_act_matches_timm(kwargs, train):
    acts = {"silu": (nn.SiLU, torch.nn.SiLU), "prelu": (nn.PReLU, torch.nn.PReLU),
            "leaky": (functools.partial(nn.LeakyReLU, 0.2), functools.partial(torch.nn.LeakyReLU, 0.2))}
    ours, theirs = dict(kwargs), dict(kwargs)
    if "act_layer" in kwargs:
        ours["act_layer"], theirs["act_layer"] = acts[kwargs["act_layer"]]
    layer, module = nn.BatchNormAct2d(4, **ours), TBatchNormAct2d(4, **theirs)
    params, state = layer.init(jax.random.key(0))
    assert list(fit.state_dict(params, state, model=layer)) == list(module.state_dict())
    if "weight" in params:
        params = {**params, "weight": jnp.asarray(1 + randn((4,), seed=1)), "bias": jnp.asarray(randn((4,), seed=2))}
    x = 2 * randn((3, 4, 3, 2), seed=3) + 1
    for _ in range(2):  # the second step starts from the first one's statistics
        out, state = check_layer(layer, TBatchNormAct2d(4, **theirs), x, train=train, params=params, state=state)
    rows = {r.name: r for r in summary(nn.Sequential(layer), (4, 3, 2)).rows}
    assert rows["0"].buffers == (9 if layer._bn.track_running_stats else 0) and "0.act" in rows
