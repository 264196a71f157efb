import math
import warnings

import numpy as np
import pytest

from tiny_diffusion.core.schedules import SCHEDULES, alpha_bar, make_betas, rescale_terminal


@pytest.mark.parametrize("name", SCHEDULES)
@pytest.mark.parametrize("T", [1, 5, 50, 1000])
def test_alpha_bar_monotone_and_in_range(name, T):
    betas = make_betas(name, T, warn=False)
    ab = alpha_bar(betas)
    assert betas.shape == (T,)
    assert np.all(betas > 0) and np.all(betas < 1)
    assert np.all(ab > 0) and np.all(ab < 1)
    assert np.all(np.diff(ab) < 0)


def test_linear_and_quadratic_endpoints():
    lin = make_betas("linear", 50, 1e-4, 0.02, warn=False)
    quad = make_betas("quadratic", 50, 1e-4, 0.02, warn=False)
    assert lin[0] == pytest.approx(1e-4) and lin[-1] == pytest.approx(0.02)
    assert quad[0] == pytest.approx(1e-4) and quad[-1] == pytest.approx(0.02)
    assert np.allclose(np.diff(np.sqrt(quad)), np.diff(np.sqrt(quad))[0])  # sqrt(beta) evenly spaced
    # The classic study's setting: 50 linear steps end at alpha_bar_T = 0.60, far from 0.
    assert alpha_bar(lin)[-1] == pytest.approx(0.603, abs=1e-3)


def test_cosine_follows_its_formula():
    T, s = 100, 0.008
    f = lambda t: math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    ab = alpha_bar(make_betas("cosine", T))
    expected = np.array([f(t + 1) / f(0) for t in range(T)])
    unclipped = slice(0, T - 5)  # the last betas are clipped at 0.999
    assert np.allclose(ab[unclipped], expected[unclipped], rtol=1e-10)


@pytest.mark.parametrize("name", SCHEDULES)
@pytest.mark.parametrize("T", [10, 50, 250])
def test_terminal_rescale_hits_target_and_keeps_start(name, T):
    betas = make_betas(name, T, warn=False)
    rescaled = rescale_terminal(betas, 1e-4)
    ab, ab_new = alpha_bar(betas), alpha_bar(rescaled)
    assert ab_new[-1] == pytest.approx(1e-4, rel=1e-6)
    assert ab_new[0] == pytest.approx(ab[0], rel=1e-9)
    assert np.all(np.diff(ab_new) < 0)


def test_warning_names_alpha_bar_T():
    with pytest.warns(UserWarning, match=r"alpha_bar_T = 0\.603"):
        make_betas("linear", 50)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make_betas("linear", 1000)
        make_betas("linear", 50, terminal_alpha_bar=1e-4)


def test_unknown_schedule():
    with pytest.raises(ValueError, match="unknown schedule"):
        make_betas("exponential", 10)
