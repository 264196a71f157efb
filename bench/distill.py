"""Progressive distillation of the default dino run (issue 25): quality of the 1, 2, 4, 8-step students against
the teacher's full ancestral sampling, and the time it takes. Run by hand, not by the test suite:

    PYTHONPATH=src python bench/distill.py --train runs/bench-dino --out runs/bench-dino-s1 --steps 1
    PYTHONPATH=src python bench/distill.py --teacher RUN_DIR --out OUT --steps 4 [--teacher-steps 64 --epochs 100]

Target: the 4-step student within 0.03 of the teacher's 1000-step ancestral precision and coverage (1000
samples, seed 1234, against 3 fresh reference draws of 1000 true points: the scorer of train's quality.json),
energy distance <= 0.01, and the distillation (the rounds up to 4 steps) no longer than the teacher's training.
Each round's numbers are its own quality.json (its final samples: DDIM on its own grid, as train scores a run).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import time
from pathlib import Path

import torch

from tiny_diffusion import runs
from tiny_diffusion.config import TrainConfig
from tiny_diffusion.eval.points import data_floor, quality, references
from tiny_diffusion.sampling import sample
from tiny_diffusion.train import train
from tiny_diffusion.train.distill import distill, read_record

TOLERANCE = 0.03  # precision and coverage of the 4-step student vs the teacher's ancestral 1000 steps
MAX_ENERGY = 0.01


def host_line() -> str:
    model = next((line.split(":", 1)[1].strip() for line in subprocess.run(["lscpu"], capture_output=True, text=True)
                  .stdout.splitlines() if line.startswith("Model name")), platform.processor())
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    avx = "AVX-512 yes (avx512_bf16)" if "avx512_bf16" in flags else "AVX-512 yes" if "avx512f" in flags else "AVX-512 no"
    return f"host: {model}, {torch.get_num_threads()} threads, {avx}"


DRAWN = {}  # (who, sampler, steps) -> the 1000 samples scored, for the figure


def scored(model, diffusion, refs, key, **kw):
    start = time.perf_counter()
    x = sample(model, diffusion, 1000, 1234, **kw).numpy()
    DRAWN[key] = x
    return quality(x, refs), time.perf_counter() - start


def figure(path: str, steps: int) -> None:
    """The teacher's 1000 ancestral steps, its plain DDIM in `steps` steps, and the student's `steps` steps."""
    from tiny_diffusion.viz import points as plots

    panels = [("teacher: 1000 ancestral steps", DRAWN["teacher", "ddpm", 1000]),
              (f"teacher: DDIM, {steps} steps", DRAWN["teacher", "ddim", steps]),
              (f"distilled student: {steps} steps", DRAWN["student", "ddim", steps])]
    plots.grid(panels, Path(path), cols=3)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher", help="a finished default dino run")
    p.add_argument("--train", help="train the default dino run here first")
    p.add_argument("--out", required=True, help="the student's folder (new)")
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--teacher-steps", type=int, default=None)
    p.add_argument("--epochs", type=int, default=None, help="per round (default: distill's)")
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--prediction", default="v")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", help="write the numbers here too")
    p.add_argument("--figure", help="a PNG of the teacher's 1000 steps, its DDIM and the student at --figure-steps")
    p.add_argument("--figure-steps", type=int, default=4)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(host_line())
    teacher = Path(args.teacher or args.train)
    if args.train:
        train(TrainConfig(), teacher, progress=False)
    tq = json.loads((teacher / runs.QUALITY).read_text())
    print(f"teacher {teacher}: trained {tq['train_seconds']:.1f} s; ancestral 1000 steps: {tq['quality']}")
    start = time.perf_counter()
    distill(teacher, args.out, args.steps, progress=False, teacher_steps=args.teacher_steps, prediction=args.prediction,
            length=None if args.epochs is None else {"epochs": args.epochs}, lr=args.lr)
    wall = time.perf_counter() - start
    record = read_record(args.out)
    refs = references("dino")
    cfg, model, diffusion = runs.load_run(teacher)
    n = len(record["teacher"]["grid"])
    rows = []
    # the teacher's DDIM on the grid the rounds halve (DDIM's default grid for n steps), its DPM-Solver++ at 10
    # steps (the samplers' figure of docs/samplers.md), and its plain DDIM at the student's step count
    extra = [("ddim", args.figure_steps, {})] if args.figure and args.figure_steps != args.steps else []
    for sampler, k, kw in (("ddpm", 1000, {}), ("ddim", n, {}), ("dpm++", 10, {}), ("ddim", args.steps, {}), *extra):
        q, s = scored(model, diffusion, refs, ("teacher", sampler, k), sampler=sampler, steps=k, **kw)
        rows.append({"who": "teacher", "sampler": sampler, "steps": k, **q.as_dict(), "sample_seconds": round(s, 3)})
    total = 0.0
    for r in record["rounds"]:
        total += r["seconds"]
        _, m, d = runs.load_run(Path(args.out) / r["folder"])
        q, s = scored(m, d, refs, ("student", "ddim", r["steps"]), sampler="ddim", steps=r["steps"])
        rows.append({"who": "student", "sampler": "ddim", "steps": r["steps"], **q.as_dict(),
                     "sample_seconds": round(s, 3), "round_seconds": r["seconds"], "distill_seconds": round(total, 3)})
    print(f"floor (real vs real): {data_floor('dino')}")
    print(f"{'who':8s} {'sampler':7s} {'steps':>5s} {'energy':>8s} {'prec':>6s} {'cov':>6s} {'sample s':>8s} "
          f"{'distill s':>9s}")
    for r in rows:
        print(f"{r['who']:8s} {r['sampler']:7s} {r['steps']:5d} {r['energy']:8.4f} {r['precision']:6.3f} "
              f"{r['coverage']:6.3f} {r['sample_seconds']:8.3f} {r.get('distill_seconds', ''):>9}")
    full = rows[0]
    for r in rows:
        if r["who"] == "student" and r["steps"] == 4:
            ok = (abs(r["precision"] - full["precision"]) <= TOLERANCE and abs(r["coverage"] - full["coverage"])
                  <= TOLERANCE and r["energy"] <= MAX_ENERGY and r["distill_seconds"] <= tq["train_seconds"])
            print(f"4 steps vs ancestral 1000: precision {r['precision'] - full['precision']:+.3f}, coverage "
                  f"{r['coverage'] - full['coverage']:+.3f}, energy {r['energy']:.4f}; distilled in "
                  f"{r['distill_seconds']:.1f} s vs the teacher's {tq['train_seconds']:.1f} s: "
                  f"{'met' if ok else 'NOT met'}")
    print(f"wall time of the distillation with each round's sampling and figures: {wall:.1f} s")
    if args.figure:
        figure(args.figure, args.figure_steps)
    if args.json:
        Path(args.json).write_text(json.dumps({"teacher_seconds": tq["train_seconds"], "record": record,
                                               "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
