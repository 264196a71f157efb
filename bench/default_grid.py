"""Which timesteps should a K-step sampler visit by default? The evidence behind `sampling.default_grid`,
on a trained run (the default dino model). Run by hand, not by the test suite:

    PYTHONPATH=src python bench/default_grid.py --run RUN_DIR            # both tables below
    PYTHONPATH=src python bench/default_grid.py --run RUN_DIR --part select
    PYTHONPATH=src python bench/default_grid.py --run RUN_DIR --part select --lambdas none,-4,-3,-2.5,-2,-1.5 \
        --samplers dpm++,ddim --select-seeds 3                         # where a grid should start (was lambda_min.py)
    PYTHONPATH=src python bench/default_grid.py --run RUN_DIR --part targets   # issue 5's targets as a user runs them

Part 'grids' (3 seeds): every sampler at each K on each candidate grid: diffusers' `trailing`, `logsnr`
from t = T - 1, and `logsnr` started at lambda_min = -2.5, -2.0, -1.5, -1.0. The last two columns name
the row's best grid by precision + coverage and by energy.

Part 'select' (10 seeds, 10 and 20 NFE, where the choice matters most): for each sampler, the logsnr
start lambda_min (--lambdas; none: from t = T - 1) with the highest precision + coverage (averaged over both K)
among those whose energy is within ENERGY_NOISE of the lowest at both K; beside it, what
sampling.FEW_STEP_LAMBDA_MIN holds.

Part 'targets' (not in 'both'): issue 5's few-step targets as a user meets them, `sample` then `evaluate` the
file, and `evaluate RUN`, for DPM-Solver++ and DDIM at 10 steps on the default grid (and diffusers' `trailing`
grid, for comparison); prints each command and what it printed (was bench/few_step_targets.py).

Each cell: energy / precision / coverage of 1000 samples, averaged over sampling seeds 0..seeds-1, each
scored against the same 3 fresh reference sets (as `tiny-diffusion evaluate` scores).
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from tiny_diffusion.eval.points import quality, references
from tiny_diffusion.runs import load_run
from tiny_diffusion.sampling import FEW_STEP_LAMBDA_MIN, sample
from tiny_diffusion.core.samplers import SAMPLERS, steps_from

from tiny_diffusion.runtime.host import log_header

GRIDS = (("trailing", None), ("logsnr", None), ("logsnr", -2.5), ("logsnr", -2.0), ("logsnr", -1.5), ("logsnr", -1.0))
SELECT_LAMBDAS = "-2.5,-2,-1.75,-1.5,-1"
SELECT_STEPS = (10, 20)
ENERGY_NOISE = 0.002  # energy differences below this are seed noise at n = 1000 (docs/samplers.md)


def grid_name(spacing: str, lambda_min: float | None) -> str:
    return spacing if lambda_min is None else f"{spacing} {lambda_min:g}"


def mean_quality(model, diffusion, refs, seeds: int, **kw) -> dict:
    qs = [quality(sample(model, diffusion, 1000, seed, **kw).numpy(), refs).as_dict() for seed in range(seeds)]
    return {key: float(np.mean([q[key] for q in qs])) for key in ("energy", "precision", "coverage")}


def cell(m: dict) -> str:
    return f"{m['energy']:.4f} / {m['precision']:.3f} / {m['coverage']:.3f}"


def grids_table(model, diffusion, refs, samplers, steps, seeds) -> None:
    alpha_bar = diffusion.alpha_bar.double().cpu().numpy()
    names = [grid_name(*g) for g in GRIDS]
    print(f"| sampler | K | {' | '.join(names)} | best P + C | best energy |\n|---|---|{'---|' * (len(GRIDS) + 2)}")
    for sampler in samplers:
        for k in steps:
            cells, score, energy = [], {}, {}
            for spacing, lambda_min in GRIDS:
                if lambda_min is not None and k > steps_from(alpha_bar, lambda_min):
                    cells.append("n/a")
                    continue
                m = mean_quality(model, diffusion, refs, seeds, sampler=sampler, steps=k, spacing=spacing,
                                 lambda_min=lambda_min)
                score[grid_name(spacing, lambda_min)] = m["precision"] + m["coverage"]
                energy[grid_name(spacing, lambda_min)] = m["energy"]
                cells.append(cell(m))
            print(f"| `{sampler}` | {k} | {' | '.join(cells)} | {max(score, key=score.get)} | "
                  f"{min(energy, key=energy.get)} |", flush=True)


def lambdas(text: str) -> list[float | None]:
    """'none,-2.5,-1.5' -> [None, -2.5, -1.5] (none: the grid starts at t = T - 1)."""
    return [None if v.strip() == "none" else float(v) for v in text.split(",") if v.strip()]


def start(lam: float | None) -> str:
    return "none" if lam is None else f"{lam:g}"


def select_table(model, diffusion, refs, samplers, starts, seeds) -> None:
    heads = " | ".join(f"{k} NFE" for k in SELECT_STEPS)
    print(f"| sampler | lambda_min | {heads} | energy within {ENERGY_NOISE} of the best | mean P + C |\n"
          f"|---|---|{'---|' * (len(SELECT_STEPS) + 2)}")
    for sampler in samplers:
        runs = {lam: [mean_quality(model, diffusion, refs, seeds, sampler=sampler, steps=k, spacing="logsnr",
                                   lambda_min=lam) for k in SELECT_STEPS] for lam in starts}
        best_energy = [min(r[i]["energy"] for r in runs.values()) for i in range(len(SELECT_STEPS))]
        eligible = {lam for lam, r in runs.items()
                    if all(m["energy"] <= e + ENERGY_NOISE for m, e in zip(r, best_energy))}
        score = {lam: float(np.mean([m["precision"] + m["coverage"] for m in r])) for lam, r in runs.items()}
        pick = max(eligible, key=score.get)
        for lam, r in runs.items():
            print(f"| `{sampler}` | {start(lam)}{' (pick)' if lam == pick else ''} | "
                  f"{' | '.join(cell(m) for m in r)} | {'yes' if lam in eligible else 'no'} | {score[lam]:.3f} |",
                  flush=True)
        print(f"{sampler}: pick {start(pick)}; sampling.FEW_STEP_LAMBDA_MIN holds "
              f"{FEW_STEP_LAMBDA_MIN[sampler]:g}", file=sys.stderr, flush=True)


def cli(*args: str) -> str:
    r = subprocess.run([sys.executable, "-m", "tiny_diffusion", *args], capture_output=True, text=True, check=True)
    return r.stdout.strip()


def targets(run: str) -> None:
    """Issue 5's targets as a user meets them: `sample` + `evaluate FILE`, and `evaluate RUN`, at 10 steps."""
    with tempfile.TemporaryDirectory() as tmp:
        for sampler in ("dpm++", "ddim"):
            out = str(Path(tmp) / f"{sampler}.csv")
            drawn = cli('sample', run, '--sampler', sampler, '--steps', '10', '--out', out)
            print(f"$ tiny-diffusion sample {run} --sampler {sampler} --steps 10 --out s.csv && "
                  f"tiny-diffusion evaluate s.csv\n{drawn}\n{cli('evaluate', out, '--dataset', 'dino')}", flush=True)
            print(f"$ tiny-diffusion evaluate {run} --sampler {sampler} --steps 10\n"
                  f"{cli('evaluate', run, '--sampler', sampler, '--steps', '10')}", flush=True)
    print(f"$ tiny-diffusion evaluate {run} --sampler dpm++ --steps 10 --spacing trailing --seed 0\n"
          f"{cli('evaluate', run, '--sampler', 'dpm++', '--steps', '10', '--spacing', 'trailing', '--seed', '0')}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="a trained run folder")
    p.add_argument("--part", choices=("grids", "select", "both", "targets"), default="both")
    p.add_argument("--steps", default="5,10,20,50,100,200,500", help="K of part 'grids', comma-separated")
    p.add_argument("--samplers", default=",".join(SAMPLERS), help="comma-separated (default all three)")
    p.add_argument("--lambdas", default=SELECT_LAMBDAS, help=f"starts of part 'select', comma-separated; none: "
                   f"from t = T - 1 (default {SELECT_LAMBDAS})")
    p.add_argument("--select-seeds", type=int, default=10, help="sampling seeds of part 'select' (default 10)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = p.parse_args(argv)
    if args.part == "targets":
        print(log_header(), flush=True)
        targets(args.run)
        return 0
    torch.set_num_threads(args.threads)
    cfg, model, diffusion = load_run(args.run, "cpu")
    refs = references(cfg.dataset)
    samplers = args.samplers.split(",")
    print(log_header(), flush=True)
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}; run {args.run} "
          f"({cfg.dataset}, T = {cfg.timesteps}, {cfg.schedule}); cells: energy / precision / coverage")
    if args.part in ("grids", "both"):
        print("\n3 seeds:\n")
        grids_table(model, diffusion, refs, samplers, [int(s) for s in args.steps.split(",")], seeds=3)
    if args.part in ("select", "both"):
        print(f"\n{args.select_seeds} seeds:\n")
        select_table(model, diffusion, refs, samplers, lambdas(args.lambdas), seeds=args.select_seeds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
