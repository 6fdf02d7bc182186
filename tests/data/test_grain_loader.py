"""fcnn.data.ImageLoader (grain): DataLoader's order, exact continuation from a saved state, per-process rows,
device augmentation in fit, and exact resume of `fcnn train --dataset folder`."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from fcnn import data, nn, optim, train
from fcnn import transforms as T


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """120 digits as 8x8 PNGs in one sub-folder per class."""
    root = tmp_path_factory.mktemp("digits")
    x, y = data.load_digits("train")
    for i in range(120):
        d = root / str(y[i])
        d.mkdir(exist_ok=True)
        Image.fromarray(np.round(x[i, 0] * 255).astype(np.uint8)).save(d / f"{i:03d}.png")
    return str(root)


def test_order_and_batches_equal_the_in_memory_loader(folder):
    ds = data.ImageFolder(folder, mode="L")
    x, y = ds.arrays()
    ours = data.ImageLoader(ds, 16, shuffle=True, seed=3, drop_last=True, prefetch_to_device=0)
    ref = data.DataLoader((x, y), 16, shuffle=True, seed=3, drop_last=True)
    assert len(ours) == len(ref) == 7
    for epoch in (0, 2):
        got = list(ours.epoch(epoch))
        want = list(ref.epoch(epoch))
        assert len(got) == len(want)
        for (gx, gy), (wx, wy) in zip(got, want):
            np.testing.assert_array_equal(gx, wx)
            np.testing.assert_array_equal(gy, wy)



def test_worker_processes_serve_the_same_batches_and_outlive_an_epoch(folder):
    ds = data.ImageFolder(folder, mode="L")
    x, y = ds.arrays()
    ref = data.DataLoader((x, y), 16, shuffle=True, seed=3)
    loader = data.ImageLoader(ds, 16, shuffle=True, seed=3, num_workers=2, prefetch_to_device=0)
    try:
        streams = []
        for epoch in (0, 1):
            got = list(loader.epoch(epoch))
            streams.append(loader._stream[0])
            want = list(ref.epoch(epoch))
            assert len(got) == len(want) == 8
            for (gx, gy), (wx, wy) in zip(got, want):
                np.testing.assert_array_equal(gx, wx)
                np.testing.assert_array_equal(gy, wy)
        assert streams[0] is streams[1]                 # epoch 1 continued epoch 0's workers
    finally:
        loader.close()

def test_state_continues_at_the_exact_next_batch(folder):
    ds = data.ImageFolder(folder, mode="L")
    loader = data.ImageLoader(ds, 10, shuffle=True, seed=1, num_threads=2)
    whole = [np.asarray(b[0]) for b in loader.epoch(4)]
    it = loader.epoch(4)
    head = [np.asarray(next(it)[0]) for _ in range(5)]
    state = it.get_state()
    import json

    state = json.loads(json.dumps(state))         # a checkpoint's metadata is JSON
    tail = [np.asarray(b[0]) for b in loader.epoch(4, state)]
    assert len(head) + len(tail) == len(whole) == 12
    for a, b in zip(head + tail, whole):
        np.testing.assert_array_equal(a, b)


def test_processes_split_every_global_batch(folder):
    ds = data.ImageFolder(folder, mode="L")
    one = data.ImageLoader(ds, 12, shuffle=True, seed=0, drop_last=True)
    parts = [data.ImageLoader(ds, 12, shuffle=True, seed=0, drop_last=True, process_index=i, process_count=3)
             for i in range(3)]
    ordered = one.order(1)[:len(one) * 12].reshape(-1, 12)
    pieces = [p.indices(1).reshape(-1, 4) for p in parts]
    np.testing.assert_array_equal(np.concatenate(pieces, axis=1), ordered)
    with pytest.raises(ValueError, match="drop_last"):
        data.ImageLoader(ds, 12, process_index=0, process_count=2)


def test_fit_with_device_augmentation_is_reproducible(folder):
    ds = data.ImageFolder(folder, mode="L")
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    augment = T.Compose([T.RandomCrop(8, padding=1), T.ToDtype(jnp.float32, scale=True), T.Normalize([0.3], [0.3])])
    to_float = T.Compose([T.ToDtype(jnp.float32, scale=True), T.Normalize([0.3], [0.3])])
    runs = []
    for _ in range(2):
        loader = data.ImageLoader(ds, 20, shuffle=True, seed=0, drop_last=True)
        ts, hist = train.fit(model, loader, data.ImageLoader(ds, 60), nn.CrossEntropyLoss(), optim.SGD(0.1), 2,
                             augment=augment, eval_transform=lambda x: to_float(None, x), progress=False)
        runs.append((jax.device_get(ts.params), hist))
    jax.tree.map(np.testing.assert_array_equal, runs[0][0], runs[1][0])
    assert runs[0][1][-1]["eval_loss"] == runs[1][1][-1]["eval_loss"]
    # the augmentation is applied inside the step: it changes the trajectory
    ts_plain, _ = train.fit(model, data.ImageLoader(ds, 20, shuffle=True, seed=0, drop_last=True), None,
                            nn.CrossEntropyLoss(), optim.SGD(0.1), 2, augment=lambda k, x, y: (to_float(k, x), y),
                            progress=False)
    assert not np.array_equal(ts_plain.params["1"]["weight"], runs[0][0]["1"]["weight"])


def test_train_step_mixup_targets():
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    step = train.make_train_step(model, nn.CrossEntropyLoss(), optim.SGD(0.1),
                                 augment=T.Compose([T.ToDtype(jnp.float32, scale=True), T.MixUp(num_classes=3)]))
    ts = train.create_train_state(model, optim.SGD(0.1), 0)
    x = np.random.default_rng(0).integers(0, 256, (4, 3, 2, 2)).astype(np.uint8)
    ts, m = step(ts, (x, np.array([0, 1, 2, 1])))
    assert np.isfinite(m["loss"]) and "accuracy" not in m     # soft targets: no arg-max accuracy
    with pytest.raises(TypeError, match="augment"):
        train.make_train_step(model, nn.CrossEntropyLoss(), optim.SGD(0.1), augment=3)


def test_cli_folder_resume_is_bit_identical(folder, tmp_path):
    from fcnn import checkpoint
    from fcnn.cli import main

    common = ["train", "--dataset", "folder", "--data-dir", folder, "--image-size", "8", "--model", "lenet5",
              "--epochs", "2", "--batch-size", "16", "--augment", "1", "--hflip", "--no-progress"]
    assert main(common + ["--checkpoint-dir", str(tmp_path / "a")]) == 0
    assert main(common + ["--checkpoint-dir", str(tmp_path / "b"), "--stop-after-epoch", "1"]) == 0
    assert main(common + ["--checkpoint-dir", str(tmp_path / "b"), "--resume"]) == 0
    a = checkpoint.read_metadata(checkpoint.latest(str(tmp_path / "a")))
    pa, pb = (np.load(checkpoint.latest(str(tmp_path / d))) for d in "ab")
    assert sorted(pa.files) == sorted(pb.files)
    for k in (k for k in pa.files if not k.startswith("__")):   # arrays; the header holds the flags
        np.testing.assert_array_equal(pa[k], pb[k], err_msg=k)
    assert a["metadata"]["config"]["dataset"] == "folder"


def test_skipped_images_leave_their_batch_shorter(folder, tmp_path):
    import shutil
    import warnings

    root = tmp_path / "with_bad"
    shutil.copytree(folder, root)
    first_class = sorted(os.listdir(root))[0]
    (root / first_class / "000_bad.png").write_bytes(b"not a png")
    ds = data.ImageFolder(str(root), mode="L", on_error="skip")
    bad = [i for i, (path, _) in enumerate(ds.samples) if path.endswith("000_bad.png")][0]
    loader = data.ImageLoader(ds, 16, shuffle=True, seed=5, prefetch_to_device=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batches = list(loader.epoch(0))
    order = loader.order(0)
    position = int(np.nonzero(order == bad)[0][0])
    sizes = [len(b[1]) for b in batches]
    expected = [min(16, len(ds) - s) - (s <= position < s + 16) for s in range(0, len(ds), 16)]
    assert sizes == expected
    served = np.concatenate([b[1] for b in batches])
    np.testing.assert_array_equal(served, [ds.targets[i] for i in order if i != bad])
