"""Names of the image data sets, for config checks and `--help`: pure Python, no numpy/torch/Pillow."""

from __future__ import annotations

import os

IMAGE_DATASETS = ("mnist", "fashion-mnist", "cifar10")  # the built-in image sets, downloaded on first use


def is_image_dataset(name: str) -> bool:
    """True for a built-in image set's name or a path to an existing directory (a folder of images)."""
    return name in IMAGE_DATASETS or os.path.isdir(name)
