"""Hypothesis strategies for convolution configurations that torch accepts, shared by the functional and layer tests."""

from hypothesis import strategies as st


@st.composite
def channels(draw, groups_from):
    """``(groups, in_channels, out_channels)``: both channel counts one or two times ``groups``."""
    groups = draw(st.sampled_from(groups_from))
    return groups, groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))


@st.composite
def transposed(draw, n, groups_from, max_size):
    """A transposed convolution torch accepts, as
    ``(cin, cout, groups, kernel, stride, padding, output_padding, dilation, size)``.

    ``output_padding`` is below ``max(stride, dilation)``; ``padding`` is at most
    ``dilation·(kernel − 1)`` and small enough that the output is not empty.
    """
    groups, cin, cout = draw(channels(groups_from))
    k = tuple(draw(st.integers(1, 4)) for _ in range(n))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(n))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(n))
    output_padding = tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation))
    size = tuple(draw(st.integers(1, max_size if n < 3 else 3)) for _ in range(n))
    padding = tuple(draw(st.integers(0, min(d * (kk - 1), ((i - 1) * s + d * (kk - 1) + op) // 2)))
                    for kk, d, i, s, op in zip(k, dilation, size, stride, output_padding))
    return cin, cout, groups, k, stride, padding, output_padding, dilation, size
