"""The zoo benchmark's hand-written peers (``benchmarks/zoo_<impl>.py``) compute torchvision's networks.

Each peer is built from torchvision's ``state_dict`` and compared with torchvision itself on the
benchmark's own batch (``benchmarks.zoo.data``) at a small size: eval logits within 1e-3 of the
logits' scale, and in the sweep the loss of its first train step (the train-mode forward with batch
statistics), and that the step descends. Later losses are not compared: from random weights at
this size one step is ill-conditioned (torch's own second loss moves by 20 % between float32 and
float64). The peers leave MobileNet-V2's classifier dropout out of the step, so torch runs with
that dropout off. A peer whose library is not installed is skipped.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys

import numpy as np
import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks import zoo  # noqa: E402

PEERS = ["lax", "flax_linen", "equinox"]
MODELS = ["resnet50", "mobilenet_v2"]
BATCH, SIZE = 2, 64


def _peer(impl):
    try:
        return importlib.import_module(f"benchmarks.zoo_{impl}")
    except ImportError as e:
        pytest.skip(f"{impl}: {e}")


@functools.cache
def _state_dict(name):
    return {k: v.detach().clone() for k, v in zoo.torch_model(name).state_dict().items()}


def _torch_net(name):
    net = zoo.torch_model(name)
    net.load_state_dict(_state_dict(name))
    return net


@functools.cache
def _torch_eval(name):
    net = _torch_net(name).eval()
    with torch.no_grad():
        return net(torch.from_numpy(zoo.data(BATCH, SIZE)[0])).numpy()


@functools.cache
def _torch_train_loss(name):
    net = _torch_net(name).train()
    for m in net.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    x, y = (torch.from_numpy(a) for a in zoo.data(BATCH, SIZE))
    with torch.no_grad():
        return torch.nn.functional.cross_entropy(net(x), y).item()


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("impl", PEERS)
def test_peer_eval_matches_torchvision(impl, name):
    peer = _peer(impl)
    out = np.asarray(peer.setup(name, "eval", BATCH, SIZE, _state_dict(name))())
    ref = _torch_eval(name)
    assert out.shape == ref.shape
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-3 * np.abs(ref).max())


@pytest.mark.sweep
@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("impl", PEERS)
def test_peer_train_step_matches_torchvision(impl, name):
    peer = _peer(impl)
    run = peer.setup(name, "train", BATCH, SIZE, _state_dict(name))
    first, second = float(run()), float(run())
    np.testing.assert_allclose(first, _torch_train_loss(name), rtol=1e-5)
    assert second < first


def test_peer_refuses_a_model_it_does_not_have():
    peer = _peer("lax")
    with pytest.raises(NotImplementedError, match="lax has no densenet121"):
        peer.setup("densenet121", "eval", BATCH, SIZE, {})
