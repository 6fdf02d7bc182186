"""The ``fcnn`` command line: ``fcnn train``, ``fcnn summary`` (and ``python -m fcnn ...``).

``fcnn train`` with no arguments trains a small VGG-style CNN on the embedded
UCI digits and prints the held-out test accuracy; flags choose the model,
data set, optimizer, schedule and the rest. Sub-commands are listed in
:data:`COMMANDS`; add one with :func:`add_command`.

Checkpoints: ``--checkpoint-dir DIR`` writes ``DIR/ckpt_<epoch>.npz`` after every
epoch (:mod:`fcnn.checkpoint`: atomic, the newest ``--keep`` kept) holding the
train state, the epoch, the run's flags and the metrics history. ``--resume``
continues the newest one exactly: the LR schedule is a function of the
optimizer's step count and always spans ``--epochs``, data order and dropout
keys are functions of (seed, epoch, step), so stopping anywhere (a crash,
``--stop-after-epoch``) and resuming gives the uninterrupted run's bits. Resuming
with flags that change the trajectory, from a corrupt or mismatched file, or
writing into a DIR with checkpoints without ``--resume`` is refused before any
training. ``--resume`` with an empty DIR starts a fresh run, so a preemptible
job can be restarted with one unchanged command line.

Every flag is checked before anything is trained: numbers are finite and in
range (:func:`fcnn.cli.flags.in_range`, an argparse action for any numeric flag), the
output and checkpoint directories writable (:func:`fcnn.cli.flags.check_writable_dir`), the
data files readable; a bad value is a usage error, exit status 2, never a
traceback or a run that diverges to NaN.

Run as a program on Linux, ``fcnn train`` starts itself again with glibc's
malloc keeping large blocks mapped and asking for transparent huge pages
where the system grants them on request
(:func:`fcnn.xla.host_memory_environment`), and has JAX run its CPU programs
on the calling thread: XLA:CPU's steps then reuse their temporaries' pages
instead of faulting them in on every call.

``fcnn summary --model resnet18 --input 3,224,224 [--markdown]`` prints
:func:`fcnn.summary`'s table (:mod:`fcnn.cli.summary`).

``fcnn convert torchvision.models:resnet18 --out DIR`` converts a torch model
(:mod:`fcnn.interop.convert`, flags in :mod:`fcnn.cli.convert`) into ``DIR/model.py`` and
``DIR/model.safetensors``.
"""

from __future__ import annotations

import argparse
import csv
import functools
import io
import json
import os
import sys
import time
from typing import Callable

from fcnn.cli.flags import CLIError, check_writable_dir, choice, in_range

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad", "adadelta")
SCHEDULES = ("none", "step", "cosine", "onecycle")
DATASETS = ("digits", "mnist", "fashion-mnist", "cifar10", "folder")

# Defaults tuned on the digits data set (see README): they reach >= 98.5 %
# held-out accuracy in well under a minute of 2-core CPU time, compilation included.
DEFAULTS = dict(model="vgg", dataset="digits", epochs=25, batch_size=64, optimizer="adamw", lr=3e-3,
                momentum=0.9, schedule="onecycle", weight_decay=1e-4, label_smoothing=0.0, seed=0)

# name -> (help, add_arguments(parser), run(args) -> exit code)
COMMANDS: dict[str, tuple[str, Callable, Callable]] = {}


def add_command(name: str, help: str, add_arguments: Callable, run: Callable) -> None:
    """Register a sub-command ``fcnn <name>``; ``run(args)`` returns the exit code."""
    COMMANDS[name] = (help, add_arguments, run)


# The largest seed: jax.random.key keeps 32 bits of it without x64 (2**32 and 0 give the same key).
MAX_SEED = 2**32 - 1


# ----------------------------------------------------------------- fcnn train

def _add_train_arguments(p: argparse.ArgumentParser) -> None:
    d = DEFAULTS
    p.add_argument("--model", default=d["model"],
                   help=f"model name from fcnn.models (default: {d['model']})")
    p.add_argument("--dataset", default=d["dataset"],
                   help=f"one of {', '.join(DATASETS)} (default: digits, embedded; folder: an image folder, see below)")
    p.add_argument("--data-dir", default=None,
                   help="directory with the MNIST/Fashion-MNIST IDX or CIFAR-10 binary files, or the image folder")
    p.add_argument("--epochs", type=int, action=in_range(1), default=d["epochs"])
    p.add_argument("--batch-size", type=int, action=in_range(1), default=d["batch_size"])
    p.add_argument("--optimizer", default=d["optimizer"], help=f"one of {', '.join(OPTIMIZERS)} (default: adamw)")
    p.add_argument("--lr", type=float, action=in_range(0, 10, low_open=True), default=d["lr"],
                   help="learning rate in (0, 10] (the peak LR for --schedule onecycle)")
    p.add_argument("--momentum", type=float, action=in_range(0, 1, high_open=True), default=d["momentum"],
                   help="momentum of sgd/rmsprop, in [0, 1)")
    p.add_argument("--schedule", default=d["schedule"], help=f"LR schedule: one of {', '.join(SCHEDULES)}")
    p.add_argument("--weight-decay", type=float, action=in_range(0, 1), default=d["weight_decay"],
                   help="weight decay in [0, 1] (torch's: L2 added to the gradient; decoupled for adamw)")
    p.add_argument("--label-smoothing", type=float, action=in_range(0, 1), default=d["label_smoothing"])
    p.add_argument("--augment", type=int, action=in_range(0), default=None, metavar="PIXELS",
                   help="random shifts of up to PIXELS pixels during training (default: 0; 2 for cifar10); for "
                        "--dataset folder, RandomCrop padding PIXELS on the device")
    p.add_argument("--seed", type=int, action=in_range(0, MAX_SEED), default=d["seed"],
                   help=f"seeds init, shuffling and dropout, in [0, {MAX_SEED}] (same seed → same run)")
    p.add_argument("--output-dir", default=None,
                   help="write metrics.json, metrics.csv and the test set's confusion_matrix.csv here")
    p.add_argument("--metrics", default=None, metavar="NAMES",
                   help="comma-separated evaluation metrics beyond loss and accuracy: top<k> (e.g. top5), "
                        "balanced_accuracy, precision, recall, f1, auroc, iou (macro averages; fcnn.metrics, "
                        "equal to torchmetrics)")
    p.add_argument("--tensorboard", default=None, metavar="DIR",
                   help="write TensorBoard event files to DIR: loss and learning rate per step, epoch metrics, "
                        "the training batches' images (needs the extra fcnn[tensorboard])")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (default: shown on a terminal)")
    p.add_argument("--compilation-cache", default=None, metavar="DIR|none",
                   help="keep the compiled train and eval steps in JAX's persistent compilation cache in DIR, so "
                        "a later run of the same model starts without compiling them again; none: no cache "
                        "(default: $FCNN_CACHE_DIR, else $XDG_CACHE_HOME/fcnn/jax or ~/.cache/fcnn/jax; a "
                        "cache configured through JAX's own settings is used as it is)")
    im = p.add_argument_group("image folders (--dataset folder --data-dir DIR: DIR/<class>/*.png|jpg|..., or "
                              "DIR/train/<class>/... with DIR/val/<class>/...; decoded with Pillow through grain, "
                              "augmented on the device)")
    im.add_argument("--image-size", type=int, action=in_range(1), default=32, metavar="N",
                    help="images are resized (shorter edge) and center-cropped to N x N (default: 32)")
    im.add_argument("--val-split", type=float, action=in_range(0, 1, low_open=True, high_open=True), default=0.2,
                    metavar="FRAC", help="fraction held out for validation when DIR has no train/ and val/ "
                                         "sub-folders (a fixed split; default: 0.2)")
    im.add_argument("--hflip", action="store_true", help="random horizontal flips during training")
    im.add_argument("--workers", type=int, action=in_range(0), default=0, metavar="N",
                    help="grain worker processes decoding images (default: 0, threads in this process)")
    im.add_argument("--skip-bad-images", action="store_true",
                    help="skip unreadable images with a warning (default: stop with an error naming the file)")
    ck = p.add_argument_group("checkpoints (exact resume: same flags → bit-identical result)")
    ck.add_argument("--checkpoint-dir", default=None, metavar="DIR",
                    help="write DIR/ckpt_<epoch>.npz after every epoch (atomically; the last is the final state)")
    ck.add_argument("--keep", type=int, action=in_range(1), default=3, metavar="N",
                    help="keep the newest N checkpoints (default: 3)")
    ck.add_argument("--resume", action="store_true",
                    help="continue from the newest checkpoint in --checkpoint-dir (train state, epoch, metrics "
                         "history); an empty DIR starts a fresh run, so one command line serves every restart")
    ck.add_argument("--stop-after-epoch", type=int, action=in_range(1), default=None, metavar="E",
                    help="exit after epoch E (e.g. a time-limited job); the LR schedule still spans --epochs, "
                         "and --resume continues exactly")
    from fcnn.cli import distributed

    distributed.add_arguments(p)


def _check_train_args(args) -> None:
    choice(args.dataset, DATASETS, "dataset")
    choice(args.optimizer, OPTIMIZERS, "optimizer")
    choice(args.schedule, SCHEDULES, "schedule")
    from fcnn import models

    choice(args.model, [n for n in models.names() if n != "unet"], "model (classifiers)")
    if args.dataset != "digits" and args.data_dir is None:
        raise CLIError(f"--dataset {args.dataset} reads files: pass --data-dir")
    num, rank = args.num_processes, args.process_id
    if num is None:  # then $FCNN_NUM_PROCESSES (checked when the job is joined), else one process
        from fcnn.distributed import ENV_NUM_PROCESSES

        env = os.environ.get(ENV_NUM_PROCESSES, "")
        num = int(env) if env.isdigit() else None if env else 1
    if isinstance(num, int) and rank is not None and rank >= num:
        raise CLIError(f"--process-id must be in [0, {num}) for --num-processes {num}, got {rank}")
    if args.compilation_cache == "":
        raise CLIError("--compilation-cache needs a directory or none, got ''")
    if (args.resume or args.stop_after_epoch is not None) and args.checkpoint_dir is None:
        raise CLIError(f"{'--resume' if args.resume else '--stop-after-epoch'} needs --checkpoint-dir")


def build_model(name: str, in_channels: int, size: int, num_classes: int):
    """A classifier from the registry, adapted to the images' channels and size."""
    from fcnn import models

    if name == "lenet5":
        return models.get(name, num_classes=num_classes, in_channels=in_channels, input_size=size,
                          activation="relu", pool="max")
    if name == "vgg":
        return models.get(name, in_channels=in_channels, num_classes=num_classes, hidden=128, dropout=0.3,
                          cfg="small" if size <= 16 else "medium")
    if name.startswith("resnet"):
        return models.get(name, num_classes=num_classes, in_channels=in_channels, small_input=size <= 32)
    return models.get(name, num_classes=num_classes, in_channels=in_channels)


_OPTIMIZER_FLAGS = ("optimizer", "lr", "momentum", "schedule", "weight_decay", "epochs")


def build_schedule(args, steps_per_epoch: int):
    """The learning rate the flags ask for: a float (``--schedule none``) or a schedule ``step -> lr``."""
    from fcnn.optim import lr_scheduler as sched

    lr, schedule, epochs = args.lr, args.schedule, args.epochs
    if schedule == "none":
        return lr
    if schedule == "step":
        return sched.StepLR(lr, step_size=max(1, epochs // 3), gamma=0.1, steps_per_epoch=steps_per_epoch)
    if schedule == "cosine":
        return sched.CosineAnnealingLR(lr, T_max=epochs, steps_per_epoch=steps_per_epoch)
    # onecycle: LR per step; like torch, it also cycles SGD's momentum / Adam's beta1
    return sched.OneCycleLR(lr, total_steps=epochs * steps_per_epoch)


def build_optimizer(args, steps_per_epoch: int):
    """The ``fcnn.optim`` optimizer and schedule the flags ask for."""
    from fcnn import optim

    lr = build_schedule(args, steps_per_epoch)
    cycled = lr.momentum if args.schedule == "onecycle" else None
    wd = args.weight_decay
    if args.optimizer == "sgd":
        return optim.SGD(lr, momentum=cycled or args.momentum, weight_decay=wd)
    if args.optimizer in ("adam", "adamw"):
        betas = (cycled or 0.9, 0.999)
        adam = optim.Adam if args.optimizer == "adam" else optim.AdamW
        return adam(lr, betas=betas, weight_decay=wd)
    if args.optimizer == "rmsprop":
        return optim.RMSprop(lr, momentum=args.momentum, weight_decay=wd)
    if args.optimizer == "adagrad":
        return optim.Adagrad(lr, weight_decay=wd)
    return optim.Adadelta(lr, weight_decay=wd)


def _loss(label_smoothing: float):
    from fcnn.nn import CrossEntropyLoss

    return CrossEntropyLoss(label_smoothing=label_smoothing)


def _write_metrics(out_dir: str, config: dict, history: list[dict], result: dict) -> None:
    from fcnn._atomic import write_atomic

    document = json.dumps({"config": config, "history": history, **result}, indent=2)
    write_atomic(os.path.join(out_dir, "metrics.json"), [document.encode()])
    table = io.StringIO(newline="")
    w = csv.DictWriter(table, fieldnames=list(dict.fromkeys(k for r in history for k in r)))
    w.writeheader()
    w.writerows(history)
    write_atomic(os.path.join(out_dir, "metrics.csv"), [table.getvalue().encode()])


def _metric_names(args) -> list[str]:
    """The names given to ``--metrics``, checked by form (``top<k>`` against the classes once they are known)."""
    if args.metrics is None:
        return []
    from fcnn.metrics import stateful

    names = [n.strip() for n in args.metrics.split(",") if n.strip()]
    known = [n for n in stateful.CLASSIFICATION_NAMES if n not in ("top<k>", "confusion_matrix")]
    for name in names:
        if name not in known and not (name.startswith("top") and name[3:].isdigit() and int(name[3:]) >= 1):
            raise CLIError(f"--metrics: unknown metric {name!r}; choose from top<k> (e.g. top5), {', '.join(known)} "
                           "(the confusion matrix is written to --output-dir)")
    if not names or len(set(names)) != len(names):
        raise CLIError(f"--metrics {args.metrics!r}: give distinct metric names separated by commas")
    return names


def _tensorboard(args, schedule):
    if args.tensorboard is None:
        return None
    from fcnn.tensorboard import TensorBoard

    try:
        return TensorBoard(args.tensorboard, learning_rate=schedule)
    except ImportError as e:
        raise CLIError(f"--tensorboard: {e}") from None


def _write_confusion_matrix(out_dir: str, matrix) -> None:
    """``confusion_matrix.csv``: one row per true class, one column per predicted class."""
    from fcnn._atomic import write_atomic

    table = io.StringIO(newline="")
    w = csv.writer(table)
    w.writerow(["true/predicted"] + list(range(len(matrix))))
    w.writerows([i] + list(row) for i, row in enumerate(matrix))
    write_atomic(os.path.join(out_dir, "confusion_matrix.csv"), [table.getvalue().encode()])


def run_train(args) -> int:
    start = time.perf_counter()
    _check_train_args(args)
    metric_names = _metric_names(args)
    from fcnn import distributed
    from fcnn.cli.distributed import mesh_from_args

    # joins a multi-process job (--num-processes/FCNN_*) before anything touches a device
    try:
        mesh = mesh_from_args(args)
    except ValueError as e:
        raise CLIError(str(e)) from None
    if distributed.is_main_process():  # the process that writes files
        for flag, directory in (("--output-dir", args.output_dir), ("--checkpoint-dir", args.checkpoint_dir),
                                ("--tensorboard", args.tensorboard)):
            if directory is not None:
                check_writable_dir(directory, flag)
        for name in ("metrics.json", "metrics.csv", "confusion_matrix.csv") if args.output_dir else ():
            if os.path.isdir(os.path.join(args.output_dir, name)):
                raise CLIError(f"--output-dir {args.output_dir}: {name} there is a directory, so it cannot be written")
    from fcnn import data
    from fcnn.train import fit

    if args.dataset == "folder":
        train, test, (c, h, num_classes, n_train, n_test), device_options, device_key = _folder_data(args)
    else:
        try:
            x_train, y_train = data.load(args.dataset, "train", args.data_dir)
            x_test, y_test = data.load(args.dataset, "test", args.data_dir)
        except (ValueError, OSError) as e:  # missing, unreadable or corrupt data files
            raise CLIError(str(e)) from None
        # standardise with the training set's per-channel statistics (torchvision's Normalize)
        mean, std = data.channel_stats(x_train)
        x_train, x_test = data.normalize(x_train, mean, std), data.normalize(x_test, mean, std)
        num_classes = int(max(y_train.max(), y_test.max())) + 1
        _, c, h, w = x_train.shape
        n_train, n_test, device_options, device_key = len(y_train), len(y_test), {}, None
        shift = args.augment if args.augment is not None else (2 if args.dataset == "cifar10" else 0)
        # drop_last: every training batch has one shape, so the step compiles once
        train = data.DataLoader((x_train, y_train), args.batch_size, shuffle=True, seed=args.seed, drop_last=True,
                                transform=data.random_shift(shift) if shift else None)
        test = data.DataLoader((x_test, y_test), min(len(y_test), 1000))
    if len(train) == 0:
        raise CLIError(f"--batch-size {args.batch_size} is larger than the training set ({n_train} images)")
    model = build_model(args.model, c, h, num_classes)
    optimizer = build_optimizer(args, len(train))
    loss_fn = _loss(args.label_smoothing)
    from fcnn import metrics

    try:
        chosen = metrics.classification_metrics(metric_names, num_classes)
    except ValueError as e:
        raise CLIError(f"--metrics: {str(e).split(': ', 1)[1]}") from None
    writes = args.output_dir is not None and distributed.is_main_process()
    if writes:
        chosen["confusion_matrix"] = metrics.ConfusionMatrix(task="multiclass", num_classes=num_classes,
                                                             validate_args=False)
    board = _tensorboard(args, build_schedule(args, len(train))) if distributed.is_main_process() else None
    # what the compiled steps depend on: a later run in this process with the same key (a resumed run, a
    # notebook's second cell) reuses them although the model, optimizer and loss objects are new
    step_key = ("fcnn train", args.model, c, h, num_classes, len(train), *(getattr(args, k) for k in _OPTIMIZER_FLAGS),
                args.label_smoothing, tuple(metric_names), writes, device_key)

    print(f"fcnn train: {args.model} on {args.dataset} ({n_train} train / {n_test} test images), "
          f"{args.epochs} epochs, {args.optimizer} lr={args.lr:g} schedule={args.schedule}", flush=True)
    # restored (or refused) before any training, so a bad checkpoint leaves DIR untouched
    ts, done, history = _restore(args, model, optimizer) if args.checkpoint_dir else (None, 0, [])
    callbacks = [] if args.checkpoint_dir is None else [_checkpoint_callback(args, history)]
    callbacks.append(lambda e, ts, m: print(_epoch_line(e, args.epochs, m, metric_names), flush=True))
    # the optimizer's schedule always spans --epochs: stopping early and resuming changes nothing
    last = min(args.epochs, args.stop_after_epoch or args.epochs)
    if last > done:
        ts, new = fit(model, train, test, loss_fn, optimizer, last - done, seed=args.seed, train_state=ts,
                      start_epoch=done, progress=False if args.no_progress else None, mesh=mesh,
                      on_epoch_end=callbacks, metrics=chosen or None, tensorboard=board, cache_key=step_key,
                      compilation_cache=True if args.compilation_cache is None else args.compilation_cache,
                      **device_options)
        history = history + new
    else:
        print(f"nothing to train: the checkpoint is at epoch {done} of {args.epochs}", flush=True)
    if board is not None:
        board.close()
    # the confusion matrix goes to its own file; the history keeps one number per column
    confusion = [r.pop("eval_confusion_matrix", None) for r in history][-1]
    final = {name: history[-1]["eval_" + name] for name in metric_names if "eval_" + name in history[-1]}
    if last < args.epochs:
        print(f"stopped after epoch {last} of {args.epochs} (--stop-after-epoch); continue with --resume", flush=True)
    seconds = time.perf_counter() - start
    acc = history[-1]["eval_accuracy"]
    print(f"test accuracy: {100 * acc:.2f}% ({n_test} held-out images), {seconds:.1f} s")
    for name, value in final.items():
        print(f"test {name}: {value:.4f}")
    if writes:
        result = {"test_accuracy": acc, "test_loss": history[-1]["eval_loss"], "seconds": seconds,
                  **{f"test_{name}": value for name, value in final.items()}}
        if confusion is not None:
            result["confusion_matrix"] = confusion
            _write_confusion_matrix(args.output_dir, confusion)
        _write_metrics(args.output_dir, vars(args), history, result)
    return 0


def _device_transforms(size: int, padding: int, hflip: bool, mean: tuple, std: tuple):
    """``(augment, eval_transform)`` for fit: crop/flip, then uint8 → float in [0, 1] → normalised."""
    import jax.numpy as jnp

    from fcnn import transforms as T

    scale = [T.ToDtype(jnp.float32, scale=True), T.Normalize(list(mean), list(std))]
    geometry = ([T.RandomCrop(size, padding=padding)] if padding else []) + ([T.RandomHorizontalFlip()] if hflip
                                                                              else [])
    to_float = T.Compose(scale)
    return T.Compose(geometry + scale), functools.partial(to_float, None)


def _folder_data(args):
    """Loaders of an image folder (``--dataset folder``): uint8 batches through grain, augmented on the device.

    Returns ``(train, test, (channels, size, classes, n_train, n_test), fit options, their key)``;
    the options hold ``augment`` (RandomCrop with ``--augment`` padding,
    ``--hflip``, then scaling and normalisation) and the evaluation's
    ``eval_transform``, both compiled into the steps; the key is the values
    that determine them.
    """
    import numpy as np

    from fcnn import data

    try:
        train_set, val_set, classes = data.split_folder(
            args.data_dir, args.val_split, image_size=args.image_size,
            on_error="skip" if args.skip_bad_images else "raise")
        # normalisation statistics of (up to) the first 512 training images
        sample = [train_set[i] for i in range(min(len(train_set), 512))]
    except (ValueError, OSError, ImportError) as e:
        raise CLIError(str(e)) from None
    images = np.stack([img for img, _ in (s for s in sample if s is not None)])
    mean, std = data.channel_stats(images.astype(np.float32) / 255.0)
    std = np.maximum(std, 1e-3)
    key = (args.image_size, args.augment or 0, args.hflip, tuple(mean.tolist()), tuple(std.tolist()))
    augment, eval_transform = _device_transforms(*key)
    options = {"augment": augment, "eval_transform": eval_transform}
    train = data.ImageLoader(train_set, args.batch_size, shuffle=True, seed=args.seed, drop_last=True,
                             num_workers=args.workers)
    # every process evaluates the whole validation set (fit replicates evaluation batches)
    test = data.ImageLoader(val_set, min(len(val_set), 1000), num_workers=args.workers, process_index=0,
                            process_count=1)
    return train, test, (images.shape[1], args.image_size, len(classes), len(train_set), len(val_set)), options, key


# flags that change the trajectory: resuming with other values would silently mix two runs
_SAME_RUN = ("model", "dataset", "batch_size", "optimizer", "lr", "momentum", "schedule", "weight_decay",
             "label_smoothing", "augment", "seed", "image_size", "val_split", "hflip")


def _restore(args, model, optimizer):
    """``(train_state, epochs done, history)`` to start from: the newest checkpoint with ``--resume``,
    else a fresh start. Raises :class:`CLIError` (changing nothing on disk) for a checkpoint that
    can't be continued, and when DIR holds checkpoints but ``--resume`` wasn't given."""
    import jax

    from fcnn import checkpoint
    from fcnn.train import create_train_state

    directory = args.checkpoint_dir
    path = checkpoint.latest(directory)
    if path is None:
        if args.resume:
            print(f"--resume: no checkpoint in {directory} yet: starting from scratch", flush=True)
        return None, 0, []
    if not args.resume:
        raise CLIError(f"--checkpoint-dir {directory} already holds checkpoints (newest: {path.name}); pass --resume "
                       "to continue that run, or choose an empty directory")
    try:
        saved = checkpoint.read_metadata(path)["metadata"].get("config", {})
        if not isinstance(saved, dict):
            raise checkpoint.CheckpointError(f"checkpoint: {path} has a malformed header: metadata.config must be "
                                             f"a JSON object, got {saved!r}")
        diffs = [f"--{k.replace('_', '-')} {saved[k]!r} in the checkpoint, {getattr(args, k)!r} now"
                 for k in _SAME_RUN if k in saved and saved[k] != getattr(args, k)]
        if diffs:
            raise CLIError(f"--resume: {path} belongs to a run with other flags:\n  " + "\n  ".join(diffs)
                           + "\nresume with that run's flags, or train into another --checkpoint-dir")
        # shapes, dtypes and tree structure only: nothing is computed
        template = jax.eval_shape(lambda: create_train_state(model, optimizer, args.seed))
        ts, done, history = checkpoint.resume(directory, template)
    except checkpoint.CheckpointError as e:
        raise CLIError(f"--resume: {e}") from None
    if done > args.epochs:
        raise CLIError(f"--epochs {args.epochs}, but the checkpoint {path} is already at epoch {done}")
    if saved.get("epochs", args.epochs) != args.epochs and args.schedule != "none":
        print(f"note: {path} was written by a run with --epochs {saved['epochs']}; the LR schedule now spans "
              f"--epochs {args.epochs}, so the result matches no uninterrupted run", file=sys.stderr, flush=True)
    print(f"resuming from {path} (epoch {done} of {args.epochs} done)", flush=True)
    return ts, done, history


def _checkpoint_callback(args, history: list):
    """fit's ``on_epoch_end``: DIR/ckpt_<epoch>.npz with the train state, the run's flags and the history."""
    import jax

    from fcnn import checkpoint, distributed

    save = checkpoint.epoch_callback(args.checkpoint_dir, keep=args.keep, history=history,
                                     metadata={"config": vars(args)})

    def local(a):
        # a multi-process train state is replicated: every process holds the whole value
        return a.addressable_data(0) if isinstance(a, jax.Array) and not a.is_fully_addressable else a

    def on_epoch_end(epoch, ts, metrics):
        # the confusion matrix (asked for by --output-dir) stays out of the checkpoint: a checkpoint's history
        # is the same whatever --output-dir is, so a resumed run continues the history an uninterrupted one has
        if distributed.is_main_process():
            save(epoch, jax.tree.map(local, ts), {k: v for k, v in metrics.items() if k != "eval_confusion_matrix"})

    return on_epoch_end


def _epoch_line(epoch: int, epochs: int, m: dict, metric_names=()) -> str:
    chosen = "".join(f"{name} {m['eval_' + name]:.4f}  " for name in metric_names if "eval_" + name in m)
    return (f"epoch {epoch:>3}/{epochs}  train loss {m['train_loss']:.4f} acc {100 * m['train_accuracy']:.2f}%  "
            f"test loss {m['eval_loss']:.4f} acc {100 * m['eval_accuracy']:.2f}%  {chosen}"
            f"{m['samples_per_second']:.0f} img/s")


add_command("train", "train a CNN (default: on the embedded digits) and print the test accuracy",
            _add_train_arguments, run_train)


# ----------------------------------------------------------------- fcnn summary, fcnn convert

def _lazy_command(name: str, help: str, module: str) -> None:
    """A subcommand whose ``add_arguments(parser)`` and ``run(args)`` live in ``module``, imported when used."""
    import importlib

    add_command(name, help, lambda p: importlib.import_module(module).add_arguments(p),
                lambda args: importlib.import_module(module).run(args))


_lazy_command("summary", "print a model's layers: output shapes, parameters, FLOPs and receptive fields",
              "fcnn.cli.summary")
_lazy_command("convert", "convert a PyTorch model into fcnn source (model.py) and weights (model.safetensors)",
              "fcnn.cli.convert")


# ----------------------------------------------------------------- entry point

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fcnn", description="fcnn: CNNs as pure JAX functions, PyTorch semantics.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help, add_arguments, _) in COMMANDS.items():
        add_arguments(sub.add_parser(name, help=help, description=help))
    return parser


def _restart_with_host_memory_environment() -> None:
    """Replace this process by its own command line under :func:`fcnn.xla.host_memory_environment`, where that
    adds anything.

    glibc reads its tunables only when a process starts (:mod:`fcnn.xla` says
    why training steps want them), so ``fcnn train`` run as a program starts
    itself again with them. Tunables already in ``GLIBC_TUNABLES`` are kept:
    ``glibc.malloc.hugetlb=0`` keeps 4 KiB pages, ``glibc.malloc.mmap_max``
    set to any value keeps that value.
    """
    from fcnn import xla

    extra = xla.host_memory_environment()
    if extra:
        try:
            os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], {**os.environ, **extra})
        except OSError:  # could not start again: train with malloc's defaults
            pass


def _run_programs_inline() -> None:
    """Have JAX run CPU programs on the calling thread, where XLA:CPU's temporaries come from the heap that
    :func:`_restart_with_host_memory_environment` keeps mapped (:mod:`fcnn.xla`).

    JAX reads the flag when it creates its CPU client, so this runs before
    anything computes: only for ``fcnn train`` run as a program, never in a
    process that called :func:`main` from Python.
    """
    import jax

    jax.config.update("jax_cpu_enable_async_dispatch", False)


def main(argv: list[str] | None = None) -> int:
    """Run ``fcnn`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if argv is None and args.command == "train":
        _restart_with_host_memory_environment()
        _run_programs_inline()
    try:
        return COMMANDS[args.command][2](args)
    except (CLIError, FileNotFoundError) as e:
        parser.exit(2, f"fcnn {args.command}: error: {e}\n")


if __name__ == "__main__":
    sys.exit(main())
