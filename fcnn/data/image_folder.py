"""``ImageFolder``: a folder of images, one sub-folder per class, with torchvision's conventions.

Decoding uses Pillow (the ``fcnn[images]`` extra). Samples are decoded to
uint8 ``(C, H, W)`` NumPy arrays on the host; augmentation belongs on the
device (:mod:`fcnn.transforms`, ``fit(..., augment=...)``).
"""

from __future__ import annotations

import os
import warnings
from typing import Callable, Sequence

import numpy as np

# torchvision.datasets.folder.IMG_EXTENSIONS
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


class ImageDecodeError(ValueError):
    """An image file that could not be read or decoded; the message names the file."""


def _pil():
    try:
        from PIL import Image
    except ImportError:
        raise ImportError("fcnn.data.ImageFolder decodes images with Pillow: pip install 'fcnn[images]' "
                          "(or pip install pillow)") from None
    return Image


def has_file_allowed_extension(filename: str, extensions: str | Sequence[str]) -> bool:
    """Whether ``filename`` ends with one of ``extensions`` (case-insensitive)."""
    return filename.lower().endswith(extensions if isinstance(extensions, str) else tuple(extensions))


def find_classes(directory: str) -> tuple[list[str], dict[str, int]]:
    """The class names (sub-folders of ``directory``, sorted) and their indices."""
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"ImageFolder: root {directory!r} is not a directory")
    classes = sorted(entry.name for entry in os.scandir(directory) if entry.is_dir())
    if not classes:
        raise FileNotFoundError(f"ImageFolder: couldn't find any class folder in {directory!r}")
    return classes, {name: i for i, name in enumerate(classes)}


def make_dataset(directory: str, class_to_idx: dict[str, int], extensions: str | Sequence[str] | None = None,
                 is_valid_file: Callable[[str], bool] | None = None,
                 allow_empty: bool = False) -> list[tuple[str, int]]:
    """``(path, class_index)`` of every valid file, classes in sorted order, files sorted within a
    class (sub-folders included), as torchvision's ``make_dataset``.

    Exactly one of ``extensions`` and ``is_valid_file`` is given. A class
    without any valid file is an error unless ``allow_empty``.
    """
    if (extensions is None) == (is_valid_file is None):
        raise ValueError("ImageFolder: give exactly one of extensions and is_valid_file")
    if extensions is not None:
        def is_valid_file(path: str) -> bool:
            return has_file_allowed_extension(path, extensions)
    samples, found = [], set()
    for name in sorted(class_to_idx):
        target_dir = os.path.join(directory, name)
        if not os.path.isdir(target_dir):
            continue
        for root, _, fnames in sorted(os.walk(target_dir, followlinks=True)):
            for fname in sorted(fnames):
                path = os.path.join(root, fname)
                if is_valid_file(path):
                    samples.append((path, class_to_idx[name]))
                    found.add(name)
    empty = set(class_to_idx) - found
    if empty and not allow_empty:
        msg = f"ImageFolder: found no valid file for the classes {', '.join(sorted(empty))} in {directory!r}"
        if extensions is not None:
            msg += f"; supported extensions are: {extensions if isinstance(extensions, str) else ', '.join(extensions)}"
        raise FileNotFoundError(msg)
    return samples


def decode_image(path: str, mode: str = "RGB") -> np.ndarray:
    """The image at ``path`` as a uint8 ``(C, H, W)`` array, converted to Pillow ``mode`` (``'RGB'``, ``'L'``).

    Raises :class:`ImageDecodeError` naming the file when it can't be read or decoded.
    """
    Image = _pil()
    try:
        with open(path, "rb") as f:
            img = Image.open(f)
            img = img.convert(mode)
    except (OSError, ValueError, Image.DecompressionBombError, SyntaxError) as e:
        raise ImageDecodeError(f"ImageFolder: cannot decode image {path!r}: {e}") from e
    a = np.asarray(img, dtype=np.uint8)
    return a[None] if a.ndim == 2 else np.ascontiguousarray(a.transpose(2, 0, 1))


def resize_center_crop(img: np.ndarray, size: int) -> np.ndarray:
    """Scale the shorter edge to ``size`` (Pillow's antialiased bilinear) and cut the central ``size × size``.

    torchvision's ``Compose([Resize(size), CenterCrop(size)])`` on a PIL image.
    """
    Image = _pil()
    c, h, w = img.shape
    if (h, w) != (size, size):
        short, long = (w, h) if w <= h else (h, w)
        new_short, new_long = size, int(size * long / short)
        new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
        if (new_h, new_w) != (h, w):
            chans = [np.asarray(Image.fromarray(img[i]).resize((new_w, new_h), Image.BILINEAR)) for i in range(c)]
            img = np.stack(chans)
        top, left = int(round((new_h - size) / 2.0)), int(round((new_w - size) / 2.0))
        img = img[:, top:top + size, left:left + size]
    return np.ascontiguousarray(img)


class Subset:
    """The samples ``indices`` of ``dataset``, as ``torch.utils.data.Subset`` (picklable for worker processes)."""

    def __init__(self, dataset, indices) -> None:
        self.dataset, self.indices = dataset, np.asarray(indices, np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i):
        return self.dataset[int(self.indices[i])]


def split_folder(root: str, val_split: float, **options) -> tuple:
    """Training and validation sets of an image folder.

    ``root/train`` and ``root/val`` (or ``root/test``) when they exist, each an
    :class:`ImageFolder` (the validation set must have the training set's
    classes). Otherwise one :class:`ImageFolder` of ``root`` split at random:
    a fixed fraction ``val_split`` of its samples (a seeded permutation, the
    same in every run) is validation. ``options`` go to :class:`ImageFolder`.
    Returns ``(train, val, classes)``.
    """
    train_dir = os.path.join(root, "train")
    val_dir = next((os.path.join(root, d) for d in ("val", "test") if os.path.isdir(os.path.join(root, d))), None)
    if os.path.isdir(train_dir) and val_dir is not None:
        train, val = ImageFolder(train_dir, **options), ImageFolder(val_dir, **options)
        if val.classes != train.classes:
            raise ValueError(f"ImageFolder: {val_dir!r} has classes {val.classes}, {train_dir!r} has {train.classes}")
        return train, val, train.classes
    if not 0.0 < val_split < 1.0:
        raise ValueError(f"split_folder: val_split must be in (0, 1) when {root!r} has no train/ and val/ "
                         f"sub-folders, got {val_split!r}")
    full = ImageFolder(root, **options)
    n_val = int(round(val_split * len(full)))
    if not 0 < n_val < len(full):
        raise ValueError(f"split_folder: val_split={val_split} of {len(full)} images leaves an empty split")
    order = np.random.default_rng(0).permutation(len(full))
    return Subset(full, np.sort(order[n_val:])), Subset(full, np.sort(order[:n_val])), full.classes


class ImageFolder:
    """Images in ``root/<class>/**/<file>``, as ``torchvision.datasets.ImageFolder``.

    Args:
        root: the directory holding one sub-folder per class.
        transform: host-side ``f(image) -> image`` on the decoded uint8 ``(C, H, W)``
            array (e.g. ``functools.partial(resize_center_crop, size=64)``).
        target_transform: ``f(class_index) -> target``.
        is_valid_file: ``f(path) -> bool`` choosing the files; by default the
            files with one of :data:`IMG_EXTENSIONS`.
        allow_empty: accept classes without any file.
        image_size: shorthand for ``transform=resize_center_crop(·, image_size)``
            (every sample gets the same shape, so samples batch).
        mode: Pillow mode the images are converted to (``'RGB'``: 3 channels, ``'L'``: 1).
        on_error: ``'raise'`` (an :class:`ImageDecodeError` naming the file) or
            ``'skip'``: an unreadable image gives ``None`` from ``__getitem__`` and a
            warning naming it (the grain loader drops such samples).

    Attributes:
        classes: sorted class names; ``class_to_idx``: name → index;
        samples: ``(path, class_index)`` pairs (``imgs`` is the same list);
        targets: the class indices.

    ``dataset[i]`` is ``(image, target)`` with ``image`` uint8 ``(C, H, W)``.
    """

    def __init__(self, root, transform: Callable | None = None, target_transform: Callable | None = None,
                 is_valid_file: Callable[[str], bool] | None = None, allow_empty: bool = False, *,
                 image_size: int | None = None, mode: str = "RGB", on_error: str = "raise") -> None:
        where = "ImageFolder"
        self.root = os.fspath(os.path.expanduser(root))
        if on_error not in ("raise", "skip"):
            raise ValueError(f"{where}: on_error must be 'raise' or 'skip', got {on_error!r}")
        if mode not in ("RGB", "L"):
            raise ValueError(f"{where}: mode must be 'RGB' or 'L', got {mode!r}")
        if image_size is not None:
            if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size <= 0:
                raise ValueError(f"{where}: image_size must be a positive int, got {image_size!r}")
            if transform is not None:
                raise ValueError(f"{where}: give either image_size or transform, not both")
        for name, f in (("transform", transform), ("target_transform", target_transform),
                        ("is_valid_file", is_valid_file)):
            if f is not None and not callable(f):
                raise TypeError(f"{where}: {name} must be callable, got {f!r}")
        _pil()  # a missing Pillow is reported now, not in a worker
        self.classes, self.class_to_idx = find_classes(self.root)
        self.samples = make_dataset(self.root, self.class_to_idx, IMG_EXTENSIONS if is_valid_file is None else None,
                                    is_valid_file, allow_empty)
        self.imgs = self.samples
        self.targets = [s[1] for s in self.samples]
        self.transform, self.target_transform = transform, target_transform
        self.image_size, self.mode, self.on_error = image_size, mode, on_error

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int) -> np.ndarray:
        """The decoded, transformed image ``index`` (raises :class:`ImageDecodeError` for a bad file)."""
        img = decode_image(self.samples[index][0], self.mode)
        if self.image_size is not None:
            img = resize_center_crop(img, self.image_size)
        if self.transform is not None:
            img = self.transform(img)
        return img

    def __getitem__(self, index: int):
        if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"ImageFolder: index must be an int, got {index!r}")
        if not -len(self) <= index < len(self):
            raise IndexError(f"ImageFolder: index {index} out of range for {len(self)} samples")
        index = int(index) % len(self)
        try:
            img = self.load(index)
        except ImageDecodeError as e:
            if self.on_error == "raise":
                raise
            warnings.warn(f"{e}; skipped (on_error='skip')", stacklevel=2)
            return None
        target = self.samples[index][1]
        return img, (self.target_transform(target) if self.target_transform is not None else target)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Every sample decoded into memory: ``(images uint8 (N, C, H, W), labels int32 (N,))``.

        For sets that fit in memory (then :class:`fcnn.data.DataLoader` serves them);
        needs ``image_size`` or a transform that gives every image one shape.
        Skipped files (``on_error='skip'``) are left out.
        """
        items = [item for item in (self[i] for i in range(len(self))) if item is not None]
        if not items:
            raise ValueError(f"ImageFolder: no readable image in {self.root!r}")
        shapes = {img.shape for img, _ in items}
        if len(shapes) != 1:
            raise ValueError(f"ImageFolder: images of different shapes {sorted(shapes)[:4]} can't be stacked; "
                             "pass image_size=N")
        return np.stack([img for img, _ in items]), np.asarray([t for _, t in items], np.int32)

    def __repr__(self) -> str:
        return (f"ImageFolder(root={self.root!r}, samples={len(self)}, classes={len(self.classes)}, "
                f"image_size={self.image_size}, mode={self.mode!r}, on_error={self.on_error!r})")
