"""Data: the embedded digits set, readers for MNIST/Fashion-MNIST/CIFAR-10 files, image folders, batch iterators.

Images come back as float32 NCHW arrays (uint8 from image folders), labels as
int32; no network access anywhere.
"""

from fcnn.data.cifar import load_cifar10
from fcnn.data.digits import load_digits
from fcnn.data.grain_loader import ImageLoader
from fcnn.data.image_folder import (IMG_EXTENSIONS, ImageDecodeError, ImageFolder, Subset, resize_center_crop,
                                    split_folder)
from fcnn.data.loader import DataLoader, channel_stats, normalize, random_shift
from fcnn.data.mnist import load_mnist, read_idx

DATASETS = ("digits", "mnist", "fashion-mnist", "cifar10")


def load(name: str, split: str = "train", data_dir: str | None = None):
    """``(images, labels)`` of a data set by name: one of :data:`DATASETS`.

    ``digits`` is embedded; the others read files from ``data_dir``.
    """
    if name not in DATASETS:
        raise ValueError(f"fcnn.data.load: unknown dataset {name!r}; choose one of {list(DATASETS)}")
    if name == "digits":
        return load_digits(split)
    if data_dir is None:
        raise ValueError(f"fcnn.data.load: dataset {name!r} is read from files; pass data_dir")
    if name == "cifar10":
        return load_cifar10(data_dir, split)
    return load_mnist(data_dir, split, dataset=name)
