"""Layers on a zero-size batch: the output shape and the new state (buffers) that torch's module gives."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from fcnn import nn
from oracle import flatten, load_into_torch

LAYERS = [
    # (fcnn layer, torch module, input shape)
    (lambda: nn.Conv2d(3, 4, 3, padding=1), lambda: torch.nn.Conv2d(3, 4, 3, padding=1), (0, 3, 5, 5)),
    (lambda: nn.ConvTranspose2d(3, 4, 3, stride=2), lambda: torch.nn.ConvTranspose2d(3, 4, 3, stride=2), (0, 3, 5, 5)),
    (lambda: nn.Linear(6, 2), lambda: torch.nn.Linear(6, 2), (0, 6)),
    (lambda: nn.MaxPool2d(2, return_indices=False), lambda: torch.nn.MaxPool2d(2), (0, 3, 5, 5)),
    (lambda: nn.AvgPool2d(3, 2, 1), lambda: torch.nn.AvgPool2d(3, 2, 1), (0, 3, 5, 5)),
    (lambda: nn.AdaptiveAvgPool2d(3), lambda: torch.nn.AdaptiveAvgPool2d(3), (0, 3, 5, 5)),
    (lambda: nn.AdaptiveMaxPool2d(3), lambda: torch.nn.AdaptiveMaxPool2d(3), (0, 3, 5, 5)),
    (lambda: nn.Upsample(scale_factor=2, mode="bilinear"), lambda: torch.nn.Upsample(scale_factor=2, mode="bilinear"),
     (0, 3, 5, 5)),
    (lambda: nn.GroupNorm(3, 6), lambda: torch.nn.GroupNorm(3, 6), (0, 6, 4)),
    (lambda: nn.GroupNorm(3, 6), lambda: torch.nn.GroupNorm(3, 6), (0, 6)),
    (lambda: nn.LayerNorm(5), lambda: torch.nn.LayerNorm(5), (0, 3, 5)),
    (lambda: nn.InstanceNorm2d(3), lambda: torch.nn.InstanceNorm2d(3), (0, 3, 4, 4)),
    (lambda: nn.Flatten(), lambda: torch.nn.Flatten(), (0, 3, 4, 4)),
    (lambda: nn.ReLU(), lambda: torch.nn.ReLU(), (0, 3)),
] + [
    (lambda n=n, t=t: getattr(nn, f"BatchNorm{n}d")(3, track_running_stats=t),
     lambda n=n, t=t: getattr(torch.nn, f"BatchNorm{n}d")(3, track_running_stats=t), shape)
    for n, shapes in ((1, [(0, 3), (0, 3, 4), (2, 3, 0)]), (2, [(0, 3, 4, 4), (2, 3, 0, 4)]), (3, [(0, 3, 2, 2, 2)]))
    for shape in shapes for t in (True, False)
]


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("make,make_torch,shape", LAYERS)
def test_layer_on_an_empty_batch_matches_torch(make, make_torch, shape, train):
    layer, module = make(), make_torch()
    params, state = layer.init(jax.random.key(0))
    load_into_torch(module, params, state)
    module.train(train)
    x = np.zeros(shape, np.float32)
    expected = module(torch.from_numpy(x))
    y, new_state = layer.apply(params, state, jnp.asarray(x), train=train,
                               rng=jax.random.key(1) if train else None)
    assert y.shape == tuple(expected.shape)
    got = flatten(new_state)
    want = {k: v.numpy() for k, v in module.state_dict().items() if k in got}
    assert set(got) == set(want)
    for k in got:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)
