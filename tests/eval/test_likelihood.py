"""Likelihoods checked against a case with a closed form: Gaussian data, whose optimal eps-predictor
E[eps | x_t] is linear, so the exact log-density is known without training anything."""

import numpy as np
import pytest
import torch

from tiny_diffusion.data import load_dataset
from tiny_diffusion.data.points import GAUSSIAN_COV, GAUSSIAN_MEAN, gaussian_entropy, gaussian_log_density
from tiny_diffusion.core.diffusion import Diffusion
from tiny_diffusion.eval.likelihood import describe, elbo_nll, ode_nll, run_likelihood
from tiny_diffusion.core.schedules import make_betas


class OptimalEps(torch.nn.Module):
    """E[eps | x_t] for x0 ~ N(mu, S): b (a^2 S + b^2 I)^-1 (x_t - a mu), a = sqrt(alpha_bar_t)."""

    def __init__(self, alpha_bar, mu=GAUSSIAN_MEAN, S=GAUSSIAN_COV):
        super().__init__()
        self.ab = torch.as_tensor(alpha_bar, dtype=torch.float64)
        self.mu, self.S = torch.tensor(mu, dtype=torch.float64), torch.tensor(S, dtype=torch.float64)

    def forward(self, x, t):
        ab = self.ab[int(t)]
        a, b = ab.sqrt(), (1 - ab).sqrt()
        cov = a * a * self.S + b * b * torch.eye(2, dtype=torch.float64)
        return (b * torch.linalg.solve(cov, (x.double() - a * self.mu).T).T).to(x.dtype)


def _setup(schedule, T, terminal=None):
    betas = make_betas(schedule, T, terminal_alpha_bar=terminal, warn=False)
    diffusion = Diffusion(betas, dtype=torch.float64)
    x = load_dataset("gaussian", 500, seed=3)
    return OptimalEps(diffusion.alpha_bar), diffusion, torch.tensor(x, dtype=torch.float64), -gaussian_log_density(x)


@pytest.mark.parametrize("schedule,T,terminal,steps", [("linear", 1000, None, 200), ("linear", 50, 1e-4, None),
                                                   ("cosine", 100, None, None)])
def test_ode_nll_matches_closed_form(schedule, T, terminal, steps):
    model, diffusion, x, true_nll = _setup(schedule, T, terminal)
    nll = ode_nll(lambda x, t: model(x, torch.tensor(t)), diffusion.alpha_bar, x, steps).numpy()
    assert abs(nll.mean() - true_nll.mean()) < 0.01
    assert np.abs(nll - true_nll).max() < 0.1  # per point, not just on average


def test_ode_nll_sees_a_wrong_model():
    model, diffusion, x, true_nll = _setup("linear", 100, 1e-4)
    wrong = lambda x, t: 0.8 * model(x, torch.tensor(t))  # noqa: E731
    assert ode_nll(wrong, diffusion.alpha_bar, x).mean() > true_nll.mean() + 0.1


def test_elbo_is_an_upper_bound_that_tightens_with_T():
    gaps = []
    for T in (20, 200):
        model, diffusion, x, true_nll = _setup("linear", T, 1e-4)
        gaps.append(float(elbo_nll(model, diffusion, x).mean() - true_nll.mean()))
    assert gaps[0] > gaps[1] > 0


@pytest.mark.parametrize("scale", [1.0, 0.2])
def test_printed_nll_and_elbo_bound_are_both_nlls(scale):
    """`evaluate --nll`'s line on a model with a known density: the ODE number is the exact NLL, the other an upper
    bound on the NLL (-ELBO, about 1 nat above it), both in nats per point, lower is better. At scale 1 (true NLL
    +2.4) an ELBO printed with the other sign would fall below the NLL it bounds; at scale 0.2 (true NLL -0.8, a
    negative NLL as on the dino) an NLL printed with the other sign would be 1.6 nats off."""
    import re

    diffusion = Diffusion(make_betas("linear", 1000, warn=False), dtype=torch.float64)
    mu, S = np.array(GAUSSIAN_MEAN) * scale, np.array(GAUSSIAN_COV) * scale**2
    x = np.random.default_rng(4).multivariate_normal(mu, S, size=300)
    d = x - mu
    true_nll = float(np.mean(0.5 * np.einsum("ni,ij,nj->n", d, np.linalg.inv(S), d)
                             + 0.5 * np.log(np.linalg.det(2 * np.pi * S))))
    line = describe(run_likelihood(OptimalEps(diffusion.alpha_bar, mu, S), diffusion, x))
    pattern = (r"probability-flow ODE (\S+) \(its exact NLL\); ancestral DDPM <= (\S+) "
               r"\(the -ELBO, an upper bound on its NLL\); nats/point, lower is better")
    ode, bound = (float(v) for v in re.fullmatch(pattern, line).groups())
    assert abs(ode - true_nll) < 0.05, (line, true_nll)  # evaluate's 100 ODE levels: 0.03 off at scale 0.2
    assert true_nll < bound < true_nll + 2, (line, true_nll)  # above the NLL it bounds, by the bound's gap (~1 nat)


def test_gaussian_entropy_closed_form():
    x = load_dataset("gaussian", 200_000, seed=1)
    assert abs(-gaussian_log_density(x).mean() - gaussian_entropy()) < 0.01
    assert np.allclose(np.cov(x.T), GAUSSIAN_COV, atol=0.02)


@pytest.mark.slow
def test_trained_gaussian_nll_within_005_nats_of_entropy(tmp_path):
    """Issue 3's target: the NLL of a model trained on a 2D Gaussian within 0.05 nats of the true entropy."""
    from tiny_diffusion.config import TrainConfig
    from tiny_diffusion.eval.likelihood import held_out_likelihood
    from tiny_diffusion.train import train

    # identity input embedding: the optimal eps is linear in x for Gaussian data (measured: 0.004 nats off,
    # against 0.11 with the default sinusoidal embedding at 100 epochs, issue 3)
    cfg = TrainConfig(dataset="gaussian", device="cpu", frames=0, input_emb="identity", epochs=200)
    result = train(cfg, tmp_path / "run", progress=False)
    lik = held_out_likelihood(result.model, result.diffusion, "gaussian", n=4000)
    assert abs(lik["nll"] - gaussian_entropy()) < 0.05
