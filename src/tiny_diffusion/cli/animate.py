"""`tiny-diffusion animate`: a GIF (or MP4) of the training snapshots or of the sampling trajectory."""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from .common import add_device_flag, device_of, output_path, positive_int, seed_arg
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
    add_class_flags(p)  # --reverse only
    p.set_defaults(func=run)


def run(args) -> int:
    import shutil

    from .. import figures

    from ..runs import run_config

    run_dir = Path(args.run_dir)
    run_config(run_dir)  # the one-line error for a folder that is not a run, before anything is written
    name = "reverse" if args.reverse else "animation"  # distinct defaults: --reverse never overwrites training's
    out = Path(args.out) if args.out else run_dir / (name + (".mp4" if shutil.which("ffmpeg") else ".gif"))
    output_path(str(out), (".gif", ".mp4"))
    if out.suffix == ".mp4" and not shutil.which("ffmpeg"):
        raise InputError(f"--out {out}: MP4 needs ffmpeg on PATH; install it or write a .gif")
    if args.reverse:
        figures.reverse_animation(run_dir, out, args.n, args.seed, args.fps, device_of(args.device), args.classes,
                                  args.guidance)
    elif args.classes is not None or args.guidance is not None:
        raise InputError("--class and --guidance apply to --reverse (the training snapshots are already drawn)")
    else:
        figures.training_animation(run_dir, out, args.fps)
    print(f"wrote {out}")
    return 0
