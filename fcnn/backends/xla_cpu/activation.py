"""XLA:CPU formulations of per-element activations."""

from __future__ import annotations

import numpy as np
import jax


def gelu(x):
    """Exact GELU as ``x/2 · (1 + erf(x/√2))``, torch's own formula.

    XLA:CPU expands ``erf`` into one rational polynomial per element, and
    ``erfc`` (the reference, :func:`jax.nn.gelu`) into two approximations
    selected per element with an exponential; the two agree to float rounding.
    """
    half = np.asarray(0.5, x.dtype)
    return half * x * (1 + jax.lax.erf(x * np.sqrt(half)))
