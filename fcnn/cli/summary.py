"""``fcnn summary``: the table of :func:`fcnn.summary` for a model of the registry, from the command line."""

from __future__ import annotations

import argparse
import sys

from fcnn.model_summary import summary


def parse_input_shape(text: str) -> tuple[int, ...]:
    """``"3,224,224"`` → ``(3, 224, 224)``, with a clear error for anything else."""
    try:
        shape = tuple(int(p) for p in text.replace("x", ",").split(","))
    except ValueError:
        raise ValueError(f"--input must be comma-separated positive ints such as 3,224,224, got {text!r}") from None
    if not shape or any(d <= 0 for d in shape):
        raise ValueError(f"--input must be comma-separated positive ints such as 3,224,224, got {text!r}")
    return shape


def _model_kwargs(name: str, input_shape: tuple, num_classes: int | None) -> dict:
    """Constructor arguments that fit the model to ``--input``: its channels (and LeNet's size)."""
    kwargs = {} if num_classes is None else {"num_classes": num_classes}
    # every registered model takes in_channels; a wrong-rank shape is reported by summary() itself
    if len(input_shape) == 3:
        kwargs["in_channels"] = input_shape[0]
        if name == "lenet5" and input_shape[1] == input_shape[2]:
            kwargs["input_size"] = input_shape[1]
    return kwargs


def add_arguments(parser) -> None:
    """The flags of ``fcnn summary`` (shared by :func:`main` and the ``fcnn`` command line)."""
    from fcnn import models

    parser.add_argument("--model", required=True, help=f"one of: {', '.join(models.names())}")
    parser.add_argument("--input", required=True,
                        help="input shape without the batch axis, e.g. 3,224,224; its channels set the "
                             "model's in_channels")
    parser.add_argument("--num-classes", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=1, help="batch size the FLOPs are counted for")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")


def run(args) -> int:
    """Print the summary the parsed flags ask for; exit status 2 (message on stderr) for bad flags."""
    from fcnn import models

    def error(message: str) -> int:
        print(f"fcnn summary: error: {message}", file=sys.stderr)
        return 2

    if args.model not in models.names():
        return error(f"--model: unknown model {args.model!r}; known models: {', '.join(models.names())}")
    for flag in ("num_classes", "batch_size"):
        value = getattr(args, flag)
        if value is not None and value <= 0:
            return error(f"--{flag.replace('_', '-')} must be positive, got {value}")
    try:
        shape = parse_input_shape(args.input)
    except ValueError as e:
        return error(str(e))
    try:
        model = models.get(args.model, **_model_kwargs(args.model, shape, args.num_classes))
    except (ValueError, TypeError) as e:
        return error(f"--model {args.model} with --input {args.input}: {e}")
    try:
        s = summary(model, shape, batch_size=args.batch_size)
    except (ValueError, TypeError) as e:
        return error(f"--input {args.input}: {e}")
    print(s.to_markdown() if args.markdown else s)
    return 0


def main(argv=None) -> int:
    """``python -m fcnn.cli.summary --model resnet18 --input 3,224,224 [--markdown]`` (same as ``fcnn summary``)."""
    parser = argparse.ArgumentParser(prog="fcnn summary", description=main.__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))



if __name__ == "__main__":
    raise SystemExit(main())
