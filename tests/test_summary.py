"""fcnn.summary: hand-computed values for classic nets and an empirical receptive-field check."""

from collections import OrderedDict

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

from fcnn import models, nn
from fcnn import Summary, summary

VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


def vgg16_features():
    layers, c = [], 3
    for v in VGG16:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU()]
            c = v
    return nn.Sequential(*layers)


def test_vgg16_conv_stack_receptive_fields():
    s = summary(vgg16_features(), (3, 224, 224))
    convs = [r for r in s.rows if r.layer_type == "Conv2d"]
    pools = [r for r in s.rows if r.layer_type == "MaxPool2d"]
    # by hand: a 3×3 conv adds 2·jump, a 2×2/2 pool adds 1·jump and doubles it
    # (jumps 1, 2, 4, 8, 16 per block): conv5_3 196, pool5 212
    assert [r.receptive_field[0] for r in convs] == [3, 5, 10, 14, 24, 32, 40, 60, 76, 92, 132, 164, 196]
    assert [r.receptive_field[0] for r in pools] == [6, 16, 44, 100, 212]
    assert convs[-1].receptive_field == (196, 196) and convs[-1].jump == (16, 16) and convs[-1].start == (-90, -90)
    assert pools[-1].receptive_field == (212, 212) and pools[-1].jump == (32, 32)
    assert pools[-1].output_shape == (1, 512, 7, 7)
    assert s.total_params == 14_714_688  # torchvision vgg16().features
    assert s.total_flops == 2 * 15_346_630_656  # 15.35 G multiply-adds


def test_lenet5_table():
    s = summary(models.LeNet5(input_size=32), (1, 32, 32))
    by = {r.name: r for r in s.rows}
    assert [by[n].receptive_field for n in ("conv1", "pool1", "conv2", "pool2")] == [(5, 5), (6, 6), (14, 14), (16, 16)]
    assert [by[n].jump for n in ("conv1", "pool1", "conv2", "pool2")] == [(1, 1), (2, 2), (2, 2), (4, 4)]
    assert by["fc1"].receptive_field is None and by["fc1"].output_shape == (1, 120)
    assert by["conv1"].flops == 2 * 6 * 28 * 28 * 25 and by["fc1"].flops == 2 * 400 * 120
    assert s.total_params == 61_706 and s.total_flops == sum(r.flops for r in s.rows)
    text = str(s)
    assert "conv2" in text and "61,706" in text and "Total FLOPs" in text
    assert s.to_markdown().startswith("| Layer | Type |") and "<table>" in s._repr_html_()


def test_resnet18_names_counts_and_branches():
    s = summary(models.resnet18(), (3, 224, 224), batch_size=2)
    by = {r.name: r for r in s.rows}
    assert s.total_params == 11_689_512 and s.total_buffers == 9_620
    assert by["layer1.0.conv1"].output_shape == (2, 64, 56, 56) and by["layer1.0"].depth == 1
    assert by["layer2.0.downsample.0"].params == 8192 and by["layer2.0.downsample.1"].buffers == 257
    # composite rows come before their children and sum their FLOPs
    names = [r.name for r in s.rows]
    assert names.index("layer1") < names.index("layer1.0") < names.index("layer1.0.conv1")
    assert by["layer1.0"].flops == by["layer1.0.conv1"].flops + by["layer1.0.conv2"].flops
    assert s.total_flops == 2 * 2 * (1_814_073_344 - 512_000) + 2 * 2 * 512_000
    # the residual sum's field is the main path's (the union with the identity/downsample)
    assert by["layer1.0"].receptive_field == (27, 27) and by["layer4"].receptive_field == (435, 435)
    assert by["layer4.0.downsample"].receptive_field == (211, 211)


def test_dilated_stack_and_transposed_and_upsampling():
    net = nn.Sequential(nn.Conv2d(1, 2, 3, dilation=1, padding=1), nn.Conv2d(2, 2, 3, dilation=2, padding=2),
                        nn.Conv2d(2, 2, 3, dilation=4, padding=4), nn.Conv2d(2, 2, 3, dilation=8, padding=8))
    s = summary(net, (1, 64, 64))
    assert [r.receptive_field[0] for r in s.rows] == [3, 7, 15, 31]  # 2^(n+1) − 1
    assert [r.start[0] for r in s.rows] == [-1, -3, -7, -15] and all(r.jump == (1, 1) for r in s.rows)



def test_transposed_conv_and_upsampling():
    enc_dec = nn.Sequential(nn.Conv2d(1, 2, 3, stride=2, padding=1), nn.ConvTranspose2d(2, 1, 2, stride=2),
                            nn.Upsample(scale_factor=2, mode="nearest"))
    s = summary(enc_dec, (1, 16, 16))
    conv, tconv, up = s.rows
    assert conv.jump == (2, 2) and tconv.jump == (1, 1) and up.jump == (0.5, 0.5)
    # ConvTranspose k=2 s=2: output o reads input o // 2, whose field is [2(o//2) − 1, 2(o//2) + 1];
    # the smallest window [start + o, start + o + size − 1] holding that for every o is start −2, size 4
    assert conv.receptive_field == (3, 3) and conv.start == (-1, -1)
    assert tconv.receptive_field == (4, 4) and tconv.start == (-2, -2)
    assert up.output_shape == (1, 1, 32, 32) and up.receptive_field[0] >= tconv.receptive_field[0]


def _chain_rf_empirical(layers, size, centre):
    """Input positions with non-zero gradient of one output pixel, for positive weights and inputs.

    Max pools are replaced by average pools of the same geometry: a max pool's
    gradient reaches only the arg-max, but it reads its whole window.
    """
    layers = [nn.AvgPool2d(l.kernel_size, l.stride, l.padding, ceil_mode=l.ceil_mode)
              if isinstance(l, nn.MaxPool2d) else l for l in layers]
    net = nn.Sequential(*layers)
    params, state = jax.eval_shape(net.init, jax.random.key(0))
    params = jax.tree_util.tree_map(lambda w: jnp.ones(w.shape, w.dtype), params)  # no init compiles
    x = jnp.ones((1, size, size))

    @jax.jit
    def grad(x):
        return jax.grad(lambda x: net.apply(params, state, x)[0][0, centre[0], centre[1]])(x)

    rows, cols = np.nonzero(np.asarray(grad(x))[0])
    return (rows.min(), rows.max()), (cols.min(), cols.max())


@st.composite
def stacks(draw):
    layers = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["conv", "conv", "max", "avg"]))
        k = draw(st.integers(1, 3))
        s = draw(st.integers(1, 2))
        if kind == "conv":
            d = draw(st.integers(1, 2))
            p = draw(st.integers(0, 2))
            layers.append(nn.Conv2d(1, 1, k, stride=s, padding=p, dilation=d, bias=False))
        else:
            k = max(k, 2)
            p = draw(st.integers(0, k // 2))
            ceil = draw(st.booleans())
            layers.append((nn.MaxPool2d if kind == "max" else nn.AvgPool2d)(k, s, p, ceil_mode=ceil))
    return layers


@settings(max_examples=10)
@given(stacks())
def test_receptive_field_equals_gradient_support(layers):
    size = 65
    net = nn.Sequential(*layers)
    s = summary(net, (1, size, size))
    last = s.rows[-1]
    params, state = jax.eval_shape(net.init, jax.random.key(0))
    out_shape = jax.eval_shape(lambda p, st_, x: net.apply(p, st_, x)[0], params, state,
                               jax.ShapeDtypeStruct((1, size, size), jnp.float32))
    assert tuple(last.output_shape[1:]) == tuple(out_shape.shape), (last.output_shape, out_shape.shape)
    o = out_shape.shape[1] // 2
    (r0, r1), (c0, c1) = _chain_rf_empirical(layers, size, (o, o))
    # Only fields wholly inside the input: where the padding hides part of a field, the gradient's
    # support stops at the border. Decided from the gradient, not from the summary under test.
    assume(0 < r0 and r1 < size - 1)
    lo = last.start[0] + o * last.jump[0]
    hi = lo + last.receptive_field[0] - 1
    assert (r0, r1) == (lo, hi) and (c0, c1) == (lo, hi)


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"input_shape \(224, 224\) has 2 dims.*conv1 \(Conv2d\) expects 3 dims"):
        summary(models.resnet18(), (224, 224))
    with pytest.raises(ValueError, match="input_shape"):
        summary(models.resnet18(), (3, 0, 224))
    with pytest.raises(ValueError, match="input_shape"):
        summary(models.resnet18(), 224)
    with pytest.raises(TypeError, match="model"):
        summary("resnet18", (3, 224, 224))
    with pytest.raises(ValueError, match="channels"):
        summary(models.resnet18(), (1, 64, 64))


def test_custom_layer_without_rule_and_pointwise_default():
    class Blur(nn.Layer):  # unknown to summary, same spatial size → taken as pointwise
        def apply(self, params, state, x, *, train=False, rng=None):
            return x * 2, state

    class Crop(nn.Layer):  # unknown and changes the size → no receptive field
        def apply(self, params, state, x, *, train=False, rng=None):
            return x[..., 1:-1, 1:-1], state

    s = summary(nn.Sequential(OrderedDict(conv=nn.Conv2d(1, 1, 3), blur=Blur(), crop=Crop())), (1, 9, 9))
    assert [r.receptive_field for r in s.rows] == [(3, 3), (3, 3), None]
    assert isinstance(s, Summary) and "-" in str(s)


def test_command_line(capsys):
    from fcnn.cli.summary import main

    assert main(["--model", "resnet18", "--input", "3,224,224"]) == 0
    out = capsys.readouterr().out
    assert "layer4.1.conv2" in out and "11,689,512" in out and "435" in out
    assert main(["--model", "resnet19", "--input", "3,224,224"]) == 2
    assert "unknown model 'resnet19'" in capsys.readouterr().err
    assert main(["--model", "resnet18", "--input", "224,224"]) == 2
    assert "has 2 dims" in capsys.readouterr().err
    assert main(["--model", "lenet5", "--input", "1,a,28"]) == 2
    assert "--input" in capsys.readouterr().err
