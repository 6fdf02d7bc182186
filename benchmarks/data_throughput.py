"""Images per second of decode + augment: fcnn (grain ImageLoader + fcnn.transforms under jit) against
torchvision (ImageFolder + transforms.v2 in a torch DataLoader with worker processes), on one image folder.

    python benchmarks/data_throughput.py [--images 2000] [--size 64] [--crop 56] [--batch 128] [--workers 2] [--rounds 5]

Writes a folder of JPEGs (random-sized, 3 classes) into a temporary directory, then, in this one process,
times one epoch of each pipeline in turn for ``--rounds`` rounds after a warm-up epoch each (compilation and
worker start-up excluded; workers persist across epochs in both), and prints the median images/s:

* torchvision: ImageFolder(transform=Compose([RandomResizedCrop(crop), RandomHorizontalFlip(),
  ColorJitter(0.4, 0.4, 0.4), ToImage(), ToDtype(float32, scale=True), Normalize])) in
  DataLoader(num_workers=W, batch_size=B): decode and augment per image in the workers.
* fcnn: ImageFolder(image_size=size) decoded through grain (W worker processes, or W threads in this
  process) into uint8 batches, then the same augmentation (crop box, flip, jitter per image) in one jitted function on the
  device: the host does only decode + resize.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

# benchmarks/ holds a profile.py, which would shadow the standard library's (torch imports cProfile)
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != HERE]
sys.path[:0] = [os.path.join(HERE, "..", "tests"), os.path.join(HERE, "..")]


def write_folder(root: str, n: int, seed: int = 0) -> None:
    from PIL import Image

    rng = np.random.default_rng(seed)
    for i in range(n):
        d = os.path.join(root, f"class_{i % 3}")
        os.makedirs(d, exist_ok=True)
        h, w = rng.integers(64, 160, 2)
        # smooth random images (JPEG of white noise would be unrealistically large)
        small = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3)).astype(np.uint8)
        img = Image.fromarray(small).resize((int(w), int(h)), Image.BILINEAR)
        img.save(os.path.join(d, f"{i:05d}.jpg"), quality=90)


def torchvision_pipeline(root, args):
    """One epoch of torchvision's pipeline per call (persistent workers)."""
    from torchvision_cpu import import_torchvision

    import_torchvision()
    import torch
    import torchvision
    import torchvision.transforms.v2 as TV

    tf = TV.Compose([TV.RandomResizedCrop(args.crop), TV.RandomHorizontalFlip(), TV.ColorJitter(0.4, 0.4, 0.4),
                     TV.ToImage(), TV.ToDtype(torch.float32, scale=True),
                     TV.Normalize([0.5, 0.5, 0.5], [0.25, 0.25, 0.25])])
    ds = torchvision.datasets.ImageFolder(root, transform=tf)
    loader = torch.utils.data.DataLoader(ds, batch_size=args.batch, shuffle=True, num_workers=args.workers,
                                         persistent_workers=args.workers > 0, drop_last=True)

    def one_epoch(epoch):
        n = 0
        for x, _ in loader:
            n += x.shape[0]
        return n

    return one_epoch


def fcnn_pipeline(root, args, workers: int, threads: int):
    """One epoch of fcnn's pipeline per call: grain decodes uint8 batches, the jitted augmentation runs on the device."""
    import jax
    import jax.numpy as jnp

    from fcnn import data
    from fcnn import transforms as T

    ds = data.ImageFolder(root, image_size=args.size)
    aug = T.Compose([T.RandomResizedCrop(args.crop), T.RandomHorizontalFlip(), T.ColorJitter(0.4, 0.4, 0.4),
                     T.ToDtype(jnp.float32, scale=True), T.Normalize([0.5, 0.5, 0.5], [0.25, 0.25, 0.25])])
    step = jax.jit(aug)
    loader = data.ImageLoader(ds, args.batch, shuffle=True, drop_last=True, num_workers=workers,
                              num_threads=threads)
    key = jax.random.key(0)

    def one_epoch(epoch):
        n, y = 0, None
        for i, (x, _) in enumerate(loader.epoch(epoch)):
            y = step(jax.random.fold_in(key, epoch * len(loader) + i), x)
            n += x.shape[0]
        y.block_until_ready()
        return n

    one_epoch.compiles = step._cache_size
    return one_epoch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--images", type=int, default=2000)
    p.add_argument("--size", type=int, default=64, help="fcnn's host-side resize (shorter edge + center crop)")
    p.add_argument("--crop", type=int, default=56, help="RandomResizedCrop output size")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as root:
        write_folder(root, args.images)
        pipelines = {
            f"torchvision `ImageFolder` + `transforms.v2` in `DataLoader(num_workers={args.workers})` "
            "(persistent workers)": torchvision_pipeline(root, args),
            f"fcnn `ImageLoader` (grain, {args.workers} worker processes) + jitted `fcnn.transforms`":
                fcnn_pipeline(root, args, args.workers, 1),
            f"fcnn `ImageLoader` (grain, {args.workers} threads, no worker process) + jitted `fcnn.transforms`":
                fcnn_pipeline(root, args, 0, args.workers),
        }
        for run in pipelines.values():   # warm-up: workers started, augmentation compiled
            run(0)
        rates = {name: [] for name in pipelines}
        loads = [os.getloadavg()[0]]
        for r in range(1, args.rounds + 1):   # interleaved: each round times every pipeline once
            for name, run in pipelines.items():
                start = time.perf_counter()
                n = run(r)
                rates[name].append(n / (time.perf_counter() - start))
            loads.append(os.getloadavg()[0])
        for name, run in pipelines.items():
            if hasattr(run, "compiles"):
                assert run.compiles() == 1, f"{name}: the augmentation compiled {run.compiles()} times"
    print(f"{args.rounds} interleaved rounds of one epoch ({args.images} images, batch {args.batch}); "
          f"load average {min(loads):.1f}-{max(loads):.1f}\n")
    print("| pipeline | images/s (median) | min - max |\n|---|---|---|")
    for name, r in rates.items():
        print(f"| {name} | {np.median(r):.0f} | {min(r):.0f} - {max(r):.0f} |")


if __name__ == "__main__":
    main()
