"""Normalisation layers: ``BatchNorm1d/2d/3d``, ``InstanceNorm1d/2d/3d``, ``GroupNorm``, ``LayerNorm``.

torch.nn names, arguments, defaults, parameter/buffer names and update rules;
the buffers live in ``state`` and ``apply`` returns their new values.
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp

from fcnn import _checks
from fcnn.functional import norm as _F
from fcnn.nn import init as _init
from fcnn.nn.module import Layer


def _count_dtype():
    # torch's num_batches_tracked is int64; without jax_enable_x64 JAX only has int32.
    return jax.dtypes.canonicalize_dtype(jnp.int64)


def _affine_params(key, shape, affine, bias, dtype):
    if not affine:
        return {}
    params = {"weight": _init.ones(key, shape, dtype)}
    if bias:
        params["bias"] = _init.zeros(key, shape, dtype)
    return params


def _running_state(key, c, dtype):
    return {"running_mean": _init.zeros(key, (c,), dtype), "running_var": _init.ones(key, (c,), dtype),
            "num_batches_tracked": _init.zeros(key, (), _count_dtype())}


class _NormBase(Layer):
    """Shared constructor of batch and instance norm (torch's ``_NormBase``)."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True, *,
                 bias=True, dtype=jnp.float32):
        where = type(self).__name__
        self.num_features = _checks.positive_int(num_features, "num_features", where)
        self.eps = _checks.number(eps, "eps", where, minimum=0)
        self.momentum = None if momentum is None else _checks.number(momentum, "momentum", where)
        self.affine = _checks.boolean(affine, "affine", where)
        self.track_running_stats = _checks.boolean(track_running_stats, "track_running_stats", where)
        self.bias = _checks.boolean(bias, "bias", where)
        self.dtype = dtype

    def init(self, key):
        state = _running_state(key, self.num_features, self.dtype) if self.track_running_stats else {}
        return _affine_params(key, (self.num_features,), self.affine, self.bias, self.dtype), state

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class _BatchNorm(_NormBase):
    """Batch normalisation; use :class:`BatchNorm1d`, :class:`BatchNorm2d` or :class:`BatchNorm3d`.

    Args:
      num_features: ``C``, the channel dimension (dim 1) of the input.
      eps: added to the variance (default ``1e-5``).
      momentum: running-stat factor (default ``0.1``); ``None`` gives the
        cumulative average over all batches seen, as torch.
      affine: learn ``weight`` (ones) and ``bias`` (zeros) of shape ``(C,)``;
        ``bias=False`` (keyword) keeps only ``weight``, as torch.
      track_running_stats: keep ``running_mean`` (zeros), ``running_var``
        (ones) and ``num_batches_tracked`` in ``state``. Without them the batch
        statistics are used in eval mode too and ``state`` is ``{}``.
      axis_name: synchronised batch norm: statistics are reduced over this
        named axis (``jax.vmap(..., axis_name=)``, ``shard_map``, ``pmap``).
      single_pass: statistics in one pass over the data (default); see
        :mod:`fcnn.functional.norm`.

    In training (``train=True``) the output uses the biased batch variance and
    the running variance is updated with the unbiased one; in eval the running
    statistics are used and ``state`` comes back unchanged.

    ``num_batches_tracked`` is int64 in torch; fcnn stores int32 unless
    ``jax_enable_x64`` is on.

    Per-example inputs: torch requires a batch dimension. With ``axis_name``
    set, an input with one dimension fewer (``(C,)`` for 1d, ``(C, H, W)`` for
    2d, ``(C, D, H, W)`` for 3d) is taken as *one example* of a batch spread
    over that axis, so ``jax.vmap(bn.apply, in_axes=(None, None, 0),
    axis_name=...)`` equals batch norm on the whole batch. (For 1d, a 2-D input
    always means ``(N, C)``, as torch; vmap over ``(N, C, L)`` examples is not
    supported — use shard_map on ``(n, C, L)`` shards.)
    """

    n: int = 0
    _ranks: tuple[int, ...] = ()

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True, *,
                 bias=True, axis_name=None, single_pass=True, dtype=jnp.float32):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, bias=bias, dtype=dtype)
        self.axis_name = axis_name
        self.single_pass = _checks.boolean(single_pass, "single_pass", type(self).__name__)

    def _input(self, x):
        where = type(self).__name__
        x = _checks.as_array(x, "input", where)
        unbatched = self.axis_name is not None and x.ndim == self._ranks[0] - 1
        if unbatched:
            x = x[None]
        elif x.ndim not in self._ranks:
            expected = " or ".join(f"{r}D" for r in self._ranks)
            extra = f" (or {self._ranks[0] - 1}D per-example input with axis_name set)"
            raise ValueError(f"{where}: expected {expected} input{extra}, got {x.ndim}D input of shape {tuple(x.shape)}")
        if x.shape[1] != self.num_features:
            raise ValueError(
                f"{where}: expected input with {self.num_features} channels (num_features) at dim 1, "
                f"got input of shape {tuple(x.shape[1:] if unbatched else x.shape)}"
            )
        return x, unbatched

    def apply(self, params, state, x, *, train=False, rng=None):
        x, unbatched = self._input(x)
        use_batch_stats = train or not self.track_running_stats
        new_state = state
        if self.track_running_stats:
            rm, rv = state["running_mean"], state["running_var"]
            nbt = state["num_batches_tracked"]
            if train:
                nbt = nbt + 1
        else:
            rm = rv = nbt = None
        y, rm, rv = _F.batch_norm(
            x, rm, rv, params.get("weight"), params.get("bias"), use_batch_stats, self.momentum, self.eps,
            num_batches_tracked=nbt, axis_name=self.axis_name, single_pass=self.single_pass,
        )
        if self.track_running_stats and train:
            new_state = {"running_mean": rm, "running_var": rv, "num_batches_tracked": nbt}
        return (y[0] if unbatched else y), new_state


class BatchNorm1d(_BatchNorm):
    """``torch.nn.BatchNorm1d``: ``(N, C)`` or ``(N, C, L)`` → same shape; statistics over N (and L).

    Example::

        bn = nn.BatchNorm1d(16)
        params, state = bn.init(jax.random.key(0))
        y, state = bn.apply(params, state, x, train=True)   # state holds the updated running stats
    """

    n = 1
    _ranks = (2, 3)


class BatchNorm2d(_BatchNorm):
    """``torch.nn.BatchNorm2d``: ``(N, C, H, W)`` → same shape; statistics per channel over N, H, W.

    See :class:`_BatchNorm` for the arguments, the update rule and per-example (vmap) use.
    """

    n = 2
    _ranks = (4,)


class BatchNorm3d(_BatchNorm):
    """``torch.nn.BatchNorm3d``: ``(N, C, D, H, W)`` → same shape; statistics per channel over N, D, H, W."""

    n = 3
    _ranks = (5,)


class _InstanceNorm(_NormBase):
    """Instance normalisation; use :class:`InstanceNorm1d`, :class:`InstanceNorm2d` or :class:`InstanceNorm3d`.

    Args as torch: ``num_features, eps=1e-5, momentum=0.1, affine=False,
    track_running_stats=False`` (and keyword ``bias=True``). Each channel of
    each sample is normalised over its spatial dimensions. With
    ``track_running_stats`` the running statistics (batch-averaged instance
    statistics) are updated in training and used in eval; ``num_batches_tracked``
    is kept for state_dict compatibility but, as in torch, never incremented.
    ``momentum=None`` means a factor of 0 (torch's behaviour).

    Unbatched ``(C, *spatial)`` inputs are accepted, as torch. If the channel
    count differs from ``num_features`` without ``affine`` or running stats,
    torch only warns; so does fcnn.
    """

    n: int = 0

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=False, track_running_stats=False, *,
                 bias=True, dtype=jnp.float32):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, bias=bias, dtype=dtype)

    def apply(self, params, state, x, *, train=False, rng=None):
        where = type(self).__name__
        x, unbatched = _checks.spatial_input(x, self.n, where)
        if x.shape[1] != self.num_features:
            msg = (f"{where}: expected input's size at the channel dim to match num_features "
                   f"({self.num_features}), but got: {x.shape[1]}")
            if self.affine or self.track_running_stats:
                raise ValueError(msg)
            warnings.warn(msg + " (num_features is unused because affine=False)", stacklevel=2)
        use_input_stats = train or not self.track_running_stats
        momentum = self.momentum if self.momentum is not None else 0.0
        if self.track_running_stats:
            y, rm, rv = _F.instance_norm(x, state["running_mean"], state["running_var"], params.get("weight"),
                                         params.get("bias"), use_input_stats, momentum, self.eps)
            if use_input_stats:
                state = {**state, "running_mean": rm, "running_var": rv}
        else:
            y = _F.instance_norm(x, None, None, params.get("weight"), params.get("bias"), True, momentum, self.eps)
        return (y[0] if unbatched else y), state


class InstanceNorm1d(_InstanceNorm):
    """``torch.nn.InstanceNorm1d``: ``(N, C, L)`` or ``(C, L)`` → same shape, normalised over L."""

    n = 1


class InstanceNorm2d(_InstanceNorm):
    """``torch.nn.InstanceNorm2d``: ``(N, C, H, W)`` or ``(C, H, W)`` → same shape, normalised over H, W."""

    n = 2


class InstanceNorm3d(_InstanceNorm):
    """``torch.nn.InstanceNorm3d``: ``(N, C, D, H, W)`` or ``(C, D, H, W)`` → same shape, normalised over D, H, W."""

    n = 3


class GroupNorm(Layer):
    """``torch.nn.GroupNorm(num_groups, num_channels, eps=1e-5, affine=True)``: ``(N, C, *)`` → same shape.

    Each sample's channels are split into ``num_groups`` groups (``C`` must be
    divisible by it), normalised over the group's channels and all spatial
    dims; then per-channel ``weight`` (ones) and ``bias`` (zeros) when ``affine``
    (keyword ``bias=False`` drops the bias, as torch).
    """

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, *, bias=True, dtype=jnp.float32):
        where = type(self).__name__
        self.num_groups = _checks.positive_int(num_groups, "num_groups", where)
        self.num_channels = _checks.positive_int(num_channels, "num_channels", where)
        if self.num_channels % self.num_groups != 0:
            raise ValueError(
                f"{where}: num_channels ({num_channels}) must be divisible by num_groups ({num_groups})"
            )
        self.eps = _checks.number(eps, "eps", where, minimum=0)
        self.affine = _checks.boolean(affine, "affine", where)
        self.bias = _checks.boolean(bias, "bias", where)
        self.dtype = dtype

    def init(self, key):
        return _affine_params(key, (self.num_channels,), self.affine, self.bias, self.dtype), {}

    def apply(self, params, state, x, *, train=False, rng=None):
        where = type(self).__name__
        x = _checks.as_array(x, "input", where)
        if x.ndim < 2 or x.shape[1] != self.num_channels:
            raise ValueError(
                f"{where}: expected input of shape (N, {self.num_channels}, *) (num_channels), "
                f"got input of shape {tuple(x.shape)}"
            )
        return _F.group_norm(x, self.num_groups, params.get("weight"), params.get("bias"), self.eps), state

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"


class LayerNorm(Layer):
    """``torch.nn.LayerNorm(normalized_shape, eps=1e-5, elementwise_affine=True, bias=True)``.

    Normalises over the trailing ``normalized_shape`` dimensions of ``(*, *normalized_shape)``;
    with ``elementwise_affine``, ``weight`` (ones) and, with ``bias``, ``bias``
    (zeros) of shape ``normalized_shape`` are applied elementwise.
    """

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True, *, dtype=jnp.float32):
        where = type(self).__name__
        self.normalized_shape = _F.normalized_shape_tuple(normalized_shape, where)
        _checks.positive(self.normalized_shape or (0,), "normalized_shape", where)
        self.eps = _checks.number(eps, "eps", where, minimum=0)
        self.elementwise_affine = _checks.boolean(elementwise_affine, "elementwise_affine", where)
        self.bias = _checks.boolean(bias, "bias", where)
        self.dtype = dtype

    def init(self, key):
        return _affine_params(key, self.normalized_shape, self.elementwise_affine, self.bias, self.dtype), {}

    def apply(self, params, state, x, *, train=False, rng=None):
        return _F.layer_norm(x, self.normalized_shape, params.get("weight"), params.get("bias"), self.eps), state

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


class LocalResponseNorm(Layer):
    """``torch.nn.LocalResponseNorm(size, alpha=1e-4, beta=0.75, k=1.0)``: AlexNet's cross-channel normalisation.

    See :func:`fcnn.functional.local_response_norm`. No params.

    Shape: ``(N, C, *)`` (at least 3-D) → the same.
    """

    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0):
        where = type(self).__name__
        self.size = _checks.positive_int(size, "size", where)
        for name, value in (("alpha", alpha), ("beta", beta), ("k", k)):
            if not _checks.is_number(value):
                raise TypeError(f"{where}: {name} must be a number, got {value!r}")
        self.alpha, self.beta, self.k = float(alpha), float(beta), float(k)

    def apply(self, params, state, x, *, train=False, rng=None):
        return _F.local_response_norm(x, self.size, self.alpha, self.beta, self.k), state

    def extra_repr(self) -> str:
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"
