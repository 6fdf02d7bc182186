"""PyTorch as the oracle: helpers that run an fcnn layer and the equivalent torch
module on the same weights and inputs and compare outputs, gradients and buffers."""

from __future__ import annotations

import contextlib

import jax
import jax.extend.core
import jax.numpy as jnp
import numpy as np
import torch

jax.config.update("jax_enable_x64", False)

RTOL = 1e-5
ATOL = 1e-5


def flatten(tree, prefix: str = "") -> dict[str, np.ndarray]:
    """Nested dict → {"a.b.c": array}, the state_dict naming."""
    out: dict[str, np.ndarray] = {}
    for k, v in tree.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict):
            out.update(flatten(v, key))
        else:
            out[key] = np.asarray(v)
    return out


def to_torch(x, requires_grad: bool = False) -> torch.Tensor:
    t = torch.from_numpy(np.array(x))
    if requires_grad:
        t.requires_grad_(True)
    return t


def assert_close(actual, expected, rtol: float = RTOL, atol: float = ATOL, what: str = "") -> None:
    if isinstance(expected, torch.Tensor):
        expected = expected.detach().numpy()
    actual = np.asarray(actual)
    assert actual.shape == tuple(expected.shape), f"{what}: shape {actual.shape} != torch {tuple(expected.shape)}"
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=what)


def load_into_torch(module: torch.nn.Module, params, state) -> None:
    """Copy fcnn params/state into a torch module; keys must match torch's state_dict exactly."""
    flat = {**flatten(params), **flatten(state)}
    expected = set(module.state_dict().keys())
    assert set(flat) == expected, f"fcnn keys {sorted(flat)} != torch state_dict keys {sorted(expected)}"
    sd = {k: torch.from_numpy(np.array(v)) for k, v in flat.items()}
    for k, v in module.state_dict().items():
        assert tuple(v.shape) == tuple(sd[k].shape), f"{k}: fcnn shape {tuple(sd[k].shape)} != torch {tuple(v.shape)}"
    module.load_state_dict(sd)


def check_layer(layer, module: torch.nn.Module, inputs, *, train: bool = False, rng=None, key=0,
                rtol: float = RTOL, atol: float = ATOL, params=None, state=None, grads: bool = True,
                apply_kwargs=None, torch_kwargs=None, eager: bool = False):
    """Run ``layer`` (fcnn) and ``module`` (torch) on the same weights and inputs.

    Compares forward outputs, the gradients w.r.t. every input and parameter
    for a random cotangent, and the updated state (buffers). Returns the fcnn
    output and new state. The fcnn side runs jitted, or op by op with ``eager=True``.
    """
    if params is None:
        params, state = layer.init(jax.random.key(key))
    load_into_torch(module, params, state)
    module.train(train)
    inputs = tuple(jnp.asarray(x) for x in (inputs if isinstance(inputs, (tuple, list)) else (inputs,)))
    apply_kwargs = apply_kwargs or {}

    def f(p, *xs):
        return layer.apply(p, state, *xs, train=train, rng=rng, **apply_kwargs)

    # The cotangent depends only on the output's shape, so forward and backward
    # compile as one function: eagerly, every primitive compiles on its own for
    # each new shape, which made the generated-configuration tests several times slower.
    out_struct = jax.eval_shape(f, params, *inputs)[0]
    cot = np.random.RandomState(key + 1).standard_normal(out_struct.shape).astype(out_struct.dtype)

    def forward_and_vjp(p, xs, cot):
        out, vjp_fn, new_state = jax.vjp(f, p, *xs, has_aux=True)
        return out, new_state, vjp_fn(cot)

    out, new_state, (g_params, *g_inputs) = (forward_and_vjp if eager else jax.jit(forward_and_vjp))(
        params, inputs, jnp.asarray(cot))

    t_inputs = [to_torch(x, requires_grad=grads and jnp.issubdtype(x.dtype, jnp.floating)) for x in inputs]
    t_out = module(*t_inputs, **(torch_kwargs or {}))
    assert_close(out, t_out, rtol, atol, "forward output")

    t_state = {k: v for k, v in module.state_dict().items() if k in flatten(new_state) or k in flatten(state)}
    for k, v in flatten(new_state).items():
        assert_close(v, t_state[k], rtol, atol, f"state {k}")

    if grads:
        t_out.backward(torch.from_numpy(cot))
        for i, (g, t) in enumerate(zip(g_inputs, t_inputs)):
            if t.requires_grad:
                assert_close(g, t.grad, rtol, atol, f"grad of input {i}")
        named = dict(module.named_parameters())
        for k, g in flatten(g_params).items():
            tg = named[k].grad
            if tg is None:
                tg = torch.zeros_like(named[k])
            assert_close(g, tg, rtol, atol, f"grad of param {k}")
    return out, new_state


def randn(shape, seed: int = 0, dtype=np.float32) -> np.ndarray:
    return np.random.RandomState(seed).standard_normal(shape).astype(dtype)


def torch_pool_output(size, kernel, stride, padding, dilation=1, ceil_mode=False):
    """The spatial output size torch's ``max_pool{n}d`` gives for an input of spatial ``size``,
    or None where torch refuses the configuration.

    Tests choose their pooling cases with this rather than with fcnn's own size
    helper, so a bug in fcnn's helper cannot turn the revealing cases into skipped ones.
    """
    size = tuple(size)
    try:
        y = getattr(torch.nn.functional, f"max_pool{len(size)}d")(
            torch.zeros((1, 1) + size), kernel, stride, padding, dilation, ceil_mode)
    except RuntimeError:
        return None
    return tuple(y.shape[2:])


def windows_reach_input(size, out, kernel, stride, padding, dilation) -> bool:
    """Whether every pooling window of ``out`` (per dimension) covers at least one input element.

    A dilated window can fall entirely into the padding; torch's max-pool gradient
    for it lands in the wrong channel (a torch bug fcnn does not mirror), so the
    gradient tests leave those configurations out.
    """
    n = len(size)
    as_n = lambda v: tuple(v) if isinstance(v, (tuple, list)) else (v,) * n  # noqa: E731
    return all(
        any(0 <= o * s - p + j * d < L for j in range(k))
        for L, oo, k, s, p, d in zip(size, out, as_n(kernel), as_n(stride), as_n(padding), as_n(dilation))
        for o in range(oo)
    )


def check_conv_against_torch(f, x, w, n, stride, padding, dilation, groups, seed):
    """``f(x, w)``'s value and both gradients (for a random cotangent) equal torch's ``conv{n}d``.

    Returns ``(y, grad_x, grad_w, cotangent)``.
    """
    conv = {1: torch.nn.functional.conv1d, 2: torch.nn.functional.conv2d, 3: torch.nn.functional.conv3d}[n]
    y, vjp = jax.vjp(f, jnp.asarray(x), jnp.asarray(w))
    g = randn(y.shape, seed=seed)
    gx, gw = vjp(jnp.asarray(g))
    tx, tw = to_torch(x, requires_grad=True), to_torch(w, requires_grad=True)
    ty = conv(tx, tw, None, stride, padding, dilation, groups)
    ty.backward(to_torch(g))
    assert_close(y, ty, 1e-4, 1e-5, "output")
    assert_close(gx, tx.grad, 1e-4, 1e-4, "grad input")
    assert_close(gw, tw.grad, 1e-4, 1e-4, "grad weight")
    return y, gx, gw, g


@contextlib.contextmanager
def backend_compiles():
    """A list that collects one entry per XLA compilation run inside the ``with`` block."""
    compiles = []

    def listen(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(event)

    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        yield compiles
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)


def equations(jaxpr, primitive: str) -> list:
    """Every equation of ``primitive`` in ``jaxpr`` and in the jaxprs it calls (loops, nested jits, custom rules)."""
    found = []
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == primitive:
            found.append(eqn)
        for sub in jax.extend.core.jaxprs_in_params(eqn.params):
            found += equations(sub, primitive)
    return found
