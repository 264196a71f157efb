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


def energy_distance(x: np.ndarray, y: np.ndarray) -> float:
    """2E|X-Y| - E|X-X'| - E|Y-Y'| with V-statistics (>= 0 always)."""
    return float(2 * _pdist(x, y).mean() - _pdist(x, x).mean() - _pdist(y, y).mean())


def _knn_radius(real: np.ndarray, k: int) -> np.ndarray:
    """Distance from each real point to its k-th nearest other real point."""
    d = _pdist(real, real)
    return np.partition(d, k, axis=1)[:, k]  # column 0 is the point itself (distance 0)


def precision(real: np.ndarray, fake: np.ndarray, k: int = PRECISION_K) -> float:
    """Share of fake points within the k-NN radius of at least one real point."""
    inside = _pdist(fake, real) <= _knn_radius(real, k)[None, :]
    return float(inside.any(axis=1).mean())


def coverage(real: np.ndarray, fake: np.ndarray, k: int = COVERAGE_K) -> float:
    """Share of real points whose k-NN ball contains at least one fake point."""
    inside = _pdist(real, fake) <= _knn_radius(real, k)[:, None]
    return float(inside.any(axis=1).mean())


def quality(fake: np.ndarray, references: list[np.ndarray]) -> Quality:
    """The three numbers for `fake` against each reference set, averaged."""
    scores = [(energy_distance(fake, r), precision(r, fake), coverage(r, fake)) for r in references]
    return Quality(*np.mean(scores, axis=0).tolist())


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
