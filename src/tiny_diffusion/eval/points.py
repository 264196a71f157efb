"""Quality numbers for 2D samples against fresh samples of the true distribution.

  energy     energy distance 2E|X-Y| - E|X-X'| - E|Y-Y'| (Szekely & Rizzo 2013); 0 iff same law
  precision  fraction of generated points inside the real k-NN manifold, k=3 (Kynkaanniemi et al. 2019)
  coverage   fraction of real points whose k-NN ball holds a generated point, k=5 (Naeem et al. 2020)

Each is averaged over several fresh reference draws; `data_floor` scores true samples against true
samples, the best a model can hope for at this n.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

N_EVAL = 1000  # points per set: the classic study plotted 1000 samples
N_REFS = 3  # fresh reference draws averaged over
PRECISION_K = 3
COVERAGE_K = 5
BLOCK = 1 << 22  # distances computed at a time: 32 MB of float64 (_row_blocks)
MAX_SCORED = 20_000  # points scored at most: a larger set is scored on a seeded subsample (`quality`)


@dataclass
class Quality:
    energy: float
    precision: float
    coverage: float

    def as_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return f"energy {self.energy:.4f}  precision {self.precision:.3f}  coverage {self.coverage:.3f}"


def _pdist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) Euclidean distances, in float64."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.maximum(d2, 0.0))


def _row_blocks(a: np.ndarray, b: np.ndarray):
    """(start, distances of a[start:start + rows] to all of b): the distance matrix a block of rows at a time, so
    memory stays about BLOCK floats whatever the sizes (a default 1000 x 1000 set is one block)."""
    rows = max(1, BLOCK // max(len(b), 1))
    for i in range(0, len(a), rows):
        yield i, _pdist(a[i:i + rows], b)


def _mean_distance(a: np.ndarray, b: np.ndarray) -> float:
    return sum(float(d.sum()) for _, d in _row_blocks(a, b)) / (len(a) * len(b))


def energy_distance(x: np.ndarray, y: np.ndarray) -> float:
    """2E|X-Y| - E|X-X'| - E|Y-Y'| with V-statistics (>= 0 always)."""
    return 2 * _mean_distance(x, y) - _mean_distance(x, x) - _mean_distance(y, y)


def _knn_radius(real: np.ndarray, k: int) -> np.ndarray:
    """Distance from each real point to its k-th nearest other real point."""
    return np.concatenate([np.partition(d, k, axis=1)[:, k] for _, d in _row_blocks(real, real)])  # column 0: itself


def precision(real: np.ndarray, fake: np.ndarray, k: int = PRECISION_K) -> float:
    """Share of fake points within the k-NN radius of at least one real point."""
    radius = _knn_radius(real, k)[None, :]
    return float(np.mean(np.concatenate([(d <= radius).any(axis=1) for _, d in _row_blocks(fake, real)])))


def coverage(real: np.ndarray, fake: np.ndarray, k: int = COVERAGE_K) -> float:
    """Share of real points whose k-NN ball contains at least one fake point."""
    radius = _knn_radius(real, k)
    return float(np.mean(np.concatenate([(d <= radius[i:i + len(d), None]).any(axis=1)
                                         for i, d in _row_blocks(real, fake)])))


def subsample(x: np.ndarray, n: int | None = None, seed: int = 0) -> np.ndarray:
    """At most n (default MAX_SCORED) rows of x: all of them in order, or a seeded draw without replacement (callers
    say so)."""
    n = n or MAX_SCORED
    if len(x) <= n:
        return x
    return x[np.sort(np.random.default_rng(seed).choice(len(x), n, replace=False))]


def quality(fake, references: list) -> Quality:
    """The three numbers for `fake` (an (n, 2) array or tensor of finite points) against each reference set,
    averaged. Above MAX_SCORED points, a seeded subsample of that many is scored (with a warning): energy distance
    costs n^2 distances."""
    fake = _points(fake, "quality: fake")
    references = [_points(r, "quality: reference") for r in references]
    if len(fake) > MAX_SCORED:
        import warnings

        warnings.warn(f"quality: scoring a seeded subsample of {MAX_SCORED} of the {len(fake)} points", stacklevel=2)
        fake = subsample(fake)
    scores = [(energy_distance(fake, r), precision(r, fake), coverage(r, fake)) for r in references]
    return Quality(*np.mean(scores, axis=0).tolist())


def _points(x, what: str) -> np.ndarray:
    """x as an (n, 2) float numpy array (a torch tensor too, on any device); InputError for NaN or infinity, as the
    CLI refuses such a file."""
    from ..errors import InputError

    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != 2:
        raise InputError(f"{what}: points of shape {x.shape}; expected (n, 2)")
    if not np.isfinite(x).all():
        row = int(np.argwhere(~np.isfinite(x))[0, 0])
        raise InputError(f"{what}: point {row} (counted from 0) is NaN or infinite; remove or fix it")
    return x


def references(dataset: str, n: int = N_EVAL, n_refs: int = N_REFS, seed: int = 10_000) -> list[np.ndarray]:
    """n_refs fresh draws of n true points (seeds far from the training data's)."""
    from ..data import load_dataset

    return [load_dataset(dataset, n, seed + i) for i in range(n_refs)]


def data_floor(dataset: str, n: int = N_EVAL, n_refs: int = N_REFS) -> Quality:
    """The score of true samples themselves: what a perfect model gets at this n."""
    from ..data import load_dataset

    return quality(load_dataset(dataset, n, seed=20_000), references(dataset, n, n_refs))


def per_class(fake: np.ndarray, labels: np.ndarray, dataset: str, n_refs: int = N_REFS) -> dict[str, dict]:
    """A labelled point set's samples scored class by class: for each requested class (name -> ...), the
    quality of its samples against fresh points of that class alone, beside that class's data floor at the
    same n. Classes with too few samples for the k-NN radii (<= COVERAGE_K) are left out."""
    from ..data.points import LABELLED, class_dataset

    names = LABELLED[dataset][1]
    out = {}
    for k in np.unique(labels).tolist():
        pts, name = fake[labels == k], class_dataset(dataset, k)
        if len(pts) > COVERAGE_K:
            out[names[k]] = {"n": len(pts), "quality": quality(pts, references(name, len(pts), n_refs)),
                             "data_floor": data_floor(name, len(pts), n_refs)}
    return out
