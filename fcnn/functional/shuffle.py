"""``channel_shuffle``: torch.nn.functional.channel_shuffle (ShuffleNet's channel interleaving)."""

from __future__ import annotations

import jax.numpy as jnp

from fcnn import _checks
from fcnn.functional._compiled import compiled


@compiled
def channel_shuffle(input, groups: int):
    """Interleave the channels of ``(N, C, *)`` from ``groups`` groups, as ``torch.nn.functional.channel_shuffle``.

    Channel ``g·(C/groups) + i`` of the input becomes channel ``i·groups + g``:
    the ``(groups, C/groups)`` grid of channels is transposed (torchvision's
    ShuffleNetV2 ``channel_shuffle`` on 4-D inputs is the same operation).

    Args:
      input: at least 3-D, channels in dim 1; ``C`` divisible by ``groups``.
      groups: a positive int.
    """
    where = "channel_shuffle"
    x = _checks.as_array(input, "input", where)
    groups = _checks.positive_int(groups, "groups", where)
    if x.ndim <= 2:
        raise ValueError(f"{where}: expects input with > 2 dims, but got input of shape {tuple(x.shape)}")
    n, c, *rest = x.shape
    if c % groups != 0:
        raise ValueError(f"{where}: number of channels must be divisible by groups, got {c} channels "
                         f"and groups={groups}")
    return jnp.swapaxes(x.reshape(n, groups, c // groups, *rest), 1, 2).reshape(x.shape)
