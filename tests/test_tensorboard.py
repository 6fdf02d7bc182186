"""fit(..., tensorboard=...) and `fcnn train --tensorboard`: the event files, read back record by record, hold the
values fit computed (per-step loss, learning rate, epoch metrics) and the batch image grid."""

import io
import struct

import numpy as np
import pytest
from PIL import Image
from tensorboardX.proto import event_pb2

from fcnn import cli, data, nn, optim, tensorboard, train
from fcnn.optim import lr_scheduler


def read_events(logdir):
    """``{tag: [(step, value)]}`` for scalars and ``{tag: [(step, PIL image)]}`` for images, from TFRecord files."""
    scalars, images = {}, {}
    for path in sorted(logdir.glob("events.out.tfevents.*")):
        raw = path.read_bytes()
        at = 0
        while at < len(raw):
            (length,) = struct.unpack("<Q", raw[at:at + 8])
            event = event_pb2.Event.FromString(raw[at + 12:at + 12 + length])
            at += 12 + length + 4  # length, its crc, the record, its crc
            for value in event.summary.value:
                if value.HasField("image"):
                    images.setdefault(value.tag, []).append(
                        (event.step, Image.open(io.BytesIO(value.image.encoded_image_string))))
                else:
                    scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars, images


def _model():
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))


def test_fit_writes_loss_lr_metrics_and_images(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 1, 6, 6)).astype(np.float32), rng.integers(0, 3, 40).astype(np.int32)
    schedule = lr_scheduler.StepLR(0.1, step_size=1, gamma=0.5, steps_per_epoch=5)
    loader = data.DataLoader((x, y), 8, shuffle=True, seed=1)
    model, loss = _model(), nn.CrossEntropyLoss()
    board = tensorboard.TensorBoard(str(tmp_path), learning_rate=schedule, images=6)
    ts0 = train.create_train_state(model, optim.SGD(schedule), 0)
    ts, history = train.fit(model, loader, data.DataLoader((x, y), 20), loss, optim.SGD(schedule), epochs=2,
                            tensorboard=board, progress=False)
    board.close()
    scalars, images = read_events(tmp_path)
    losses = scalars["train/loss"]
    assert [s for s, _ in losses] == list(range(10))
    # step 0's loss is the loss of the first batch at the initial parameters
    xb, yb = next(iter(loader.epoch(0)))
    first, _ = model.apply(ts0.params, ts0.state, xb, train=True)
    np.testing.assert_allclose(losses[0][1], float(loss(first, yb)), rtol=1e-6)
    for epoch, record in enumerate(history):
        per_step = [v for s, v in losses if 5 * epoch <= s < 5 * epoch + 5]
        np.testing.assert_allclose(np.mean(per_step), record["train_loss"], rtol=1e-6)
        for name in ("eval_loss", "eval_accuracy", "train_accuracy"):
            assert (5 * epoch + 5, pytest.approx(record[name], rel=1e-6)) in scalars[f"epoch/{name}"]
    np.testing.assert_allclose([v for _, v in scalars["train/learning_rate"]], [float(schedule(k)) for k in range(10)],
                               rtol=1e-6)
    assert [s for s, _ in images["train/batch"]] == [0, 5]
    grid = images["train/batch"][0][1]
    assert grid.size == (6 * 8 + 2, 6 + 4) and grid.mode == "RGB"  # 6 tiles in a row, 2 pixels of padding
    assert ts.step == 10


def test_image_grid_layout_and_scaling():
    imgs = np.arange(2 * 3 * 2 * 2, dtype=np.float32).reshape(2, 3, 2, 2)
    grid = tensorboard.image_grid(imgs, nrow=1, padding=1)
    assert grid.shape == (3, 7, 4) and grid.min() == 0 and grid.max() == 1
    np.testing.assert_allclose(grid[:, 1:3, 1:3], imgs[0] / imgs.max())
    np.testing.assert_allclose(grid[:, 4:6, 1:3], imgs[1] / imgs.max())
    with pytest.raises(ValueError, match="image_grid"):
        tensorboard.image_grid(np.zeros((2, 2, 4, 4)))


def test_missing_tensorboardx_names_the_extra(monkeypatch, capsys, tmp_path):
    import sys

    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    with pytest.raises(ImportError, match=r"fcnn\[tensorboard\]"):
        tensorboard.TensorBoard(str(tmp_path))
    with pytest.raises(SystemExit) as e:
        cli.main(["train", "--epochs", "1", "--model", "lenet5", "--no-progress", "--tensorboard", str(tmp_path)])
    assert e.value.code == 2 and "fcnn[tensorboard]" in capsys.readouterr().err
