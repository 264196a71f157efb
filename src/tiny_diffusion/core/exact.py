"""The exact denoiser of a Gaussian mixture: E[x0 | x_t] in closed form, the best any network can do.

With it a sampler's error is the sampler's own, so it is the known answer sampler tests compare with,
and the yardstick a trained model is measured against (bench/exact_dino.py; the Datasaurus shapes are
such mixtures, `data.points.datasaurus_mixture`). For data x0 ~ sum_k w_k N(m_k, diag(s_k^2)) and
x_t = a x0 + sigma eps (a = sqrt(alpha_bar_t), sigma^2 = 1 - alpha_bar_t):
    x_t | k ~ N(a m_k, diag(a^2 s_k^2 + sigma^2))                       (each component, noised)
    P(k | x_t) = softmax_k(log w_k + log N(x_t; a m_k, a^2 s_k^2 + sigma^2))
    E[x0 | x_t, k] = m_k + a s_k^2 / (a^2 s_k^2 + sigma^2) (x_t - a m_k)   (Gaussian conditioning)
    E[x0 | x_t] = sum_k P(k | x_t) E[x0 | x_t, k]
"""

from __future__ import annotations

import math

import torch

from .diffusion import Diffusion


class MixtureDenoiser(torch.nn.Module):
    """A network stand-in: forward(x_t, t) returns the exact eps, x0 or v (the diffusion's prediction
    target) for data from the mixture with means (k, d), per-component or shared std (k, d) or (d,), and
    weights (k,) (default equal). Computed in float64, returned in x_t's dtype."""

    def __init__(self, diffusion: Diffusion, means, stds, weights=None):
        super().__init__()
        self.diffusion = diffusion
        self.means = torch.as_tensor(means, dtype=torch.float64)  # (k, d)
        k, dim = self.means.shape
        self.vars = torch.as_tensor(stds, dtype=torch.float64).expand(k, dim) ** 2  # (k, d)
        w = torch.ones(k, dtype=torch.float64) if weights is None else torch.as_tensor(weights, dtype=torch.float64)
        self.log_weights = torch.log(w / w.sum())  # (k,)
        self.alpha_bar = diffusion.alpha_bar.detach().to(device="cpu", dtype=torch.float64)

    def _x0(self, x: torch.Tensor, t: torch.Tensor):
        """E[x0 | x_t] for x_t (n, d) in float64 on the CPU at step t, and alpha_bar_t as (n or 1, 1)."""
        ab = self.alpha_bar[t].reshape(-1, 1, 1)  # (n or 1, 1, 1)
        a = ab.sqrt()
        var = a**2 * self.vars + (1 - ab)  # (n or 1, k, d): variance of x_t given component k
        diff = x[:, None, :] - a * self.means  # (n, k, d)
        log_lik = -0.5 * (diff**2 / var + torch.log(2 * math.pi * var)).sum(-1)  # (n, k)
        resp = torch.softmax(self.log_weights + log_lik, dim=1)  # P(k | x_t), (n, k)
        x0_k = self.means + a * self.vars / var * diff  # E[x0 | x_t, k], (n, k, d)
        return torch.einsum("nk,nkd->nd", resp, x0_k), ab[:, :, 0]

    def x0(self, xt: torch.Tensor, t) -> torch.Tensor:
        """E[x0 | x_t] for x_t (n, d) at step t (a scalar or one per row), in float64."""
        return self._x0(xt.detach().cpu().double(), torch.as_tensor(t).cpu())[0]

    def forward(self, xt: torch.Tensor, t) -> torch.Tensor:
        x = xt.detach().cpu().double()
        x0, ab = self._x0(x, torch.as_tensor(t).cpu())
        a, sigma = ab.sqrt(), (1 - ab).sqrt()
        eps = (x - a * x0) / sigma
        out = {"eps": eps, "x0": x0, "v": a * eps - sigma * x0}[self.diffusion.prediction]
        return out.to(device=xt.device, dtype=xt.dtype)
