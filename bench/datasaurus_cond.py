"""The 13-shape Datasaurus target: one class-conditional model of all 13 shapes, each shape sampled by name within
0.1 of its own data floor's precision and coverage, trained in at most 60 s on 2 cores.

    python bench/datasaurus_cond.py                                   # configs/datasaurus-cond.toml, guidance of the run
    python bench/datasaurus_cond.py --guidance 1,1.5,2,3              # quality per shape at several weights
    python bench/datasaurus_cond.py --run runs/ds                     # score an existing run (no training)
    python bench/datasaurus_cond.py -- --epochs 1000 --hidden-size 96 # other train flags on top of the config

Training is `tiny-diffusion train --config configs/datasaurus-cond.toml` as a user runs it; every shape is then
drawn by name (`sample --class NAME`: n = 1000, full ancestral sampling, seed 0) and scored against fresh points of
that shape, beside the shape's own data floor at the same n (eval/points.py). Quality is deterministic for a given
thread count; the training seconds depend on how busy the machine is.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from tiny_diffusion.data.points import DATASAURUS_SHAPES
from tiny_diffusion.eval.points import data_floor, quality, references
from tiny_diffusion.runs import load_run
from tiny_diffusion.sampling import sample

from tiny_diffusion.runtime.host import log_header

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "datasaurus-cond.toml"
TOLERANCE = 0.1  # precision and coverage within this of the shape's data floor
BUDGET_S = 60.0
DINO_README_S = 12.7  # the default dino run's training seconds on the README's machine (2 idle cores)


def train(out: Path, flags: list[str]) -> float:
    cmd = [sys.executable, "-m", "tiny_diffusion", "train", "--config", str(CONFIG), "--out", str(out),
           "--quiet", *flags]
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - start


def dino_seconds() -> float:
    """Training seconds of the default dino run here and now: the yardstick of a busy machine."""
    from tiny_diffusion.config import TrainConfig
    from tiny_diffusion.train import train as train_run

    return train_run(TrainConfig(device="cpu"), None, progress=False).train_seconds


def score(run: Path, weights: list[float] | None, n: int, sampler: str, steps: int | None) -> list[dict]:
    cfg, model, diffusion = load_run(run)
    rows = []
    for w in weights or [cfg.guidance]:
        for k, shape in enumerate(DATASAURUS_SHAPES):
            name = f"datasaurus:{shape}"
            x = sample(model, diffusion, n, 0, sampler=sampler, steps=steps, y=torch.full((n,), k), guidance=w)
            q, floor = quality(x.numpy(), references(name, n)), data_floor(name, n)
            ok = q.precision >= floor.precision - TOLERANCE and q.coverage >= floor.coverage - TOLERANCE
            rows.append({"guidance": w, "shape": shape, **{k: round(v, 4) for k, v in q.as_dict().items()},
                         **{f"floor_{k}": round(v, 4) for k, v in floor.as_dict().items()}, "within_0.1": ok})
            print(f"W = {w:g}  {shape:<11} precision {q.precision:.3f} (floor {floor.precision:.3f})  coverage "
                  f"{q.coverage:.3f} (floor {floor.coverage:.3f})  energy {q.energy:.4f}  {'ok' if ok else 'MISSED'}",
                  flush=True)
        these = [r for r in rows if r["guidance"] == w]
        print(f"W = {w:g}: {sum(r['within_0.1'] for r in these)}/13 shapes within {TOLERANCE} of their floor; worst "
              f"precision gap {max(r['floor_precision'] - r['precision'] for r in these):.3f}, worst coverage gap "
              f"{max(r['floor_coverage'] - r['coverage'] for r in these):.3f}", flush=True)
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", help="score this run instead of training one")
    p.add_argument("--out", default=None, help="run folder to train (default: a temporary folder)")
    p.add_argument("--guidance", help="comma-separated weights (default: the run's guidance)")
    p.add_argument("--n", type=int, default=1000, help="samples per shape (default 1000, the floor's n)")
    p.add_argument("--sampler", default="ddpm")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--json", help="write the rows here")
    p.add_argument("--calibrate", action="store_true", help="also time the default dino run before and after "
                   f"training, and scale the training time to the README's machine (dino: {DINO_README_S} s)")
    p.add_argument("flags", nargs="*", help="extra `train` flags after --")
    args = p.parse_args()
    print(log_header(), flush=True)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads, python {platform.python_version()}", flush=True)
    run = Path(args.run) if args.run else Path(args.out or tempfile.mkdtemp()) / "datasaurus-cond"
    if not args.run:
        before = dino_seconds() if args.calibrate else None
        wall = train(run, args.flags)
        seconds = json.loads((run / "quality.json").read_text())["train_seconds"]
        if args.calibrate:
            dino = (before + dino_seconds()) / 2
            print(f"the default dino run trained in {dino:.1f} s here (mean of before and after; {DINO_README_S} s on "
                  f"the README's machine): this training scales to {seconds * DINO_README_S / dino:.1f} s there",
                  flush=True)
        print(f"trained in {seconds:.1f} s ({wall:.1f} s wall with start-up, final samples and figures); budget "
              f"{BUDGET_S:.0f} s: {'met' if seconds <= BUDGET_S else 'MISSED'} (timing on a shared machine is only "
              f"indicative)", flush=True)
    weights = [float(w) for w in args.guidance.split(",")] if args.guidance else None
    rows = score(run, weights, args.n, args.sampler, args.steps)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
