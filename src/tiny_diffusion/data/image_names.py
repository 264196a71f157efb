"""Names of the image data sets, for config checks and `--help`: pure Python, no numpy/torch/Pillow."""

from __future__ import annotations

import os

IMAGE_DATASETS = {  # the built-in image sets, downloaded on first use (or read from --data-dir)
    "mnist": "60000 handwritten digits, 28x28 gray, 10 classes (LeCun et al.)",
    "fashion-mnist": "60000 clothing images, 28x28 gray, 10 classes (Zalando)",
    "cifar10": "50000 photos, 32x32 RGB, 10 classes (Krizhevsky)",
}


def dataset_kind(name: str) -> str:
    """"images" for a built-in image set's name or a path to an existing directory (a folder of images), else
    "points". Asked once, when a config is made (before training); the run then records the answer in
    config.json (`kind`), so a relative folder path read from another working directory is still images.
    A built-in point set's name wins over a folder of that name in the working directory (`--dataset dino`
    beside a folder dino/ means the dinosaur; write ./dino for the folder)."""
    if name in IMAGE_DATASETS:
        return "images"
    if not os.path.isdir(name):
        return "points"
    from .points import DATASETS  # numpy: imported only when a folder is named

    return "points" if name in DATASETS else "images"
