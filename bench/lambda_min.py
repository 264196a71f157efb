"""Where should a few-step grid start? Quality of DPM-Solver++ and DDIM (logsnr spacing) for each
--lambda-min, on a trained run. Run by hand, not by the test suite:

    PYTHONPATH=src python bench/lambda_min.py --run RUN_DIR [--seeds 3]

Each row: energy, precision and coverage of 1000 samples, averaged over sampling seeds 0..seeds-1,
scored against the same fresh references. 'none' starts at t = T - 1 (lambda about -5 for the default
linear schedule).
"""

from __future__ import annotations

import argparse
import platform
import sys

import numpy as np
import torch

from tiny_diffusion.eval.points import quality, references
from tiny_diffusion.runs import load_run
from tiny_diffusion.sampling import sample

from tiny_diffusion.runtime.host import log_header

LAMBDA_MINS = (None, -4.0, -3.0, -2.5, -2.0, -1.5)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="a trained run folder")
    p.add_argument("--seeds", type=int, default=3, help="sampling seeds averaged (default 3)")
    p.add_argument("--steps", default="10,20", help="network evaluations, comma-separated (default 10,20)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg, model, diffusion = load_run(args.run, "cpu")
    refs = references(cfg.dataset)
    print(log_header(), flush=True)
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}; run {args.run} "
          f"({cfg.dataset}, T = {cfg.timesteps}, {cfg.schedule})")
    print("| sampler | NFE | lambda_min | energy | precision | coverage |\n|---|---|---|---|---|---|")
    for sampler in ("dpm++", "ddim"):
        for steps in (int(k) for k in args.steps.split(",")):
            for lambda_min in LAMBDA_MINS:
                scores = [quality(sample(model, diffusion, 1000, seed, sampler=sampler, steps=steps, spacing="logsnr",
                                         lambda_min=lambda_min).numpy(), refs).as_dict() for seed in range(args.seeds)]
                mean = {k: float(np.mean([s[k] for s in scores])) for k in ("energy", "precision", "coverage")}
                print(f"| `{sampler}` | {steps} | {'none' if lambda_min is None else lambda_min} | {mean['energy']:.4f} "
                      f"| {mean['precision']:.3f} | {mean['coverage']:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
