import pytest
import torch

from tiny_diffusion.core.diffusion import PREDICTIONS, Diffusion
from tiny_diffusion.core.exact import MixtureDenoiser
from tiny_diffusion.core.samplers import ddpm
from tiny_diffusion.core.schedules import make_betas


def _diffusion(T=100, schedule="linear", prediction="eps", dtype=torch.float64):
    return Diffusion(make_betas(schedule, T, warn=False), prediction, dtype=dtype)


def test_forward_process_moments_match_closed_form():
    """Noising step by step, x_t = sqrt(alpha_t) x_{t-1} + sqrt(beta_t) eps, gives q(x_t | x0) of eq. 4."""
    d = _diffusion(T=50)
    g = torch.Generator().manual_seed(0)
    x0 = torch.tensor([[1.5, -2.0]], dtype=torch.float64).expand(200_000, 2)
    traj = d.forward_trajectory(x0, g)  # (T + 1, n, 2): x0, x_1, ..., x_T
    assert traj.shape == (51, 200_000, 2) and torch.equal(traj[0], x0)
    for t in (0, 9, 49):
        x = traj[t + 1]
        mean, var = d.sqrt_alpha_bar[t] * x0[0], 1 - d.alpha_bar[t]
        se = (var / len(x)).sqrt()
        assert torch.allclose(x.mean(0), mean, atol=5 * se)
        assert torch.allclose(x.var(0), var.expand(2), rtol=0.02)
    # q_sample draws from the same law in one shot
    eps = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    xt = d.q_sample(x0, torch.full((len(x0),), 49), eps)
    assert torch.allclose(xt.mean(0), d.sqrt_alpha_bar[49] * x0[0], atol=0.01)
    assert torch.allclose(xt.var(0), (1 - d.alpha_bar[49]).expand(2), rtol=0.02)


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_posterior_matches_bayes_rule(schedule):
    """q(x_{t-1} | x_t, x0) from Gaussian conditioning of q(x_{t-1} | x0) and q(x_t | x_{t-1})."""
    d = _diffusion(T=100, schedule=schedule)
    g = torch.Generator().manual_seed(1)
    x0, xt = torch.randn(5, 2, generator=g, dtype=torch.float64), torch.randn(5, 2, generator=g, dtype=torch.float64)
    for t in (1, 10, 50, 99):
        ab_prev, alpha, beta = d.alpha_bar[t - 1], d.alphas[t], d.betas[t]
        precision = 1 / (1 - ab_prev) + alpha / beta  # prior precision + likelihood precision
        var = 1 / precision
        mean = var * (ab_prev.sqrt() * x0 / (1 - ab_prev) + alpha.sqrt() * xt / beta)
        got_mean, got_var = d.posterior(x0, xt, torch.tensor(t))
        assert torch.allclose(got_mean, mean, rtol=1e-10)
        assert torch.allclose(got_var, var, rtol=1e-10)
    # at t = 0 the posterior is exact: x_{-1} = x0, variance 0
    mean, var = d.posterior(x0, xt, torch.tensor(0))
    assert torch.allclose(mean, x0) and var == 0


@pytest.mark.parametrize("prediction", PREDICTIONS)
def test_prediction_targets_round_trip(prediction):
    d = _diffusion(T=100, prediction=prediction)
    g = torch.Generator().manual_seed(2)
    x0, eps = torch.randn(64, 2, generator=g, dtype=torch.float64), torch.randn(64, 2, generator=g, dtype=torch.float64)
    t = torch.randint(0, 100, (64,), generator=g)
    xt = d.q_sample(x0, t, eps)
    x0_hat, eps_hat = d.to_x0_eps(d.target(x0, eps, t), xt, t)
    assert torch.allclose(x0_hat, x0, atol=1e-8) and torch.allclose(eps_hat, eps, atol=1e-8)


def GaussianOracle(d: Diffusion, mu, s):
    """The exact E[eps | xt] (or x0, v) for data x0 ~ N(mu, s^2 I): the best possible denoiser."""
    return MixtureDenoiser(d, torch.as_tensor(mu, dtype=torch.float64)[None], torch.as_tensor(s, dtype=torch.float64))


@pytest.mark.parametrize("prediction", PREDICTIONS)
def test_ancestral_sampling_with_oracle_recovers_gaussian(prediction):
    d = _diffusion(T=1000, prediction=prediction)  # alpha_bar_T = 4e-5: x_T is N(0, I) for real
    mu, s = [1.0, -0.5], 0.3
    g = torch.Generator().manual_seed(3)
    x_T = torch.randn(20_000, 2, generator=g, dtype=torch.float64)
    *_, x0 = ddpm(GaussianOracle(d, mu, s), d, x_T, g)
    assert torch.allclose(x0.mean(0), torch.tensor(mu, dtype=torch.float64), atol=0.015)
    assert torch.allclose(x0.std(0), torch.tensor([s, s], dtype=torch.float64), rtol=0.03)


def test_sampler_yields_whole_trajectory():
    d = _diffusion(T=30)
    x_T = torch.randn(10, 2, dtype=torch.float64)
    traj = list(ddpm(GaussianOracle(d, [0, 0], 1.0), d, x_T, torch.Generator().manual_seed(0)))
    assert len(traj) == 31 and traj[0] is x_T


def test_loss_of_oracle_equals_posterior_variance_of_eps():
    """For x0 ~ N(0, s^2 I), Var[eps | xt] = ab s^2 / (ab s^2 + 1 - ab): the oracle's loss is its mean over t."""
    d = _diffusion(T=100)
    g = torch.Generator().manual_seed(4)
    s = 0.5
    x0 = s * torch.randn(200_000, 2, generator=g, dtype=torch.float64)
    ab = d.alpha_bar
    expected = (ab * s**2 / (ab * s**2 + 1 - ab)).mean().item()
    assert d.loss(GaussianOracle(d, [0.0, 0.0], s), x0, g).item() == pytest.approx(expected, rel=0.01)
    zero = lambda xt, t: torch.zeros_like(xt)  # noqa: E731  predicts no noise at all: loss = E|eps|^2 = 1
    assert d.loss(zero, x0, g).item() == pytest.approx(1.0, rel=0.01)


def test_stratified_t_spreads_each_batch_evenly_and_each_step_stays_uniform():
    """t_sampling "stratified": one draw u per batch, the i-th step at (u + i / n) mod 1 of [0, T). Each batch of
    n holds exactly one step in each of the n equal slices of [0, T) (iid uniform t misses many), and over many
    batches every step is drawn equally often, as under uniform t."""
    T, n = 1024, 64  # T / n whole: each slice holds 16 steps
    d = Diffusion(make_betas("cosine", T), t_sampling="stratified", dtype=torch.float64)
    g = torch.Generator().manual_seed(3)
    for _ in range(50):
        t = d.sample_t(n, "cpu", g)
        assert t.dtype == torch.long and t.min() >= 0 and t.max() < T
        assert torch.equal(torch.bincount(t * n // T, minlength=n), torch.ones(n, dtype=torch.long))
    iid = Diffusion(make_betas("cosine", T), dtype=torch.float64).sample_t(n, "cpu", g)
    assert (torch.bincount(iid * n // T, minlength=n) == 0).sum() > 10  # iid t leaves slices empty: the check bites
    counts = torch.bincount(torch.cat([d.sample_t(n, "cpu", g) for _ in range(20_000)]), minlength=T).double()
    expected = 20_000 * n / T  # 1250 per step; a binomial count's sd is ~35
    assert counts.sum() == 20_000 * n and (counts - expected).abs().max() < 6 * expected ** 0.5


def test_logsnr_t_sampling_is_uniform_in_log_snr():
    d = Diffusion(make_betas("linear", 1000), t_sampling="logsnr", dtype=torch.float64)
    g = torch.Generator().manual_seed(5)
    t = d.sample_t(200_000, "cpu", g)
    log_snr = (d.alpha_bar.log() - (1 - d.alpha_bar).log())
    lo, hi = log_snr[-1], log_snr[0]
    drawn = log_snr[t]
    # quantiles of a uniform law on [lo, hi], up to the discretisation: one step spans at most 5% of the range
    assert (log_snr[:-1] - log_snr[1:]).max() / (hi - lo) < 0.05
    for q in (0.25, 0.5, 0.75):
        assert (drawn < lo + q * (hi - lo)).double().mean().item() == pytest.approx(q, abs=0.05)
        # uniform t is far from it (0.67 below the median log-SNR), so the check has teeth
    assert (log_snr[torch.randint(0, 1000, (10_000,), generator=g)] < lo + 0.5 * (hi - lo)).double().mean() > 0.6
    uniform = Diffusion(make_betas("linear", 1000), dtype=torch.float64).sample_t(200_000, "cpu", g)
    assert uniform.double().mean().item() == pytest.approx(499.5, abs=2)
    assert uniform.min() == 0 and uniform.max() == 999
