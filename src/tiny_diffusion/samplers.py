"""Samplers: generators that start from x_T ~ N(0, I) and yield the whole trajectory x_T, ..., x_0,
so figures and animations come free with any sampler. `sample` runs one to the end.

Every sampler has one signature:
    sampler(model, diffusion, x_T, generator=None, steps=None, callback=None, *, spacing, clip, threshold,
            lambda_min, ...)
x_T is the initial noise (a tensor) or a shape to draw it in; `generator` is a torch.Generator or a
`noise.SampleNoise` (per-sample seeding); `steps` network evaluations on the subsequence of timesteps
`timesteps(T, steps, spacing, lambda_min=...)` (None: all T); spacing None (the default) takes the grid
`default_grid` measured best for that sampler and number of steps (`grid` resolves it);
`callback(i, t, x, x0)` sees every step's result and its predicted x0. Each yields steps + 1 tensors.
The last step always lands on alpha_bar = 1, i.e. x_0 is the final prediction of x0 with no noise added.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np
import torch

from .diffusion import Diffusion
from .guidance import Guided
from .noise import SampleNoise, randn_like

SPACINGS = ("leading", "trailing", "linspace", "logsnr", "karras")
# trailing starts every subsequence at t = T - 1, where x_T really is N(0, I); 'leading' (diffusers'
# DDIM default) starts at T - T/K and wastes part of the few-step budget (Lin et al. 2024, Table 2).
# timesteps()' default; the samplers' own default is `default_grid`.
DEFAULT_SPACING = "trailing"
# Where a few-step grid of 2D points starts (its log-SNR lambda_min), per sampler: on the default dino model
# (`bench/default_grid.py`, 10 seeds), the best precision + coverage at 10 and 20 steps among the starts whose
# energy is within seed noise (0.002) of the lowest; tables and reasons in docs/samplers.md.
FEW_STEP_LAMBDA_MIN = {"ddpm": -1.5, "ddim": -2.0, "dpm++": -1.5}


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


def default_grid(sampler: str, steps: int | None, T: int, alpha_bar, images: bool) -> tuple[str, float | None]:
    """(spacing, lambda_min): the timesteps a `steps`-step run of `sampler` visits when the caller names none.

    All T steps (steps None or T): every timestep, as ever. Fewer: the `logsnr` spacing, which beat
    diffusers' `trailing` at every K <= 50 for every sampler on the default dino model; for 2D points
    started at lambda_min = FEW_STEP_LAMBDA_MIN[sampler] (the noisiest steps barely move a point cloud),
    or lower where K steps do not fit above it (then at the K-th least noisy step, so the grid is every
    step from there), or not at all where the schedule never gets that noisy (docs/samplers.md). Images
    start at t = T - 1: lambda_min was not measured on their (cosine) schedule."""
    if steps is None or steps >= T:
        return DEFAULT_SPACING, None
    if images:
        return "logsnr", None
    lam = log_snr(alpha_bar)
    start = min(FEW_STEP_LAMBDA_MIN[sampler], lam[steps - 1])  # K steps have lambda >= lam[K - 1]
    return "logsnr", float(start) if start > lam[T - 1] else None


def grid(sampler: str, diffusion: Diffusion, steps: int | None, spacing: str | None = None,
         lambda_min: float | None = None, images: bool = False) -> tuple[str, float | None]:
    """The (spacing, lambda_min) a sampler runs on: the caller's spacing (with their lambda_min, None =
    from t = T - 1), else `default_grid`'s spacing with the caller's lambda_min or else its own."""
    if spacing is not None:
        return spacing, lambda_min
    ab = diffusion.alpha_bar.double().cpu().numpy()
    spacing, default_lambda = default_grid(sampler, steps, diffusion.T, ab, images)
    return spacing, default_lambda if lambda_min is None else lambda_min


def describe_grid(sampler: str, diffusion: Diffusion, steps: int | None, spacing: str | None = None,
                  lambda_min: float | None = None, images: bool = False) -> str:
    """Which grid a run used, for printed results: 'dpm++, 10 steps, logsnr from lambda -1.5', 'ddpm, all 1000 steps'."""
    spacing, lambda_min = grid(sampler, diffusion, steps, spacing, lambda_min, images)
    start = "" if lambda_min is None else f" from lambda {lambda_min:.3g}"
    usable = diffusion.T if lambda_min is None else steps_from(diffusion.alpha_bar.double().cpu().numpy(), lambda_min)
    if steps is None or steps >= usable:
        return f"{sampler}, all {usable} steps{start}"
    return f"{sampler}, {steps} steps, {spacing}{start}"


def _pairs(diffusion: Diffusion, steps, spacing, lambda_min, sampler: str, x: torch.Tensor):
    """(i, t, t_prev, alpha_bar_t, alpha_bar_prev) for each step; t_prev = -1 means alpha_bar = 1."""
    spacing, lambda_min = grid(sampler, diffusion, steps, spacing, lambda_min, images=x.dim() > 2)
    ab = diffusion.alpha_bar.double().cpu()
    ts = timesteps(diffusion.T, steps, spacing, ab.numpy(), lambda_min).tolist()
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
    model, diffusion: Diffusion, x_T, generator=None, steps: int | None = None,
    callback: Callable | None = None, *, spacing: str | None = None, clip: float | None = None,
    threshold: float | None = None, lambda_min: float | None = None, variance: str = "posterior",
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
    for i, t, t_prev, ab, ab_prev in _pairs(diffusion, steps, spacing, lambda_min, "ddpm", x):
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
    model, diffusion: Diffusion, x_T, generator=None, steps: int | None = None,
    callback: Callable | None = None, *, spacing: str | None = None, clip: float | None = None,
    threshold: float | None = None, lambda_min: float | None = None, eta: float = 0.0,
) -> Iterator[torch.Tensor]:
    """DDIM, Song et al. 2021 eq. 12: x_s = sqrt(alpha_bar_s) x0 + sqrt(1 - alpha_bar_s - sigma^2) eps
    + sigma z, with sigma = eta * sqrt(posterior variance) (eq. 16). eta = 0: deterministic;
    eta = 1: the ancestral sampler `ddpm` on the same steps, exactly."""
    if eta < 0:
        raise ValueError(f"eta = {eta} must be >= 0")
    x = _start(x_T, generator)
    yield x
    for i, t, t_prev, ab, ab_prev in _pairs(diffusion, steps, spacing, lambda_min, "ddim", x):
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
    model, diffusion: Diffusion, x_T, generator=None, steps: int | None = None,
    callback: Callable | None = None, *, spacing: str | None = None, clip: float | None = None,
    threshold: float | None = None, lambda_min: float | None = None,
) -> Iterator[torch.Tensor]:
    """DPM-Solver++(2M), Lu et al. 2022 Algorithm 2: a multistep second-order solver of the
    probability-flow ODE in lambda = log(alpha / sigma) (alpha = sqrt(alpha_bar), sigma = sqrt(1 -
    alpha_bar)) on the data prediction x0. First and last steps are first order (the last one lands on
    sigma = 0, i.e. x_0 = the predicted x0), as in diffusers' DPMSolverMultistepScheduler."""
    x = _start(x_T, generator)
    yield x
    x0_prev, h_prev = None, None
    for i, t, t_prev, ab, ab_prev in _pairs(diffusion, steps, spacing, lambda_min, "dpm++", x):
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


POINT_BLOCK = 1024  # rows per network call for points: one call per step for the usual 1000 points
IMAGE_BLOCK = 64  # images per network call: small batches are not padded far, large ones still fill the cores


def trajectory(model, diffusion: Diffusion, n: int, seed: int = 0, shape: tuple[int, ...] | None = None, device="cpu",
               sampler: str = "ddpm", steps: int | None = None, eta: float | None = None, start: int = 0,
               y: torch.Tensor | None = None, guidance: float = 1.0, **kwargs) -> Iterator[torch.Tensor]:
    """The seeded trajectory x_T, ..., x_0 of n samples (n, *shape) from `model` (shape (2,) for points,
    (C, H, W) for images; default: the model's `sample_shape`, else (2,)). Sample i (counted from `start`)
    depends only on (seed, i): its x_T and every step's noise come from its own stream
    (`noise.SampleNoise`), and the network sees it at the same place in a same-sized block
    (`AlignedBatches`), so a larger batch reproduces a smaller one's samples bit for bit.
    y: (n,) class labels passed to the model, aligned the same way (negative: the "no label" class), and
    `guidance` their classifier-free guidance weight W (`guidance.Guided`: 1 plain conditional, 0 unconditional;
    both predictions in one call per block, each sample at its same rows). eta is DDIM's (ddim only)."""
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
    if eta is not None:
        if sampler != "ddim":
            raise ValueError(f"eta applies to the ddim sampler only, not {sampler}")
        kwargs["eta"] = eta
    if guidance != 1 and y is None:
        raise ValueError(f"guidance = {guidance} needs class labels y to guide towards")
    shape = tuple(shape or getattr(model, "sample_shape", (2,)))
    noise = SampleNoise(seed, n, shape, device=device, start=start)
    if y is not None:
        model, y = Guided(model, guidance), y.to(device)
    aligned = AlignedBatches(model, start, POINT_BLOCK if len(shape) == 1 else IMAGE_BLOCK, y)
    return SAMPLERS[sampler](aligned, diffusion, noise.randn(), noise, steps, **kwargs)


IMAGE_RANGE = 1.0  # images are trained as pixels scaled to [-1, 1] (data/source.py); their samples are clipped to it


def sample(model, diffusion: Diffusion, n: int, seed: int = 0, **kwargs) -> torch.Tensor:
    """The last state x_0 of `trajectory` (same arguments): n seeded samples. Points (n, 2) come as the sampler
    leaves them; images (n, C, H, W) are clipped to the pixel range [-1, 1] (a sampler's last step can
    overshoot it), so the API, `sample --out x.npy` and the PNGs all hold the same images."""
    x = None
    for x in trajectory(model, diffusion, n, seed, **kwargs):
        pass
    return x.clamp(-IMAGE_RANGE, IMAGE_RANGE) if x.dim() > 2 else x


class AlignedBatches(torch.nn.Module):
    """`model` evaluated in fixed blocks of `block` rows aligned to global sample indices (zero-padded).

    A matrix product's rounding can depend on the batch size and on a row's position in it (kernels
    and thread splits change with the shape), so the same noise alone does not make sample i the same
    in a batch of 7 and of 300. Here sample i is always computed as row i % block of a block-sized
    product, whatever the batch: bit-identical results on a given device and thread count."""

    def __init__(self, model, start: int = 0, block: int = POINT_BLOCK, y: torch.Tensor | None = None):
        super().__init__()
        self.model, self.start, self.block, self.y = model, start, block, y

    def _pad(self, x: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
        padded = x.new_zeros((hi - lo, *x.shape[1:]))
        padded[self.start - lo:self.start - lo + len(x)] = x
        return padded

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:  # x: (n, ...), t: a scalar step
        n, b = len(x), self.block
        lo = self.start // b * b  # the block boundary at or before sample `start`
        hi = -(-(self.start + n) // b) * b  # ... and at or after the last sample
        blocks = self._pad(x, lo, hi).split(b)
        if self.y is None:
            out = torch.cat([self.model(block, t) for block in blocks])
        else:
            labels = self._pad(self.y, lo, hi).split(b)
            out = torch.cat([self.model(block, t, yb) for block, yb in zip(blocks, labels)])
        return out[self.start - lo:self.start - lo + n]
