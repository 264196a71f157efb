"""Names of the image data sets, for config checks and `--help`: pure Python, no numpy/torch/Pillow."""

from __future__ import annotations

import os

IMAGE_DATASETS = {  # the built-in image sets, downloaded on first use (or read from --data-dir)
    "mnist": "60000 handwritten digits, 28x28 gray, 10 classes (LeCun et al.)",
    "fashion-mnist": "60000 clothing images, 28x28 gray, 10 classes (Zalando)",
    "cifar10": "50000 photos, 32x32 RGB, 10 classes (Krizhevsky)",
}


def is_image_dataset(name: str) -> bool:
    """True for a built-in image set's name or a path to an existing directory (a folder of images)."""
    return name in IMAGE_DATASETS or os.path.isdir(name)
