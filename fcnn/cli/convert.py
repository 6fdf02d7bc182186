"""``fcnn convert MODULE:BUILDER --out DIR``: a torch model as fcnn source and weights (:mod:`fcnn.interop.convert`)."""

from __future__ import annotations

import importlib
import sys

import jax
import jax.numpy as jnp
import numpy as np

from fcnn.cli.flags import CLIError
from fcnn.interop.convert import SOURCE_FILE, WEIGHTS_FILE, ConversionError, convert, save_converted

def add_arguments(p) -> None:
    """The ``fcnn convert`` flags."""
    p.add_argument("builder", metavar="MODULE:BUILDER",
                   help="a function returning the torch module, e.g. torchvision.models:resnet18")
    p.add_argument("--out", required=True, help="directory for model.py and model.safetensors")
    p.add_argument("--input", default="3,224,224", help="example input shape without the batch (default 3,224,224)")
    p.add_argument("--batch", type=int, default=2, help="example batch size (default 2)")
    p.add_argument("--seed", type=int, default=0, help="torch.manual_seed before building (default 0)")


def run(args) -> int:
    """``fcnn convert``: build the torch module, convert it, save it, and report its difference from torch."""
    module_name, _, attr = args.builder.partition(":")
    if not module_name or not attr:
        raise CLIError(f"expected MODULE:BUILDER (e.g. torchvision.models:resnet18), got {args.builder!r}")
    try:
        shape = tuple(int(d) for d in args.input.split(","))
    except ValueError:
        raise CLIError(f"--input must be comma-separated ints (e.g. 3,224,224), got {args.input!r}") from None
    if args.batch < 1 or any(d < 1 for d in shape):
        raise CLIError(f"--batch and --input must be positive, got {args.batch} and {args.input!r}")
    try:
        builder = getattr(importlib.import_module(module_name), attr)
    except ImportError as e:
        raise CLIError(f"cannot import {module_name!r}: {e}") from None
    except AttributeError:
        raise CLIError(f"module {module_name!r} has no {attr!r}") from None
    import torch

    torch.manual_seed(args.seed)
    module = builder()
    if not isinstance(module, torch.nn.Module):
        raise CLIError(f"{args.builder} returned {type(module).__name__}, not a torch.nn.Module")
    module.eval()
    x = torch.randn((args.batch,) + shape)
    try:
        model, params, state = convert(module, x, name=attr)
    except ConversionError as e:
        print(e, file=sys.stderr)
        return 1
    out_dir = save_converted(args.out, model, params, state)
    with torch.no_grad():
        ref = module(x).numpy()
    got = np.asarray(jax.jit(lambda p, s, x: model.apply(p, s, x, train=False)[0])(params, state, jnp.asarray(x.numpy())))
    diff = float(np.abs(got - ref).max() / max(float(np.abs(ref).max()), 1e-30))
    print(f"wrote {out_dir / SOURCE_FILE} and {out_dir / WEIGHTS_FILE} ({sum(v.size for v in jax.tree.leaves(params))} "
          f"parameters); eval output on a {(args.batch,) + shape} input: max relative difference from torch "
          f"{diff:.2e}")
    return 0
