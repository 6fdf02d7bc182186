import numpy as np
import torch

from fcnn import nn
from fcnn.interop import torch as interop


def test_loaded_params_do_not_share_memory_with_torch_or_numpy_sources():
    t = torch.nn.Linear(4, 3)
    params, _ = interop.load_state_dict(nn.Linear(4, 3), t.state_dict())
    before = np.array(params["weight"])
    with torch.no_grad():
        t.weight.add_(1.0)  # an in-place torch update (what optimizer.step() does)
    np.testing.assert_array_equal(np.asarray(params["weight"]), before)

    sd = {k: v.detach().numpy().copy() for k, v in t.state_dict().items()}
    original = sd["weight"].copy()
    params, _ = interop.load_state_dict(nn.Linear(4, 3), sd)
    sd["weight"] += 1.0
    np.testing.assert_array_equal(np.asarray(params["weight"]), original)
