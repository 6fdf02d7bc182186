"""The zero-overhead reference: the same networks written directly in jax.lax.

Parameters are a flat dict in torch's state_dict naming and layout (OIHW
kernels, (out, in) linear weights), the step is one ``jax.jit`` with donated
buffers, and there is no library code between the caller and XLA.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import spec
from fcnn import xla

# Activation layout inside the step. The API (inputs, params) is NCHW/OIHW
# either way; "NHWC" transposes the input once and lets XLA pick conv layouts
# for channels-last activations (an experiment: see benchmarks/README.md).
LAYOUT = "NCHW"


def _c(v):
    """A per-channel vector broadcast against the activations."""
    return v[None, :, None, None] if LAYOUT == "NCHW" else v


def conv(x, w, stride=1, pad=0, groups=1):
    dn = ("NCHW", "OIHW", "NCHW") if LAYOUT == "NCHW" else ("NHWC", "OIHW", "NHWC")
    return jax.lax.conv_general_dilated(x, w, (stride, stride), ((pad, pad), (pad, pad)), dimension_numbers=dn,
                                        feature_group_count=groups)


def max_pool(x, k=2, s=2, pad=0):
    if LAYOUT == "NCHW":
        return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 1, k, k), (1, 1, s, s),
                                     ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, k, k, 1), (1, s, s, 1),
                                 ((0, 0), (pad, pad), (pad, pad), (0, 0)))


def _flatten(h):
    if LAYOUT == "NHWC":  # torch's flatten order is (C, H, W)
        h = h.transpose(0, 3, 1, 2)
    return h.reshape(h.shape[0], -1)


def batch_norm(x, w, b, mean, var, momentum=0.1, eps=1e-5):
    """Train-mode BN with torch's running-stat update (biased var to normalise, unbiased to track)."""
    axes = (0, 2, 3) if LAYOUT == "NCHW" else (0, 1, 2)
    n = x.size // w.shape[0]
    m = jnp.mean(x, axes)
    v = jnp.var(x, axes)
    inv = jax.lax.rsqrt(v + eps) * w
    y = (x - _c(m)) * _c(inv) + _c(b)
    new_mean = (1 - momentum) * mean + momentum * m
    new_var = (1 - momentum) * var + momentum * v * (n / (n - 1))
    return y, new_mean, new_var


def linear(x, w, b):
    return x @ w.T + b


def _he(rs, shape):
    fan_in = int(np.prod(shape[1:]))
    return (rs.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)


def init(model: str, seed: int = 0):
    rs = np.random.RandomState(seed)
    p, s = {}, {}

    def add_conv(name, cin, cout, k, bias):
        p[f"{name}.weight"] = _he(rs, (cout, cin, k, k))
        if bias:
            p[f"{name}.bias"] = np.zeros(cout, np.float32)

    def add_bn(name, c):
        p[f"{name}.weight"] = np.ones(c, np.float32)
        p[f"{name}.bias"] = np.zeros(c, np.float32)
        s[f"{name}.running_mean"] = np.zeros(c, np.float32)
        s[f"{name}.running_var"] = np.ones(c, np.float32)

    def add_fc(name, cin, cout):
        p[f"{name}.weight"] = _he(rs, (cout, cin))
        p[f"{name}.bias"] = np.zeros(cout, np.float32)

    if model == "lenet":
        add_conv("conv1", 1, 6, 5, True)
        add_conv("conv2", 6, 16, 5, True)
        add_fc("fc1", 400, 120)
        add_fc("fc2", 120, 84)
        add_fc("fc3", 84, 10)
    elif model == "bncnn":
        i = 0
        for item in spec.BNCNN_CHANNELS:
            if item == "pool":
                continue
            add_conv(f"conv{i}", *item, 3, False)
            add_bn(f"bn{i}", item[1])
            i += 1
        add_fc("fc", 64 * 8 * 8, 10)
    elif model == "resnet18":
        add_conv("conv1", 3, 64, 7, False)
        add_bn("bn1", 64)
        cin = 64
        for li, cout in enumerate((64, 128, 256, 512), 1):
            for bi in range(2):
                stride = 2 if (li > 1 and bi == 0) else 1
                pre = f"layer{li}.{bi}"
                add_conv(f"{pre}.conv1", cin, cout, 3, False)
                add_bn(f"{pre}.bn1", cout)
                add_conv(f"{pre}.conv2", cout, cout, 3, False)
                add_bn(f"{pre}.bn2", cout)
                if stride != 1 or cin != cout:
                    add_conv(f"{pre}.downsample.0", cin, cout, 1, False)
                    add_bn(f"{pre}.downsample.1", cout)
                cin = cout
        add_fc("fc", 512, 1000)
    else:
        raise ValueError(model)
    return {k: jnp.asarray(v) for k, v in p.items()}, {k: jnp.asarray(v) for k, v in s.items()}


def forward(model: str, p, s, x):
    """Train-mode forward; returns (logits, new_state)."""
    new_s = dict(s)

    def bn(name, h):
        y, new_s[f"{name}.running_mean"], new_s[f"{name}.running_var"] = batch_norm(
            h, p[f"{name}.weight"], p[f"{name}.bias"], s[f"{name}.running_mean"], s[f"{name}.running_var"])
        return y

    relu = jax.nn.relu
    if LAYOUT == "NHWC":
        x = x.transpose(0, 2, 3, 1)
    if model == "lenet":
        h = max_pool(relu(conv(x, p["conv1.weight"], pad=2) + _c(p["conv1.bias"])))
        h = max_pool(relu(conv(h, p["conv2.weight"]) + _c(p["conv2.bias"])))
        h = _flatten(h)
        h = relu(linear(h, p["fc1.weight"], p["fc1.bias"]))
        h = relu(linear(h, p["fc2.weight"], p["fc2.bias"]))
        return linear(h, p["fc3.weight"], p["fc3.bias"]), new_s
    if model == "bncnn":
        h, i = x, 0
        for item in spec.BNCNN_CHANNELS:
            if item == "pool":
                h = max_pool(h)
                continue
            h = relu(bn(f"bn{i}", conv(h, p[f"conv{i}.weight"], pad=1)))
            i += 1
        h = _flatten(h)
        return linear(h, p["fc.weight"], p["fc.bias"]), new_s
    # resnet18
    h = relu(bn("bn1", conv(x, p["conv1.weight"], stride=2, pad=3)))
    h = max_pool(h, 3, 2, 1)
    cin = 64
    for li, cout in enumerate((64, 128, 256, 512), 1):
        for bi in range(2):
            stride = 2 if (li > 1 and bi == 0) else 1
            pre = f"{'layer'}{li}.{bi}"
            out = relu(bn(f"{pre}.bn1", conv(h, p[f"{pre}.conv1.weight"], stride, 1)))
            out = bn(f"{pre}.bn2", conv(out, p[f"{pre}.conv2.weight"], 1, 1))
            if stride != 1 or cin != cout:
                h = bn(f"{pre}.downsample.1", conv(h, p[f"{pre}.downsample.0.weight"], stride, 0))
            h = relu(out + h)
            cin = cout
    h = jnp.mean(h, (2, 3) if LAYOUT == "NCHW" else (1, 2))
    return linear(h, p["fc.weight"], p["fc.bias"]), new_s


def cross_entropy(logits, y):
    logp = jax.nn.log_softmax(logits)
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))


def make_step(model: str, dtype=jnp.float32, compiler_options=None, forward=forward):
    """The jitted step; ``dtype=bfloat16`` casts params and input inside the differentiated
    function (float32 master params, momentum and BN statistics), as fcnn's ``compute_dtype``.
    ``compiler_options``: XLA's options for the step (default: the ones fcnn compiles with,
    ``fcnn.compiler_options()``, so that the reference and fcnn get the same XLA).
    ``forward(model, params, state, x) -> (logits, new_state)``: the train-mode network
    (default: this module's; ``benchmarks/zoo_lax.py`` passes torchvision's networks)."""

    def step(p, s, buf, x, y):
        def loss_fn(p):
            pc, xc = (p, x) if dtype == jnp.float32 else jax.tree.map(lambda a: a.astype(dtype), (p, x))
            logits, new_s = forward(model, pc, s, xc)
            new_s = {k: v.astype(s[k].dtype) for k, v in new_s.items()}
            return cross_entropy(logits.astype(jnp.float32), y), new_s

        (loss, new_s), g = jax.value_and_grad(loss_fn, has_aux=True)(p)
        buf = jax.tree_util.tree_map(lambda b, g: spec.MOMENTUM * b + g, buf, g)
        p = jax.tree_util.tree_map(lambda w, b: w - spec.LR * b, p, buf)
        return p, new_s, buf, loss

    if compiler_options is None:
        compiler_options = xla.compiler_options()
    return jax.jit(step, donate_argnums=(0, 1, 2), compiler_options=compiler_options)


def setup(model: str, batch: int, seed: int = 0, dtype=jnp.float32, compiler_options=None):
    x, y = (jnp.asarray(a) for a in spec.data(model, batch, seed))
    p, s = init(model, seed)
    buf = jax.tree_util.tree_map(jnp.zeros_like, p)
    step = make_step(model, jnp.dtype(dtype), compiler_options)
    carry = [p, s, buf]

    def run():
        carry[0], carry[1], carry[2], loss = step(carry[0], carry[1], carry[2], x, y)
        return loss

    run.lower = lambda: step.lower(*carry, x, y)
    return run
