"""`tiny-diffusion sweep`: train a grid of configurations; CSV and figure."""

from __future__ import annotations

from pathlib import Path

from .common import add_config_flags, add_yes_flag, announce_runs, config_overrides, positive_int


def add_parser(sub) -> None:
    p = sub.add_parser("sweep", help="train a grid of configurations in parallel; CSV and grid figure")
    p.add_argument("--out", required=True, help="sweep folder (runs/, sweep.csv, grid.png)")
    p.add_argument("--config", help="TOML sweep file: [base] values, [grid] lists, [[runs]] tables")
    p.add_argument("--vary", action="append", default=[], metavar="KEY=V1,V2",
                    help="a grid axis, e.g. --vary lr=1e-2,1e-3 (repeat for more axes)")
    p.add_argument("--jobs", type=positive_int, default=1, help="parallel worker processes (default 1)")
    p.add_argument("--shard", default="1/1", help="I/N: run only share I of N (for job arrays; default 1/1)")
    p.add_argument("--collect", action="store_true", help="train nothing; assemble CSV and figure from "
                    "the finished runs of the sweep OUT/sweep.json records (e.g. after all shards)")
    p.add_argument("--tensorboard", action="store_true", help="each run writes TensorBoard event files into its "
                   "folder: `tensorboard --logdir OUT` shows the runs side by side")
    add_yes_flag(p)
    add_config_flags(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..experiments import sweep

    spec = sweep.load_spec(args.config) if args.config else sweep.Spec()
    spec.base = {**spec.base, **config_overrides(args)}
    for axis in args.vary:  # a key given twice adds its values: --vary lr=1e-2 --vary lr=1e-3 is two runs
        key, _, values = axis.partition("=")
        key = key.replace("-", "_").strip()
        spec.grid[key] = [*spec.grid.get(key, []), *sweep.parse_values(values, key)]
    out = Path(args.out)
    if args.collect:
        spec = _recorded_spec(args, spec, out)
    else:
        sweep.run_sweep(spec, out, jobs=args.jobs, shard_of=sweep.parse_shard(args.shard),
                        tensorboard=args.tensorboard, before=announce_runs(args.yes))
    rows = sweep.collect(spec, out)
    if not rows:
        print(f"no finished runs in {out / 'runs'} yet: nothing written")
        return 0
    points = {r.name for r in sweep.expand(spec) if not r.config.images}  # grid.png draws these
    drawn = f"; figure {out / 'grid.png'}" if any(row["run"] in points for row in rows) else \
        " (no figure: grid.png draws runs of points)"
    print(f"{len(rows)} rows in {out / 'sweep.csv'}{drawn}")
    return 0


def _recorded_spec(args, spec, out: Path):
    """--collect: the sweep's own record (OUT/sweep.json); flags that ask for another sweep are refused."""
    from ..errors import InputError
    from ..experiments import sweep

    record = out / sweep.SPEC
    if not record.is_file():
        if not (args.config or args.vary or spec.base):
            raise InputError(f"--collect: {record} not found; run the sweep into --out {out} first")
        return spec
    recorded = sweep.load_spec(record)
    if (args.config or args.vary or spec.base) and spec.to_dict() != recorded.to_dict():
        raise InputError(f"--collect: {out} holds the sweep {record} records, not the one these flags describe; "
                         f"give --out {out} --collect alone")
    return recorded
