"""fcnn: the networks from ``fcnn.nn`` layers, trained with ``fcnn.train.make_train_step``.

This is exactly what a user writes; the parameters are loaded from the lax
reference's initial weights (same state_dict names), so the losses agree.
"""

from __future__ import annotations

from collections import OrderedDict

import jax
import jax.numpy as jnp

from benchmarks import impl_lax, spec
from fcnn import nn, train


def lenet():
    return nn.Sequential(OrderedDict(
        conv1=nn.Conv2d(1, 6, 5, padding=2), relu1=nn.ReLU(), pool1=nn.MaxPool2d(2),
        conv2=nn.Conv2d(6, 16, 5), relu2=nn.ReLU(), pool2=nn.MaxPool2d(2),
        flatten=nn.Flatten(), fc1=nn.Linear(400, 120), relu3=nn.ReLU(),
        fc2=nn.Linear(120, 84), relu4=nn.ReLU(), fc3=nn.Linear(84, 10),
    ))


def bncnn():
    layers, i = OrderedDict(), 0
    for j, item in enumerate(spec.BNCNN_CHANNELS):
        if item == "pool":
            layers[f"pool{j}"] = nn.MaxPool2d(2)
            continue
        layers[f"conv{i}"] = nn.Conv2d(*item, 3, padding=1, bias=False)
        layers[f"bn{i}"] = nn.BatchNorm2d(item[1])
        layers[f"relu{i}"] = nn.ReLU()
        i += 1
    layers["flatten"] = nn.Flatten()
    layers["fc"] = nn.Linear(64 * 8 * 8, 10)
    return nn.Sequential(layers)


def resnet18():
    from fcnn import models

    return models.get("resnet18")


def build(model: str):
    return {"lenet": lenet, "bncnn": bncnn, "resnet18": resnet18}[model]()


def optimizer():
    try:
        from fcnn import optim

        return optim.SGD(spec.LR, momentum=spec.MOMENTUM)
    except ImportError:  # before fcnn.optim exists: optax's SGD has the same (torch) momentum form
        import optax

        return optax.sgd(spec.LR, momentum=spec.MOMENTUM)


def _nest(flat):
    out = {}
    for k, v in flat.items():
        d = out
        *path, leaf = k.split(".")
        for p in path:
            d = d.setdefault(p, {})
        d[leaf] = v
    return out


def setup(model: str, batch: int, seed: int = 0, dtype=jnp.float32, **step_options):
    net = build(model)
    x, y = (jnp.asarray(a) for a in spec.data(model, batch, seed))
    opt = optimizer()
    ts = train.create_train_state(net, opt, seed)
    p, s = impl_lax.init(model, seed)
    params = _nest(p)
    state = _merge(ts.state, _nest(s))
    ts = ts._replace(params=params, state=state, opt_state=opt.init(params))
    if jnp.dtype(dtype) != jnp.float32:
        step_options["compute_dtype"] = dtype
    step = train.make_train_step(net, nn.CrossEntropyLoss(), opt, **step_options)
    carry = [ts]

    def run():
        carry[0], metrics = step(carry[0], (x, y))
        return metrics["loss"]

    run.lower = lambda: step.lower(carry[0], (x, y))
    return run


def _merge(template, values):
    """``template``'s structure with leaves from ``values`` where present (num_batches_tracked stays)."""
    if isinstance(template, dict):
        return {k: _merge(v, (values or {}).get(k)) for k, v in template.items()}
    return template if values is None else jnp.asarray(values, template.dtype)
