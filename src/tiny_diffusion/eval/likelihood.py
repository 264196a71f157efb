"""Log-likelihood of 2D points under a trained model, in nats per point (the diffusion papers' number).

Two estimates:
  nll   -log p(x0) through the probability-flow ODE (Song et al. 2021). With
        y = x / sqrt(alpha_bar) and sigma = sqrt((1 - alpha_bar) / alpha_bar) the ODE is
        dy/dsigma = eps(x, t) (the DDIM ODE, Song et al. 2021a eq. 14), and the log-density changes by
        d log p / dsigma = -tr(d eps / dy) = -sqrt(alpha_bar) tr(d eps / dx). In 2D the trace is exact:
        two backward passes give the 2x2 Jacobian. We integrate from the data (sigma = 0) to x_T with
        Heun's method on the schedule's own sigma levels (the network only knows integer t), then add
        log N(x_T; 0, I), the sampler's prior. Between levels we integrate x itself in u = log sigma
        (dx/du = sqrt(1 - alpha_bar) eps - (1 - alpha_bar) x), where x stays O(1) however large sigma gets.
  elbo  the negative DDPM variational bound, -ELBO (Ho et al. 2020 eq. 5): KL(q(x_T|x0) || N(0, I))
        + sum_t KL(q(x_{t-1}|x_t, x0) || p(x_{t-1}|x_t)) - log N(x0; mu(x_1), beta_1 I), with the
        reverse variance the sampler uses (beta_tilde), one noise draw per t. An upper bound on
        -log p(x0) of the ancestral sampler's model (the Markov chain p(x_{t-1}|x_t) from N(0, I)).

Both are NLL-type numbers (lower is better), but of two different models: the ODE's and the ancestral
chain's share the network, not their densities, so the -ELBO may well lie below the ODE's NLL.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..core.diffusion import Diffusion

LOG_2PI = math.log(2 * math.pi)


def eps_fn(model, diffusion: Diffusion):
    """eps(x, t) of a network, whatever its prediction target (t a Python int)."""

    def eps(x: torch.Tensor, t: int) -> torch.Tensor:
        tt = torch.tensor(t, device=x.device)
        return diffusion.to_x0_eps(model(x, tt), x, tt)[1]

    return eps


def _eps_and_trace(eps, x: torch.Tensor, t: int):
    """eps(x, t) and the exact trace of its Jacobian in x, per point (points are independent)."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        e = eps(x, t)
        trace = sum(torch.autograd.grad(e[:, i].sum(), x, retain_graph=i + 1 < x.shape[1])[0][:, i]
                    for i in range(x.shape[1]))
    return e.detach(), trace.detach()


def _levels(T: int, steps: int | None) -> list[int]:
    """The integer steps t the ODE visits, ascending; all T unless `steps` asks for fewer."""
    if steps is None or steps >= T:
        return list(range(T))
    return sorted({int(round(v)) for v in np.linspace(0, T - 1, max(steps, 2))})


def ode_nll(eps, alpha_bar: torch.Tensor, x0: torch.Tensor, steps: int | None = None) -> torch.Tensor:
    """-log p(x0) per point (nats) of the probability-flow ODE of `eps(x, t)` under the schedule
    alpha_bar (length T), with x_T ~ N(0, I). `steps` thins the levels the ODE visits."""
    ab = alpha_bar.to(torch.float64).cpu()
    levels = _levels(len(ab), steps)
    sq = [math.sqrt(ab[t].item()) for t in levels]  # sqrt(alpha_bar)
    b = [math.sqrt(1 - ab[t].item()) for t in levels]  # sqrt(1 - alpha_bar)
    u = [math.log(bk / ak) for ak, bk in zip(sq, b)]  # log sigma
    d = x0.shape[1]
    x = x0.to(torch.float64)
    delta = torch.zeros(len(x0), dtype=torch.float64, device=x0.device)  # log p(x0) - log p(x_T)

    def f(x, k):  # dx/du = b eps - b^2 x and the trace of its Jacobian
        e, tr = _eps_and_trace(eps, x.to(x0.dtype), levels[k])
        return b[k] * e.to(torch.float64) - b[k] ** 2 * x, b[k] * tr.to(torch.float64) - d * b[k] ** 2

    # data (sigma = 0) -> first level, in y = x / sqrt(alpha_bar): y += sigma_0 eps (Euler, the network
    # has no t = -1), then back to x, whose density gains the factor sqrt(alpha_bar_0)^-d
    e, tr = _eps_and_trace(eps, x0, levels[0])
    sigma0 = b[0] / sq[0]
    x = (x + sigma0 * e.to(torch.float64)) * sq[0]
    delta += sigma0 * sq[0] * tr.to(torch.float64) + d * math.log(sq[0])
    f1 = f(x, 0)
    for k in range(len(levels) - 1):  # Heun in u = log sigma, where x stays O(1)
        h = u[k + 1] - u[k]
        f0 = f1
        x_pred = x + h * f0[0]
        f1 = f(x_pred, k + 1)
        x = x + h * (f0[0] + f1[0]) / 2
        delta += h * (f0[1] + f1[1]) / 2
    log_prior = -0.5 * (x**2).sum(1) - 0.5 * d * LOG_2PI  # log N(x_T; 0, I)
    return -(log_prior + delta)


def _gauss_kl(mean_q, var_q, mean_p, var_p):
    """KL(N(mean_q, var_q I) || N(mean_p, var_p I)) per point, summed over dimensions."""
    d = mean_q.shape[1]
    return 0.5 * (d * (torch.log(var_p / var_q) + var_q / var_p - 1) + ((mean_q - mean_p) ** 2).sum(1) / var_p)


@torch.inference_mode()
def elbo_nll(model, diffusion: Diffusion, x0: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """The DDPM variational bound on -log p(x0), nats per point (one noise draw per step)."""
    g = torch.Generator(device=x0.device).manual_seed(seed)
    D = diffusion
    x0 = x0.to(torch.float64)
    ab_T = D.alpha_bar[-1].to(torch.float64)
    total = _gauss_kl(ab_T.sqrt() * x0, 1 - ab_T, torch.zeros_like(x0), torch.tensor(1.0, dtype=torch.float64))
    for t in range(D.T):
        eps = torch.randn(x0.shape, generator=g, dtype=x0.dtype, device=x0.device)
        tt = torch.tensor(t, device=x0.device)
        xt = D.q_sample(x0.float(), tt, eps.float())
        x0_hat, _ = D.to_x0_eps(model(xt, tt), xt, tt)
        mean_p, _ = D.posterior(x0_hat.double(), xt.double(), tt)
        if t == 0:  # decoder: -log N(x0; mu(x_1), beta_1 I)
            var = D.betas[0].double()
            total += 0.5 * (((x0 - mean_p) ** 2).sum(1) / var + x0.shape[1] * (torch.log(var) + LOG_2PI))
        else:
            mean_q, var_q = D.posterior(x0, xt.double(), tt)
            var_q = var_q.double()
            total += _gauss_kl(mean_q, var_q, mean_p, var_q)
    return total


# 100 ODE levels (Heun between them): under 0.001 nats of error on the Gaussian check with T = 1000
def run_likelihood(model, diffusion: Diffusion, x0: np.ndarray, ode_steps: int | None = 100, seed: int = 0,
                   batch: int = 2000) -> dict:
    """{'nll', 'elbo'}: mean nats per point of held-out points x0 (n, 2) under a model: the probability-flow
    ODE's exact NLL and the -ELBO, an upper bound on the ancestral sampler's NLL (both lower is better)."""
    model.eval()
    device = diffusion.betas.device
    eps = eps_fn(model, diffusion)
    ab = diffusion.alpha_bar.detach().cpu().to(torch.float64)
    nll, elbo = [], []
    for i in range(0, len(x0), batch):
        xb = torch.as_tensor(x0[i:i + batch], dtype=torch.float32, device=device)
        nll.append(ode_nll(eps, ab, xb, ode_steps).cpu())
        elbo.append(elbo_nll(model, diffusion, xb, seed + i).cpu())
    return {"nll": float(torch.cat(nll).mean()), "elbo": float(torch.cat(elbo).mean())}


HELD_OUT_SEED = 30_000  # held-out points: far from the training (cfg.seed) and reference (10_000+) seeds


def held_out_likelihood(model, diffusion: Diffusion, dataset: str, n: int = 1000, ode_steps: int | None = 100) -> dict:
    """NLL and ELBO (nats per point) of n fresh points of `dataset`, never seen in training."""
    from ..data import load_dataset

    return run_likelihood(model, diffusion, load_dataset(dataset, n, HELD_OUT_SEED), ode_steps)


def describe(lik: dict) -> str:
    """The two numbers of `run_likelihood` in one line, both as NLLs in nats per point (lower is better)."""
    return (f"probability-flow ODE {lik['nll']:.4f} (its exact NLL); ancestral DDPM <= {lik['elbo']:.4f} "
            f"(the -ELBO, an upper bound on its NLL); nats/point, lower is better")
