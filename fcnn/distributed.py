"""Data-parallel and multi-process helpers on JAX's own distributed runtime.

fcnn adds no runtime of its own: several processes are joined by
``jax.distributed.initialize`` (gloo collectives on CPU, NCCL on GPU, ICI on
TPU) and a single ``jax.sharding.Mesh`` spans every device of every process.
The train step is then one ``jax.jit`` with shardings: the batch is split over
the mesh's data axis, parameters and optimizer state are replicated, and XLA
inserts the all-reduces (gradient mean, BatchNorm's global batch statistics).

Typical use::

    from fcnn import distributed
    distributed.initialize()                  # no-op for one process; reads FCNN_* env vars
    mesh = distributed.data_mesh()            # every device of every process, axis 'data'
    step = make_train_step(model, loss_fn, opt, mesh=mesh)
    lo, hi = distributed.process_rows(global_batch_size)   # rows this process loads
    batch = distributed.global_batch(mesh, (x[lo:hi], y[lo:hi]))

Environment variables (used when the arguments are ``None``):
``FCNN_NUM_PROCESSES``, ``FCNN_PROCESS_ID``, ``FCNN_COORDINATOR`` (``host:port``).
``FCNN_NUM_PROCESSES=auto`` lets JAX detect the cluster (SLURM, Open MPI,
Cloud TPU pods), which is how the same command runs on a GPU cluster or TPU pod.
"""

from __future__ import annotations

import os
import socket
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from fcnn import _checks, xla

ENV_NUM_PROCESSES = "FCNN_NUM_PROCESSES"
ENV_PROCESS_ID = "FCNN_PROCESS_ID"
ENV_COORDINATOR = "FCNN_COORDINATOR"

_initialized = False


def _env_int(name: str):
    value = os.environ.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"fcnn.distributed.initialize: environment variable {name} must be an int, got {value!r}") from None


def parse_coordinator(coordinator: Any, where: str) -> tuple[str, int]:
    """``(host, port)`` of a ``"host:port"`` address (``"[v6 address]:port"`` for IPv6); ``ValueError`` otherwise."""
    if not isinstance(coordinator, str) or ":" not in coordinator:
        raise ValueError(f"{where}: coordinator must be 'host:port', got {coordinator!r}")
    host, _, port = coordinator.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"{where}: coordinator must be 'host:port' with a port in [1, 65535], got {coordinator!r}")
    return host, int(port)


def initialize(coordinator: str | None = None, num_processes: int | str | None = None,
               process_id: int | None = None) -> bool:
    """Join this process to a multi-process JAX job; returns whether one was joined.

    Args:
      coordinator: ``"host:port"`` of process 0's coordination service
        (default ``$FCNN_COORDINATOR``).
      num_processes: number of processes (default ``$FCNN_NUM_PROCESSES``);
        ``None`` or ``1`` means single-process (nothing to do); ``"auto"``
        lets ``jax.distributed.initialize()`` detect a SLURM / MPI / TPU-pod job.
      process_id: this process's rank in ``[0, num_processes)`` (default
        ``$FCNN_PROCESS_ID``).

    Must run before anything touches a JAX device. On CPU the collectives go
    through gloo (``jax_cpu_collectives_implementation``).

    Raises:
      ValueError: before anything is set, for a missing or malformed argument
        or environment variable, a ``process_id`` outside ``[0, num_processes)``
        or a coordinator host that does not resolve.
    """
    global _initialized
    where = "fcnn.distributed.initialize"
    if num_processes is None:
        env = os.environ.get(ENV_NUM_PROCESSES)
        num_processes = "auto" if env == "auto" else _env_int(ENV_NUM_PROCESSES)
    if coordinator is None:
        coordinator = os.environ.get(ENV_COORDINATOR) or None
    if process_id is None:
        process_id = _env_int(ENV_PROCESS_ID)
    if _initialized:
        return True
    if num_processes is None or num_processes == 1:
        return False
    if num_processes == "auto":
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize()
        _initialized = True
        return True
    num_processes = _checks.positive_int(num_processes, "num_processes", where)
    if coordinator is None:
        raise ValueError(f"{where}: coordinator ('host:port') is required when num_processes={num_processes}")
    host, port = parse_coordinator(coordinator, where)
    if process_id is None:
        raise ValueError(f"{where}: process_id is required when num_processes={num_processes}")
    if not _checks.is_int(process_id) or not 0 <= process_id < num_processes:
        raise ValueError(f"{where}: process_id must be an int in [0, {num_processes}), got {process_id!r}")
    try:
        socket.getaddrinfo(host, port)
    except (socket.gaierror, UnicodeError) as e:
        raise ValueError(f"{where}: coordinator {coordinator!r}: cannot resolve the host {host!r} ({e})") from None
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                               process_id=int(process_id))
    _initialized = True
    return True


def data_mesh(axis_name: str = "data", devices=None) -> Mesh:
    """A 1-D mesh named ``axis_name`` over ``devices`` (default: all devices of all processes).

    ``jax.devices()`` lists devices process by process, so process ``i``'s
    rows of a global batch land on its own devices (see :func:`process_rows`).
    """
    devices = jax.devices() if devices is None else list(devices)
    return Mesh(np.asarray(devices), (axis_name,))


def process_rows(global_batch_size: int, process_index: int | None = None,
                 process_count: int | None = None) -> tuple[int, int]:
    """``(start, stop)`` of the rows of a global batch that this process loads.

    Rows are split in contiguous equal blocks in process order, matching how
    :func:`global_batch` assembles the global array.
    """
    where = "fcnn.distributed.process_rows"
    n = _checks.positive_int(global_batch_size, "global_batch_size", where)
    i = jax.process_index() if process_index is None else process_index
    k = jax.process_count() if process_count is None else process_count
    if n % k:
        raise ValueError(f"{where}: global_batch_size={n} is not divisible by the number of processes ({k})")
    per = n // k
    return i * per, (i + 1) * per


def batch_sharding(mesh: Mesh, data_axis: str = "data") -> NamedSharding:
    """Leading (batch) axis split over ``data_axis``, the rest whole."""
    return NamedSharding(mesh, P(data_axis))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def global_batch(mesh: Mesh, local_batch: Any, data_axis: str = "data") -> Any:
    """Assemble each process's rows (a pytree of arrays) into global arrays sharded over ``data_axis``.

    With one process this is ``device_put`` with the batch sharding; with
    several, every process passes its own rows (from :func:`process_rows`) and
    gets the same global array, of ``process_count()`` times the rows.
    """
    where = "fcnn.distributed.global_batch"
    sharding = batch_sharding(mesh, data_axis)
    ndev = mesh.shape[data_axis]
    nproc = jax.process_count()

    def put(x):
        x = np.asarray(x)
        if x.ndim == 0:
            raise ValueError(f"{where}: batch arrays need a leading batch axis, got a scalar")
        global_rows = x.shape[0] * nproc
        if global_rows % ndev:
            raise ValueError(
                f"{where}: global batch of {global_rows} rows is not divisible by the "
                f"{ndev} devices of mesh axis {data_axis!r}"
            )
        return jax.make_array_from_process_local_data(sharding, x, (global_rows,) + x.shape[1:])

    return jax.tree_util.tree_map(put, local_batch)


def replicate(mesh: Mesh, tree: Any) -> Any:
    """Place a pytree (identical on every process) on every device of ``mesh``."""
    sharding = replicated(mesh)

    def put(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return jax.device_put(x, sharding)
        if isinstance(x, jax.Array) and _checks.is_typed_key(x):
            data = np.asarray(jax.random.key_data(x))
            impl = jax.random.key_impl(x)
            arr = jax.make_array_from_process_local_data(sharding, data, data.shape)
            return jax.random.wrap_key_data(arr, impl=impl)
        x = np.asarray(x)
        return jax.make_array_from_process_local_data(sharding, x, x.shape)

    return jax.tree_util.tree_map(put, tree)


def data_parallel_jit(step, mesh: Mesh, data_axis: str = "data", *, donate: bool = True, batch_argnum: int = 1):
    """``jax.jit`` a ``(train_state, batch, ...)`` step for data parallelism over ``mesh``.

    The train state (argument 0) and every output are replicated; the batch
    is split along its leading axis over ``data_axis``. XLA's SPMD partitioner
    turns the batch means (loss, gradients, BatchNorm statistics) into
    all-reduces, so the result is the single-device one on the global batch.
    """
    where = "make_train_step"
    if not isinstance(mesh, Mesh):
        raise TypeError(f"{where}: mesh must be a jax.sharding.Mesh, got {type(mesh).__name__}")
    if data_axis not in mesh.axis_names:
        raise ValueError(f"{where}: data_axis {data_axis!r} is not an axis of the mesh (axes: {mesh.axis_names})")
    rep = replicated(mesh)
    in_shardings = [rep] * (batch_argnum + 1)
    in_shardings[batch_argnum] = batch_sharding(mesh, data_axis)
    return xla.jit(step, platform=mesh.devices.flat[0].platform, in_shardings=tuple(in_shardings),
                       out_shardings=rep, donate_argnums=(0,) if donate else ())


def is_main_process() -> bool:
    """Whether this is process 0 (the one that writes files and logs in a multi-process job)."""
    return jax.process_index() == 0
