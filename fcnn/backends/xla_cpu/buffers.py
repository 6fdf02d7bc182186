"""Where XLA:CPU writes a gradient to memory once instead of recomputing it in each of its consumers."""

from __future__ import annotations

import jax


@jax.custom_jvp
def gradient_buffer(x):
    """``x`` unchanged, whose cotangent in reverse mode is written to memory as a buffer of its own.

    A value read by several later operations (a DenseNet feature map, read
    by every later layer of its block) has as its cotangent the sum of
    theirs. XLA:CPU fuses that sum, with whatever it fuses into each term
    (the batch norm backward and ReLU mask of each reader), into every
    consumer of the cotangent: in DenseNet, the input gradient and the weight
    gradient of the convolution that produced the map, where the weight
    gradient reads it transposed, one element at a time from each of up to 24
    operands. Passed through a conditional, whose result is a buffer of its
    own, the sum is computed once, in its own layout. Both of the
    conditional's branches return the cotangent: the second (taken only when
    ``x``'s first element is NaN) multiplies it by ``1.0`` computed from that
    NaN, so that XLA neither folds the predicate nor, seeing two trivial
    branches, replaces the conditional by a select. Forward mode passes the
    tangent through the same conditional.
    """
    return x


@gradient_buffer.defjvp
def _gradient_buffer_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    if x.size == 0:  # nothing to sum, and no first element to key the conditional on
        return x, dx
    first = x.reshape(-1)[0]
    return x, jax.lax.cond(first == first, _unchanged, _times_nan_is_nan, dx, first)


def _unchanged(t, first):
    return t


def _times_nan_is_nan(t, first):
    return t * (first != first).astype(t.dtype)
