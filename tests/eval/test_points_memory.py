"""Point metrics of any size: computed in blocks (bounded memory, the same numbers), large sets scored on a seeded
subsample that is said; tensors taken and NaN refused, as the CLI does."""

import tracemalloc

import numpy as np
import pytest
import torch

from tiny_diffusion.errors import InputError
from tiny_diffusion.eval import points
from tiny_diffusion.eval.points import coverage, energy_distance, precision, quality, references


def _full(real, fake, k_p=points.PRECISION_K, k_c=points.COVERAGE_K):
    """The metrics from whole distance matrices (a reference the blocks must match)."""
    d = lambda a, b: np.linalg.norm(a[:, None] - b[None], axis=-1)  # noqa: E731
    rr = d(real, real)
    rp, rc = np.sort(rr, 1)[:, k_p], np.sort(rr, 1)[:, k_c]
    energy = 2 * d(fake, real).mean() - d(fake, fake).mean() - d(real, real).mean()
    return energy, (d(fake, real) <= rp[None]).any(1).mean(), (d(real, fake) <= rc[:, None]).any(1).mean()


def test_blocks_give_the_whole_matrices_numbers(monkeypatch):
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(300, 2)), rng.normal(size=(257, 2)) * 1.3
    monkeypatch.setattr(points, "BLOCK", 7 * 300 + 5)  # 7 rows a block, a ragged last one
    e, p, c = _full(real, fake)
    assert energy_distance(fake, real) == pytest.approx(e, rel=1e-9)
    assert precision(real, fake) == p and coverage(real, fake) == c


def test_memory_stays_bounded_on_a_large_set():
    x = np.random.default_rng(1).normal(size=(6000, 2))
    refs = [np.random.default_rng(2).normal(size=(1000, 2))]
    tracemalloc.start()
    try:
        quality(x, refs)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 200e6  # the whole 6000 x 6000 matrix with its temporaries took about 1 GB


def test_a_set_above_the_limit_is_scored_on_a_said_seeded_subsample(monkeypatch):
    monkeypatch.setattr(points, "MAX_SCORED", 500)
    x = np.random.default_rng(3).normal(size=(2000, 2))
    refs = references("gaussian", 200)
    with pytest.warns(UserWarning, match="seeded subsample of 500 of the 2000 points"):
        q = quality(x, refs)
    sub = points.subsample(x)
    assert len(sub) == 500 and len(np.unique(sub, axis=0)) == 500
    assert q == quality(sub, refs)


def test_quality_takes_tensors_and_refuses_nan():
    x = np.random.default_rng(4).normal(size=(100, 2)).astype(np.float32)
    refs = references("moons", 100)
    assert quality(torch.from_numpy(x), refs) == quality(x, refs)
    x[7, 1] = np.nan
    with pytest.raises(InputError, match="point 7"):
        quality(x, refs)


def test_references_of_an_image_set_says_so():
    with pytest.raises(InputError) as e:
        references("mnist")
    assert "image data set" in str(e.value) and "did you mean" not in str(e.value)
