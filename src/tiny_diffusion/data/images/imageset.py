"""What every image set is in memory (ImageSet, uint8 throughout) and where downloads and decoded folders are
cached (cache_root)."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CACHE_ENV = "TINY_DIFFUSION_DATA"  # where downloads and decoded folders are cached


def print_to_stderr(message: str) -> None:
    print(message, file=sys.stderr)


@dataclass
class ImageSet:
    """An image data set in memory, uint8 throughout."""

    train: np.ndarray  # (n, C, H, W) uint8
    train_labels: np.ndarray | None  # (n,) int64, or None for a folder without >= 2 class subfolders
    test: np.ndarray | None  # (m, C, H, W) uint8 held-out split, or None
    test_labels: np.ndarray | None  # (m,) int64 or None
    classes: list[str] | None  # class names, index = label
    flip: bool  # the default of --flip: True for photos and CIFAR, False for digits and Fashion-MNIST
    name: str  # a short key for caches: "mnist", "cifar10-c1-s16", "folder-<hash>"


def cache_root() -> Path:
    """$TINY_DIFFUSION_DATA, else ~/.cache/tiny-diffusion."""
    env = os.environ.get(CACHE_ENV, "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "tiny-diffusion"
