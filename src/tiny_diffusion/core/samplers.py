"""Samplers: generators that start from x_T ~ N(0, I) and yield the whole trajectory x_T, ..., x_0,
so figures and animations come free with any sampler. `sample` runs one to the end.

Every sampler has one signature:
    sampler(model, diffusion, x_T, generator=None, ts=None, callback=None, *, clip, threshold, ...)
x_T is the initial noise (a tensor) or a shape to draw it in; `generator` is a torch.Generator or a
`noise.SampleNoise` (per-sample seeding); `ts` the grid: the decreasing timesteps to visit, one network
evaluation each (`timesteps(T, steps, spacing, alpha_bar, lambda_min)`; None: all T). Which grid a run
uses when its caller names none is a policy, not math: `sampling.grid`, beside `sampling.sample`.
`callback(i, t, x, x0)` sees every step's result and its predicted x0. Each yields len(ts) + 1 tensors.
The last step always lands on alpha_bar = 1, i.e. x_0 is the final prediction of x0 with no noise added.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np
import torch

from ..choices import SPACINGS
from .diffusion import Diffusion
from .noise import SampleNoise, randn_like

# trailing starts every subsequence at t = T - 1, where x_T really is N(0, I); 'leading' (diffusers'
# DDIM default) starts at T - T/K and wastes part of the few-step budget (Lin et al. 2024, Table 2).
# timesteps()' default; sampling.default_grid chooses a sampler's grid when its caller names none.
DEFAULT_SPACING = "trailing"
def log_snr(alpha_bar) -> np.ndarray:
    """lambda_t = log(alpha_t / sigma_t) = 0.5 log(alpha_bar / (1 - alpha_bar)), in float64; decreasing in t.
    (sigma = exp(-lambda) in the variance-exploding view.)"""
    ab = np.asarray(alpha_bar, dtype=np.float64)
    return 0.5 * np.log(ab / (1 - ab))


def steps_from(alpha_bar, lambda_min: float) -> int:
    """How many timesteps have log-SNR >= lambda_min: the steps 0..t_max a lambda_min grid chooses from."""
    return int(np.count_nonzero(log_snr(alpha_bar) >= lambda_min))


def timesteps(T: int, steps: int | None = None, spacing: str = DEFAULT_SPACING, alpha_bar=None,
              lambda_min: float | None = None) -> np.ndarray:
    """The decreasing subsequence of `steps` timesteps out of 0..T-1.

    lambda_min: start at the largest t whose lambda_t >= lambda_min instead of at T - 1, i.e. choose
    from 0..t_max as if T were t_max + 1 (diffusers' DPMSolverMultistepScheduler calls it
    `lambda_min_clipped`). The sampler then uses x_T ~ N(0, I) as x at t_max: a small mismatch where
    alpha_bar_t_max is small, and room for more of the few steps where the data takes shape.

    leading, trailing, linspace: exactly as diffusers' DDIMScheduler and DDPMScheduler define them
    (Lin et al. 2024, 'Common Diffusion Noise Schedules and Sample Steps are Flawed', Table 2).
    logsnr: evenly spaced in lambda = log(sqrt(alpha_bar) / sqrt(1 - alpha_bar)) from t = T - 1 to t = 0,
    rounded to distinct timesteps (needs `alpha_bar`); the grid DPM-Solver (Lu et al. 2022) recommends,
    which puts the few steps where the signal-to-noise ratio changes, near t = 0, not evenly in t.
    karras: Karras et al. 2022 (EDM) eq. 5 with rho = 7, sigma = sqrt((1 - alpha_bar) / alpha_bar) from
    t = T - 1 to t = 0 with sigma^(1/7) evenly spaced: even more of the steps at low noise."""
    if lambda_min is not None:
        if alpha_bar is None:
            raise ValueError("lambda_min needs the schedule's alpha_bar")
        lam = log_snr(alpha_bar)
        if not lam[0] >= lambda_min:  # lambda decreases in t; lam[0] is the least noisy step
            raise ValueError(f"lambda_min = {lambda_min} is above the schedule's largest log-SNR "
                             f"lambda_0 = {lam[0]:.2f}; choose a value between {lam[T - 1]:.2f} and {lam[0]:.2f}")
        T = steps_from(alpha_bar, lambda_min)  # the steps 0..t_max
        alpha_bar = alpha_bar[:T]
    steps = T if steps is None else steps
    if not 1 <= steps <= T:
        within = "" if lambda_min is None else f" with log-SNR lambda >= {lambda_min}"
        raise ValueError(f"steps = {steps} must be between 1 and the {T} training timesteps{within}")
    if spacing == "linspace":
        ts = np.linspace(0, T - 1, steps).round()[::-1]
    elif spacing == "leading":
        ts = (np.arange(steps) * (T // steps)).round()[::-1]
    elif spacing == "trailing":
        ts = np.round(np.arange(T, 0, -T / steps)) - 1
    elif spacing in ("logsnr", "karras"):
        if alpha_bar is None:
            raise ValueError(f"{spacing} spacing needs the schedule's alpha_bar")
        lam = log_snr(alpha_bar)
        if spacing == "logsnr":
            target = np.linspace(lam[T - 1], lam[0], steps) if steps > 1 else lam[T - 1:]
        else:  # Karras et al. 2022 eq. 5, rho = 7: sigma^(1/rho) evenly spaced, most steps at low noise
            rho, s_max, s_min = 7.0, np.exp(-lam[T - 1]), np.exp(-lam[0])
            ramp = np.linspace(0, 1, steps) if steps > 1 else np.zeros(1)
            target = -np.log((s_max ** (1 / rho) + ramp * (s_min ** (1 / rho) - s_max ** (1 / rho))) ** rho)
        ts = np.round(np.interp(target, lam[::-1], np.arange(T)[::-1]))
        ts = np.clip(ts, np.arange(steps)[::-1], T - 1 - np.arange(steps))  # room for distinct steps
        for i in range(1, steps):  # make them distinct where rounding merged neighbours
            ts[i] = min(ts[i], ts[i - 1] - 1)
    else:
        raise ValueError(f"unknown timestep spacing {spacing!r}; choose one of {', '.join(SPACINGS)}")
    return ts.astype(np.int64).copy()


def _pairs(diffusion: Diffusion, ts):
    """(i, t, t_prev, alpha_bar_t, alpha_bar_prev) for each step of the grid `ts` (None: all T steps);
    t_prev = -1 means alpha_bar = 1."""
    ab = diffusion.alpha_bar.double().cpu()
    ts = [int(t) for t in (timesteps(diffusion.T) if ts is None else ts)]
    for i, t in enumerate(ts):
        t_prev = ts[i + 1] if i + 1 < len(ts) else -1
        yield i, t, t_prev, float(ab[t]), (float(ab[t_prev]) if t_prev >= 0 else 1.0)


def _start(x_T, generator) -> torch.Tensor:
    if isinstance(x_T, torch.Tensor):
        return x_T
    if isinstance(generator, SampleNoise):
        return generator.randn()
    return torch.randn(tuple(x_T), generator=generator)


def _predict(model, diffusion, x, t, clip, threshold):
    return diffusion.predict(model(x, torch.tensor(t, device=x.device)), x, t, clip, threshold)


@torch.inference_mode()
def ddpm(
    model, diffusion: Diffusion, x_T, generator=None, ts=None,
    callback: Callable | None = None, *, clip: float | None = None, threshold: float | None = None,
    variance: str = "posterior",
) -> Iterator[torch.Tensor]:
    """Ancestral sampling, Ho et al. 2020 Algorithm 2, on a subsequence t -> s of timesteps:
    x_s = posterior mean of q(x_s | x_t, x0) at the predicted x0 + sigma z, where (with
    beta' = 1 - alpha_bar_t / alpha_bar_s) sigma^2 is the posterior variance
    beta' (1 - alpha_bar_s) / (1 - alpha_bar_t) ('posterior') or beta' itself ('beta', Ho et al.'s
    other choice). No noise on the last step."""
    if variance not in ("posterior", "beta"):
        raise ValueError(f"unknown variance {variance!r}; choose posterior or beta")
    x = _start(x_T, generator)
    yield x
    for i, t, t_prev, ab, ab_prev in _pairs(diffusion, ts):
        x0, _ = _predict(model, diffusion, x, t, clip, threshold)
        beta = 1 - ab / ab_prev
        c0 = math.sqrt(ab_prev) * beta / (1 - ab)  # Ho et al. eq. 7 with alpha_t -> alpha_bar_t / alpha_bar_s
        ct = math.sqrt(1 - beta) * (1 - ab_prev) / (1 - ab)
        x_new = c0 * x0 + ct * x
        if t_prev >= 0:
            var = beta * (1 - ab_prev) / (1 - ab) if variance == "posterior" else beta
            x_new = x_new + math.sqrt(var) * randn_like(x, generator)
        x = x_new
        if callback:
            callback(i, t, x, x0)
        yield x


@torch.inference_mode()
def ddim(
    model, diffusion: Diffusion, x_T, generator=None, ts=None,
    callback: Callable | None = None, *, clip: float | None = None, threshold: float | None = None,
    eta: float = 0.0,
) -> Iterator[torch.Tensor]:
    """DDIM, Song et al. 2021 eq. 12: x_s = sqrt(alpha_bar_s) x0 + sqrt(1 - alpha_bar_s - sigma^2) eps
    + sigma z, with sigma = eta * sqrt(posterior variance) (eq. 16). eta = 0: deterministic;
    eta = 1: the ancestral sampler `ddpm` on the same steps, exactly."""
    if eta < 0:
        raise ValueError(f"eta = {eta} must be >= 0")
    x = _start(x_T, generator)
    yield x
    for i, t, t_prev, ab, ab_prev in _pairs(diffusion, ts):
        x0, eps = _predict(model, diffusion, x, t, clip, threshold)
        sigma = eta * math.sqrt((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev))
        x_new = math.sqrt(ab_prev) * x0 + math.sqrt(max(1 - ab_prev - sigma**2, 0.0)) * eps
        if sigma > 0:
            x_new = x_new + sigma * randn_like(x, generator)
        x = x_new
        if callback:
            callback(i, t, x, x0)
        yield x


@torch.inference_mode()
def dpm_solver_pp(
    model, diffusion: Diffusion, x_T, generator=None, ts=None,
    callback: Callable | None = None, *, clip: float | None = None, threshold: float | None = None,
) -> Iterator[torch.Tensor]:
    """DPM-Solver++(2M), Lu et al. 2022 Algorithm 2: a multistep second-order solver of the
    probability-flow ODE in lambda = log(alpha / sigma) (alpha = sqrt(alpha_bar), sigma = sqrt(1 -
    alpha_bar)) on the data prediction x0. First and last steps are first order (the last one lands on
    sigma = 0, i.e. x_0 = the predicted x0), as in diffusers' DPMSolverMultistepScheduler."""
    x = _start(x_T, generator)
    yield x
    x0_prev, h_prev = None, None
    for i, t, t_prev, ab, ab_prev in _pairs(diffusion, ts):
        x0, _ = _predict(model, diffusion, x, t, clip, threshold)
        if t_prev < 0:
            x_new = x0
        else:
            alpha, sigma = math.sqrt(ab_prev), math.sqrt(1 - ab_prev)
            h = math.log(alpha / sigma) - math.log(math.sqrt(ab) / math.sqrt(1 - ab))
            d = x0 if x0_prev is None else x0 + 0.5 * (h / h_prev) * (x0 - x0_prev)
            x_new = (sigma / math.sqrt(1 - ab)) * x - alpha * math.expm1(-h) * d
            x0_prev, h_prev = x0, h
        x = x_new
        if callback:
            callback(i, t, x, x0)
        yield x


SAMPLERS = {"ddpm": ddpm, "ddim": ddim, "dpm++": dpm_solver_pp}


