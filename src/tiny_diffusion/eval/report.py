"""The image metrics of a data set, set up once: the classifier (trained once per data set and cached),
the held-out real images, and the scores of samples beside the real-data floor and a noise baseline."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError

HELD_OUT_FALLBACK = 1000  # without a test split, the last 1000 training images are scored against


@dataclass
class ImageReport:
    quality: object  # eval.images.ImageQuality of the samples
    floor: object  # real training images, same n
    noise: object  # noise images, same n
    accuracy: float  # the classifier on held-out real images: the ceiling of "labelled as asked"


def image_metric(data, device, log=None, classes: list[int] | None = None):
    """(ImageMetric, held-out accuracy) for a labelled DataSource: held-out = its test split, or else the
    last HELD_OUT_FALLBACK training images (then the memorisation check cannot tell copies apart).
    classes: score against real images of these classes only (held-out and training images alike), for
    samples that asked for them; the classifier is the data set's, trained on all of its classes."""
    from ..data.images import cache_root
    from .classifier import accuracy, classifier_for
    from .images import ImageMetric

    train_x, train_y = data.x.cpu().numpy(), data.labels.cpu().numpy()
    held_x, held_y = data.held_out, data.held_out_labels
    if held_x is None or held_y is None:
        held_x, held_y = train_x[-HELD_OUT_FALLBACK:], train_y[-HELD_OUT_FALLBACK:]
    clf = classifier_for(data.name, train_x, train_y, len(data.classes), cache_root() / "classifiers", device, log)
    if classes is not None:
        keep = np.isin(held_y, classes)
        train_x, held_x, held_y = train_x[np.isin(train_y, classes)], held_x[keep], held_y[keep]
    return ImageMetric(clf, train_x, held_x, device=device), accuracy(clf, held_x, held_y)


def score_images(cfg, images: np.ndarray, device, log=None) -> ImageReport:
    """Scores of uint8 images (N, C, H, W) against the real images cfg names (dataset, data_dir, size)."""
    from ..data.source import load_source

    data = load_source(cfg, "cpu")
    if data.labels is None:
        raise InputError(f"{cfg.dataset}: no class labels (a folder needs at least two class subfolders), so no "
                         f"classifier metrics; compare the sample grids by eye")
    if tuple(images.shape[1:]) != data.shape:
        raise InputError(f"samples of shape {tuple(images.shape[1:])} cannot be scored against {cfg.dataset}'s "
                         f"{data.shape}; set --image-size / --channels to match, or pass other samples")
    metric, acc = image_metric(data, device, log)
    return ImageReport(metric.score(images), metric.floor(len(images)), metric.noise(len(images)), acc)
