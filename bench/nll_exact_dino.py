"""The exact NLL of held-out dino points under a perfect network: the probability-flow ODE and the -ELBO of
eval/likelihood.py with the dino mixture's exact eps (core/exact.py's formula, differentiable) in place of a
trained network, for T = 1000 and the classic T = 50, beside the true density's NLL. Notebook 01's section 7 quotes
it: with a perfect network both estimates rank T = 1000 first, so a trained T = 1000 network's worse ODE NLL is the
network's error, not the formula's.

    python bench/nll_exact_dino.py [--n 300]      # a few minutes on 2 cores (the T = 1000 ODE on all levels)
"""

import argparse
import math
import warnings

import torch

import tiny_diffusion as td
from tiny_diffusion.data.points import datasaurus_mixture
from tiny_diffusion.eval.likelihood import HELD_OUT_SEED, elbo_nll, ode_nll


def exact_eps(diffusion, means, var):
    """eps(x_t, t) = (x_t - sqrt(ab) E[x0 | x_t]) / sqrt(1 - ab) of the mixture, in float64, differentiable in x_t."""
    ab_all = diffusion.alpha_bar.double()

    def eps(xt, t):
        xt, ab = xt.double(), ab_all[t]
        a = ab.sqrt()
        v = a**2 * var + (1 - ab)
        diff = xt[:, None, :] - a * means
        resp = torch.softmax(-0.5 * (diff**2 / v + torch.log(2 * math.pi * v)).sum(-1), 1)
        x0 = torch.einsum("nk,nkd->nd", resp, means + a * var / v * diff)
        return (xt - a * x0) / (1 - ab).sqrt()

    return eps


class Net(torch.nn.Module):
    def __init__(self, eps):
        super().__init__()
        self.eps = eps

    def forward(self, x, t):
        return self.eps(x, int(t)).float()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=300, help="held-out points (default 300)")
    args = p.parse_args()
    m, std = datasaurus_mixture("dino")
    means, var = torch.tensor(m), torch.tensor(std) ** 2
    x = torch.tensor(td.load_dataset("dino", args.n, HELD_OUT_SEED), dtype=torch.float64)
    log_k = -0.5 * ((x[:, None] - means) ** 2 / var + torch.log(2 * math.pi * var)).sum(-1)
    print(f"true density: NLL {-(torch.logsumexp(log_k, 1) - math.log(len(means))).mean():.4f} nats/point, "
          f"n = {args.n}", flush=True)
    for T in (1000, 50):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # T = 50's alpha_bar_T = 0.60: the point of the comparison
            diffusion = td.Diffusion.from_config(td.TrainConfig(timesteps=T))
        eps = exact_eps(diffusion, means, var)
        for steps in ([100, None] if T == 1000 else [None]):  # 100: eval.likelihood's default levels
            nll = ode_nll(eps, diffusion.alpha_bar.double(), x, steps).mean()
            print(f"T = {T}: exact denoiser, ODE NLL {nll:.4f} ({steps or 'all'} levels)", flush=True)
        print(f"T = {T}: exact denoiser, -ELBO {elbo_nll(Net(eps), diffusion, x.float()).mean():.4f}", flush=True)


if __name__ == "__main__":
    main()
