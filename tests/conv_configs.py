"""Hypothesis strategies for convolution configurations that torch accepts, shared by every convolution test
(functional ops, their derivatives, the layers and the backend formulations)."""

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


@st.composite
def forward_configs(draw, one_channel_per_group=False, dims=(1, 2, 2, 3), groups_from=(1, 1, 2)):
    """A convolution's geometry: ``(n, batch, cin, cout, kernel, stride, padding, dilation, groups, size)``;
    ``n`` drawn from ``dims``, ``groups`` from ``groups_from`` (unless one channel per group)."""
    n = draw(st.sampled_from(list(dims)))
    groups = draw(st.integers(1, 3) if one_channel_per_group else st.sampled_from(list(groups_from)))
    cin = groups * (1 if one_channel_per_group else draw(st.integers(1, 3)))
    cout = groups * draw(st.integers(1, 2))
    k = tuple(draw(st.integers(1, 3)) for _ in range(n))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(n))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(n))
    padding = tuple(draw(st.integers(0, 2)) for _ in range(n))
    size = tuple(draw(st.integers(d * (kk - 1) + 1, d * (kk - 1) + 6)) for kk, d in zip(k, dilation))
    batch = draw(st.integers(1, 3))
    return n, batch, cin, cout, k, stride, padding, dilation, groups, size


@st.composite
def layer_configs(draw, dims=(1, 2, 3)):
    """A convolution layer torch accepts, as ``(n, cin, cout, kernel, stride, padding, dilation, groups, bias,
    padding_mode, size, batched)``; ``padding`` may be ``'same'``/``'valid'`` (stride 1)."""
    n = draw(st.sampled_from(dims))
    groups, cin, cout = draw(channels([1, 1, 2, 3]))
    k = tuple(draw(st.integers(1, 3)) for _ in range(n))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(n))
    mode = draw(st.sampled_from(["zeros", "zeros", "reflect", "replicate", "circular"]))
    same = draw(st.booleans()) and mode == "zeros" or draw(st.integers(0, 4)) == 0
    if same:
        stride, padding = (1,) * n, draw(st.sampled_from(["same", "valid"]))
    else:
        stride = tuple(draw(st.integers(1, 3)) for _ in range(n))
        padding = tuple(draw(st.integers(0, 2)) for _ in range(n))
    # spatial big enough for the kernel and for reflect padding
    size = tuple(draw(st.integers(d * (kk - 1) + 3, d * (kk - 1) + 7)) for kk, d in zip(k, dilation))
    batched = draw(st.booleans())
    bias = draw(st.booleans())
    return n, cin, cout, k, stride, padding, dilation, groups, bias, mode, size, batched
