"""XLA:CPU formulation of batch normalisation's training output."""

from __future__ import annotations


def normalise(d, m1, scale, bias):
    """``(d − m1)·scale + bias`` (``bias`` may be ``None``) as ``d·scale + (bias − m1·scale)``.

    ``d`` is the input less one sample per channel and ``m1`` its mean
    (:func:`fcnn.functional.norm.shifted_moments`); ``scale`` and ``bias``
    broadcast per channel. One multiply-add per element with per-channel
    coefficients: the backward pass reduces the output gradient against
    ``d``, which XLA:CPU recomputes from the input, where with ``d − m1`` it
    writes the centred input to memory in the forward pass for the backward's
    reductions (one more write and read of the activation per layer).
    """
    shift = -m1 * scale
    return d * scale + (shift if bias is None else shift + bias)
