"""`tiny-diffusion distill`: a few-step student of a finished run (progressive distillation), or --resume one."""

from __future__ import annotations

import argparse
import time

from ..choices import PREDICTIONS
from ..errors import InputError
from .common import add_threads_flag, positive_int, print_quality
from .conditional import guidance_weight


def add_parser(sub) -> None:
    p = sub.add_parser("distill", help="train a few-step student of a run (progressive distillation); writes a run "
                       "folder that samples in --steps steps")
    p.add_argument("run_dir", metavar="RUN_DIR", nargs="?", help="the teacher: a finished run (or a student)")
    p.add_argument("--steps", type=positive_int, help="the student's network evaluations per sample (halving the "
                   "teacher's DDIM grid reaches K/2, K/4, ...; a plain run's grid is chosen to reach it)")
    p.add_argument("--out", help="the student's run folder (new)")
    p.add_argument("--teacher-steps", type=positive_int, default=None, metavar="N",
                   help="the teacher's DDIM grid the rounds halve (default: the smallest STEPS x 2^r >= 64; a "
                        "student teacher: its own grid)")
    p.add_argument("--prediction", choices=PREDICTIONS, default=None,
                   help="the student's prediction target (default v: see docs/distill.md)")
    p.add_argument("--epochs", type=positive_int, default=None, help="points: epochs per round (default 80)")
    p.add_argument("--kimg", type=_kimg, default=None, help="images: thousands of images per round (default 12)")
    p.add_argument("--lr", type=_lr, default=None, help="peak learning rate of each round (default 5e-3 points, "
                   "5e-4 images)")
    p.add_argument("--guidance", type=guidance_weight, default=None, metavar="W",
                   help="class-conditional teacher: the guidance weight folded into the student (default: the "
                        "run's guidance); the student then samples at W = 1")
    p.add_argument("--resume", metavar="OUT", help="continue an interrupted distillation exactly")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_threads_flag(p)
    p.set_defaults(func=run)


def _kimg(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < 1e9:
        raise argparse.ArgumentTypeError(f"{text} must be a positive number")
    return value


def _lr(text: str) -> float:
    value = _kimg(text)
    if value > 10:
        raise argparse.ArgumentTypeError(f"{text} must be at most 10")
    return value


def run(args) -> int:
    from ..train.distill import distill, read_record, run_rounds

    progress = None if not args.quiet else False
    start = time.perf_counter()
    if args.resume:
        given = [f for f, v in (("RUN_DIR", args.run_dir), ("--steps", args.steps), ("--out", args.out),
                                ("--teacher-steps", args.teacher_steps), ("--prediction", args.prediction),
                                ("--epochs", args.epochs), ("--kimg", args.kimg), ("--lr", args.lr),
                                ("--guidance", args.guidance)) if v is not None]
        if given:
            raise InputError(f"--resume OUT continues the distillation as it was planned; drop {given[0]}")
        out, record = args.resume, read_record(args.resume)
        run_rounds(out, record, progress, threads=args.threads)
    else:
        if args.run_dir is None or args.steps is None or args.out is None:
            raise InputError("distill needs RUN_DIR, --steps K and --out OUT (or --resume OUT)")
        out = args.out
        length = _length(args)
        record, _ = distill(args.run_dir, out, args.steps, progress, threads=args.threads,
                                 teacher_steps=args.teacher_steps, prediction=args.prediction or "v", length=length,
                                 lr=args.lr, guidance=args.guidance)
    _report(out, record, start)
    return 0


def _length(args) -> dict | None:
    from ..runs import run_config

    if args.epochs is None and args.kimg is None:
        return None
    kind = run_config(args.run_dir).kind
    flag, wrong = ("--epochs", "--kimg") if kind == "points" else ("--kimg", "--epochs")
    if getattr(args, wrong[2:]) is not None:
        raise InputError(f"{wrong}: a round of a {kind} run is set by {flag}")
    return {"epochs": args.epochs} if kind == "points" else {"kimg": args.kimg}


def _report(out, record: dict, start: float) -> None:
    """The student's quality line beside its teacher's, and the time each round took."""
    import json
    from pathlib import Path

    from ..runs import QUALITY, run_config

    teacher = Path(record["teacher"]["path"])
    dataset = run_config(teacher).dataset
    seconds = [r.get("seconds", 0.0) for r in record["rounds"]]
    print(f"student folder: {out} ({record['steps']} steps, {len(seconds)} rounds from {record['teacher']['what']})")
    print(f"distilled in {sum(seconds):.1f} s of training (rounds: {', '.join(f'{s:.1f}' for s in seconds)} s; "
          f"{time.perf_counter() - start:.1f} s with sampling and figures)")
    for who, folder in (("teacher", teacher), ("student", Path(out))):
        q = json.loads((folder / QUALITY).read_text())
        what = f"{who} ({q.get('n_eval')} samples)"
        if "quality" in q:
            floor = q.get("data_floor")
            print_quality(what, dataset, _Line(q["quality"]), None if floor is None else _Line(floor))
        if "train_seconds" in q and who == "teacher":
            print(f"  (the teacher trained {q['train_seconds']:.1f} s)")


class _Line:
    """A quality.json entry printed as the quality classes print themselves."""

    def __init__(self, values):
        self.values = values

    def __str__(self):
        return "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in self.values.items())
