"""`tiny-diffusion animate`: a GIF (or MP4) of the training snapshots or of the sampling trajectory."""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from .common import (add_device_flag, add_sampling_flags, add_threads_flag, device_of, output_path, positive_int,
                     planner_of, sampling_flags_given, seed_arg, torch_threads)
from .conditional import add_class_flags


def add_parser(sub) -> None:
    p = sub.add_parser("animate", help="GIF (or MP4 with ffmpeg) of a run's training snapshots, or (--reverse) of "
                       "its sampling, points or images")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--out", help="FILE.gif or FILE.mp4 (default RUN_DIR/animation.mp4 with ffmpeg, else .gif; "
                   "reverse.* for --reverse)")
    p.add_argument("--reverse", action="store_true", help="animate the sampling trajectory x_T ... x_0 instead")
    p.add_argument("--n", type=positive_int, default=None, help="samples for --reverse (default 1000 points or a "
                   "grid of 64 images)")
    p.add_argument("--seed", type=seed_arg, default=0, help="seed of the sampling noise for --reverse (default 0)")
    p.add_argument("--fps", type=positive_int, default=None,  # figures.PLAY_SECONDS, MAX_FPS, HOLD_LAST (no torch here)
                   help="frames per second (default: the frames play in about 5 s, at most 10 fps); the last frame "
                   "stays 2 s")
    add_device_flag(p)
    add_threads_flag(p)
    add_class_flags(p)  # --reverse only
    add_sampling_flags(p.add_argument_group("sampling (--reverse only; default: as the run's final samples)"))
    p.set_defaults(func=run)


def run(args) -> int:
    import shutil

    from ..viz import figures

    from ..runs import run_config

    run_dir = Path(args.run_dir)
    run_config(run_dir)  # the one-line error for a folder that is not a run, before anything is written
    name = "reverse" if args.reverse else "animation"  # distinct defaults: --reverse never overwrites training's
    out = Path(args.out) if args.out else run_dir / (name + (".mp4" if shutil.which("ffmpeg") else ".gif"))
    output_path(str(out), (".gif", ".mp4"))
    if out.suffix == ".mp4" and not shutil.which("ffmpeg"):
        raise InputError(f"--out {out}: MP4 needs ffmpeg on PATH; install it or write a .gif")
    if not args.reverse:
        given = ["--class"] * (args.classes is not None) + ["--guidance"] * (args.guidance is not None) + \
            ["--guidance-interval"] * (args.guidance_interval is not None) + sampling_flags_given(args)
        if given:
            raise InputError(f"{', '.join(given)}: apply to --reverse (the training snapshots are already drawn)")
        figures.training_animation(run_dir, out, args.fps)
        print(f"wrote {out}")
        return 0
    grid = []
    with torch_threads(args.threads):
        figures.reverse_animation(run_dir, out, args.n, args.seed, args.fps, device_of(args.device),
                                  planner_of(args, grid), progress=None)
    print(f"wrote {out} ({grid[0]}, seed {args.seed})")
    return 0
