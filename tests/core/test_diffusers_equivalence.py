"""Our schedules and sampler steps against diffusers' schedulers, configured the same way, to 1e-5.

diffusers is a test-only dependency. Where our defaults differ from diffusers' on purpose, the
configuration below sets diffusers to ours and the comment says why."""

import numpy as np
import pytest
import torch

diffusers = pytest.importorskip("diffusers")
# diffusers' DPM-Solver++ calls np.array(tensor, copy=False), which numpy 2 deprecates: their code, not under test
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")

from tiny_diffusion.core.diffusion import Diffusion  # noqa: E402
from tiny_diffusion.core.samplers import ddim, ddpm, dpm_solver_pp, timesteps  # noqa: E402
from tiny_diffusion.core.schedules import make_betas, rescale_terminal, linear_betas  # noqa: E402

T = 1000
TOL = 1e-5
# Our names -> diffusers' beta_schedule. Our 'sigmoid' is Chen 2023's sigmoid alpha_bar, a different
# schedule from diffusers' 'sigmoid' (a sigmoid of the betas), so it has no counterpart there.
SCHEDULE_NAMES = {"linear": "linear", "quadratic": "scaled_linear", "cosine": "squaredcos_cap_v2"}
PRED = {"eps": "epsilon", "x0": "sample", "v": "v_prediction"}
PRED_OF = {v: k for k, v in PRED.items()}


def common(schedule="linear", prediction="eps"):
    # clip_sample=False: diffusers clips x0 to [-1, 1] by default (images); our data (2D points up to
    # about +-4) has no fixed range, so clipping is off unless asked for.
    return dict(num_train_timesteps=T, beta_schedule=SCHEDULE_NAMES[schedule], beta_start=1e-4, beta_end=0.02,
                prediction_type=PRED[prediction])


@pytest.mark.parametrize("schedule", list(SCHEDULE_NAMES))
def test_alphas_cumprod_match(schedule):
    ours = Diffusion(make_betas(schedule, T, warn=False)).alpha_bar
    theirs = diffusers.DDPMScheduler(**common(schedule)).alphas_cumprod
    assert torch.allclose(ours, theirs, atol=TOL, rtol=0)


def test_zero_terminal_snr_rescale_matches():
    # diffusers rescales to alpha_bar_T = 0 exactly and lets the last beta be 1; we clip betas to 0.999
    # (MAX_BETA) so x_T keeps a trace of x_{T-1}: compare everything but that last entry.
    ours = torch.as_tensor(np.cumprod(1 - rescale_terminal(linear_betas(T), 0.0)), dtype=torch.float32)
    theirs = diffusers.DDPMScheduler(**common(), rescale_betas_zero_snr=True).alphas_cumprod
    assert torch.allclose(ours[:-1], theirs[:-1], atol=TOL, rtol=0)


@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
@pytest.mark.parametrize("steps", [1, 7, 10, 50, 999, 1000])
def test_timestep_spacing_matches_ddim(spacing, steps):
    s = diffusers.DDIMScheduler(**common(), timestep_spacing=spacing)
    s.set_timesteps(steps)
    assert timesteps(T, steps, spacing).tolist() == s.timesteps.tolist()


class Net(torch.nn.Module):
    """A fixed stand-in network: the exact denoiser for N(0, I) data plus a t-dependent wobble, so the
    samples stay O(1) (errors are absolute) while every step's formula is exercised."""

    def __init__(self, prediction="eps"):
        super().__init__()
        self.prediction = prediction
        self.ab = torch.as_tensor(np.cumprod(1 - linear_betas(T)), dtype=torch.float32)

    def forward(self, x, t):
        a, s = self.ab[t].sqrt(), (1 - self.ab[t]).sqrt()
        exact = {"eps": s * x, "x0": a * x, "v": a * s * x - s * a * x}[self.prediction]
        return exact + 0.1 * torch.sin(3 * x + t.float() / T)


def _setup(prediction, n=32):
    x_T = torch.randn((n, 2), generator=torch.Generator().manual_seed(0))
    return Diffusion(make_betas("linear", T, warn=False), prediction), x_T


def _check(sched, diffusion, ours, generator=None, skip_last=False, **step_kwargs):
    """Feed each of our states x_k to diffusers' step (same input, same network output, step noise
    drawn from `generator` in the same order as ours) and compare its result with our x_{k+1}."""
    ours = list(ours)
    # The tables agree to 1e-5 (test_alphas_cumprod_match) but not bit for bit (diffusers multiplies
    # its alphas in float32, we in float64), and 1 - alpha_bar_t / alpha_bar_s of a short step cancels
    # ~3 digits of that. diffusers also forms its coefficients in the float32 of its table, we in
    # float64. To compare the step formulas themselves, give diffusers our table, in float64.
    sched.alphas_cumprod = diffusion.alpha_bar.double()
    net = Net(PRED_OF[sched.config.prediction_type])
    assert len(ours) == len(sched.timesteps) + 1
    for k, t in enumerate(sched.timesteps):
        theirs = sched.step(net(ours[k], t), t, ours[k], generator=generator, **step_kwargs).prev_sample
        if skip_last and k == len(sched.timesteps) - 1:
            break
        assert torch.allclose(ours[k + 1], theirs, atol=TOL, rtol=0), (k, (ours[k + 1] - theirs).abs().max())


@pytest.mark.parametrize("prediction", list(PRED))
@pytest.mark.parametrize("spacing,steps", [("leading", 10), ("trailing", 10), ("trailing", 50), ("leading", 1000)])
@pytest.mark.parametrize("eta", [0.0, 0.7])
def test_ddim_steps_match(prediction, spacing, steps, eta):
    # diffusers' DDIM steps to t - T // K, the true next timestep only when K divides T (trailing,
    # leading); we always step to the next timestep of the subsequence, so linspace spacing is checked
    # against DDPMScheduler (which steps like us) and through ddim(eta=1) == ddpm below.
    # eta > 0: both draw step noise from the same torch generator in the same order; diffusers also
    # draws on the last step, where sigma = 0, and we do not: that draw is never used.
    diffusion, x_T = _setup(prediction)
    s = diffusers.DDIMScheduler(**common(prediction=prediction), clip_sample=False, timestep_spacing=spacing)
    s.set_timesteps(steps)
    ours = ddim(Net(prediction), diffusion, x_T, torch.Generator().manual_seed(1), timesteps(T, steps, spacing), eta=eta)
    _check(s, diffusion, ours, torch.Generator().manual_seed(1), eta=eta)


@pytest.mark.parametrize("prediction", list(PRED))
@pytest.mark.parametrize("spacing,steps", [("linspace", 10), ("trailing", 7), ("leading", 1000)])
@pytest.mark.parametrize("variance", ["posterior", "beta"])
def test_ddpm_steps_match(prediction, spacing, steps, variance):
    diffusion, x_T = _setup(prediction)
    s = diffusers.DDPMScheduler(**common(prediction=prediction), clip_sample=False, timestep_spacing=spacing,
                                variance_type={"posterior": "fixed_small", "beta": "fixed_large"}[variance])
    s.set_timesteps(steps)
    ours = list(ddpm(Net(prediction), diffusion, x_T, torch.Generator().manual_seed(1), timesteps(T, steps, spacing),
                     variance=variance))
    if variance == "beta" and s.timesteps[-1] > 0:
        # diffusers' fixed_large adds beta' = 1 - alpha_bar_t noise even on the last step (t > 0 for
        # trailing spacing), onto the final sample; we never add noise to x_0. Compare the other steps.
        _check(s, diffusion, ours, torch.Generator().manual_seed(1), skip_last=True)
    else:
        _check(s, diffusion, ours, torch.Generator().manual_seed(1))


def test_ddpm_clip_matches():
    diffusion, x_T = _setup("eps")
    s = diffusers.DDPMScheduler(**common(), clip_sample=True, clip_sample_range=0.5)
    s.set_timesteps(20)
    ours = ddpm(Net(), diffusion, x_T * 3, torch.Generator().manual_seed(1), timesteps(T, 20, "leading"), clip=0.5)
    _check(s, diffusion, ours, torch.Generator().manual_seed(1))


@pytest.mark.parametrize("prediction", list(PRED))
@pytest.mark.parametrize("spacing,steps", [("trailing", 10), ("trailing", 20), ("linspace", 5), ("leading", 50)])
def test_dpm_solver_pp_steps_match(prediction, spacing, steps):
    # diffusers' DPMSolverMultistepScheduler builds its leading/linspace grids from K + 1 points and
    # drops the last (its trailing grid equals DDIM's); we use one definition of spacing for every
    # sampler, so we hand it our timesteps. final_sigmas_type='zero' (its default): the last step lands
    # on x0 exactly, as ours does.
    diffusion, x_T = _setup(prediction)
    s = diffusers.DPMSolverMultistepScheduler(**common(prediction=prediction), algorithm_type="dpmsolver++",
                                              solver_order=2, solver_type="midpoint")
    s.set_timesteps(timesteps=timesteps(T, steps, spacing).tolist())
    _check(s, diffusion, dpm_solver_pp(Net(prediction), diffusion, x_T, None, timesteps(T, steps, spacing)))


def test_dpm_solver_pp_trailing_grid_is_diffusers_own():
    s = diffusers.DPMSolverMultistepScheduler(**common(), timestep_spacing="trailing")
    s.set_timesteps(10)
    assert timesteps(T, 10, "trailing").tolist() == s.timesteps.tolist()


def test_lambda_min_clips_like_diffusers_lambda_min_clipped():
    # Where a clipped grid starts: diffusers' last_timestep - 1, the noisiest t with lambda_t >= the
    # clip. Its grids then differ from ours on purpose: its trailing grid keeps the step T / K of the
    # unclipped schedule (so it has fewer than K steps), its linspace one uses K + 1 points; ours are
    # the grids of the schedule cut at that t, with K steps (test_samplers).
    for clip in (-4.0, -2.5, 0.0):
        s = diffusers.DPMSolverMultistepScheduler(**common(), lambda_min_clipped=clip, timestep_spacing="trailing")
        s.set_timesteps(10)
        ab = s.alphas_cumprod.double().numpy()
        assert timesteps(T, 10, "trailing", ab, lambda_min=clip)[0] == s.timesteps[0]
