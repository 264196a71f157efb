"""Noise schedules: the betas of the forward process, as pure functions of the number of steps T.

Convention: index t = 0..T-1; step t adds noise with variance beta_t, and
alpha_bar_t = prod_{s<=t} (1 - beta_s) is the signal kept after step t.
Everything here is float64 numpy; `diffusion.Diffusion` turns it into tensors.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from ..choices import SCHEDULES

MAX_BETA = 0.999  # Nichol & Dhariwal clip: beta = 1 would make x_t independent of x0 in one step


def linear_betas(T: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> np.ndarray:
    """Ho et al. 2020: betas evenly spaced from beta_start to beta_end."""
    return np.linspace(beta_start, beta_end, T, dtype=np.float64)


def quadratic_betas(T: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> np.ndarray:
    """sqrt(beta) evenly spaced (diffusers' 'scaled_linear')."""
    return np.linspace(beta_start**0.5, beta_end**0.5, T, dtype=np.float64) ** 2


def betas_from_alpha_bar(alpha_bar_fn, T: int) -> np.ndarray:
    """beta_t = 1 - alpha_bar(t+1)/alpha_bar(t) for a continuous alpha_bar on [0, 1], clipped to MAX_BETA."""
    t = np.arange(T + 1, dtype=np.float64) / T
    ab = alpha_bar_fn(t)
    return np.minimum(1.0 - ab[1:] / ab[:-1], MAX_BETA)


def cosine_betas(T: int, s: float = 0.008) -> np.ndarray:
    """Nichol & Dhariwal 2021: alpha_bar(t) = cos^2((t + s)/(1 + s) * pi/2)."""
    return betas_from_alpha_bar(lambda t: np.cos((t + s) / (1 + s) * math.pi / 2) ** 2, T)


def sigmoid_betas(T: int, start: float = -3.0, end: float = 3.0, tau: float = 1.0) -> np.ndarray:
    """Jabri et al. 2022 / Chen 2023: alpha_bar(t) follows a reversed sigmoid from start to end."""
    sig = lambda z: 1.0 / (1.0 + np.exp(-z))  # noqa: E731
    v_start, v_end = sig(start / tau), sig(end / tau)

    def alpha_bar(t):
        return (v_end - sig((t * (end - start) + start) / tau)) / (v_end - v_start)

    # alpha_bar(1) is exactly 0; keep the last beta below 1 like the cosine schedule does.
    return betas_from_alpha_bar(lambda t: np.clip(alpha_bar(t), 1e-9, 1.0), T)


def rescale_terminal(betas: np.ndarray, alpha_bar_T: float) -> np.ndarray:
    """Lin et al. 2024, 'Common Diffusion Noise Schedules and Sample Steps are Flawed', Alg. 1,
    with a small target instead of exactly 0: shift and scale sqrt(alpha_bar) so that its first value
    is unchanged and its last equals sqrt(alpha_bar_T). Keeps the schedule's shape for any T."""
    s = np.sqrt(np.cumprod(1.0 - betas))
    s0, sT, target = s[0], s[-1], math.sqrt(alpha_bar_T)
    if abs(s0 - sT) < 1e-12:
        return betas
    s = target + (s - sT) * (s0 - target) / (s0 - sT)
    alpha_bar = s**2
    alpha_bar_prev = np.concatenate([[1.0], alpha_bar[:-1]])
    return np.minimum(1.0 - alpha_bar / alpha_bar_prev, MAX_BETA)


# the schedules by name (choices.SCHEDULES); cosine and sigmoid ignore beta_start/beta_end
BETAS = {
    "linear": linear_betas,
    "quadratic": quadratic_betas,
    "cosine": lambda T, beta_start, beta_end: cosine_betas(T),
    "sigmoid": lambda T, beta_start, beta_end: sigmoid_betas(T),
}


def make_betas(
    name: str,
    T: int,
    beta_start: float = 1e-4,
    beta_end: float = 0.02,
    terminal_alpha_bar: float | None = None,
    warn: bool = True,
) -> np.ndarray:
    """The betas of schedule `name` with T steps; optionally rescaled so alpha_bar_T = terminal_alpha_bar."""
    if name not in BETAS:
        raise ValueError(f"unknown schedule {name!r}; choose one of {', '.join(SCHEDULES)}")
    betas = BETAS[name](T, beta_start, beta_end)
    if terminal_alpha_bar is not None:
        betas = rescale_terminal(betas, terminal_alpha_bar)
    ab_T = float(np.prod(1.0 - betas))
    if warn and ab_T > 0.01:
        warnings.warn(
            f"alpha_bar_T = {ab_T:.3g} (> 0.01): x_T still holds signal, but sampling starts from N(0, I), "
            f"so samples come out shrunk; use more timesteps or --terminal-alpha-bar 1e-4",
            stacklevel=2,
        )
    return betas


def alpha_bar(betas: np.ndarray) -> np.ndarray:
    """alpha_bar_t = prod_{s<=t} (1 - beta_s)."""
    return np.cumprod(1.0 - betas)
