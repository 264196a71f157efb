"""Few-step sampling with the exact dino denoiser, and where a trained model loses against it.
Run by hand, not by the test suite:

    PYTHONPATH=src python bench/exact_dino.py                     # the exact denoiser alone
    PYTHONPATH=src python bench/exact_dino.py --run RUN_DIR       # also: exact below / above a step
    PYTHONPATH=src python bench/exact_dino.py --nll [--n 300]     # the NLL of a perfect network (a few minutes)

The dino is a mixture of 142 small Gaussians (data.points.datasaurus_mixture), so E[x0 | x_t] is
known in closed form (exact.MixtureDenoiser). With it, any gap between a few-step sampler and full
ancestral sampling is the sampler's own. With --run, the trained model answers at some steps and the
exact denoiser at the others (t <= --switch or t > --switch), which shows at which noise levels the
model's errors cost the few-step sampler its quality. Quality: mean over --seeds sampling seeds of
1000 samples each, scored against the same fresh references; 'off clusters': the share of samples
more than 6 cluster widths from every cluster centre.

--nll (was bench/nll_exact_dino.py): the exact NLL of held-out dino points under a perfect network, the
probability-flow ODE and the -ELBO of eval/likelihood.py with the mixture's exact eps (core/exact.py's formula,
differentiable) in place of a trained network, for T = 1000 and the classic T = 50, beside the true density's NLL.
Notebook 01's section 7 quotes it: with a perfect network both estimates rank T = 1000 first, so a trained T = 1000
network's worse ODE NLL is the network's error, not the formula's.
"""

from __future__ import annotations

import argparse
import math
import platform
import warnings
import sys

import numpy as np
import torch

from tiny_diffusion.data.points import datasaurus_mixture
from tiny_diffusion.core.diffusion import Diffusion
from tiny_diffusion.core.exact import MixtureDenoiser
from tiny_diffusion.eval.points import quality, references
from tiny_diffusion.core.schedules import make_betas
from tiny_diffusion.sampling import sample
from tiny_diffusion.core.samplers import timesteps

from tiny_diffusion.runtime.host import log_header

FEW = {"sampler": "dpm++", "steps": 10, "spacing": "logsnr", "lambda_min": -2.5}  # the recommended few-step setting
SETTINGS = [
    ("`ddpm`, 1000 NFE (full ancestral)", {"sampler": "ddpm"}),
    ("`dpm++`, 10 NFE, logsnr, lambda_min -2.5", FEW),
    ("`dpm++`, 10 NFE, logsnr", {"sampler": "dpm++", "steps": 10, "spacing": "logsnr"}),
    ("`dpm++`, 8 NFE, logsnr, lambda_min -2.5", {**FEW, "steps": 8}),
    ("`ddim`, 10 NFE, logsnr, lambda_min -2.5", {**FEW, "sampler": "ddim"}),
    ("`dpm++`, 1000 NFE (the ODE, solved finely)", {"sampler": "dpm++"}),
]


class Switch(torch.nn.Module):
    """`low` at steps t <= switch, `high` above: two denoisers with the same prediction target."""

    def __init__(self, low, high, switch: int):
        super().__init__()
        self.low, self.high, self.switch = low, high, switch

    def forward(self, x, t):
        return self.low(x, t) if int(t) <= self.switch else self.high(x, t)


MEANS, STD = datasaurus_mixture("dino")


def off_clusters(x: np.ndarray) -> float:
    """Share of points more than 6 cluster widths (std) from every one of the 142 cluster centres:
    points stranded between clusters (true samples: none in 1000)."""
    dist = np.sqrt((((x[:, None, :] - MEANS[None]) / STD) ** 2).sum(-1)).min(1)
    return float((dist > 6).mean())


def mean_quality(model, diffusion, refs, seeds, **kw) -> dict:
    xs = [sample(model, diffusion, 1000, seed, **kw).numpy() for seed in range(seeds)]
    scores = [{**quality(x, refs).as_dict(), "off": off_clusters(x)} for x in xs]
    return {k: float(np.mean([s[k] for s in scores])) for k in ("energy", "precision", "coverage", "off")}


def row(label, q) -> str:
    return f"| {label} | {q['energy']:.4f} | {q['precision']:.3f} | {q['coverage']:.3f} | {q['off']:.3f} |"


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


class EpsNet(torch.nn.Module):
    def __init__(self, eps):
        super().__init__()
        self.eps = eps

    def forward(self, x, t):
        return self.eps(x, int(t)).float()


def exact_nll(n: int) -> None:
    """The ODE NLL and -ELBO of n held-out dino points with the exact eps, T = 1000 and 50, beside the truth."""
    import tiny_diffusion as td
    from tiny_diffusion.eval.likelihood import HELD_OUT_SEED, elbo_nll, ode_nll

    means, var = torch.tensor(MEANS), torch.tensor(STD) ** 2
    x = torch.tensor(td.load_dataset("dino", n, HELD_OUT_SEED), dtype=torch.float64)
    log_k = -0.5 * ((x[:, None] - means) ** 2 / var + torch.log(2 * math.pi * var)).sum(-1)
    print(f"true density: NLL {-(torch.logsumexp(log_k, 1) - math.log(len(means))).mean():.4f} nats/point, "
          f"n = {n}", flush=True)
    for T in (1000, 50):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # T = 50's alpha_bar_T = 0.60: the point of the comparison
            diffusion = td.Diffusion.from_config(td.TrainConfig(timesteps=T))
        eps = exact_eps(diffusion, means, var)
        for steps in ([100, None] if T == 1000 else [None]):  # 100: eval.likelihood's default levels
            nll = ode_nll(eps, diffusion.alpha_bar.double(), x, steps).mean()
            print(f"T = {T}: exact denoiser, ODE NLL {nll:.4f} ({steps or 'all'} levels)", flush=True)
        print(f"T = {T}: exact denoiser, -ELBO {elbo_nll(EpsNet(eps), diffusion, x.float()).mean():.4f}", flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", help="a trained dino run (default config) to compare with the exact denoiser")
    p.add_argument("--seeds", type=int, default=3, help="sampling seeds averaged (default 3)")
    p.add_argument("--switch", type=int, default=40, help="t at and below which --run's model is swapped (default 40)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.add_argument("--nll", action="store_true", help="the NLL of a perfect network instead (no sampling)")
    p.add_argument("--n", type=int, default=300, help="held-out points of --nll (default 300)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.nll:
        exact_nll(args.n)
        return 0
    refs = references("dino")
    print(log_header(), flush=True)
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}")
    if args.run:
        from tiny_diffusion.runs import load_run

        cfg, model, diffusion = load_run(args.run, "cpu")
    else:
        diffusion = Diffusion(make_betas("linear", 1000), "eps")
    exact = MixtureDenoiser(diffusion, MEANS, STD)
    ab = diffusion.alpha_bar.double().numpy()
    print(f"few-step grid {FEW}: t = {timesteps(diffusion.T, FEW['steps'], FEW['spacing'], ab, FEW['lambda_min']).tolist()}")
    print("\nexact denoiser\n\n| setting | energy | precision | coverage | off clusters |\n|---|---|---|---|---|")
    for label, kw in SETTINGS:
        print(row(label, mean_quality(exact, diffusion, refs, args.seeds, **kw)), flush=True)
    if args.run:
        s = args.switch
        print(f"\n{args.run}: who answers at which step\n\n| denoiser, setting | energy | precision | coverage | off clusters |\n|---|---|---|---|---|")
        for label, net in [("model everywhere", model), (f"exact at t <= {s}, model above", Switch(exact, model, s)),
                           (f"model at t <= {s}, exact above", Switch(model, exact, s))]:
            for setting, kw in SETTINGS[:2] + (SETTINGS[-1:] if net is model else []):
                print(row(f"{label}, {setting}", mean_quality(net, diffusion, refs, args.seeds, **kw)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
