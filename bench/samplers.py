"""Few-step samplers on the default dino model: quality at <= 10 network evaluations against full
ancestral sampling, and the time to draw 1000 points. Run by hand, not by the test suite:

    PYTHONPATH=src python bench/samplers.py --run RUN_DIR          # a trained default dino run
    PYTHONPATH=src python bench/samplers.py --train runs/bench-dino # train one first (default config)

Targets (issue 4): some sampler at <= 10 NFE within the data floor's spread of full ancestral
sampling (energy within 0.005, precision and coverage within 0.02), and 1000 points in <= 20 ms on
2 cores; its last line times the full ancestral sampling (issue 2: 1000 points x 1000 steps in <= 1 s).
Quality numbers are averaged over --seeds sampling seeds (each scored against the same fresh references) so
that seed-to-seed noise does not decide the comparison; times are medians.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time

import numpy as np
import torch

from tiny_diffusion.config import TrainConfig
from tiny_diffusion.eval.points import data_floor, quality, references
from tiny_diffusion.core.noise import SampleNoise
from tiny_diffusion.runs import load_run
from tiny_diffusion.sampling import sample

from tiny_diffusion.runtime.host import log_header

TOLERANCE = {"energy": 0.005, "precision": 0.02, "coverage": 0.02}
CANDIDATES = [  # (sampler, steps, spacing, lambda_min): few-step settings measured against full ancestral
    ("dpm++", 10, "logsnr", -2.5), ("dpm++", 8, "logsnr", -2.5), ("dpm++", 5, "logsnr", -2.5),
    ("dpm++", 10, "logsnr", None), ("dpm++", 10, "trailing", None),
    ("ddim", 10, "logsnr", -2.5), ("ddim", 10, "logsnr", None), ("ddim", 10, "trailing", None),
]


def mean_quality(model, diffusion, refs, n, seeds, **kw):
    """Quality averaged over sampling seeds, and its spread (std over seeds) per metric."""
    scores = [quality(sample(model, diffusion, n, seed, **kw).numpy(), refs).as_dict() for seed in seeds]
    return ({k: float(np.mean([s[k] for s in scores])) for k in TOLERANCE},
            {k: float(np.std([s[k] for s in scores])) for k in TOLERANCE})


def time_sampling(model, diffusion, n, repeats, **kw):
    sample(model, diffusion, n, 0, **kw)  # warm-up
    times = []
    for r in range(repeats):
        start = time.perf_counter()
        sample(model, diffusion, n, r, **kw)
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", help="a trained run folder (default dino config)")
    src.add_argument("--train", metavar="OUT", help="train the default dino config into OUT first")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2, the target machine)")
    p.add_argument("--n", type=int, default=1000, help="points per sample set (default 1000)")
    p.add_argument("--seeds", type=int, default=5, help="sampling seeds averaged for quality (default 5)")
    p.add_argument("--repeats", type=int, default=21, help="timing repeats, median reported (default 21)")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    if args.train:
        from tiny_diffusion.train import train

        train(TrainConfig.from_dict({"device": "cpu"}), args.train, progress=False)
        args.run = args.train
    cfg, model, diffusion = load_run(args.run, "cpu")
    refs = references(cfg.dataset, n=args.n)
    floor = data_floor(cfg.dataset, n=args.n)
    seeds = list(range(args.seeds))
    print(log_header(), flush=True)
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; run {args.run} ({cfg.dataset}, T = {cfg.timesteps})")
    print(f"data floor: energy {floor.energy:.4f} precision {floor.precision:.3f} coverage {floor.coverage:.3f}")

    ref_q, ref_sd = mean_quality(model, diffusion, refs, args.n, seeds, sampler="ddpm")
    print(f"ddpm  {cfg.timesteps:4d} NFE (full ancestral): " + "  ".join(
        f"{k} {ref_q[k]:.4f}±{ref_sd[k]:.4f}" for k in TOLERANCE))
    results = {"reference": {"sampler": "ddpm", "nfe": cfg.timesteps, **ref_q}, "floor": floor.as_dict(),
               "candidates": []}
    for sampler, steps, spacing, lambda_min in CANDIDATES:
        grid = {"sampler": sampler, "steps": steps, "spacing": spacing, "lambda_min": lambda_min}
        q, sd = mean_quality(model, diffusion, refs, args.n, seeds, **grid)
        med, best = time_sampling(model, diffusion, args.n, args.repeats, **grid)
        # energy: lower is better, so only a rise counts against the sampler; precision/coverage both ways
        ok = (q["energy"] - ref_q["energy"] <= TOLERANCE["energy"]
              and all(abs(q[k] - ref_q[k]) <= TOLERANCE[k] for k in ("precision", "coverage")))
        results["candidates"].append({**grid, "nfe": steps, **q,
                                      "median_ms": med * 1e3, "min_ms": best * 1e3, "quality_ok": ok})
        start = "" if lambda_min is None else f" from lambda {lambda_min}"
        print(f"{sampler:5s} {steps:4d} NFE {spacing:8s}{start}: " + "  ".join(
            f"{k} {q[k]:.4f} ({q[k] - ref_q[k]:+.4f})" for k in TOLERANCE)
              + f"  | {args.n} pts: median {med * 1e3:.1f} ms (min {best * 1e3:.1f})  quality {'OK' if ok else 'MISS'}")
    noise_times = []
    for r in range(3):  # the per-sample seeding's own cost: n points x T steps of noise, no network
        noise, start = SampleNoise(r, args.n, (2,)), time.perf_counter()
        for _ in range(cfg.timesteps + 1):
            noise.randn()
        noise_times.append(time.perf_counter() - start)
    print(f"per-sample noise for {args.n} points x {cfg.timesteps} steps: median {statistics.median(noise_times) * 1e3:.0f} ms")
    med, best = time_sampling(model, diffusion, args.n, max(3, args.repeats // 7), sampler="ddpm")
    print(f"ddpm  {cfg.timesteps:4d} NFE: {args.n} pts median {med * 1e3:.0f} ms (min {best * 1e3:.0f})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
