"""fcnn.data.ImageFolder against torchvision.datasets.ImageFolder on real image files written here."""

import os

import numpy as np
import pytest
from torchvision_cpu import import_torchvision

import_torchvision()
import torchvision  # noqa: E402
from PIL import Image  # noqa: E402

from fcnn import data  # noqa: E402


def _write_folder(root, seed=0, bad=False):
    rng = np.random.default_rng(seed)
    layout = {"b_dog": ["1.png", "0.JPG", "sub/2.bmp", "notes.txt"], "a_cat": ["x.jpeg", "y.webp", "z.ppm"],
              "c_eel": ["e.tiff", "f.pgm"]}
    for cls, files in layout.items():
        for name in files:
            path = os.path.join(root, cls, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            if name.endswith(".txt"):
                open(path, "w").write("not an image")
                continue
            h, w = rng.integers(9, 30, 2)
            mode = "L" if name.endswith(".pgm") else "RGB"
            shape = (h, w) if mode == "L" else (h, w, 3)
            Image.fromarray(rng.integers(0, 256, shape).astype(np.uint8), mode).save(
                path, quality=95) if name.lower().endswith((".jpg", ".jpeg")) else \
                Image.fromarray(rng.integers(0, 256, shape).astype(np.uint8), mode).save(path)
    if bad:
        open(os.path.join(root, "a_cat", "broken.png"), "wb").write(b"\x89PNG truncated")
    return root


def test_same_classes_samples_and_pixels_as_torchvision(tmp_path):
    root = _write_folder(str(tmp_path))
    ours = data.ImageFolder(root)
    theirs = torchvision.datasets.ImageFolder(root)
    assert ours.classes == theirs.classes and ours.class_to_idx == theirs.class_to_idx
    assert ours.samples == theirs.samples and ours.targets == theirs.targets
    for i in range(len(ours)):
        img, target = ours[i]
        pil, t = theirs[i]
        assert target == t
        np.testing.assert_array_equal(img, np.asarray(pil).transpose(2, 0, 1))
    # is_valid_file instead of extensions, allow_empty
    only_png = data.ImageFolder(root, is_valid_file=lambda p: p.endswith(".png"), allow_empty=True)
    tv_png = torchvision.datasets.ImageFolder(root, is_valid_file=lambda p: p.endswith(".png"), allow_empty=True)
    assert only_png.samples == tv_png.samples
    with pytest.raises(FileNotFoundError, match="a_cat"):
        data.ImageFolder(root, is_valid_file=lambda p: p.endswith(".png"))


def test_image_size_matches_torchvision_resize_center_crop(tmp_path):
    import torchvision.transforms.v2 as TV

    root = _write_folder(str(tmp_path))
    ours = data.ImageFolder(root, image_size=12)
    ref = TV.Compose([TV.Resize(12), TV.CenterCrop(12), TV.PILToTensor()])
    theirs = torchvision.datasets.ImageFolder(root, transform=ref)
    for i in range(len(ours)):
        np.testing.assert_array_equal(ours[i][0], theirs[i][0].numpy())
    x, y = ours.arrays()
    assert x.shape == (len(ours), 3, 12, 12) and x.dtype == np.uint8 and y.tolist() == ours.targets


def test_corrupt_images_raise_naming_the_file_or_are_skipped(tmp_path):
    root = _write_folder(str(tmp_path), bad=True)
    strict = data.ImageFolder(root)
    bad = [i for i, (p, _) in enumerate(strict.samples) if p.endswith("broken.png")][0]
    with pytest.raises(data.ImageDecodeError, match="broken.png"):
        strict[bad]
    lenient = data.ImageFolder(root, on_error="skip")
    with pytest.warns(UserWarning, match="broken.png"):
        assert lenient[bad] is None
    with pytest.warns(UserWarning):
        x, y = data.ImageFolder(root, on_error="skip", image_size=8).arrays()
    assert len(y) == len(strict) - 1


@pytest.mark.parametrize("kwargs,err,words", [
    (dict(on_error="ignore"), ValueError, "on_error"),
    (dict(image_size=0), ValueError, "image_size"),
    (dict(transform=3), TypeError, "transform"),
])
def test_bad_arguments(tmp_path, kwargs, err, words):
    root = _write_folder(str(tmp_path))
    with pytest.raises(err, match=words):
        data.ImageFolder(root, **kwargs)


def test_missing_or_empty_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a directory"):
        data.ImageFolder(str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match="class folder"):
        data.ImageFolder(str(tmp_path))


def test_split_folder(tmp_path):
    root = _write_folder(str(tmp_path))
    train, val, classes = data.split_folder(root, 0.25)
    assert len(train) + len(val) == 8 and len(val) == 2 and classes == ["a_cat", "b_dog", "c_eel"]
    assert set(train.indices).isdisjoint(val.indices)
    os.makedirs(tmp_path / "tv")
    os.rename(tmp_path / "a_cat", tmp_path / "tv" / "a_cat")
    split = tmp_path / "split"
    for part in ("train", "val"):
        _write_folder(str(split / part), seed=len(part))
    train, val, classes = data.split_folder(str(split), 0.5)
    assert isinstance(train, data.ImageFolder) and train.root.endswith("train") and val.root.endswith("val")
