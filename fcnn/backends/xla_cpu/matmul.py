"""XLA:CPU formulation of a product by a weight in torch's ``(out, in)`` layout: ``linear`` and 1×1 convolutions.

Reverse mode differentiates ``y = x · wᵀ`` into a weight gradient
``dw = gᵀ · x``, a product over every row (pixel, token) of the batch. JAX
writes it as ``dot_general(g, x)``, and XLA:CPU's matrix product takes its
first operand with the contracted rows innermost, so it first transposes the
whole output gradient ``g``. Where the weight has fewer in_features than
out_features (ResNet's expanding 1×1 convolutions, ConvNeXt's and the
transformers' first MLP layer), the input ``x`` is the smaller of the two; the
product here computes ``dw`` with ``x`` first, transposing ``x`` instead, and
transposes the weight-sized result. Values and derivatives are those of the
``dot_general``.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero


def _dot(x, w, axis):
    return jax.lax.dot_general(x, w, (((axis,), (1,)), ((), ())))


def _rows_product(x, w, axis):
    """``_dot`` written as a convolution without spatial axes of ``x``'s rows ``(M, in)`` by ``w`` ``(out, in)``.

    JAX transposes a convolution with respect to its kernel into a
    convolution of the input by the output gradient, which XLA rewrites as the
    matrix product ``xᵀ · g``: the input first. The rows go in transposed,
    ``(in, M)``, and the weight as ``(in, out)``, so that this transpose is
    already in XLA:CPU's canonical form (batch first, features last), which
    XLA turns into a product everywhere. XLA:CPU canonicalizes convolutions in
    the entry computation only: in a loop body (gradient accumulation's scan)
    the form JAX would write otherwise runs as a naive convolution, 20× slower.
    """
    rows = jnp.moveaxis(x, axis, -1)
    rows_t = rows.reshape(math.prod(rows.shape[:-1]), rows.shape[-1]).T
    y = jax.lax.conv_general_dilated(rows_t, w.T, (), (), dimension_numbers=("CN", "IO", "NC"))
    return y.reshape(rows.shape[:-1] + (w.shape[0],))


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def product(x, w, axis: int):
    """``x``'s ``axis`` contracted with the ``(out, in)`` weight's in-features axis; ``dot_general``'s values.

    Shapes: ``x`` any, with ``x.shape[axis] == in``; the result has ``x``'s
    other axes in order, then ``out``. The forward reads the weight in its own
    layout; the weight's tangent is :func:`_rows_product`, so the weight
    gradient transposes the input rather than the output gradient (module
    docstring). Zero tangents stay symbolic: a frozen weight costs no product.
    """
    return _dot(x, w, axis)


def _product_jvp(axis, primals, tangents):
    x, w = primals
    dx, dw = tangents
    y = _dot(x, w, axis)
    terms = []
    if not isinstance(dx, SymbolicZero):
        terms.append(_dot(dx, w, axis))
    if not isinstance(dw, SymbolicZero):
        terms.append(_rows_product(x, dw, axis))
    if not terms:
        return y, jnp.zeros_like(y)
    return y, terms[0] if len(terms) == 1 else terms[0] + terms[1]


product.defjvp(_product_jvp, symbolic_zeros=True)
