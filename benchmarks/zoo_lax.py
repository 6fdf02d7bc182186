"""ResNet-50 and MobileNet-V2 written directly in ``jax.lax``: the zoo's zero-overhead reference.

The conventions of ``benchmarks/impl_lax.py``, whose helpers these networks
use: parameters and BN statistics are flat dicts under torchvision's
``state_dict`` names and layouts (OIHW kernels, ``(out, in)`` linear weights),
so torchvision's weights load as they are; activations are NCHW; the train
step is impl_lax's ``make_step`` (one ``jax.jit`` with donated buffers and the
XLA options fcnn compiles with, so that the reference and fcnn get the same
XLA), and inference is one ``jax.jit`` of the eval-mode forward with the same
options.

MobileNet-V2's classifier has ``Dropout(0.2)``; this train step leaves it out
(no random key is threaded through the step). Its cost is one mask over
``batch × 1280`` values, nothing beside the network; its effect is that the
first loss equals torch's with the dropout off.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from benchmarks import impl_lax, zoo
from benchmarks.impl_lax import conv, cross_entropy, linear, max_pool
from fcnn import xla

MODELS = {"resnet50", "mobilenet_v2"}


def _bn_eval(x, w, b, mean, var, eps=1e-5):
    """Eval-mode BN: the running statistics, folded into one scale and shift per channel (in ``x``'s dtype)."""
    scale = w * jax.lax.rsqrt(var + eps)
    shift = b - mean * scale
    return x * scale.astype(x.dtype)[None, :, None, None] + shift.astype(x.dtype)[None, :, None, None]


def _resnet50(p, bn, x):
    h = max_pool(jax.nn.relu(bn("bn1", conv(x, p["conv1.weight"], 2, 3))), 3, 2, 1)
    for li, (width, blocks, first_stride) in enumerate(zoo.RESNET50_STAGES, 1):
        for bi in range(blocks):
            pre, stride = f"layer{li}.{bi}", first_stride if bi == 0 else 1
            out = jax.nn.relu(bn(f"{pre}.bn1", conv(h, p[f"{pre}.conv1.weight"])))
            out = jax.nn.relu(bn(f"{pre}.bn2", conv(out, p[f"{pre}.conv2.weight"], stride, 1)))
            out = bn(f"{pre}.bn3", conv(out, p[f"{pre}.conv3.weight"]))
            if bi == 0:
                h = bn(f"{pre}.downsample.1", conv(h, p[f"{pre}.downsample.0.weight"], stride))
            h = jax.nn.relu(out + h)
    return linear(jnp.mean(h, (2, 3)), p["fc.weight"], p["fc.bias"])


def _mobilenet_v2(p, bn, x):
    def conv_bn(name, h, stride=1, groups=1, act=True):
        """torchvision's ``Conv2dNormActivation`` (``name.0`` the convolution, ``name.1`` the BN), ReLU6."""
        w = p[f"{name}.0.weight"]
        h = bn(f"{name}.1", conv(h, w, stride, w.shape[-1] // 2, groups))
        return jax.nn.relu6(h) if act else h

    h = conv_bn("features.0", x, 2)
    for i, cin, cout, stride, t in zoo.mobilenet_v2_blocks():
        pre, j = f"features.{i}.conv", 0
        out = h
        if t != 1:
            out, j = conv_bn(f"{pre}.0", out), 1
        out = conv_bn(f"{pre}.{j}", out, stride, groups=cin * t)
        out = bn(f"{pre}.{j + 2}", conv(out, p[f"{pre}.{j + 1}.weight"]))
        h = h + out if stride == 1 and cin == cout else out
    h = conv_bn("features.18", h)
    return linear(jnp.mean(h, (2, 3)), p["classifier.1.weight"], p["classifier.1.bias"])


def forward(name, p, s, x, train=True):
    """The network ``name``; train mode returns ``(logits, new running statistics)``, eval mode the logits."""
    new_s = dict(s)

    def bn(key, h):
        args = p[f"{key}.weight"], p[f"{key}.bias"], s[f"{key}.running_mean"], s[f"{key}.running_var"]
        if not train:
            return _bn_eval(h, *args)
        y, new_s[f"{key}.running_mean"], new_s[f"{key}.running_var"] = impl_lax.batch_norm(h, *args)
        return y

    logits = {"resnet50": _resnet50, "mobilenet_v2": _mobilenet_v2}[name](p, bn, x)
    return (logits, new_s) if train else logits


def setup(name, mode, batch, size, state_dict, seed=0, dtype="float32"):
    """One train step or one eval forward of ``name`` from torchvision's ``state_dict`` (see ``benchmarks/zoo.py``).

    ``dtype="bfloat16"``: params and input cast to bfloat16 inside the jitted function, the BN statistics
    and (in training) the master params and momentum float32: impl_lax's mixed precision.
    """
    if name not in MODELS:
        raise NotImplementedError(f"lax has no {name}")
    p = {k: jnp.asarray(v.numpy()) for k, v in state_dict.items() if not k.endswith(("running_mean", "running_var",
                                                                                     "num_batches_tracked"))}
    s = {k: jnp.asarray(v.numpy()) for k, v in state_dict.items() if k.endswith(("running_mean", "running_var"))}
    x, y = (jnp.asarray(a) for a in zoo.data(batch, size, seed))
    dtype = jnp.dtype(dtype)
    if mode == "eval":
        def evaluate(p, s, x):
            return forward(name, zoo.cast_floating(p, dtype), s, x.astype(dtype), train=False)

        run = jax.jit(evaluate, compiler_options=xla.compiler_options())
        return lambda: run(p, s, x)
    step = impl_lax.make_step(name, dtype, forward=forward)
    carry = [p, s, jax.tree.map(jnp.zeros_like, p)]

    def run():
        carry[0], carry[1], carry[2], loss = step(*carry, x, y)
        return loss

    return run
