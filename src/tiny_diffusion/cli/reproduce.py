"""`tiny-diffusion reproduce`: rerun the classic ablation study into a Markdown report."""

from __future__ import annotations

from .common import add_yes_flag, announce_runs, positive_int


def add_parser(sub) -> None:
    p = sub.add_parser("reproduce", help="rerun the classic ablation study and write a Markdown report")
    p.add_argument("--out", required=True, help="study folder (runs, figures, README.md report)")
    p.add_argument("--preset", default="quick", choices=("quick", "full", "test"),
                   help="budget: quick (<= 10 min on 2 cores), full (the classic 200 epochs), test (seconds)")
    p.add_argument("--jobs", type=positive_int, default=2, help="parallel worker processes (default 2)")
    add_yes_flag(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..experiments.study import reproduce

    report = reproduce(args.out, args.preset, jobs=args.jobs, before=announce_runs(args.yes))
    print(f"report: {report}")
    return 0
