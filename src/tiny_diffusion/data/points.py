"""Synthetic 2D data sets: each a function (n, rng) -> (n, 2) float32 array of fresh samples.

The classic four follow the original tiny-diffusion study exactly, so that numbers compare.
"""

from __future__ import annotations

import csv
import functools
import math
from importlib import resources
from pathlib import Path

import numpy as np

from ..choices import DATASAURUS_SHAPES
from ..errors import InputError
from .image_names import unknown_dataset


@functools.cache
def _datasaurus() -> dict[str, np.ndarray]:
    """The Datasaurus Dozen (Matejka & Fitzmaurice 2017), shape -> (142, 2) points in original units."""
    text = resources.files(__package__).joinpath("datasaurus.csv").read_text()
    rows = csv.reader(line for line in text.splitlines() if not line.startswith("#"))
    next(rows)  # header: dataset,x,y
    shapes: dict[str, list] = {}
    for name, x, y in rows:
        shapes.setdefault(name, []).append((float(x), float(y)))
    return {name: np.array(pts) for name, pts in shapes.items()}




DATASAURUS_JITTER = 0.15  # std of the noise added to each of the 142 points, in the shape's own units


def _datasaurus_scale(xy: np.ndarray) -> np.ndarray:
    """x -> (x/54 - 1)*4, y -> (y/48 - 1)*4: the shapes' units to about [-4, 4]."""
    return np.stack([(xy[..., 0] / 54 - 1) * 4, (xy[..., 1] / 48 - 1) * 4], axis=-1)


def datasaurus(shape: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """Resample the shape's 142 points with N(0, 0.15^2) jitter, then scale them (`_datasaurus_scale`)."""
    pts = _datasaurus()[shape]
    ix = rng.integers(0, len(pts), n)
    x = pts[ix, 0] + rng.normal(size=n) * DATASAURUS_JITTER
    y = pts[ix, 1] + rng.normal(size=n) * DATASAURUS_JITTER
    return _datasaurus_scale(np.stack([x, y], axis=1))


def datasaurus_mixture(shape: str) -> tuple[np.ndarray, np.ndarray]:
    """The distribution `datasaurus` samples, as an equal-weight Gaussian mixture: the 142 scaled points
    as means (142, 2) and the scaled jitter as per-axis std (2,)."""
    return _datasaurus_scale(_datasaurus()[shape]), DATASAURUS_JITTER * np.array([4 / 54, 4 / 48])


def datasaurus_dozen(n: int, rng: np.random.Generator) -> np.ndarray:
    """All 13 Datasaurus shapes, equally likely, each point labelled with its shape (train --class-cond)."""
    return datasaurus_labelled(n, rng)[0]


def datasaurus_labelled(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(points (n, 2), labels (n,)): each point's shape drawn uniformly from DATASAURUS_SHAPES (its index is
    the label), then the point from that shape as `datasaurus` draws it."""
    labels = rng.integers(0, len(DATASAURUS_SHAPES), n)
    pts = np.empty((n, 2))
    for k, shape in enumerate(DATASAURUS_SHAPES):
        rows = np.flatnonzero(labels == k)
        pts[rows] = datasaurus(shape, len(rows), rng)
    return pts, labels


def moons(n: int, rng: np.random.Generator) -> np.ndarray:
    """scikit-learn's make_moons(noise=0.03), then x -> (x+0.3)*2-1, y -> (y+0.3)*3-1."""
    n_out = n // 2
    n_in = n - n_out
    a_out, a_in = np.linspace(0, math.pi, n_out), np.linspace(0, math.pi, n_in)
    x = np.concatenate([np.cos(a_out), 1 - np.cos(a_in)])
    y = np.concatenate([np.sin(a_out), 1 - np.sin(a_in) - 0.5])
    pts = np.stack([x, y], axis=1)[rng.permutation(n)] + rng.normal(scale=0.03, size=(n, 2))
    return np.stack([(pts[:, 0] + 0.3) * 2 - 1, (pts[:, 1] + 0.3) * 3 - 1], axis=1)


def line(n: int, rng: np.random.Generator) -> np.ndarray:
    """x uniform in [-2, 2], y uniform in [-4, 4]: a filled rectangle with sharp corners."""
    return np.stack([rng.uniform(-0.5, 0.5, n), rng.uniform(-1, 1, n)], axis=1) * 4


def circle(n: int, rng: np.random.Generator) -> np.ndarray:
    """Radius 3; directions from a coarse 5x5 grid (so angles are rounded), tiny radial jitter.
    As in the classic study, grid point (0, 0) has no direction and lands at the centre (4% of points)."""
    x = np.round(rng.uniform(-0.5, 0.5, n) / 2, 1) * 2
    y = np.round(rng.uniform(-0.5, 0.5, n) / 2, 1) * 2
    norm = np.sqrt(x**2 + y**2) + 1e-10
    x, y = x / norm, y / norm
    theta = 2 * math.pi * rng.uniform(0, 1, n)
    r = rng.uniform(0, 0.03, n)
    return np.stack([x + r * np.cos(theta), y + r * np.sin(theta)], axis=1) * 3


def swissroll(n: int, rng: np.random.Generator) -> np.ndarray:
    """The 2D Swiss roll (x, z of scikit-learn's make_swiss_roll), noise 0.5, scaled by 1/3."""
    t = 1.5 * math.pi * (1 + 2 * rng.uniform(size=n))
    pts = np.stack([t * np.cos(t), t * np.sin(t)], axis=1) + rng.normal(scale=0.5, size=(n, 2))
    return pts / 3


def eight_gaussians(n: int, rng: np.random.Generator) -> np.ndarray:
    """Eight Gaussians (std 0.2) on a circle of radius 3 (as in FFJORD's toy data, scaled)."""
    angles = rng.integers(0, 8, n) * (math.pi / 4)
    centres = np.stack([np.cos(angles), np.sin(angles)], axis=1) * 3
    return centres + rng.normal(scale=0.2, size=(n, 2))


def checkerboard(n: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform on the 8 black squares of a 4x4 checkerboard on [-4, 4]^2 (FFJORD's toy data)."""
    x1 = rng.uniform(size=n) * 4 - 2
    x2 = rng.uniform(size=n) - rng.integers(0, 2, n) * 2 + np.floor(x1) % 2
    return np.stack([x1, x2], axis=1) * 2


def spirals(n: int, rng: np.random.Generator) -> np.ndarray:
    """Two interleaved spirals (FFJORD's '2spirals' toy data), noise 0.1."""
    r = np.sqrt(rng.uniform(size=n)) * 540 * (2 * math.pi) / 360
    sign = np.where(rng.uniform(size=n) < 0.5, 1.0, -1.0)
    pts = np.stack([-np.cos(r) * r, np.sin(r) * r], axis=1) * sign[:, None]
    return (pts + rng.uniform(size=(n, 2)) * 0.5) / 3 * 1.2


GAUSSIAN_MEAN = np.array([0.5, -1.0])  # a correlated 2D Gaussian: the one data set whose log-density is closed form
GAUSSIAN_COV = np.array([[1.0, 0.6], [0.6, 0.8]])


def gaussian(n: int, rng: np.random.Generator) -> np.ndarray:
    """N(GAUSSIAN_MEAN, GAUSSIAN_COV): checks likelihoods against `gaussian_log_density`."""
    return rng.multivariate_normal(GAUSSIAN_MEAN, GAUSSIAN_COV, size=n)


def gaussian_log_density(x: np.ndarray) -> np.ndarray:
    """log N(x; GAUSSIAN_MEAN, GAUSSIAN_COV) per point; its mean over samples estimates -entropy."""
    d = x - GAUSSIAN_MEAN
    inv = np.linalg.inv(GAUSSIAN_COV)
    return -0.5 * (np.einsum("ni,ij,nj->n", d, inv, d) + np.log(np.linalg.det(2 * math.pi * GAUSSIAN_COV)))


def gaussian_entropy() -> float:
    """0.5 log det(2 pi e Sigma), nats."""
    return 0.5 * float(np.log(np.linalg.det(2 * math.pi * math.e * GAUSSIAN_COV)))


DATASETS = {
    "dino": functools.partial(datasaurus, "dino"),
    "moons": moons,
    "line": line,
    "circle": circle,
    "swissroll": swissroll,
    "8gaussians": eight_gaussians,
    "checkerboard": checkerboard,
    "spirals": spirals,
    "gaussian": gaussian,
    **{f"datasaurus:{s}": functools.partial(datasaurus, s) for s in DATASAURUS_SHAPES},
    "datasaurus": datasaurus_dozen,
}
# Labelled point sets: name -> (draw (n, rng) -> (points, labels), class names, the data set of class c).
LABELLED = {"datasaurus": (datasaurus_labelled, DATASAURUS_SHAPES, "datasaurus:{}")}


def dataset_names() -> list[str]:
    return list(DATASETS)


def is_file_dataset(name: str) -> bool:
    return Path(name).suffix.lower() in (".csv", ".npy")


def load_labelled(name: str, n: int, seed: int = 0, training: bool = False
                  ) -> tuple[np.ndarray, np.ndarray | None, list[str] | None]:
    """(points, labels, class names) of data set `name`: the points of `load_dataset(name, n, seed, training)`, their
    (n,) int64 labels and the names of the classes for a labelled set (LABELLED), else None and None."""
    if name not in LABELLED:
        return load_dataset(name, n, seed, training), None, None
    if not isinstance(n, int) or n <= 0:
        raise InputError(f"number of points must be a positive integer, got {n!r}")
    draw, classes, _ = LABELLED[name]
    pts, labels = draw(n, np.random.default_rng(seed))
    return pts.astype(np.float32), labels.astype(np.int64), list(classes)


def class_dataset(name: str, label: int) -> str:
    """The data set of one class of a labelled point set: class 3 of datasaurus is datasaurus:dots."""
    _, classes, pattern = LABELLED[name]
    return pattern.format(classes[label])


def load_dataset(name: str, n: int, seed: int = 0, training: bool = False) -> np.ndarray:
    """n points of data set `name` (a registered name or a .csv/.npy file) as an (n, 2) float32 array.

    A registered set draws n fresh samples with `seed`. A file's points are used as given (`file_rows`): n of its
    rows without replacement, each row once per pass over the file (or the whole file when n is None); `training`
    says in a warning when n leaves some of its rows out."""
    if n is not None and (not isinstance(n, int) or n <= 0):
        raise InputError(f"number of points must be a positive integer, got {n!r}")
    rng = np.random.default_rng(seed)
    if is_file_dataset(name):
        from .files import read_points

        pts = read_points(name)
        if n is None:
            return pts
        if training and n < len(pts):
            import warnings

            warnings.warn(f"{name}: {len(pts)} rows; training on a seeded subset of {n} of them (n_points); "
                          f"--n-points {len(pts)} uses every row", stacklevel=2)
        return pts[file_rows(len(pts), n, rng)]
    if name not in DATASETS:
        from .image_names import IMAGE_DATASETS

        if name in IMAGE_DATASETS:
            raise InputError(f"{name}: an image data set; this takes a point set (the image metrics: "
                             f"`tiny-diffusion evaluate`, or tiny_diffusion.eval.report.score_images)")
        raise unknown_dataset(name)
    return DATASETS[name](n, rng).astype(np.float32)


def file_rows(rows: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """n row indices of a file of `rows` points, never resampled with replacement: whole shuffled passes over the
    file, then a shuffled part of one more (n = rows: every row exactly once; n < rows: a subset)."""
    passes, rest = divmod(n, rows)
    return np.concatenate([rng.permutation(rows) for _ in range(passes)] + [rng.permutation(rows)[:rest]])
