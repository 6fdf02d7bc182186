"""timm's ``BatchNormAct2d``: batch norm, then an optional drop layer and activation, in one module.

timm subclasses ``BatchNorm2d`` so that checkpoints written with a separate
``bn`` and ``act`` still load: the batch-norm tensors sit on the module itself
(``weight``, ``bias``, ``running_mean``, ``running_var``,
``num_batches_tracked``) and ``drop`` / ``act`` are children. Here the same
layout is a :class:`Module` that declares the batch norm's tensors as its own
:class:`Parameter` / :class:`Buffer` and runs :class:`BatchNorm2d`'s
computation on them, so the statistics, momentum rules and state_dict keys are
BatchNorm2d's. timm treats the module as a leaf of its FX graphs.
"""

from __future__ import annotations

import inspect

import jax

from fcnn.nn import init as _init
from fcnn.nn.activation import ReLU
from fcnn.nn.linear import Identity
from fcnn.nn.module import Buffer, Module, Parameter
from fcnn.nn.norm import BatchNorm2d


class BatchNormAct2d(Module):
    """timm's ``BatchNormAct2d(num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
    apply_act=True, act_layer=ReLU, act_kwargs=None, inplace=True, drop_layer=None)``.

    ``out = act(drop(batch_norm(x)))`` with :class:`BatchNorm2d`'s semantics
    (``momentum=None`` for the cumulative average, batch statistics while
    training, running statistics in eval unless not tracked).

    Args:
      num_features, eps, momentum, affine, track_running_stats: as :class:`BatchNorm2d`.
      apply_act: ``False`` makes ``act`` an :class:`Identity`.
      act_layer: a layer class or factory (``nn.SiLU``, ``functools.partial(nn.LeakyReLU, 0.2)``);
        called with ``inplace=inplace`` when it takes that argument, and ``act_kwargs``.
      drop_layer: a layer factory for ``drop`` (e.g. a dropout), default :class:`Identity`.

    Params / state: ``weight``, ``bias`` (with ``affine``); ``running_mean``, ``running_var``,
    ``num_batches_tracked`` (with ``track_running_stats``), plus any of ``act``'s.

    Shape: ``(N, C, H, W)`` → the same.
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True, apply_act=True,
                 act_layer=ReLU, act_kwargs=None, inplace=True, drop_layer=None):
        super().__init__()
        bn = BatchNorm2d(num_features, eps, momentum, affine, track_running_stats)
        # the computation, kept off the children: its tensors are this module's own
        object.__setattr__(self, "_bn", bn)
        params, state = bn.init(jax.random.key(0))  # concrete (not eval_shape), which keeps torch's key order
        fills = {"weight": _init.ones, "running_var": _init.ones}
        for name, spec in params.items():
            self.register_parameter(name, Parameter(spec.shape, fills.get(name, _init.zeros), dtype=spec.dtype))
        for name, spec in state.items():
            self.register_buffer(name, Buffer(spec.shape, fills.get(name, _init.zeros), dtype=spec.dtype))
        self.drop = drop_layer() if drop_layer is not None else Identity()
        if apply_act and act_layer is not None:
            kwargs = dict(act_kwargs or {})
            try:
                takes_inplace = "inplace" in inspect.signature(act_layer).parameters
            except (TypeError, ValueError):
                takes_inplace = False
            if takes_inplace:
                kwargs.setdefault("inplace", inplace)
            self.act = act_layer(**kwargs)
        else:
            self.act = Identity()

    @property
    def num_features(self) -> int:
        return self._bn.num_features

    def forward(self, ctx, x):
        params = {name: getattr(ctx, name) for name, t in self._tensors.items() if isinstance(t, Parameter)}
        state = {name: getattr(ctx, name) for name, t in self._tensors.items() if isinstance(t, Buffer)}
        y, new_state = self._bn.apply(params, state, x, train=ctx.train)
        for name, value in new_state.items():
            ctx.set_buffer(name, value)
        return ctx.act(ctx.drop(y))

    def extra_repr(self) -> str:
        return self._bn.extra_repr()
