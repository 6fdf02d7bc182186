"""The distributed flags of ``fcnn train``: ``--num-processes``, ``--process-id``, ``--coordinator``, ``--data-parallel``."""

from __future__ import annotations

import argparse

from jax.sharding import Mesh

from fcnn.cli.flags import in_range
from fcnn.distributed import ENV_COORDINATOR, ENV_NUM_PROCESSES, ENV_PROCESS_ID, data_mesh, initialize, parse_coordinator


def _num_processes_flag(text: str):
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive int or 'auto', got {text!r}")
    return value


def _coordinator_flag(text: str) -> str:
    try:
        parse_coordinator(text, "fcnn")
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be 'host:port' with a port in [1, 65535], got {text!r}") from None
    return text


def add_arguments(parser) -> None:
    """Add ``--num-processes``, ``--process-id``, ``--coordinator`` and ``--data-parallel`` to an argparse parser.

    Malformed values are argparse usage errors; the process id's range and the coordinator's host are
    checked when the job is joined (:func:`mesh_from_args`).
    """
    group = parser.add_argument_group("distributed (JAX's runtime; defaults from FCNN_* environment variables)")
    group.add_argument("--num-processes", type=_num_processes_flag, default=None,
                       help="number of processes (an int, or 'auto' for SLURM/MPI/TPU-pod detection); "
                            f"default ${ENV_NUM_PROCESSES} or 1")
    group.add_argument("--process-id", type=int, action=in_range(0), default=None,
                       help=f"this process's rank, in [0, --num-processes) (default ${ENV_PROCESS_ID})")
    group.add_argument("--coordinator", type=_coordinator_flag, default=None,
                       help=f"host:port of process 0 (default ${ENV_COORDINATOR})")
    group.add_argument("--data-parallel", action="store_true",
                       help="split each batch over all local devices even with one process")


def mesh_from_args(args) -> Mesh | None:
    """Initialise from parsed :func:`add_arguments` flags; the data mesh to train on, or ``None``.

    A mesh is returned when several processes were joined or ``--data-parallel``
    was given; otherwise training stays on the default device.
    """
    joined = initialize(args.coordinator, args.num_processes, args.process_id)
    if joined or getattr(args, "data_parallel", False):
        return data_mesh()
    return None
