"""Progressive distillation (issue 25) of the default dino run or the default MNIST run (the teacher's kind
decides): the students' quality against the teacher's, and the time it takes. Run by hand, not by the test suite:

    PYTHONPATH=src python bench/distill.py --train runs/bench-dino --out runs/bench-dino-s1 --steps 1
    PYTHONPATH=src python bench/distill.py --teacher RUN_DIR --out OUT --steps 4 [--teacher-steps 64 --epochs 100]
    PYTHONPATH=src python bench/distill.py --teacher RUN_DIR --teacher-ode        # the teacher's ODE alone
    PYTHONPATH=src python bench/distill.py --teacher MNIST_RUN --out OUT [--steps 8] [--kimg 12] [--repeats 3]
    PYTHONPATH=src python bench/distill.py --teacher MNIST_RUN --out OUT --timing-only   # OUT distilled already

Points. Target: the 4-step student within 0.03 of the teacher's 1000-step ancestral precision and coverage (1000
samples, seed 1234, against 3 fresh reference draws of 1000 true points: the scorer of train's quality.json),
energy distance <= 0.01, and the distillation (the rounds up to 4 steps) no longer than the teacher's training.
Each round's numbers are its own quality.json (its final samples: DDIM on its own grid, as train scores a run).

--teacher-ode (was bench/teacher_ode.py: bench/results/teacher_ode_dino_cpu.log): how good can a deterministic
few-step student be? The teacher's DDIM (the probability-flow ODE that distillation compresses) against ancestral
sampling, on the grids distillation starts from; each line 1000 samples (seed 1234) scored as above.

Images (was bench/distill_mnist.py: bench/results/distill_mnist_2kimg_cpu.log): an 8-step student's
classifier-FID against the teacher's 50-step DPM-Solver++ samples, and the seconds for 1000 images of each in the
same sitting. Targets: classifier-FID within 1.2x of the teacher's (both 1000 images, seed 1234, held-out digits);
1000 images in at most a fifth of the teacher's time; distilling no longer than the teacher trained (quality.json's
train_seconds of both, same host).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from tiny_diffusion import runs
from tiny_diffusion.config import TrainConfig
from tiny_diffusion.eval.points import data_floor, quality, references
from tiny_diffusion.runtime.host import log_header
from tiny_diffusion.sampling import describe_grid, sample
from tiny_diffusion.train import train
from tiny_diffusion.train.distill import distill, read_record

TOLERANCE = 0.03  # precision and coverage of the 4-step student vs the teacher's ancestral 1000 steps
MAX_ENERGY = 0.01
FID_RATIO, TIME_SHARE = 1.2, 0.2  # images: the student's classifier-FID and sampling time against the teacher's
ODE_GRIDS = [("ddpm", None, None), ("ddim", None, None), ("ddim", 256, "logsnr"), ("ddim", 128, "logsnr"),
             ("ddim", 64, "logsnr"), ("ddim", 64, None), ("ddim", 32, None), ("ddpm", 64, "logsnr"),
             ("ddpm", 256, "logsnr")]

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


def teacher_ode(teacher: Path) -> None:
    """The teacher's DDIM and ancestral sampling on the grids distillation starts from (--teacher-ode)."""
    _, model, diffusion = runs.load_run(teacher)
    refs = references("dino")
    for sampler, steps, spacing in ODE_GRIDS:
        x = sample(model, diffusion, 1000, 1234, sampler=sampler, steps=steps, spacing=spacing).numpy()
        print(f"{describe_grid(sampler, diffusion, steps, spacing):45s} {quality(x, refs)}")


def points(args, teacher: Path, options: dict) -> None:
    """Distil the dino teacher into args.out and score the teacher's samplers and every round's student."""
    tq = json.loads((teacher / runs.QUALITY).read_text())
    print(f"teacher {teacher}: trained {tq['train_seconds']:.1f} s; ancestral 1000 steps: {tq['quality']}")
    start = time.perf_counter()
    distill(teacher, args.out, args.steps, progress=False, **options)
    wall = time.perf_counter() - start
    record = read_record(args.out)
    refs = references("dino")
    cfg, model, diffusion = runs.load_run(teacher)
    n = len(record["teacher"]["grid"])
    rows = []
    # the teacher's DDIM on the grid the rounds halve (DDIM's default grid for n steps), its DPM-Solver++ at 10
    # steps (the samplers' figure of docs/samplers.md), and its plain DDIM at the student's step count
    extra = [("ddim", args.figure_steps)] if args.figure and args.figure_steps != args.steps else []
    for sampler, k in (("ddpm", 1000), ("ddim", n), ("dpm++", 10), ("ddim", args.steps), *extra):
        q, s = scored(model, diffusion, refs, ("teacher", sampler, k), sampler=sampler, steps=k)
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


def seconds_for_1000(run_dir, repeats: int, **kw) -> list[float]:
    _, model, diffusion = runs.load_run(run_dir)
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        sample(model, diffusion, 1000, 1234, **kw)
        out.append(time.perf_counter() - start)
    return out


def images(args, teacher: Path, options: dict) -> None:
    """Distil the MNIST teacher into args.out (unless --timing-only), its rounds' classifier-FID, the timing."""
    if not args.timing_only:
        distill(teacher, args.out, args.steps, progress=False, **options)
    record = read_record(args.out)
    tq, sq = (json.loads((Path(d) / runs.QUALITY).read_text()) for d in (teacher, args.out))
    distilled = sum(r["seconds"] for r in record["rounds"])
    print(f"teacher: {tq['n_eval']} images, dpm++ {runs.run_config(teacher).eval_steps} steps: classifier-FID "
          f"{tq['quality']['fid_features']:.3f}; trained {tq['train_seconds']:.1f} s")
    for r in record["rounds"]:
        q = json.loads((Path(args.out) / r["folder"] / runs.QUALITY).read_text())
        print(f"round {r['round']}: {r['steps']} steps, {r['kimg']:g} kimg, {r['seconds']:.1f} s; its {q['n_eval']} "
              f"images: classifier-FID {q['quality']['fid_features']:.3f}")
    ratio = sq["quality"]["fid_features"] / tq["quality"]["fid_features"]
    print(f"student: {sq['n_eval']} images, {args.steps} steps: classifier-FID {sq['quality']['fid_features']:.3f} = "
          f"{ratio:.2f}x the teacher's (target <= {FID_RATIO}x: {'met' if ratio <= FID_RATIO else 'NOT met'}); "
          f"distilled in {distilled:.1f} s vs the teacher's {tq['train_seconds']:.1f} s of training "
          f"({'met' if distilled <= tq['train_seconds'] else 'NOT met'})")
    if args.repeats == 0:
        return
    teacher_s = seconds_for_1000(teacher, args.repeats, sampler="dpm++", steps=50, spacing="logsnr")
    student_s = seconds_for_1000(args.out, args.repeats, sampler="ddim", steps=args.steps)
    t, s = statistics.median(teacher_s), statistics.median(student_s)
    print(f"1000 images: teacher (dpm++ 50 steps) {t:.1f} s (runs {', '.join(f'{v:.1f}' for v in teacher_s)}), "
          f"student ({args.steps} steps) {s:.1f} s (runs {', '.join(f'{v:.1f}' for v in student_s)}): "
          f"{s / t:.3f} of the teacher's time (target <= {TIME_SHARE}: {'met' if s <= TIME_SHARE * t else 'NOT met'})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher", help="a finished default dino or MNIST run")
    p.add_argument("--train", help="train the default dino run here first")
    p.add_argument("--out", help="the student's folder (new; existing with --timing-only)")
    p.add_argument("--steps", type=int, default=None, help="the student's steps (default 4 for points, 8 for images)")
    p.add_argument("--teacher-steps", type=int, default=None)
    p.add_argument("--epochs", type=int, default=None, help="points: epochs per round (default: distill's)")
    p.add_argument("--kimg", type=float, default=None, help="images: kimg per round (default: distill's)")
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--prediction", default="v")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--teacher-ode", action="store_true", help="score the teacher's ODE grids only (no distilling)")
    p.add_argument("--json", help="points: write the numbers here too")
    p.add_argument("--figure", help="points: a PNG of the teacher's 1000 steps, its DDIM and the student at "
                   "--figure-steps")
    p.add_argument("--figure-steps", type=int, default=4)
    p.add_argument("--repeats", type=int, default=3, help="images: timed draws of 1000 images each, medians (0: no "
                   "timing)")
    p.add_argument("--timing-only", action="store_true", help="images: OUT is distilled already")
    args = p.parse_args()
    if not (args.teacher or args.train) or not (args.out or args.teacher_ode):
        p.error("give --teacher RUN (or --train RUN) and --out OUT (or --teacher-ode)")
    torch.set_num_threads(args.threads)
    print(log_header())
    print(f"threads: {torch.get_num_threads()}", flush=True)
    teacher = Path(args.teacher or args.train)
    if args.train:
        train(TrainConfig(), teacher, progress=False)
    if args.teacher_ode:
        return teacher_ode(teacher)
    kind = runs.run_config(teacher).kind
    wrong = [flag for flag, given in (("--epochs", args.epochs is not None), ("--json", args.json),
                                      ("--figure", args.figure)) if given and kind == "images"] + \
            [flag for flag, given in (("--kimg", args.kimg is not None), ("--timing-only", args.timing_only))
             if given and kind != "images"]
    if wrong:
        p.error(f"{', '.join(wrong)}: not for a teacher of {kind} ({teacher})")
    args.steps = args.steps or (8 if kind == "images" else 4)
    length = None if (args.kimg if kind == "images" else args.epochs) is None else \
        {"kimg": args.kimg} if kind == "images" else {"epochs": args.epochs}
    options = {"teacher_steps": args.teacher_steps, "prediction": args.prediction, "length": length, "lr": args.lr}
    (images if kind == "images" else points)(args, teacher, options)


if __name__ == "__main__":
    main()
