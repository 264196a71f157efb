"""One shape of training data for points and pictures alike: a DataSource.

x stays one tensor on the training device (no DataLoader): float32 points (n, 2), or uint8 images
(n, C, H, W) turned into floats in [-1, 1] one batch at a time, so that even 60000 MNIST digits
(47 MB as uint8) cost no host-device traffic per step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import InputError


@dataclass
class DataSource:
    x: torch.Tensor  # (n, 2) float32 points, or (n, C, H, W) uint8 images
    labels: torch.Tensor | None  # (n,) int64 class indices, or None
    classes: list[str] | None  # class names, index -> name
    flip: bool = False  # random horizontal flips (images only)
    held_out: np.ndarray | None = None  # (m, C, H, W) uint8 real images not trained on (images only)
    held_out_labels: np.ndarray | None = None
    name: str = ""  # a short key for caches (the classifier of the image metrics)
    kind: str = "points"  # the config's kind: "points" or "images"

    @property
    def images(self) -> bool:
        return self.kind == "images"

    @property
    def shape(self) -> tuple[int, ...]:
        """One sample's shape: (2,) or (C, H, W)."""
        return tuple(self.x.shape[1:])

    def __len__(self) -> int:
        return len(self.x)

    def batch(self, idx: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """x0 for the rows idx: points as they are, images in [-1, 1] (flipped at random if `flip`)."""
        x0 = self.x[idx]
        if not self.images:
            return x0  # (B, 2)
        x0 = x0.float().div_(127.5).sub_(1.0)  # (B, C, H, W) in [-1, 1]
        if self.flip:
            mirror = torch.rand(len(x0), device=x0.device, generator=generator) < 0.5
            x0 = torch.where(mirror[:, None, None, None], x0.flip(-1), x0)
        return x0


def load_source(cfg, device) -> DataSource:
    """The training data `cfg` names, on `device`; InputError for bad data (before any folder exists)."""
    if not cfg.images:
        from .points import load_labelled

        x, labels, classes = load_labelled(cfg.dataset, cfg.n_points, cfg.seed, training=True)
        data = DataSource(torch.from_numpy(x).to(device), _on(labels, device), classes, kind="points")
    else:
        from .images import load_images

        s = load_images(cfg.dataset, cfg.data_dir, cfg.image_size, cfg.channels)
        flip = s.flip if cfg.flip == "auto" else cfg.flip == "on"
        data = DataSource(torch.from_numpy(s.train).to(device), _on(s.train_labels, device), s.classes, flip, s.test,
                          s.test_labels, s.name, kind="images")
    if getattr(cfg, "class_cond", False) and data.labels is None:
        raise InputError(f"--class-cond: {cfg.dataset} has no class labels; use a labelled data set (datasaurus, "
                         f"mnist, fashion-mnist, cifar10, a folder of class subfolders) or drop --class-cond")
    return data


def _on(labels: np.ndarray | None, device) -> torch.Tensor | None:
    return torch.from_numpy(labels).to(device) if labels is not None else None
