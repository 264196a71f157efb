"""The `tiny-diffusion` command: a thin layer that parses flags and calls the library.

Only argparse and the pure-Python config are imported at start-up, so `--help` is instant;
each command imports torch and matplotlib when it runs. Bad input exits with code 2 and one line.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

from .config import TrainConfig, parse_value
from .errors import InputError

PROG = "tiny-diffusion"


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (no usage block) and exit code 2."""

    def error(self, message: str):
        raise InputError(f"{message} (see `{self.prog} --help`)")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_config_flags(parser: argparse.ArgumentParser, names=None) -> None:
    """One flag per TrainConfig field (or per field in `names`); unset flags stay out of the namespace."""
    for f in TrainConfig.fields():
        if names is not None and f.name not in names:
            continue
        m = f.metadata
        extra = f" ({'|'.join(m['choices'])})" if m["choices"] else ""
        parser.add_argument(_flag(f.name), dest=f.name, default=argparse.SUPPRESS, metavar=f.name.upper(),
                            help=f"{m['help']}{extra}; default {f.default}")


def config_overrides(args: argparse.Namespace, names=None) -> dict:
    """The config values given as flags, parsed to their types."""
    return {f.name: parse_value(f, getattr(args, f.name)) for f in TrainConfig.fields()
            if (names is None or f.name in names) and hasattr(args, f.name)}


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} must be positive")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} must be >= 0")
    return value


def _output_path(path: str, suffixes: tuple[str, ...], flag: str = "--out") -> Path:
    p = Path(path)
    if p.suffix.lower() not in suffixes:
        raise InputError(f"{flag} {path}: unsupported file type; use {' or '.join(suffixes)}")
    if p.parent and not p.parent.exists():
        p.parent.mkdir(parents=True, exist_ok=True)
    return p


# -- commands --------------------------------------------------------------------------------

def cmd_train(args) -> int:
    overrides = config_overrides(args)
    cfg = TrainConfig.from_toml(args.config, overrides) if args.config else TrainConfig.from_dict(overrides, "command line")
    out = args.out or Path("runs") / f"{Path(cfg.dataset).stem.replace(':', '-')}-{time.strftime('%Y%m%d-%H%M%S')}"
    from .train import train

    start = time.perf_counter()
    result = train(cfg, out, progress=None if not args.quiet else False)
    print(f"run folder: {result.out_dir}")
    print(f"trained {cfg.epochs} epochs in {result.train_seconds:.1f} s ({time.perf_counter() - start:.1f} s with "
          f"sampling and figures)")
    print(f"quality of {cfg.frame_points} samples vs {cfg.dataset}: {result.quality}")
    print(f"data floor (true vs true):  {' ' * len(str(cfg.frame_points))}{result.floor}")
    return 0


def _load_run(run_dir: str, device: str):
    from .runs import load_run
    from .train import resolve_device

    dev = resolve_device(device)
    return (*load_run(run_dir, dev), dev)


def cmd_sample(args) -> int:
    out = _output_path(args.out, (".csv", ".npy"))
    cfg, model, diffusion, device = _load_run(args.run_dir, args.device)
    from .samplers import sample

    x = sample(model, diffusion, args.n, args.seed, device=device).cpu().numpy()
    save_points(out, x)
    print(f"wrote {len(x)} samples to {out}")
    return 0


def save_points(path: Path, x) -> None:
    """(n, 2) points to .npy, or to .csv with header x,y."""
    import numpy as np

    from .runs import atomic_write

    if path.suffix.lower() == ".npy":
        atomic_write(path, lambda f: np.save(f, x))
    else:
        rows = "".join(f"{a!r},{b!r}\n" for a, b in x.astype(float).tolist())
        atomic_write(path, lambda f: f.write(("x,y\n" + rows).encode()))


def cmd_evaluate(args) -> int:
    from .metrics import data_floor, quality, references

    target = Path(args.target)
    if target.is_dir():
        cfg, model, diffusion, device = _load_run(str(target), args.device)
        from .samplers import sample

        dataset = args.dataset or cfg.dataset
        x = sample(model, diffusion, args.n, args.seed, device=device).cpu().numpy()
        what = f"{args.n} samples of {target}"
    else:
        from .data import read_points

        x = read_points(target)
        dataset = args.dataset or "dino"
        what = f"{len(x)} points of {target}"
    refs = references(dataset, n=args.n)
    q, floor = quality(x, refs), data_floor(dataset, n=args.n)
    print(f"{what} vs {dataset}: {q}")
    print(f"data floor (true vs true): {floor}")
    if args.nll:
        if not target.is_dir():
            raise InputError("--nll needs a run folder (a model), not a point file")
        from .likelihood import held_out_likelihood

        lik = held_out_likelihood(model, diffusion, dataset, args.n)
        print(f"NLL of {args.n} held-out {dataset} points: {lik['nll']:.4f} nats/point (probability-flow ODE), "
              f"ELBO bound {lik['elbo']:.4f} nats/point")
    return 0


def cmd_plot(args) -> int:
    out = _output_path(args.out, (".png", ".pdf", ".svg"))
    import numpy as np
    import torch

    from . import plots

    if args.process == "forward":
        from .data import load_dataset
        from .diffusion import Diffusion

        cfg = TrainConfig.from_dict({**config_overrides(args, SCHEDULE_FIELDS), "dataset": args.dataset})
        diffusion = Diffusion.from_config(cfg, warn=True)
        x0 = torch.from_numpy(load_dataset(cfg.dataset, args.n, args.seed))
        g = torch.Generator().manual_seed(args.seed)
        # the forward process step by step: x_t = sqrt(alpha_t) x_{t-1} + sqrt(beta_t) eps
        traj = [x0]
        for t in range(diffusion.T):
            eps = torch.randn(x0.shape, generator=g)
            traj.append(diffusion.alphas[t].sqrt() * traj[-1] + diffusion.betas[t].sqrt() * eps)
        traj = torch.stack(traj).numpy()
        plots.process_grid(traj, out, args.panels, steps=list(range(diffusion.T + 1)))
    else:
        if not args.run_dir:
            raise InputError("plot reverse: give the run folder, e.g. `tiny-diffusion plot reverse runs/dino-...`")
        cfg, model, diffusion, device = _load_run(args.run_dir, args.device)
        traj = sampling_trajectory(model, diffusion, args.n, args.seed, device)
        plots.process_grid(traj, out, args.panels, steps=list(range(diffusion.T, -1, -1)))
    print(f"wrote {out}")
    return 0


def sampling_trajectory(model, diffusion, n: int, seed: int, device):
    """(T + 1, n, 2) array: x_T ... x_0 of one seeded ancestral sampling run."""
    import numpy as np
    import torch

    from .samplers import ddpm

    g = torch.Generator(device=device).manual_seed(seed)
    x_T = torch.randn((n, 2), device=device, generator=g)
    return np.stack([x.cpu().numpy() for x in ddpm(model, diffusion, x_T, g)])


def cmd_animate(args) -> int:
    import shutil

    import numpy as np

    from . import plots, runs
    from .train import frame_epochs

    run_dir = Path(args.run_dir)
    cfg = runs.run_config(run_dir)
    out = Path(args.out) if args.out else run_dir / ("animation.mp4" if shutil.which("ffmpeg") else "animation.gif")
    _output_path(str(out), (".gif", ".mp4"))
    if out.suffix == ".mp4" and not shutil.which("ffmpeg"):
        raise InputError(f"--out {out}: MP4 needs ffmpeg on PATH; install it or write a .gif")
    if args.reverse:
        cfg, model, diffusion, device = _load_run(str(run_dir), args.device)
        traj = sampling_trajectory(model, diffusion, args.n, args.seed, device)
        keep = np.unique(np.linspace(0, len(traj) - 1, min(len(traj), 100)).round().astype(int))
        frames, titles = traj[keep], [f"t = {diffusion.T - i}" for i in keep]
    else:
        path = run_dir / runs.FRAMES
        if not path.is_file():
            raise InputError(f"{run_dir}: no {runs.FRAMES}; train with --frames N (N > 0) to record snapshots")
        frames = np.load(path, allow_pickle=False)
        epochs = frame_epochs(cfg.epochs, cfg.frames)
        titles = [f"epoch {e + 1}" for e in epochs] if len(epochs) == len(frames) else None
    plots.animate(frames, out, titles, fps=args.fps)
    print(f"wrote {out}")
    return 0


def cmd_sweep(args) -> int:
    from . import sweep

    spec = sweep.load_spec(args.config) if args.config else sweep.Spec()
    spec.base = {**spec.base, **config_overrides(args)}
    for axis in args.vary:
        key, _, values = axis.partition("=")
        key = key.replace("-", "_")
        spec.grid[key.strip()] = sweep.parse_values(values, key.strip())
    if not args.collect:
        sweep.run_sweep(spec, args.out, jobs=args.jobs, shard_of=sweep.parse_shard(args.shard))
    rows = sweep.collect(spec, args.out)
    print(f"{len(rows)} rows in {Path(args.out) / 'sweep.csv'}; figure {Path(args.out) / 'grid.png'}")
    return 0


def cmd_reproduce(args) -> int:
    from .reproduce import reproduce

    report = reproduce(args.out, args.preset, jobs=args.jobs)
    print(f"report: {report}")
    return 0


def cmd_datasets(args) -> int:
    from .data import dataset_names

    print("\n".join(dataset_names()))
    return 0


SCHEDULE_FIELDS = ("timesteps", "schedule", "beta_start", "beta_end", "terminal_alpha_bar")


# -- the parser ---------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="Denoising diffusion models (DDPM) on 2D point clouds: train, sample, "
                                        "evaluate and plot.")
    from . import __version__

    p.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    t = sub.add_parser("train", help="train a model; writes a run folder")
    t.add_argument("--out", help="run folder to create (default runs/DATASET-TIMESTAMP)")
    t.add_argument("--config", help="TOML file of config values (flat keys or a [train] table); flags override it")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    add_config_flags(t)
    t.set_defaults(func=cmd_train)

    s = sub.add_parser("sample", help="draw samples from a trained run")
    s.add_argument("run_dir", metavar="RUN_DIR")
    s.add_argument("--n", type=_positive_int, default=1000, help="number of samples (default 1000)")
    s.add_argument("--seed", type=_seed, default=0, help="seed of the sampling noise (default 0)")
    s.add_argument("--out", required=True, help="FILE.csv (header x,y) or FILE.npy")
    s.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    s.set_defaults(func=cmd_sample)

    e = sub.add_parser("evaluate", help="energy distance, precision and coverage of samples or of a run")
    e.add_argument("target", metavar="FILE|RUN_DIR", help="a .csv/.npy of points, or a run folder to sample from")
    e.add_argument("--dataset", help="the true distribution (default: the run's data set, or dino for a file)")
    e.add_argument("--n", type=_positive_int, default=1000, help="points per set (default 1000)")
    e.add_argument("--seed", type=_seed, default=0, help="sampling seed for a run folder (default 0)")
    e.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    e.add_argument("--nll", action="store_true", help="also the exact NLL (probability-flow ODE) and the DDPM "
                   "ELBO of held-out points, nats per point (run folders only)")
    e.set_defaults(func=cmd_evaluate)

    pl = sub.add_parser("plot", help="the classic figures: forward or reverse process as a grid")
    pl.add_argument("process", choices=("forward", "reverse"))
    pl.add_argument("run_dir", nargs="?", metavar="RUN_DIR", help="run folder (reverse only)")
    pl.add_argument("--out", required=True, help="FILE.png|.pdf|.svg")
    pl.add_argument("--dataset", default="dino", help="data set (forward only; default dino)")
    pl.add_argument("--n", type=_positive_int, default=1000, help="points (default 1000)")
    pl.add_argument("--seed", type=_seed, default=0)
    pl.add_argument("--panels", type=_positive_int, default=10, help="snapshots in the grid (default 10)")
    pl.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    add_config_flags(pl, SCHEDULE_FIELDS)
    pl.set_defaults(func=cmd_plot)

    a = sub.add_parser("animate", help="GIF (or MP4 with ffmpeg) of a run's training snapshots")
    a.add_argument("run_dir", metavar="RUN_DIR")
    a.add_argument("--out", help="FILE.gif or FILE.mp4 (default RUN_DIR/animation.mp4 with ffmpeg, else .gif)")
    a.add_argument("--reverse", action="store_true", help="animate the sampling trajectory x_T ... x_0 instead")
    a.add_argument("--n", type=_positive_int, default=1000, help="points for --reverse (default 1000)")
    a.add_argument("--seed", type=_seed, default=0)
    a.add_argument("--fps", type=_positive_int, default=10)
    a.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    a.set_defaults(func=cmd_animate)

    sw = sub.add_parser("sweep", help="train a grid of configurations in parallel; CSV and grid figure")
    sw.add_argument("--out", required=True, help="sweep folder (runs/, sweep.csv, grid.png)")
    sw.add_argument("--config", help="TOML sweep file: [base] values, [grid] lists, [[runs]] tables")
    sw.add_argument("--vary", action="append", default=[], metavar="KEY=V1,V2",
                    help="a grid axis, e.g. --vary lr=1e-2,1e-3 (repeat for more axes)")
    sw.add_argument("--jobs", type=_positive_int, default=1, help="parallel worker processes (default 1)")
    sw.add_argument("--shard", default="1/1", help="I/N: run only share I of N (for job arrays; default 1/1)")
    sw.add_argument("--collect", action="store_true", help="train nothing; assemble CSV and figure from "
                    "finished runs (e.g. after all shards)")
    add_config_flags(sw)
    sw.set_defaults(func=cmd_sweep)

    r = sub.add_parser("reproduce", help="rerun the classic ablation study and write a Markdown report")
    r.add_argument("--out", required=True, help="study folder (runs, figures, README.md report)")
    r.add_argument("--preset", default="quick", choices=("quick", "full", "test"),
                   help="budget: quick (<= 10 min on 2 cores), full (the classic 200 epochs), test (seconds)")
    r.add_argument("--jobs", type=_positive_int, default=2, help="parallel worker processes (default 2)")
    r.set_defaults(func=cmd_reproduce)

    d = sub.add_parser("datasets", help="list the built-in data sets")
    d.set_defaults(func=cmd_datasets)
    return p


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    print(f"{PROG}: warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    warnings.showwarning = _one_line_warning
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        return args.func(args)
    except InputError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
