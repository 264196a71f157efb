import numpy as np
import pytest

from tiny_diffusion.eval.points import coverage, data_floor, energy_distance, precision, quality, references


def _brute_energy(x, y):
    d = lambda a, b: np.mean([np.linalg.norm(p - q) for p in a for q in b])  # noqa: E731
    return 2 * d(x, y) - d(x, x) - d(y, y)


def test_energy_distance_against_brute_force():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 2)), rng.normal(size=(30, 2)) + [1.0, 0.0]
    assert energy_distance(x, y) == pytest.approx(_brute_energy(x, y), rel=1e-9)
    assert energy_distance(x, x) == pytest.approx(0.0, abs=1e-9)


def test_precision_and_coverage_on_constructed_sets():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(500, 2))
    far = real + 100.0
    assert precision(real, real) == 1.0 and coverage(real, real) == 1.0
    assert precision(real, far) == 0.0 and coverage(real, far) == 0.0
    half = np.concatenate([real[:250], far[:250]])
    assert precision(real, half) == 0.5  # exactly the 250 real points are inside the manifold
    # coverage: real points whose 5-NN ball holds one of the first 250 points — at least those 250 themselves
    assert 0.5 <= coverage(real, half) < 1.0


def test_dino_floor_and_noise_match_the_published_scale():
    """The issue's anchors: floor about 0.000 / 0.94 / 0.97, N(0, I) noise about 0.34 / 0.08 / 0.14."""
    floor = data_floor("dino")
    assert floor.energy < 0.01 and floor.precision > 0.88 and floor.coverage > 0.94
    noise = quality(np.random.default_rng(0).normal(size=(1000, 2)), references("dino"))
    assert 0.28 < noise.energy < 0.40 and noise.precision < 0.15 and 0.08 < noise.coverage < 0.2
