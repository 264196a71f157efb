"""`tiny-diffusion plot forward|reverse`: the classic figures as a grid of panels."""

from __future__ import annotations

from ..config import TrainConfig
from ..errors import InputError
from .common import (SCHEDULE_FIELDS, add_config_flags, add_device_flag, add_sampling_flags, add_threads_flag,
                     config_overrides, device_of, flag_name, output_path, planner_of, positive_int,
                     sampling_flags_given, seed_arg, torch_threads)
from .conditional import add_class_flags


def add_parser(sub) -> None:
    p = sub.add_parser("plot", help="the classic figures: forward or reverse process as a grid")
    p.add_argument("process", choices=("forward", "reverse"))
    p.add_argument("run_dir", nargs="?", metavar="RUN_DIR", help="run folder (reverse: required; forward: its data "
                    "and schedule)")
    p.add_argument("--out", required=True, help="FILE.png|.pdf|.svg")
    p.add_argument("--dataset", default=None, help="data set (forward only; default the run's, or dino)")
    p.add_argument("--data-dir", help="folder holding the image data set's files (forward only; else downloaded)")
    p.add_argument("--n", type=positive_int, default=None, help="points (default 1000) or image rows (default 8)")
    p.add_argument("--seed", type=seed_arg, default=0, help="seed of the data draw and of the noise (default 0)")
    p.add_argument("--panels", type=positive_int, default=10, help="snapshots in the grid (default 10)")
    add_device_flag(p)
    add_threads_flag(p)
    add_config_flags(p, SCHEDULE_FIELDS, scope="forward only (reverse uses the run's): ")
    add_class_flags(p)  # reverse only
    add_sampling_flags(p.add_argument_group("sampling (plot reverse only; default: as the run's final samples)"))
    p.set_defaults(func=run)


def run(args) -> int:
    out = output_path(args.out, (".png", ".pdf", ".svg"))
    from ..viz import figures

    given = config_overrides(args, SCHEDULE_FIELDS)
    if args.process == "forward":
        if args.run_dir:  # the run's own data and schedule; flags may change them
            from ..runs import run_config

            base = run_config(args.run_dir).to_dict()
            changes = {k: v for k, v in (("dataset", args.dataset), ("data_dir", args.data_dir)) if v is not None}
            cfg = TrainConfig.from_dict({**base, **changes, **given}, f"{args.run_dir}/config.json")
        else:
            changes = {"dataset": args.dataset or "dino", **({"data_dir": args.data_dir} if args.data_dir else {})}
            cfg = TrainConfig.from_dict({**given, **changes})
        if args.classes is not None or args.guidance is not None or args.guidance_interval is not None:
            raise InputError("plot forward noises real data, which asks for no class; drop --class, --guidance and "
                             "--guidance-interval")
        sampling_flags = sampling_flags_given(args)
        if sampling_flags:
            raise InputError(f"plot forward noises real data and samples nothing; drop {', '.join(sampling_flags)}")
        with torch_threads(args.threads):
            figures.forward_figure(cfg, out, args.n, args.seed, args.panels)
    else:
        if not args.run_dir:
            raise InputError("plot reverse: give the run folder, e.g. `tiny-diffusion plot reverse runs/dino-...`")
        ignored = [flag_name(k) for k in given] + ["--dataset"] * (args.dataset is not None) + \
                  ["--data-dir"] * (args.data_dir is not None)
        if ignored:
            raise InputError(f"plot reverse samples the run's own model, data and schedule; drop {', '.join(ignored)}")
        grid = []
        with torch_threads(args.threads):
            figures.reverse_figure(args.run_dir, out, args.n, args.seed, args.panels, device_of(args.device),
                                   planner_of(args, grid), progress=None)
        print(f"wrote {out} ({grid[0]}, seed {args.seed})")
        return 0
    print(f"wrote {out}")
    return 0
