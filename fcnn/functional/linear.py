"""``linear``: torch.nn.functional.linear for JAX arrays."""

from __future__ import annotations

import jax

from fcnn import _checks, backends
from fcnn.functional._compiled import compiled


@compiled
def linear(input, weight, bias=None):
    """``y = input @ weight.T + bias``, as ``torch.nn.functional.linear``.

    Args:
      input: ``(*, in_features)``; any number of leading dimensions, including none.
      weight: ``(out_features, in_features)`` (torch's layout, not transposed).
      bias: optional ``(out_features,)``.

    Returns:
      ``(*, out_features)``.

    The backend policy may compute the product in a formulation with the same
    values and a faster weight gradient (:meth:`fcnn.backends.Policy.linear`).
    """
    where = "linear"
    x = _checks.as_array(input, "input", where)
    w = _checks.as_array(weight, "weight", where)
    _checks.floating(x, "input", where)
    if w.ndim != 2:
        raise ValueError(f"{where}: weight must be 2D (out_features, in_features), got shape {tuple(w.shape)}")
    if x.ndim == 0:
        raise ValueError(f"{where}: input must have at least 1 dimension, got a 0-d input")
    _checks.same_dtype(x, w, "input", "weight", where)
    if x.shape[-1] != w.shape[1]:
        raise ValueError(
            f"{where}: input's last dimension ({x.shape[-1]}) must equal weight's in_features ({w.shape[1]}); "
            f"input shape {tuple(x.shape)}, weight shape {tuple(w.shape)}"
        )
    fast = backends.policy().linear(x.shape, w.shape)
    if fast is not None:
        y = fast(x, w, x.ndim - 1)
    else:
        # contracting weight's in_features axis directly (rather than x @ w.T) lets
        # XLA read the weight in torch's layout instead of transposing it per call
        y = jax.lax.dot_general(x, w, (((x.ndim - 1,), (1,)), ((), ())))
    if bias is not None:
        b = _checks.as_array(bias, "bias", where)
        if b.shape != (w.shape[0],):
            raise ValueError(f"{where}: bias must have shape ({w.shape[0]},), got {tuple(b.shape)}")
        _checks.same_dtype(x, b, "input", "bias", where)
        y = y + b
    return y
