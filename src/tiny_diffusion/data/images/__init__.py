"""Image data sets as uint8 arrays of shape (n, C, H, W): MNIST, Fashion-MNIST, CIFAR-10 and folders of images.

A built-in set is read from `data_dir` when its files are there (raw or .gz, as they are), else downloaded
once into cache_root()/<name>/ and checked against the published checksums. A folder of images is decoded
once (resized on the shorter side, center-cropped) into cache_root()/folders/<hash>.npz, so that the next
run with the same files and settings starts at once. Everything stays uint8 on the CPU: the training loop
moves it to the device once and scales it there.

Modules: imageset (ImageSet, the cache folder), published (the built-in sets' mirrors, checksums, classes),
idx and cifar (their file formats, found locally or downloaded), resize, folders (a folder of images).
"""

from __future__ import annotations

import os
from pathlib import Path

from ...errors import InputError
from ..image_names import IMAGE_DATASETS, check_image_size
from .cifar import VERIFIED, cifar_arrays, read_cifar_binary
from .folders import load_folder
from .idx import idx_arrays, read_idx, write_idx
from .imageset import CACHE_ENV, ImageSet, cache_root, print_to_stderr
from .published import CHECKSUMS, CLASSES, FLIP, MIRRORS, data_dir_needs
from .resize import fit_builtin

__all__ = ["CACHE_ENV", "CHECKSUMS", "CLASSES", "FLIP", "MIRRORS", "VERIFIED", "ImageSet", "cache_root",
           "data_dir_needs", "load_images", "read_cifar_binary", "read_idx", "write_idx"]

def load_images(name: str, data_dir: str | Path | None = None, image_size: int | None = None,
                channels: int | None = None, log=print_to_stderr) -> ImageSet:
    """The image set `name` (a built-in name or a folder path), at `image_size` pixels square and `channels`.

    image_size None keeps a built-in set's own size (28 or 32) and, for a folder, the images' common size
    (min(h, w)) or 64 when they differ; channels None keeps grayscale as 1 channel and colour as 3.
    """
    _check_size_and_channels(image_size, channels)
    if name in IMAGE_DATASETS:
        return _load_builtin(name, Path(data_dir) if data_dir else None, image_size, channels, log)
    if os.path.isdir(name):
        return load_folder(Path(name), image_size, channels, log)
    raise InputError(f"--dataset {name}: neither a built-in image set nor a folder; "
                     f"use one of {', '.join(IMAGE_DATASETS)} or the path of a folder of images")


def _check_size_and_channels(image_size, channels) -> None:
    check_image_size(image_size)
    if channels not in (None, 1, 3):
        raise InputError(f"--channels: {channels!r}; use 1 (grayscale) or 3 (RGB)")


def _load_builtin(name: str, data_dir: Path | None, image_size, channels, log) -> ImageSet:
    if data_dir is not None and not data_dir.is_dir():  # a typo: say so, rather than download and report that
        raise InputError(f"--data-dir {data_dir}: no such folder; give the folder holding {data_dir_needs(name)}, "
                         f"or leave --data-dir out to download {name} once")
    if name == "cifar10":
        train, train_labels, test, test_labels = cifar_arrays(data_dir, log)
    else:
        train, train_labels, test, test_labels = idx_arrays(name, data_dir, log)
    native = (train.shape[1], train.shape[2])
    train = fit_builtin(train, image_size, channels)
    test = None if test is None else fit_builtin(test, image_size, channels)
    key = name if (train.shape[1], train.shape[2]) == native else f"{name}-c{train.shape[1]}-s{train.shape[2]}"
    return ImageSet(train, train_labels, test, test_labels, list(CLASSES[name]), FLIP[name], key)
