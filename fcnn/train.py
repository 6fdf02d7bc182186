"""Training: a train state pytree, jit-compiled train/eval steps and ``fit``.

Everything a step needs travels explicitly in a :class:`TrainState` — params,
state (BatchNorm statistics), optimizer state, step count and PRNG key — so
the step is a pure function, compiled once with ``jax.jit``::

    ts = create_train_state(model, optimizer, jax.random.key(0))
    step = make_train_step(model, loss_fn, optimizer)
    for x, y in loader:
        ts, metrics = step(ts, (x, y))          # metrics: {'loss', 'accuracy'}

or, with evaluation, progress bar, history and early stopping::

    ts, history = fit(model, train_loader, test_loader, loss_fn, optimizer, epochs=10)

``loss_fn(output, target)`` returns a scalar (e.g. ``fcnn.nn.CrossEntropyLoss()``);
``optimizer`` is any ``optax.GradientTransformation`` (e.g. ``fcnn.optim.SGD``).
Same seed → bit-identical parameters on CPU: shuffling is seeded per epoch,
the step's key is ``fold_in(rng, step)``, and nothing depends on wall time.
"""

from __future__ import annotations

import functools
import math
import os
import sys
import time
from collections import OrderedDict
from typing import Any, Callable, Hashable, Iterable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from fcnn import _checks, xla
from fcnn import compilation_cache as compilation_cache_lib

Batch = tuple  # (inputs, target)
Metrics = dict


class TrainState(NamedTuple):
    """Everything that changes during training; a pytree (jit/donate/checkpoint it whole).

    Attributes:
        params: trainable parameters (nested dict, torch state_dict names).
        state: buffers, e.g. BatchNorm running statistics (nested dict).
        opt_state: the optimizer's state.
        step: int32 scalar, the number of optimizer steps taken.
        rng: PRNG key; step ``k`` uses ``fold_in(rng, k)`` for dropout etc.
            :func:`create_train_state` keeps a threefry key (JAX's default) as
            its raw ``uint32`` data (``jax.random.key_data``): a typed key
            array makes every jitted call slower to dispatch, which shows in
            small steps (``benchmarks/README.md``). The step works with either form; keys
            of other implementations stay typed.
    """

    params: Any
    state: Any
    opt_state: Any
    step: jax.Array
    rng: jax.Array


def create_train_state(model, optimizer: optax.GradientTransformation, key) -> TrainState:
    """Initialise the model and optimizer from ``key`` (a PRNG key or an int seed)."""
    if _checks.is_int(key):
        key = jax.random.key(int(key))
    init_key, rng = jax.random.split(key)
    params, state = model.init(init_key)
    try:
        fresh = _fresh_with_optimizer_state(optimizer)
    except TypeError:  # an optimizer that cannot be a cache key
        fresh = _fresh_with_optimizer_state.__wrapped__(optimizer)
    params, state, opt_state = fresh(params, state)
    return TrainState(params, state, opt_state, jnp.zeros((), jnp.int32), _stored_key(rng))


@functools.lru_cache(maxsize=64)
def _fresh_with_optimizer_state(optimizer):
    """``(params, state) -> (params, state, optimizer.init(params))`` with fresh buffers, as one jitted program.

    Fresh buffers because the step donates them, and XLA refuses to donate one
    buffer twice (initialisers may hand out shared constants). One program
    because run eagerly, the copies and the optimizer's zeros compile a
    program per parameter shape (ConvNeXt-Tiny: 56, 0.4-0.5 s of a new
    process's start even with the persistent compilation cache). Cached per
    optimizer, so that a new train state of the same shapes reuses it.
    """
    def fresh(params, state):
        params, state = jax.tree.map(jnp.array, (params, state))
        return params, state, optimizer.init(params)

    return jax.jit(fresh)


_RAW_IMPL = "threefry2x32"  # what TrainState's raw (uint32) keys are


def _stored_key(key):
    """``key`` as :class:`TrainState` keeps it: threefry keys as raw data, others typed."""
    if _checks.is_typed_key(key) and str(jax.random.key_impl(key)) == _RAW_IMPL:
        return jax.random.key_data(key)
    return key


def _step_key(rng, step):
    """The key of optimizer step ``step``; raw threefry data is wrapped first (the same bits)."""
    if not _checks.is_typed_key(rng) and jnp.shape(rng) == (2,):
        rng = jax.random.wrap_key_data(rng, impl=_RAW_IMPL)
    return jax.random.fold_in(rng, step)


def accuracy(output, target):
    """Fraction of correct arg-max predictions, or ``None`` where it does not apply.

    Applies to class scores ``(N, C, *d)`` with integer targets ``(N, *d)``.
    Targets outside ``[0, C)`` (e.g. ``ignore_index=-100``) are not counted.
    """
    if not jnp.issubdtype(target.dtype, jnp.integer) or output.ndim != target.ndim + 1 or output.ndim < 2:
        return None
    valid = (target >= 0) & (target < output.shape[1])
    correct = (jnp.argmax(output, axis=1) == target) & valid
    return jnp.sum(correct) / jnp.maximum(jnp.sum(valid), 1)


def _metrics(loss, output, target) -> Metrics:
    out = {"loss": loss}
    acc = accuracy(output, target)
    if acc is not None:
        out["accuracy"] = acc
    return out


def train_step_fn(model, loss_fn: Callable, optimizer: optax.GradientTransformation, *,
                  accumulate_steps: int = 1, remat: bool = False, compute_dtype=None, augment: Callable | None = None):
    """The pure (un-jitted) train step ``(train_state, (x, target)) -> (train_state, metrics)``.

    One forward in training mode, gradients of ``loss_fn(output, target)``
    w.r.t. the params, one optimizer update. ``metrics`` holds the batch's
    ``loss`` and, for classification, ``accuracy`` (computed from the same
    forward pass, i.e. in training mode).

    Options for large models (see :func:`make_train_step`): ``accumulate_steps``,
    ``remat`` and ``compute_dtype``; ``augment`` transforms the batch first.
    """
    where = "make_train_step"
    if augment is not None and not callable(augment):
        raise TypeError(f"{where}: augment must be callable as augment(key, x, target) -> (x, target), "
                        f"got {augment!r}")
    accumulate_steps = _checks.positive_int(accumulate_steps, "accumulate_steps", where)
    if not isinstance(remat, bool):
        raise TypeError(f"{where}: remat must be a bool, got {remat!r}")
    if compute_dtype is not None:
        compute_dtype = jnp.dtype(compute_dtype)
        if not jnp.issubdtype(compute_dtype, jnp.floating):
            raise ValueError(f"{where}: compute_dtype must be a floating dtype, got {compute_dtype}")
    forward = _forward_fn(model, remat, compute_dtype)

    def grads_and_metrics(params, state, x, target, rng):
        def objective(params):
            output, new_state = forward(params, state, x, rng)
            return loss_fn(output, target), (output, new_state)

        (loss, (output, new_state)), grads = jax.value_and_grad(objective, has_aux=True)(params)
        return grads, new_state, _metrics(loss, output, target)

    def step(ts: TrainState, batch: Batch):
        x, target = batch
        rng = _step_key(ts.rng, ts.step)
        if augment is not None:
            x, target = augment(jax.random.fold_in(rng, _AUGMENT_STREAM), x, target)
        if accumulate_steps == 1:
            grads, new_state, metrics = grads_and_metrics(ts.params, ts.state, x, target, rng)
        else:
            grads, new_state, metrics = _accumulate(grads_and_metrics, accumulate_steps, ts.params, ts.state,
                                                    x, target, rng)
        updates, opt_state = optimizer.update(grads, ts.opt_state, ts.params)
        params = optax.apply_updates(ts.params, updates)
        new_ts = TrainState(params, new_state, opt_state, ts.step + 1, ts.rng)
        return new_ts, metrics

    return step


# the augmentation's key is fold_in(step key, this): a stream apart from the model's (dropout) keys
_AUGMENT_STREAM = 0x61756700


def _cast_floating(tree, dtype):
    return jax.tree.map(lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a, tree)


def _forward_fn(model, remat: bool, compute_dtype):
    """``(params, state, x, rng) -> (output, new_state)`` in training mode, with the step's options.

    Mixed precision: params and inputs are cast to ``compute_dtype`` inside the
    differentiated function, so gradients, the master params and the optimizer
    state stay float32; the output is cast back to float32 for the loss, and
    buffers (BatchNorm statistics, which fcnn computes in float32) keep their dtype.
    """

    def forward(params, state, x, rng):
        if compute_dtype is not None:
            params, x = _cast_floating((params, x), compute_dtype)
        output, new_state = model.apply(params, state, x, train=True, rng=rng)
        if compute_dtype is not None:
            output = _cast_floating(output, jnp.float32)
            new_state = jax.tree.map(lambda new, old: new.astype(old.dtype), new_state, state)
        return output, new_state

    # Rematerialisation: keep only the inputs of the forward pass and recompute
    # its activations during the backward pass (memory for compute).
    return jax.checkpoint(forward) if remat else forward


def _accumulate(grads_and_metrics, k: int, params, state, x, target, rng):
    """Mean gradients and metrics over ``k`` micro-batches, run one after another with ``lax.scan``.

    Micro-batch ``j`` takes rows ``j, j + k, j + 2k, …``: a strided split keeps
    each micro-batch spread over all devices when the batch is sharded.
    Buffers (BatchNorm statistics) are updated once per micro-batch, as torch
    does with a loop of ``backward()`` calls.
    """
    n = int(np.shape(x)[0])
    if n % k:
        raise ValueError(f"make_train_step: batch size {n} is not divisible by accumulate_steps={k}")

    def split(a):
        a = jnp.reshape(a, (n // k, k) + a.shape[1:])
        return jnp.moveaxis(a, 1, 0)

    micro = jax.tree.map(split, (x, target))
    first = jax.tree.map(lambda a: a[0], micro)
    _, _, metric_shapes = jax.eval_shape(grads_and_metrics, params, state, *first, rng)
    zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), (params, metric_shapes))

    def body(carry, inputs):
        state, g_sum, m_sum = carry
        (xi, ti), i = inputs
        g, state, m = grads_and_metrics(params, state, xi, ti, jax.random.fold_in(rng, i))
        add = lambda a, b: a + b
        return (state, jax.tree.map(add, g_sum, g), jax.tree.map(add, m_sum, m)), None

    (state, g_sum, m_sum), _ = jax.lax.scan(body, (state, *zeros), (micro, jnp.arange(k)))
    mean = lambda a: a / k
    return jax.tree.map(mean, g_sum), state, jax.tree.map(mean, m_sum)


# Compiled steps by key, newest last; the oldest goes past _MAX_STEPS (see make_train_step's "Reuse").
_STEPS: OrderedDict = OrderedDict()
_MAX_STEPS = 16


def _reused(key: Hashable, build: Callable[[], Callable]) -> Callable:
    """The step stored under ``key``, else ``build()``'s (stored when the key is hashable)."""
    try:
        step = _STEPS.pop(key)
    except TypeError:  # an unhashable option or object: a step for this call only
        return build()
    except KeyError:
        step = build()
    _STEPS[key] = step
    while len(_STEPS) > _MAX_STEPS:
        _STEPS.popitem(last=False)
    return step


def make_train_step(model, loss_fn: Callable, optimizer: optax.GradientTransformation, *,
                    donate: bool = True, jit: bool = True, mesh=None, data_axis: str = "data",
                    accumulate_steps: int = 1, remat: bool = False, compute_dtype=None,
                    augment: Callable | None = None, cache_key: Hashable | None = None):
    """The jit-compiled train step; see :func:`train_step_fn`.

    The incoming :class:`TrainState` is donated (``donate=True``): its buffers
    are reused for the new one, so don't use the old state after the call.
    ``jit=False`` returns the plain Python function (for debugging).

    Reuse: ``jax.jit`` keeps its compilations per Python function, so the
    function is made once per key and later calls with an equal key return it
    (the last 16 keys are kept). The key is the options ``donate``, ``jit``,
    ``mesh``, ``data_axis``, ``accumulate_steps``, ``remat``, ``compute_dtype``
    together with ``cache_key``, or, when ``cache_key`` is ``None``, with the
    objects ``(model, loss_fn, optimizer, augment)`` themselves (layers compare
    by value, functions and optax transformations by identity). An unhashable
    key makes a step for this call only.

    Args:
      mesh: a ``jax.sharding.Mesh`` for data-parallel training: the batch is
        split over its ``data_axis``, the train state is replicated, and XLA
        averages the gradients. BatchNorm statistics are those of the global
        batch (the reductions span the sharded axis), so N devices give the
        single-device result. See :mod:`fcnn.distributed` for multi-process use.
      data_axis: the mesh axis the batch is split over.
      accumulate_steps: split each batch into this many micro-batches and
        average their gradients before one optimizer update (same result as
        the whole batch for models without BatchNorm; less memory).
      remat: recompute activations in the backward pass (``jax.checkpoint``).
      compute_dtype: e.g. ``jnp.bfloat16``: run the forward/backward in this
        dtype while params, optimizer state and BatchNorm statistics stay float32.
      augment: ``augment(key, x, target) -> (x, target)`` applied to each batch
        inside the compiled step, with a key drawn from the step's key: data
        augmentation on the device, so the host ships only (e.g. uint8) batches.
        An :mod:`fcnn.transforms` ``Compose`` is such a function (``MixUp`` /
        ``CutMix`` at its end mix the targets too). Same seed, same augmentation.
      cache_key: a hashable value that determines ``model``, ``loss_fn``,
        ``optimizer`` and ``augment`` (e.g. the configuration they are built
        from): steps are then reused by it (see Reuse) when those objects are
        rebuilt between calls, as ``fcnn train`` does with its flags.
    """

    def build():
        step = train_step_fn(model, loss_fn, optimizer, accumulate_steps=accumulate_steps, remat=remat,
                             compute_dtype=compute_dtype, augment=augment)
        if not jit:
            return step
        if mesh is not None:
            from fcnn import distributed

            return distributed.data_parallel_jit(step, mesh, data_axis, donate=donate)
        return xla.jit(step, donate_argnums=(0,) if donate else ())

    objects = (model, loss_fn, optimizer, augment) if cache_key is None else cache_key
    return _reused(("train", objects, donate, jit, mesh, data_axis, accumulate_steps, remat, compute_dtype), build)


def eval_step_fn(model, loss_fn: Callable, metric=None, transform: Callable | None = None):
    """The pure eval step ``(train_state, (x, target)) -> metrics``, in eval mode (``train=False``).

    ``transform(x) -> x`` preprocesses the inputs first (e.g. uint8 → normalised float).

    With ``metric`` (an :class:`fcnn.metrics.Metric`, e.g. a
    :func:`fcnn.metrics.Collection`) the step returns ``(metrics, state)``:
    ``state`` is the metric's state of this batch, ``metric.update(metric.init(),
    output, target)``, for :func:`evaluate` to add up.
    """

    def step(ts: TrainState, batch: Batch):
        x, target = batch
        if transform is not None:
            x = transform(x)
        output, _ = model.apply(ts.params, ts.state, x, train=False)
        means = _metrics(loss_fn(output, target), output, target)
        if metric is None:
            return means
        return means, metric.update(metric.init(), output, target)

    return step


def make_eval_step(model, loss_fn: Callable, *, jit: bool = True, metric=None, transform: Callable | None = None,
                   cache_key: Hashable | None = None):
    """The jit-compiled eval step (nothing donated: the train state lives on); see :func:`eval_step_fn`.

    Reused as :func:`make_train_step`'s steps are: by ``(jit, cache_key)``, or with ``cache_key=None``
    by ``(jit, model, loss_fn, metric, transform)``.
    """
    if transform is not None and not callable(transform):
        raise TypeError(f"make_eval_step: transform must be callable as transform(x) -> x, got {transform!r}")

    def build():
        step = eval_step_fn(model, loss_fn, metric, transform)
        return xla.jit(step) if jit else step

    objects = (model, loss_fn, metric, transform) if cache_key is None else cache_key
    return _reused(("eval", objects, jit), build)


def _epoch_batches(data, epoch: int):
    # fcnn.data.DataLoader can serve any epoch; other iterables are re-iterated.
    if hasattr(data, "epoch") and callable(data.epoch):
        return data.epoch(epoch)
    return iter(data)


def _batch_size(batch) -> int:
    return int(np.shape(jax.tree.leaves(batch)[0])[0])


def _mean_metrics(per_batch: Sequence[Metrics], sizes: Sequence[int]) -> dict[str, float]:
    """Sample-weighted means of per-batch metrics (batch means → data set means)."""
    if not per_batch:
        return {}
    host = jax.device_get(list(per_batch))
    w = np.asarray(sizes, np.float64)
    return {k: float(np.dot([m[k] for m in host], w) / w.sum()) for k in host[0]}


def evaluate(eval_step, ts: TrainState, data: Iterable, epoch: int = 0, metric=None) -> dict:
    """Metrics of ``eval_step`` over the batches of ``data``.

    The step's per-batch means (loss, accuracy) are averaged weighted by batch
    size. With ``metric`` (the one given to :func:`make_eval_step`), the
    batches' states are added up and ``metric.compute`` of the sum joins the
    result: each scalar as a float, each array (per-class scores, a confusion
    matrix) as nested lists, so the result stays JSON-serialisable.
    """
    metrics, sizes, total = [], [], None
    for batch in _epoch_batches(data, epoch):
        out = eval_step(ts, batch)
        if metric is not None:
            out, state = out
            total = state if total is None else jax.tree.map(jnp.add, total, state)
        metrics.append(out)
        sizes.append(_batch_size(batch))
    result = _mean_metrics(metrics, sizes)
    if metric is not None and total is not None:
        computed = jax.device_get(metric.compute(total))
        result.update({k: _plain(v) for k, v in (computed.items() if isinstance(computed, dict)
                                                  else [("metric", computed)])})
    return result


def _plain(value):
    """A metric's value as JSON data: a float for a scalar, nested lists for an array."""
    value = np.asarray(value)
    return float(value) if value.ndim == 0 else value.tolist()


# names of metrics where higher is better (EarlyStopping's default mode)
_SCORES = ("accuracy", "top", "precision", "recall", "f1", "auroc", "iou", "dice")


class EarlyStopping:
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs.

    ``mode`` is ``'min'`` or ``'max'``; by default ``'max'`` for names of scores
    (containing ``accuracy``, ``top``, ``precision``, ``recall``, ``f1``,
    ``auroc``, ``iou`` or ``dice``) and ``'min'`` otherwise. Mirrors
    Keras'/Lightning's callback.
    """

    def __init__(self, monitor: str = "eval_loss", patience: int = 3, min_delta: float = 0.0,
                 mode: str | None = None) -> None:
        if not _checks.is_int(patience) or patience < 0:
            raise ValueError(f"EarlyStopping: patience must be a non-negative int, got {patience!r}")
        if mode is None:
            mode = "max" if any(score in monitor for score in _SCORES) else "min"
        if mode not in ("min", "max"):
            raise ValueError(f"EarlyStopping: mode must be one of ['min', 'max'], got {mode!r}")
        if not min_delta >= 0:
            raise ValueError(f"EarlyStopping: min_delta must be >= 0, got {min_delta!r}")
        self.monitor, self.patience, self.min_delta, self.mode = monitor, patience, float(min_delta), mode
        self.best = math.inf if mode == "min" else -math.inf
        self.best_epoch = -1
        self.wait = 0

    def improved(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def update(self, epoch: int, metrics: dict) -> bool:
        """Record this epoch's metrics; returns whether training should stop."""
        if self.monitor not in metrics:
            raise KeyError(f"EarlyStopping: monitored metric {self.monitor!r} not in the epoch's metrics "
                           f"{sorted(metrics)}")
        value = metrics[self.monitor]
        if self.improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            return False
        self.wait += 1
        return self.wait > self.patience


def _progress(progress: bool | None, total, desc: str):
    from tqdm.auto import tqdm

    if progress is None:
        progress = sys.stderr.isatty()
    return tqdm(total=total, desc=desc, disable=not progress, leave=False, dynamic_ncols=True)


def _data_parallel(mesh, data_axis: str, train_step, eval_step, ts, process_local: bool = False):
    """Wrap the steps of :func:`fit` to place host batches on ``mesh`` (this process's rows).

    ``process_local``: the loader already serves only this process's rows
    (:class:`fcnn.data.ImageLoader`).
    """
    from fcnn import distributed

    def sharded_train_step(ts, batch):
        if process_local:
            local = jax.tree.map(np.asarray, batch)
        else:
            lo, hi = distributed.process_rows(_batch_size(batch))
            local = jax.tree.map(lambda a: np.asarray(a)[lo:hi], batch)
        return train_step(ts, distributed.global_batch(mesh, local, data_axis))

    def replicated_eval_step(ts, batch):
        return eval_step(ts, distributed.replicate(mesh, batch))

    return (sharded_train_step, None if eval_step is None else replicated_eval_step,
            distributed.replicate(mesh, ts))


def fit(model, train_data: Iterable, eval_data: Iterable | None, loss_fn: Callable,
        optimizer: optax.GradientTransformation, epochs: int, *, seed: int = 0,
        train_state: TrainState | None = None, start_epoch: int = 0,
        early_stopping: EarlyStopping | None = None, restore_best: bool = False,
        on_epoch_end: Callable | Sequence[Callable] | None = None,
        progress: bool | None = None, log_every: int = 10, mesh=None, data_axis: str = "data",
        metrics=None, tensorboard=None, eval_transform: Callable | None = None,
        cache_key: Hashable | None = None, compilation_cache=True, **step_options):
    """Train ``model`` for ``epochs`` epochs, evaluating after each; returns ``(train_state, history)``.

    Args:
        model: any fcnn layer (``init``/``apply``).
        train_data: batches ``(x, target)`` — an ``fcnn.data.DataLoader`` (epoch
            ``e`` is ``train_data.epoch(e)``, so runs are reproducible and
            resumable) or any re-iterable of batches.
        eval_data: batches for evaluation after every epoch, or ``None``.
        loss_fn: ``loss_fn(output, target) -> scalar`` (mean over the batch).
        optimizer: an ``optax.GradientTransformation`` (``fcnn.optim.*``).
        epochs: number of epochs to run (from ``start_epoch``).
        seed: seeds the parameters and the per-step PRNG keys (ignored when
            ``train_state`` is given).
        train_state: resume from this state instead of initialising.
        start_epoch: index of the first epoch (for resuming with ``train_state``).
        early_stopping: an :class:`EarlyStopping` watching a key of the epoch metrics.
        restore_best: with ``early_stopping``, return the state of its best epoch.
        on_epoch_end: callable(s) ``f(epoch, train_state, metrics)`` run after each
            epoch (checkpointing, logging); returning ``True`` stops training.
        progress: show a tqdm bar (loss, accuracy, samples/s); ``None`` = only
            when stderr is a terminal.
        log_every: refresh the bar's numbers every this many steps (each
            refresh waits for the device).
        mesh, data_axis: data-parallel training over a ``jax.sharding.Mesh``
            (see :func:`make_train_step`). With several processes
            (:func:`fcnn.distributed.initialize`) every process iterates the
            same batches and keeps only its own rows of each training batch
            (:func:`fcnn.distributed.process_rows`); evaluation batches are
            replicated.
        metrics: evaluation metrics beyond loss and accuracy: a dict of name ->
            :class:`fcnn.metrics.Metric` (e.g. ``{"top5": fcnn.metrics.Accuracy(task="multiclass",
            num_classes=10, top_k=5), "f1": fcnn.metrics.F1Score(...)}``), accumulated
            over all evaluation batches (summed states, so equal to the metric of the
            whole evaluation set) and recorded as ``eval_<name>``: a float, or nested
            lists for per-class results and confusion matrices.
        tensorboard: a :class:`fcnn.tensorboard.TensorBoard` or a directory for
            one (closed at the end when ``fit`` made it): per-step training loss and
            accuracy, the epoch records' scalars and an image grid of each epoch's
            first training batch (see :mod:`fcnn.tensorboard`). Written by process 0 only.
        eval_transform: ``transform(x) -> x`` applied to evaluation inputs inside
            the compiled eval step (the deterministic counterpart of ``augment``).
        cache_key: a hashable value that determines ``model``, ``loss_fn``,
            ``optimizer``, ``metrics``, ``eval_transform`` and ``augment``: the
            compiled steps are reused by it (see :func:`make_train_step`), so a
            second ``fit`` with objects rebuilt from the same configuration
            compiles nothing. ``None``: reused by the objects themselves.
        compilation_cache: JAX's persistent compilation cache, so that a new
            process training the same model loads its compiled steps from disk
            instead of compiling them again: ``True`` (the default) for
            ``$FCNN_CACHE_DIR``, else ``$XDG_CACHE_HOME/fcnn/jax`` or
            ``~/.cache/fcnn/jax`` (``FCNN_CACHE_DIR=none``: off); a directory;
            ``None`` or ``False`` for none. It is JAX's process-wide setting and
            stays on after ``fit`` returns; fcnn leaves it alone when you have
            configured JAX's cache yourself (see :mod:`fcnn.compilation_cache`).
        **step_options: ``accumulate_steps``, ``remat``, ``compute_dtype``,
            ``augment`` of :func:`make_train_step` (augmentation on the device:
            ``augment=fcnn.transforms.Compose([...])``).

    Returns:
        ``(train_state, history)``; ``history`` is a list with one dict per
        epoch: ``epoch``, ``train_loss``, ``train_accuracy`` (classification),
        ``eval_loss``, ``eval_accuracy`` (with ``eval_data``), ``seconds``,
        ``samples_per_second`` (training throughput, compilation included).
    """
    if not _checks.is_int(epochs) or epochs < 0:
        raise ValueError(f"fit: epochs must be a non-negative int, got {epochs!r}")
    if restore_best and early_stopping is None:
        raise ValueError("fit: restore_best=True needs early_stopping")
    callbacks = [] if on_epoch_end is None else (
        list(on_epoch_end) if isinstance(on_epoch_end, (list, tuple)) else [on_epoch_end])
    metric = _metric_collection(metrics)
    if metric is not None and eval_data is None:
        raise ValueError("fit: metrics are computed on eval_data, which is None")
    compilation_cache_lib.enable(compilation_cache, "fit")
    board, own_board = _tensorboard(tensorboard)
    ts = train_state if train_state is not None else create_train_state(model, optimizer, seed)
    train_step = make_train_step(model, loss_fn, optimizer, mesh=mesh, data_axis=data_axis, cache_key=cache_key,
                                 **step_options)
    eval_step = make_eval_step(model, loss_fn, metric=metric, transform=eval_transform, cache_key=cache_key) \
        if eval_data is not None else None
    step_count = int(jax.device_get(ts.step)) if board is not None else 0
    if mesh is not None:
        train_step, eval_step, ts = _data_parallel(mesh, data_axis, train_step, eval_step, ts,
                                                   getattr(train_data, "process_local", False))
    history: list[dict] = []
    best_ts = None
    total = len(train_data) if hasattr(train_data, "__len__") else None

    for epoch in range(start_epoch, start_epoch + epochs):
        bar = _progress(progress, total, f"epoch {epoch + 1}/{start_epoch + epochs}")
        start = time.perf_counter()
        metrics, sizes, first_batch = [], [], None
        for i, batch in enumerate(_epoch_batches(train_data, epoch)):
            if first_batch is None and board is not None:
                first_batch = batch
            ts, m = train_step(ts, batch)
            metrics.append(m)
            sizes.append(_batch_size(batch))
            bar.update(1)
            if not bar.disable and (i + 1) % log_every == 0:
                shown = _mean_metrics(metrics[-log_every:], sizes[-log_every:])
                shown["samples/s"] = sum(sizes) / (time.perf_counter() - start)
                bar.set_postfix({k: f"{v:.4g}" for k, v in shown.items()})
        train_metrics = _mean_metrics(metrics, sizes)  # waits for the last step
        seconds = time.perf_counter() - start
        bar.close()
        record = {"epoch": epoch + 1, **{f"train_{k}": v for k, v in train_metrics.items()}}
        if eval_step is not None:
            results = evaluate(eval_step, ts, eval_data, epoch, metric=metric)
            record.update({f"eval_{k}": v for k, v in results.items()})
        record["seconds"] = seconds
        record["samples_per_second"] = sum(sizes) / seconds if seconds > 0 else float("nan")
        history.append(record)
        if board is not None:
            board.steps(step_count, jax.device_get(metrics))
            if first_batch is not None:
                board.batch(jax.tree.leaves(first_batch)[0], step_count)
            step_count += len(metrics)
            board.epoch(record, step_count)

        stop = False
        if early_stopping is not None:
            stop = early_stopping.update(epoch + 1, record)
            if restore_best and early_stopping.best_epoch == epoch + 1:
                # a copy: the next step donates (and so invalidates) ts's buffers
                best_ts = jax.tree.map(jnp.copy, ts)
        for callback in callbacks:
            stop = bool(callback(epoch + 1, ts, record)) or stop
        if stop:
            break

    if own_board:
        board.close()
    if restore_best and best_ts is not None:
        ts = best_ts
    return ts, history


def _metric_collection(metrics):
    """fit's ``metrics`` as one :class:`fcnn.metrics.Metric` (or ``None``)."""
    if metrics is None:
        return None
    from fcnn import metrics as metrics_lib

    if not isinstance(metrics, dict) or not metrics:
        raise TypeError(f"fit: metrics must be a non-empty dict of name -> fcnn.metrics.Metric, got {metrics!r}")
    for name, m in metrics.items():
        if not isinstance(name, str) or not isinstance(m, metrics_lib.Metric):
            raise TypeError(f"fit: metrics[{name!r}] must be an fcnn.metrics.Metric under a str name, got {m!r}")
    return metrics_lib.Collection(metrics)


def _tensorboard(tensorboard):
    """``(writer or None, whether fit made it)``; only process 0 writes."""
    if tensorboard is None or jax.process_index() != 0:
        return None, False
    from fcnn.tensorboard import TensorBoard

    if isinstance(tensorboard, TensorBoard):
        return tensorboard, False
    if not isinstance(tensorboard, (str, os.PathLike)):
        raise TypeError(f"fit: tensorboard must be a directory or an fcnn.tensorboard.TensorBoard, got {tensorboard!r}")
    return TensorBoard(os.fspath(tensorboard)), True
