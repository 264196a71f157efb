"""Names of the image data sets, for config checks and `--help`: pure Python, no numpy/torch/Pillow; and the
error for a --dataset that names nothing (every kind of data, the nearest name, a missing path named as such)."""

from __future__ import annotations

import difflib
import os

MAX_IMAGE_SIZE = 2048  # pixels per side; beyond this a DDPM on one machine is out of reach anyway


def check_image_size(image_size, where: str = "--image-size: ") -> None:
    """The one check of an image size (the config's image_size, load_images' argument): a whole number of pixels
    from 1 to MAX_IMAGE_SIZE, or None (the images' own); InputError starting with `where` otherwise."""
    from ..errors import InputError

    if image_size is not None and (isinstance(image_size, bool) or not isinstance(image_size, int)
                                   or not 1 <= image_size <= MAX_IMAGE_SIZE):
        raise InputError(f"{where}{image_size!r}; use a whole number of pixels from 1 to {MAX_IMAGE_SIZE}, e.g. 32")


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
    from ..choices import POINT_DATASETS  # in here: the module also loads on its own (a test checks it is light)

    if name in IMAGE_DATASETS:
        return "images"
    return "images" if os.path.isdir(name) and name not in POINT_DATASETS else "points"


def located(path: str | None) -> str | None:
    """An existing relative path (a point file, a folder of images, a --data-dir) made absolute, so the run that
    records it finds it again from any working directory; a built-in data set's name, an absolute path and a path
    that does not exist (the error then names it as given) are kept as they are."""
    from ..choices import POINT_DATASETS

    if path is None or path in IMAGE_DATASETS or path in POINT_DATASETS or os.path.isabs(path):
        return path
    return os.path.abspath(path) if os.path.exists(path) else path


def unknown_dataset(name: str):
    """The error for a `--dataset` that is no data set: a path that does not exist is named as missing; else every
    kind of data there is (as `tiny-diffusion datasets` lists them) and the nearest name, if one is near."""
    from ..choices import POINT_DATASETS
    from ..errors import InputError  # in here: the module also loads on its own, outside the package (a test)

    if os.sep in name or "/" in name or name.startswith((".", "~")):
        return InputError(f"--dataset {name}: no such folder or file (a folder of images or a .csv/.npy point file)")
    names = [*POINT_DATASETS, *IMAGE_DATASETS]
    near = difflib.get_close_matches(name.lower(), names, n=1, cutoff=0.6)
    hint = f" (did you mean {near[0]}?)" if near else ""
    return InputError(f"unknown dataset {name!r}{hint}; choose a point set ({', '.join(POINT_DATASETS)}), an image set "
                      f"({', '.join(IMAGE_DATASETS)}), a .csv (header x,y) or .npy point file, or a folder of images "
                      f"(`tiny-diffusion datasets` lists them)")
