"""`tiny-diffusion sweep`: train a grid of configurations; CSV and figure."""

from __future__ import annotations

from pathlib import Path

from .common import add_config_flags, config_overrides, positive_int


def add_parser(sub) -> None:
    p = sub.add_parser("sweep", help="train a grid of configurations in parallel; CSV and grid figure")
    p.add_argument("--out", required=True, help="sweep folder (runs/, sweep.csv, grid.png)")
    p.add_argument("--config", help="TOML sweep file: [base] values, [grid] lists, [[runs]] tables")
    p.add_argument("--vary", action="append", default=[], metavar="KEY=V1,V2",
                    help="a grid axis, e.g. --vary lr=1e-2,1e-3 (repeat for more axes)")
    p.add_argument("--jobs", type=positive_int, default=1, help="parallel worker processes (default 1)")
    p.add_argument("--shard", default="1/1", help="I/N: run only share I of N (for job arrays; default 1/1)")
    p.add_argument("--collect", action="store_true", help="train nothing; assemble CSV and figure from "
                    "finished runs (e.g. after all shards)")
    p.add_argument("--tensorboard", action="store_true", help="each run writes TensorBoard event files into its "
                   "folder: `tensorboard --logdir OUT` shows the runs side by side")
    add_config_flags(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..experiments import sweep

    spec = sweep.load_spec(args.config) if args.config else sweep.Spec()
    spec.base = {**spec.base, **config_overrides(args)}
    for axis in args.vary:
        key, _, values = axis.partition("=")
        key = key.replace("-", "_")
        spec.grid[key.strip()] = sweep.parse_values(values, key.strip())
    if not args.collect:
        sweep.run_sweep(spec, args.out, jobs=args.jobs, shard_of=sweep.parse_shard(args.shard),
                        tensorboard=args.tensorboard)
    rows = sweep.collect(spec, args.out)
    print(f"{len(rows)} rows in {Path(args.out) / 'sweep.csv'}; figure {Path(args.out) / 'grid.png'}")
    return 0
