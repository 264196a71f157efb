"""Samplers, timestep spacing, prediction targets and per-sample seeding."""

import numpy as np
import pytest
import torch

from tiny_diffusion.core.diffusion import PREDICTIONS, Diffusion, bound_x0
from tiny_diffusion.core.exact import MixtureDenoiser
from tiny_diffusion.models import MLP
from tiny_diffusion.core.noise import SampleNoise
from tiny_diffusion.choices import kind_of_shape
from tiny_diffusion.sampling import FEW_STEP_LAMBDA_MIN, IMAGE_LAMBDA_MIN, default_grid, sample, trajectory
from tiny_diffusion.core.samplers import SAMPLERS, SPACINGS, ddim, ddpm, log_snr, steps_from, timesteps
from tiny_diffusion.core.schedules import make_betas

T = 1000
MU, STD = torch.tensor([1.0, -0.5]), torch.tensor([0.5, 2.0])


def Oracle(diffusion):
    """The exact denoiser for data N(MU, diag(STD^2)) (tested against the closed form in test_exact)."""
    return MixtureDenoiser(diffusion, MU[None], STD)


def _diffusion(prediction="eps", timesteps_=T):
    return Diffusion(make_betas("linear", timesteps_, warn=False), prediction)


@pytest.mark.parametrize("prediction", PREDICTIONS)
@pytest.mark.parametrize("sampler,steps,kwargs", [
    ("ddpm", 1000, {}), ("ddpm", 1000, {"variance": "beta"}), ("ddim", 1000, {}), ("ddim", 1000, {"eta": 0.5}),
    ("dpm++", 50, {"spacing": "logsnr"}),  # from t = T - 1: a later start would bias this off-centre Gaussian
])
def test_oracle_denoiser_gives_the_target_gaussian(prediction, sampler, steps, kwargs):
    d = _diffusion(prediction)
    x = sample(Oracle(d), d, 4000, seed=1, sampler=sampler, steps=steps, **kwargs)
    # n = 4000: the sample mean's standard error is 0.016 STD, the sample std's 1.1 %
    assert torch.all((x.mean(0) - MU).abs() < 0.06 * STD), x.mean(0)
    assert torch.all((x.std(0) / STD - 1).abs() < 0.04), x.std(0)


def test_dpm_solver_pp_beats_ddim_at_few_steps():
    """At 10 and 20 steps, DPM-Solver++(2M)'s second-order updates land closer to the target's spread
    than first-order DDIM (both deterministic, same x_T, same logSNR-uniform grid)."""
    d = _diffusion()
    for steps in (10, 20):
        err = {s: (sample(Oracle(d), d, 2000, seed=2, sampler=s, steps=steps, spacing="logsnr").std(0) / STD - 1).abs().max()
               for s in ("ddim", "dpm++")}
        assert err["dpm++"] < 0.5 * err["ddim"], (steps, err)


@pytest.mark.parametrize("spacing", SPACINGS)
def test_ddim_eta_one_is_ancestral_on_the_same_steps(spacing):
    d = _diffusion("v")
    net = MLP(hidden_size=16, hidden_layers=1, emb_size=8).eval()
    x_T = torch.randn(50, 2, generator=torch.Generator().manual_seed(0))
    ts = timesteps(d.T, 25, spacing, d.alpha_bar.double().numpy())
    a = list(ddim(net, d, x_T, torch.Generator().manual_seed(1), ts, eta=1.0))
    b = list(ddpm(net, d, x_T, torch.Generator().manual_seed(1), ts))
    assert len(a) == len(b) == 26
    for xa, xb in zip(a, b):
        assert torch.allclose(xa, xb, atol=1e-5)


def test_ddim_eta_one_matches_ancestral_statistics():
    d = _diffusion()
    a = sample(Oracle(d), d, 4000, seed=3, sampler="ddim", steps=100, eta=1.0, spacing="trailing")
    b = sample(Oracle(d), d, 4000, seed=4, sampler="ddpm", steps=100, spacing="trailing")
    assert torch.allclose(a.mean(0), b.mean(0), atol=0.08)
    assert torch.allclose(a.std(0) / b.std(0), torch.ones(2), atol=0.05)


@pytest.mark.parametrize("prediction", PREDICTIONS)
def test_prediction_targets_round_trip(prediction):
    d = _diffusion(prediction)
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(64, 2, generator=g), torch.randn(64, 2, generator=g)
    t = torch.randint(0, T, (64,), generator=g)
    xt = d.q_sample(x0, t, eps)
    x0_back, eps_back = d.to_x0_eps(d.target(x0, eps, t), xt, t)
    # x0 from eps divides by sqrt(alpha_bar_t) (small at large t) and eps from x0 by sqrt(1 - alpha_bar_t)
    # (small at small t): compare in the well-conditioned direction, relative to that factor
    a, s = d.sqrt_alpha_bar[t][:, None], d.sqrt_one_minus_alpha_bar[t][:, None]
    assert torch.allclose(a * x0_back, a * x0, atol=1e-5)
    assert torch.allclose(s * eps_back, s * eps, atol=1e-5)
    assert torch.allclose(d.q_sample(x0_back, t, eps_back), xt, atol=1e-5)


def test_predict_with_clip_keeps_x0_in_range_and_consistent():
    d = _diffusion()
    xt = 5 * torch.randn(100, 2, generator=torch.Generator().manual_seed(0))
    t = 300
    x0, eps = d.predict(torch.zeros_like(xt), xt, t, clip=1.5)
    assert x0.abs().max() <= 1.5 and (x0.abs() == 1.5).any()
    assert torch.allclose(d.q_sample(x0, torch.tensor(t), eps), xt, atol=1e-5)


def test_dynamic_thresholding():
    x0 = torch.tensor([[0.5, -0.9, 0.2, 0.1], [4.0, -2.0, 0.0, 1.0]])
    out = bound_x0(x0, 1.0, threshold=0.75)
    assert torch.equal(out[0], x0[0])  # its 75th percentile of |x0| is below 1: plain clipping, no change
    s = torch.quantile(x0[1].abs(), 0.75)
    assert torch.allclose(out[1], x0[1].clamp(-s, s) / s)
    assert out.abs().max() <= 1


@pytest.mark.parametrize("spacing", SPACINGS)
def test_timesteps_are_decreasing_and_in_range(spacing):
    for steps in (1, 3, 10, 333, 1000):
        ts = timesteps(T, steps, spacing, _diffusion().alpha_bar.double().numpy())
        assert len(ts) == steps and ts.min() >= 0 and ts.max() <= T - 1 and np.all(np.diff(ts) < 0)
    assert timesteps(T, 10, "trailing")[0] == T - 1


def test_logsnr_spacing_is_even_in_log_snr_and_distinct():
    d = _diffusion()
    ab = d.alpha_bar.double().numpy()
    ts = timesteps(T, 10, "logsnr", ab)
    assert ts[0] == T - 1 and ts[-1] == 0
    lam = 0.5 * np.log(ab[ts] / (1 - ab[ts]))
    gaps = np.diff(lam)
    assert np.all(gaps > 0) and gaps.max() / gaps.min() < 1.2  # even up to rounding t to integers
    assert timesteps(T, T, "logsnr", ab).tolist() == list(range(T - 1, -1, -1))


@pytest.mark.parametrize("spacing", SPACINGS)
def test_lambda_min_starts_at_the_noisiest_step_above_it(spacing):
    ab = _diffusion().alpha_bar.double().numpy()
    lam = 0.5 * np.log(ab / (1 - ab))
    t_max = int(np.nonzero(lam >= -2.5)[0].max())
    assert lam[t_max] >= -2.5 > lam[t_max + 1]
    ts = timesteps(T, 10, spacing, ab, lambda_min=-2.5)
    # the same grid as a schedule that ends at t_max; trailing, logsnr and karras start right there
    assert ts.tolist() == timesteps(t_max + 1, 10, spacing, ab[:t_max + 1]).tolist()
    assert ts.max() <= t_max and (ts[0] == t_max or spacing in ("leading", "linspace"))
    # a lambda_min below the noisiest step changes nothing
    assert timesteps(T, 10, spacing, ab, lambda_min=lam[-1] - 1).tolist() == timesteps(T, 10, spacing, ab).tolist()


def test_lambda_min_logsnr_grid_is_even_from_lambda_min():
    ab = _diffusion().alpha_bar.double().numpy()
    ts = timesteps(T, 10, "logsnr", ab, lambda_min=-2.5)
    lam = 0.5 * np.log(ab[ts] / (1 - ab[ts]))
    assert -2.6 < lam[0] and ts[-1] == 0 and np.diff(lam).max() / np.diff(lam).min() < 1.2


def test_lambda_min_rejects_values_above_the_least_noisy_step():
    ab = _diffusion().alpha_bar.double().numpy()
    with pytest.raises(ValueError, match="largest log-SNR"):
        timesteps(T, 10, "logsnr", ab, lambda_min=5.0)
    with pytest.raises(ValueError, match="lambda >= 4.0"):  # only a few steps are that clean
        timesteps(T, 10, "logsnr", ab, lambda_min=4.0)
    with pytest.raises(ValueError, match="alpha_bar"):
        timesteps(T, 10, "trailing", lambda_min=-2.5)


def test_timesteps_reject_bad_values():
    with pytest.raises(ValueError, match="steps"):
        timesteps(T, 0)
    with pytest.raises(ValueError, match="steps"):
        timesteps(T, T + 1)
    with pytest.raises(ValueError, match="spacing"):
        timesteps(T, 10, "uniform")


@pytest.mark.parametrize("threads", [1, 2])  # with 2 threads a matmul's rounding depends on its shape
@pytest.mark.parametrize("sampler,kwargs", [("ddpm", {}), ("ddim", {"eta": 0.5}), ("dpm++", {})])
def test_per_sample_seeding_is_batch_size_independent(sampler, kwargs, threads):
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        _check_batch_size_independence(sampler, kwargs)
    finally:
        torch.set_num_threads(before)


def _check_batch_size_independence(sampler, kwargs):
    d = _diffusion(timesteps_=100)
    net = MLP(hidden_size=32, hidden_layers=2, emb_size=16).eval()
    small = sample(net, d, 7, seed=5, sampler=sampler, steps=20, **kwargs)
    large = sample(net, d, 300, seed=5, sampler=sampler, steps=20, **kwargs)
    assert torch.equal(small, large[:7])
    tail = sample(net, d, 5, seed=5, sampler=sampler, steps=20, start=295, **kwargs)
    assert torch.equal(tail, large[295:])
    assert not torch.equal(sample(net, d, 7, seed=6, sampler=sampler, steps=20, **kwargs), small)


def test_sample_noise_is_standard_normal_and_independent():
    z = torch.stack([SampleNoise(9, 2000, (3,)).randn() for _ in range(1)] +
                    [SampleNoise(9, 2000, (3,), start=2000).randn()]).reshape(-1, 3)
    assert abs(z.mean()) < 0.03 and abs(z.std() - 1) < 0.03
    assert torch.corrcoef(z.T).sub(torch.eye(3)).abs().max() < 0.05
    noise = SampleNoise(9, 2000, (3,))
    first, second = noise.randn(), noise.randn()
    assert abs(torch.corrcoef(torch.stack([first.ravel(), second.ravel()]))[0, 1]) < 0.05


def test_every_sampler_yields_steps_plus_one_states_and_calls_back():
    d = _diffusion(timesteps_=50)
    net = MLP(hidden_size=8, hidden_layers=1, emb_size=4).eval()
    for name, fn in SAMPLERS.items():
        seen = []
        ts = timesteps(50, 7, "logsnr", d.alpha_bar.double().numpy())
        traj = list(fn(net, d, (10, 2), torch.Generator().manual_seed(0), ts,
                       callback=lambda i, t, x, x0: seen.append((i, t))))
        assert len(traj) == 8 and all(x.shape == (10, 2) for x in traj), name
        assert [t for _, t in seen] == ts.tolist()
        assert [i for i, _ in seen] == list(range(7))


def test_sample_rejects_eta_for_other_samplers():
    d = _diffusion(timesteps_=10)
    with pytest.raises(ValueError, match="eta"):
        sample(MLP(8, 1, 4), d, 3, sampler="dpm++", eta=0.5)


def test_karras_spacing_follows_sigma_ramp():
    """Karras et al. 2022 eq. 5: sigma_i^(1/rho) evenly spaced from sigma_max to sigma_min, rho = 7."""
    from tiny_diffusion.core.schedules import alpha_bar, make_betas

    ab = alpha_bar(make_betas("linear", 1000))
    ts = timesteps(1000, 10, "karras", ab)
    assert ts[0] == 999 and ts[-1] == 0 and np.all(np.diff(ts) < 0)
    root = (np.sqrt((1 - ab[ts]) / ab[ts])) ** (1 / 7)
    gaps = -np.diff(root)
    assert gaps.max() / gaps.min() < 1.05  # evenly spaced up to rounding t to integers


def _visited(sampler, d, shape, **kwargs) -> list[int]:
    """The timesteps `trajectory` has a sampler visit (the callback sees each) for (n, *sample shape) `shape` of
    the kind that shape has, with a network that predicts eps = 0."""
    seen = []
    net = lambda x, t: torch.zeros_like(x)  # noqa: E731
    for _ in trajectory(net, d, shape[0], 0, shape=shape[1:], sampler=sampler, kind=kind_of_shape(shape[1:]),
                        callback=lambda i, t, x, x0: seen.append(t), **kwargs):
        pass
    return seen


@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_few_steps_default_to_the_measured_grid(sampler):
    """K < T steps of points, no spacing named: logsnr from FEW_STEP_LAMBDA_MIN (measured on the dino); images:
    logsnr from IMAGE_LAMBDA_MIN (measured on MNIST digits); a named spacing is honoured (diffusers' trailing, for comparisons), with lambda_min off
    unless given."""
    d = _diffusion()
    ab = d.alpha_bar.double().numpy()
    lam_min = FEW_STEP_LAMBDA_MIN[sampler]
    measured = timesteps(T, 10, "logsnr", ab, lambda_min=lam_min).tolist()
    assert log_snr(ab)[measured[0]] >= lam_min > log_snr(ab)[measured[0] + 1]  # it starts where it says
    assert _visited(sampler, d, (5, 2), steps=10) == measured
    assert log_snr(ab)[-1] < IMAGE_LAMBDA_MIN  # this schedule reaches it
    assert _visited(sampler, d, (5, 1, 4, 4), steps=10) == timesteps(T, 10, "logsnr", ab, IMAGE_LAMBDA_MIN).tolist()
    assert _visited(sampler, d, (5, 2), steps=10, spacing="trailing") == timesteps(T, 10, "trailing").tolist()
    assert _visited(sampler, d, (5, 2), steps=10, spacing="logsnr") == timesteps(T, 10, "logsnr", ab).tolist()
    assert _visited(sampler, d, (5, 2), steps=10, lambda_min=-3.0) == timesteps(T, 10, "logsnr", ab, -3.0).tolist()
    # the same through sample(), the Python API: defaults equal the measured grid named explicitly
    net = MLP(hidden_size=16, hidden_layers=1, emb_size=8).eval()
    default = sample(net, d, 20, seed=1, sampler=sampler, steps=10)
    assert torch.equal(default, sample(net, d, 20, seed=1, sampler=sampler, steps=10, spacing="logsnr",
                                       lambda_min=lam_min))
    assert not torch.equal(default, sample(net, d, 20, seed=1, sampler=sampler, steps=10, spacing="trailing"))


@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_all_steps_visit_every_timestep_as_before(sampler):
    """steps None or T: every timestep from T - 1 down, whatever the data (train's final samples stay the same)."""
    d = _diffusion(timesteps_=60)
    for steps in (None, 60):
        for shape in ((5, 2), (5, 1, 4, 4)):
            assert _visited(sampler, d, shape, steps=steps) == list(range(59, -1, -1))
            assert default_grid(sampler, steps, 60, d.alpha_bar.double().numpy(), kind_of_shape(shape[1:])) == ("trailing", None)


def test_default_grid_start_fits_the_steps_and_the_schedule():
    ab = _diffusion().alpha_bar.double().numpy()
    lam = log_snr(ab)
    for sampler, lam_min in FEW_STEP_LAMBDA_MIN.items():
        fit = steps_from(ab, lam_min)  # the steps with lambda >= lam_min
        assert default_grid(sampler, fit, T, ab, "points") == ("logsnr", lam_min)
        # more steps than fit above lam_min: start lower, at the (fit + 1)-th least noisy step, and visit them all
        spacing, start = default_grid(sampler, fit + 1, T, ab, "points")
        assert start == lam[fit] < lam_min
        assert timesteps(T, fit + 1, spacing, ab, start).tolist() == list(range(fit, -1, -1))
        assert default_grid(sampler, 10, T, ab, "images") == ("logsnr", IMAGE_LAMBDA_MIN)
    # a schedule that never gets as noisy as lam_min (the classic T = 50: alpha_bar_T = 0.6) starts at T - 1
    short = _diffusion(timesteps_=50).alpha_bar.double().numpy()
    assert log_snr(short)[-1] > max(FEW_STEP_LAMBDA_MIN.values())
    assert all(default_grid(s, 10, 50, short, "points") == ("logsnr", None) for s in SAMPLERS)
    assert all(default_grid(s, 10, 50, short, "images") == ("logsnr", None) for s in SAMPLERS)
