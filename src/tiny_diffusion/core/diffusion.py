"""The math page: forward process, posterior, prediction targets and training loss of DDPM.

Notation follows Ho et al. 2020 ("Denoising Diffusion Probabilistic Models"):
  x0     clean data                      xt     noisy data at step t (t = 0..T-1)
  eps    the Gaussian noise              beta_t, alpha_t = 1 - beta_t, alpha_bar_t = prod alpha_s
  q(xt | x0)       = N(sqrt(alpha_bar_t) x0, (1 - alpha_bar_t) I)               (eq. 4)
  q(x_{t-1}|xt,x0) = N(c0 x0 + ct xt, beta_tilde_t I)                           (eq. 6, 7)
The network predicts one of three targets ("eps", "x0" or "v", Salimans & Ho 2022); `to_x0_eps`
is the one place that converts between them. The reverse (ancestral) step, x_{t-1} = posterior mean at
the predicted x0 + sqrt(beta_tilde_t) z, is `samplers.ddpm` (Ho et al. Algorithm 2), which also takes
the step between any two timesteps of a shorter subsequence.
"""

from __future__ import annotations

import torch

from ..choices import PREDICTIONS, T_SAMPLINGS
from .schedules import alpha_bar as _alpha_bar


def _at(a: torch.Tensor, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """a[t] shaped to broadcast against x: t is a scalar or (B,), result (B, 1, ...) or scalar."""
    out = a[t]
    return out.reshape(out.shape + (1,) * (x.dim() - out.dim())) if out.dim() else out


class Diffusion:
    """The schedule's coefficients as tensors on one device, and the formulas that use them."""

    def __init__(self, betas, prediction: str = "eps", device="cpu", dtype=torch.float32,
                 t_sampling: str = "uniform"):
        if prediction not in PREDICTIONS:
            raise ValueError(f"unknown prediction target {prediction!r}; choose one of {', '.join(PREDICTIONS)}")
        if t_sampling not in T_SAMPLINGS:
            raise ValueError(f"unknown t sampling {t_sampling!r}; choose one of {', '.join(T_SAMPLINGS)}")
        self.prediction = prediction
        self.t_sampling = t_sampling
        self.T = len(betas)
        # Computed in float64 (products of up to 1000 factors), stored in the model's dtype.
        b = torch.as_tensor(betas, dtype=torch.float64)
        ab = torch.as_tensor(_alpha_bar(b.numpy()), dtype=torch.float64)
        ab_prev = torch.cat([torch.ones(1, dtype=torch.float64), ab[:-1]])
        coefs = {
            "betas": b,
            "alphas": 1 - b,
            "alpha_bar": ab,
            "alpha_bar_prev": ab_prev,
            "sqrt_alpha_bar": ab.sqrt(),
            "sqrt_one_minus_alpha_bar": (1 - ab).sqrt(),
            # posterior q(x_{t-1} | xt, x0), Ho et al. eq. 7
            "posterior_c0": b * ab_prev.sqrt() / (1 - ab),
            "posterior_ct": (1 - ab_prev) * (1 - b).sqrt() / (1 - ab),
            "posterior_var": b * (1 - ab_prev) / (1 - ab),
        }
        for name, value in coefs.items():
            setattr(self, name, value.to(device=device, dtype=dtype))
        # Training distribution of t. "logsnr": P(t) proportional to the log-SNR interval step t covers,
        # i.e. log(SNR) uniform over the schedule's range. Unlike uniform t, this gives the low-noise
        # steps (where fine structure is resolved) their share: for linear T=1000 the noise std 0.01..0.2
        # gets ~30% of the samples instead of ~6%.
        log_snr = torch.log(ab) - torch.log1p(-ab)
        widths = torch.cat([log_snr[:1] - log_snr[1:2], log_snr[:-1] - log_snr[1:]]).clamp_min(0)
        if t_sampling != "logsnr" or not torch.isfinite(widths).all() or widths.sum() <= 0:
            widths = torch.ones_like(widths)
        self.t_cdf = (widths.cumsum(0) / widths.sum()).to(device=device, dtype=torch.float64)

    @classmethod
    def from_config(cls, cfg, device="cpu", warn: bool = False) -> "Diffusion":
        """The diffusion a TrainConfig describes (its schedule and prediction target)."""
        from .schedules import make_betas

        betas = make_betas(cfg.schedule, cfg.timesteps, cfg.beta_start, cfg.beta_end, cfg.terminal_alpha_bar, warn)
        return cls(betas, cfg.prediction, device, t_sampling=getattr(cfg, "t_sampling", "uniform"))

    # -- forward process -------------------------------------------------------------------
    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """xt = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps."""
        return _at(self.sqrt_alpha_bar, t, x0) * x0 + _at(self.sqrt_one_minus_alpha_bar, t, x0) * eps

    def forward_trajectory(self, x0: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """(T + 1, *x0.shape): x0, x_1, ..., x_T noised one step at a time,
        x_t = sqrt(alpha_t) x_{t-1} + sqrt(beta_t) eps (Ho et al. eq. 2), the classic forward figure."""
        traj = [x0]
        for t in range(self.T):
            eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
            traj.append(self.alphas[t].sqrt() * traj[-1] + self.betas[t].sqrt() * eps)
        return torch.stack(traj)

    # -- posterior and reverse step -----------------------------------------------------------
    def posterior(self, x0: torch.Tensor, xt: torch.Tensor, t: torch.Tensor):
        """Mean and variance of q(x_{t-1} | xt, x0)."""
        mean = _at(self.posterior_c0, t, xt) * x0 + _at(self.posterior_ct, t, xt) * xt
        return mean, _at(self.posterior_var, t, xt)

    def to_x0_eps(self, model_out: torch.Tensor, xt: torch.Tensor, t: torch.Tensor):
        """(x0, eps) implied by the network's output for its prediction target."""
        a, s = _at(self.sqrt_alpha_bar, t, xt), _at(self.sqrt_one_minus_alpha_bar, t, xt)
        if self.prediction == "eps":
            eps = model_out
            x0 = (xt - s * eps) / a
        elif self.prediction == "x0":
            x0 = model_out
            eps = (xt - a * x0) / s
        else:  # v = a eps - s x0  =>  x0 = a xt - s v,  eps = s xt + a v
            x0 = a * xt - s * model_out
            eps = s * xt + a * model_out
        return x0, eps

    def target(self, x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """What the network is trained to output at (x0, eps, t)."""
        if self.prediction == "eps":
            return eps
        if self.prediction == "x0":
            return x0
        return _at(self.sqrt_alpha_bar, t, x0) * eps - _at(self.sqrt_one_minus_alpha_bar, t, x0) * x0

    def predict(self, model_out, xt, t, clip: float | None = None, threshold: float | None = None):
        """(x0, eps) from the network's output, with x0 optionally bounded to the data range [-clip, clip]
        (`threshold`: dynamic thresholding, see `bound_x0`); eps is then re-derived from the bounded x0,
        so x0, eps and xt stay consistent (GLIDE; diffusers' use_clipped_model_output=True)."""
        x0, eps = self.to_x0_eps(model_out, xt, t)
        if clip is None:
            return x0, eps
        x0 = bound_x0(x0, clip, threshold)
        return x0, (xt - _at(self.sqrt_alpha_bar, t, xt) * x0) / _at(self.sqrt_one_minus_alpha_bar, t, xt)

    # -- training ---------------------------------------------------------------------------
    def sample_t(self, n: int, device, generator: torch.Generator | None = None) -> torch.Tensor:
        """n training steps t: uniform (Ho et al.) or log-SNR-uniform, see `t_sampling`. "stratified": uniform t
        with one draw u per batch, the i-th step at (u + i / n) mod 1 of the way through [0, T): every batch covers
        the steps evenly (a lower-variance loss estimate), and each step is still uniform over [0, T)."""
        if self.t_sampling == "uniform":
            return torch.randint(0, self.T, (n,), device=device, generator=generator)
        if self.t_sampling == "stratified":
            u = torch.rand(1, device=device, dtype=torch.float64, generator=generator)
            u = (u + torch.arange(n, device=device, dtype=torch.float64) / n) % 1
        else:
            u = torch.rand(n, device=device, dtype=torch.float64, generator=generator)
        return torch.searchsorted(self.t_cdf, u).clamp_(max=self.T - 1)

    def loss(self, model, x0: torch.Tensor, generator: torch.Generator | None = None, y: torch.Tensor | None = None,
             kind: str = "l2", t: torch.Tensor | None = None, eps: torch.Tensor | None = None,
             min_snr: float = 0.0) -> torch.Tensor:
        """Simple DDPM loss (Ho et al. eq. 14): the mean squared (kind "l2") or absolute ("l1") error between
        the network output and its target at a t drawn from the training distribution. y: class labels.
        t, eps: the steps and noise to use instead of drawing them (the training step draws a global batch's).
        min_snr > 0: each sample's error weighted by `min_snr_weight` (Hang et al. 2023)."""
        t = self.sample_t(x0.shape[0], x0.device, generator) if t is None else t
        eps = torch.randn(x0.shape, device=x0.device, dtype=x0.dtype, generator=generator) if eps is None else eps
        xt = self.q_sample(x0, t, eps)
        err = (model(xt, t) if y is None else model(xt, t, y)) - self.target(x0, eps, t)
        if min_snr <= 0:
            return LOSS_FNS[kind](err)
        per_sample = (err ** 2 if kind == "l2" else err.abs()).reshape(len(err), -1).mean(1)  # (B,)
        return (per_sample * self.min_snr_weight(t, min_snr)).mean()

    def min_snr_weight(self, t: torch.Tensor, gamma: float) -> torch.Tensor:
        """Min-SNR-gamma loss weights (Hang et al. 2023): the eps-prediction loss weighted by min(SNR_t, gamma)
        / SNR_t, which stops the low-noise steps (huge SNR, easy targets) from dominating the gradient. The
        same weighting of x0 in terms of each target: min(SNR, gamma) for x0, min(SNR, gamma) / (SNR + 1) for v."""
        snr = (self.alpha_bar / (1 - self.alpha_bar))[t]
        capped = snr.clamp(max=gamma)
        return {"eps": capped / snr, "x0": capped, "v": capped / (snr + 1)}[self.prediction]


LOSS_FNS = {  # choices.LOSSES: the network's error -> the loss
    "l2": lambda err: torch.mean(err ** 2),
    "l1": lambda err: torch.mean(err.abs()),
}


def bound_x0(x0: torch.Tensor, data_range: float, threshold: float | None = None) -> torch.Tensor:
    """Keep a predicted x0 inside [-data_range, data_range].

    threshold None: static clipping. threshold p in (0, 1): dynamic thresholding (Saharia et al. 2022,
    Imagen): s = the p-quantile of |x0| over each sample, at least data_range; x0 is clipped to [-s, s]
    and scaled by data_range / s. With data_range 1 this is diffusers' `_threshold_sample` with
    sample_max_value = inf."""
    if threshold is None:
        return x0.clamp(-data_range, data_range)
    flat = x0.reshape(x0.shape[0], -1)
    s = torch.quantile(flat.abs().float(), threshold, dim=1).clamp(min=data_range).to(x0.dtype)
    s = s.reshape((-1,) + (1,) * (x0.dim() - 1))
    return torch.maximum(torch.minimum(x0, s), -s) * (data_range / s)
