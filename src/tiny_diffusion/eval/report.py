"""The image metrics of a data set, set up once: the classifier (trained once per data set and cached),
the held-out real images, and the scores of samples beside the real-data floor and a noise baseline."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError

HELD_OUT_FALLBACK = 1000  # without a test split, up to this many training images (at most half) are held out
HELD_OUT_SEED = 0  # which ones: a seeded random draw, so a folder sorted by class gives every class its share
# The classifier never sees FLOOR_RESERVE training images (a quarter of a small set), seeded: the real-data floor
# draws from them, so it measures real images as new to the classifier as a model's samples are (eval/images.py)
FLOOR_RESERVE, FLOOR_RESERVE_SHARE, FLOOR_SEED = 1000, 0.25, 1
MIN_LABELLED = 4  # without a test split: 2 held out (a covariance needs 2) and 2 left to draw a floor from
NO_TEST_SPLIT = ("no test split: {k} of the {n} training images stand in for held-out ones, so the model has seen "
                 "them; classifier-FID and the classifier's accuracy flatter it and memorisation is not available")


@dataclass
class ImageReport:
    quality: object  # eval.images.ImageQuality of the samples, or None (notes say why)
    floor: object  # real training images, same n, or None (notes say why and which flag allows one)
    noise: object  # noise images, same n, or None
    accuracy: float  # the classifier on held-out real images: the ceiling of "labelled as asked"
    notes: list  # one line each: what could not be measured at this size, and why


def unscorable(data) -> str | None:
    """Why the classifier metrics cannot be set up at all for a DataSource of images, or None when they can."""
    from .classifier import MIN_SIDE

    if data.labels is None:
        return "no class labels (a folder needs two or more class subfolders), so no classifier metrics; " \
               "compare the sample grids by eye"
    if min(data.shape[1:]) < MIN_SIDE:
        return (f"images of {data.shape[1]}x{data.shape[2]} are below the classifier's {MIN_SIDE}x{MIN_SIDE}, so no "
                f"classifier metrics; --image-size {MIN_SIDE} or more gives them")
    if data.held_out is None and len(data) < MIN_LABELLED:
        return (f"{len(data)} labelled images and no test split: too few to score (the metrics need {MIN_LABELLED}: "
                f"2 held out and 2 to draw the real-data floor from)")
    return None


def held_out_split(data) -> tuple[np.ndarray, ...]:
    """(train_x, train_y, held_x, held_y, note) of a labelled DataSource: its test split (note None), or else
    HELD_OUT_FALLBACK training images at most (half, for small sets), drawn with HELD_OUT_SEED and taken out of
    the training images the floor and the nearest-neighbour distances use (note: why memorisation is missing)."""
    train_x, train_y = data.x.cpu().numpy(), data.labels.cpu().numpy()
    if data.held_out is not None and data.held_out_labels is not None:
        return train_x, train_y, data.held_out, data.held_out_labels, None
    n = len(train_x)
    k = min(HELD_OUT_FALLBACK, n // 2)
    held = np.zeros(n, dtype=bool)
    held[np.random.default_rng(HELD_OUT_SEED).permutation(n)[:k]] = True
    return train_x[~held], train_y[~held], train_x[held], train_y[held], NO_TEST_SPLIT.format(k=k, n=n)


def image_metric(data, device, log=None, classes: list[int] | None = None):
    """(ImageMetric, held-out accuracy) for a labelled DataSource (see held_out_split for the held-out images;
    without a test split the metric reports memorisation as None). classes: score against real images of these
    classes only (held-out and training images alike), for samples that asked for them; the classifier is the
    data set's, trained on all of its training images and classes but the floor reserve (`floor_reserve`)."""
    from ..data.images.imageset import cache_root
    from .classifier import accuracy, classifier_for
    from .images import ImageMetric

    train_x, train_y, held_x, held_y, note = held_out_split(data)
    unseen = floor_reserve(len(train_x))
    seen = np.ones(len(train_x), dtype=bool)
    seen[unseen] = False
    clf = classifier_for(data.name, train_x[seen], train_y[seen], len(data.classes), cache_root() / "classifiers",
                         device, log)
    if classes is not None:
        keep = np.isin(held_y, classes)
        in_classes = np.isin(train_y, classes)
        unseen = np.flatnonzero(~seen[in_classes])  # the reserve's images of these classes, indexed among them
        train_x, held_x, held_y = train_x[in_classes], held_x[keep], held_y[keep]
    return (ImageMetric(clf, train_x, held_x, device=device, held_out_note=note, unseen=unseen),
            accuracy(clf, held_x, held_y))


def floor_reserve(n: int) -> np.ndarray:
    """Indices of the training images the classifier of the metrics never sees (FLOOR_RESERVE, at most
    FLOOR_RESERVE_SHARE of n), drawn with FLOOR_SEED: the real-data floor's source."""
    k = min(FLOOR_RESERVE, int(n * FLOOR_RESERVE_SHARE))
    return np.sort(np.random.default_rng(FLOOR_SEED).permutation(n)[:k])


def floor_note(n: int, limit: int, flag: str | None) -> str | None:
    """Why no real-data floor can be drawn for n images from `limit` real ones (None: it can), naming `flag`, the
    option that sets n, and the values that work (flag None: images given as files)."""
    if 2 <= n <= limit:
        return None
    if limit < 2:
        return f"no real-data floor: {limit} real image(s) to draw it from, and it needs 2"
    fix = f"{flag} 2 to {limit}" if flag else f"scoring 2 to {limit} images"
    return f"no real-data floor for {n} images: {limit} real images to draw it from; {fix} gives one"


def floor_or_note(metric, n: int, flag: str | None):
    """(metric.floor(n), None), or (None, floor_note's reason)."""
    note = floor_note(n, metric.floor_limit, flag)
    return (None, note) if note else (metric.floor(n), None)


def score_images(cfg, images: np.ndarray, device, log=None, flag: str | None = None) -> ImageReport:
    """Scores of uint8 images (N, C, H, W) against the real images cfg names (dataset, data_dir, size); what
    cannot be measured (no labels, too few images) is None, with the reason in `notes`. flag: the option that
    set N (e.g. '--n'), named in the notes; None for images given as files."""
    from ..data.source import load_source

    data = load_source(cfg, "cpu")
    if tuple(images.shape[1:]) != data.shape:
        raise InputError(f"images of shape (C, H, W) = {tuple(images.shape[1:])} cannot be scored against "
                         f"{cfg.dataset}'s {data.shape}; score images of that shape, or evaluate the run folder that "
                         f"drew them (it scores at its own size)")
    reason = unscorable(data)
    if reason is not None:
        return ImageReport(None, None, None, None, [reason])
    if len(images) < 2:
        return ImageReport(None, None, None, None, [f"{len(images)} image: the metrics need 2 or more"])
    metric, acc = image_metric(data, device, log)
    floor, note = floor_or_note(metric, len(images), flag)
    notes = [n for n in (metric.held_out_note, note) if n]
    return ImageReport(metric.score(images), floor, metric.noise(len(images)), acc, notes)
