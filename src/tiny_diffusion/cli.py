"""The `tiny-diffusion` command: a thin layer that parses flags and calls the library.

Only argparse and the pure-Python config are imported at start-up, so `--help` is instant;
each command imports torch and matplotlib when it runs. Bad input exits with code 2 and one line.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import warnings
from pathlib import Path

from .config import IMAGE_DEFAULTS, POINT_DEFAULTS, TrainConfig, parse_value
from .errors import InputError, TrainingStopped

PROG = "tiny-diffusion"
MAX_COUNT = 10_000_000  # no --n/--panels/--fps is sensible above this; larger ones only exhaust memory


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
        default = (f"{POINT_DEFAULTS[f.name]} for points, {IMAGE_DEFAULTS[f.name]} for images" if m["auto"]
                   else f.default)
        parser.add_argument(_flag(f.name), dest=f.name, default=argparse.SUPPRESS, metavar=f.name.upper(),
                            help=f"{m['help']}{extra}; default {default}")


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
    if value > MAX_COUNT:
        raise argparse.ArgumentTypeError(f"{value} is too large (at most {MAX_COUNT})")
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
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:  # a path under a file, a read-only place
            raise InputError(f"{flag} {path}: cannot create its folder ({e.strerror}); choose a writable path") from None
    return p


def _list_of(kind, choices=None):
    """argparse type: a comma-separated list of positive ints (kind=int) or of names from `choices`."""
    def parse(text: str):
        items = [i.strip() for i in text.split(",") if i.strip()]
        if not items:
            raise argparse.ArgumentTypeError(f"{text!r} is empty")
        if kind is int:
            return [_positive_int(i) for i in items]
        bad = [i for i in items if i not in choices]
        if bad:
            raise argparse.ArgumentTypeError(f"{bad[0]!r} is not one of {', '.join(choices)}")
        return items
    return parse


SAMPLER_NAMES = ("ddpm", "ddim", "dpm++")  # mirrors samplers.SAMPLERS (cli imports no torch at start-up)
SPACING_NAMES = ("leading", "trailing", "linspace", "logsnr", "karras")  # mirrors samplers.SPACINGS


def add_sampling_flags(parser: argparse.ArgumentParser, lists: bool = False) -> None:
    """--sampler, --steps, --eta, --spacing (and --clip for single runs); lists=True takes comma lists."""
    many = " (comma-separated list)" if lists else ""
    parser.add_argument("--sampler", type=_list_of(str, SAMPLER_NAMES), default=None, metavar="|".join(SAMPLER_NAMES),
                        help=f"sampler{many} (default ddpm" + ("; all three for a sweep)" if lists else ")"))
    parser.add_argument("--steps", type=_list_of(int), default=None, metavar="K" + (",K..." if lists else ""),
                        help=f"network evaluations{many}, at most the run's timesteps (default: all of them)")
    parser.add_argument("--eta", type=float, default=None,
                        help="DDIM's noise scale: 0 deterministic (default), 1 = ancestral (ddim only)")
    parser.add_argument("--spacing", choices=SPACING_NAMES, default=None,
                        help="which timesteps a K-step run visits (default trailing)")
    parser.add_argument("--lambda-min", type=float, default=None, metavar="L",
                        help="start at the noisiest step with log-SNR lambda = log(alpha/sigma) >= L instead of "
                             "at t = T-1 (default: off; -2.5 with --spacing logsnr for few steps, docs/samplers.md)")
    if not lists:
        parser.add_argument("--clip", type=float, default=None, metavar="R",
                            help="clip each predicted x0 to [-R, R] (default: off)")


def _check_steps(steps: list[int], diffusion, lambda_min: float | None) -> None:
    """Every --steps value fits the run's timesteps (those with log-SNR >= --lambda-min, if given)."""
    T = diffusion.T
    for k in steps:
        if k > T:
            raise InputError(f"--steps {k}: the run has only {T} timesteps; use --steps {T} or fewer")
    if lambda_min is None:
        return
    from .samplers import log_snr, steps_from

    alpha_bar = diffusion.alpha_bar.double().cpu().numpy()
    lam = log_snr(alpha_bar)  # decreasing in t
    if not (math.isfinite(lambda_min) and lambda_min <= lam[0]):
        raise InputError(f"--lambda-min {lambda_min}: must be a finite number up to the run's largest log-SNR "
                         f"{lam[0]:.2f} (its steps span {lam[-1]:.2f} to {lam[0]:.2f}), e.g. -2.5")
    usable = steps_from(alpha_bar, lambda_min)
    for k in steps:
        if k > usable:
            raise InputError(f"--steps {k}: only {usable} of the run's timesteps have log-SNR lambda >= "
                             f"--lambda-min {lambda_min}; use --steps {usable} or fewer, or a lower --lambda-min")


def sampling_options(args, diffusion, cfg=None) -> dict:
    """sample()'s keyword arguments from the sampling flags, checked against the run. Without --sampler
    and --steps, an image run samples as its final samples were (cfg's eval_sampler and eval_steps, logsnr)."""
    run_defaults = cfg is not None and cfg.images and not args.sampler and not args.steps
    if len(args.sampler or []) > 1 or len(args.steps or []) > 1:
        raise InputError("give one --sampler and one --steps value here")
    if run_defaults:
        sampler, steps, spacing = cfg.eval_sampler, cfg.eval_steps or None, args.spacing or "logsnr"
    else:
        sampler, steps, spacing = (args.sampler or ["ddpm"])[0], args.steps[0] if args.steps else None, args.spacing
    _check_steps([steps or diffusion.T], diffusion, args.lambda_min)
    if args.eta is not None and (sampler != "ddim" or not 0 <= args.eta < float("inf")):
        raise InputError(f"--eta {args.eta}: only the ddim sampler takes eta, a number >= 0; add --sampler ddim")
    clip = getattr(args, "clip", None)
    if clip is not None and not 0 < clip < float("inf"):
        raise InputError(f"--clip {clip}: must be a positive number, e.g. 4 for data in [-4, 4]")
    options = {"sampler": sampler, "steps": steps, "eta": args.eta, "clip": clip, "lambda_min": args.lambda_min}
    if spacing:
        options["spacing"] = spacing
    return options


# -- commands --------------------------------------------------------------------------------

def cmd_train(args) -> int:
    overrides = config_overrides(args)
    if args.resume:
        return _resume_train(args, overrides)
    cfg = TrainConfig.from_toml(args.config, overrides) if args.config else TrainConfig.from_dict(overrides, "command line")
    out = args.out or Path("runs") / f"{Path(cfg.dataset).stem.replace(':', '-')}-{time.strftime('%Y%m%d-%H%M%S')}"
    from .train import train

    start = time.perf_counter()
    result = train(cfg, out, progress=None if not args.quiet else False)
    print(f"run folder: {result.out_dir}")
    length = f"{cfg.kimg:g} kimg" if cfg.kimg > 0 else f"{cfg.epochs} epochs"
    print(f"trained {length} in {result.train_seconds:.1f} s ({time.perf_counter() - start:.1f} s with "
          f"sampling and figures)")
    _print_quality(f"{len(result.samples)} samples", cfg.dataset, result.quality, result.floor)
    return 0


def _print_quality(what: str, dataset: str, q, floor) -> None:
    """The quality line and the data floor's beneath it (None: a data set without labels for the metrics)."""
    if q is None:
        print(f"{what} of {dataset}: no quality numbers (the classifier metrics need class labels)")
        return
    head = f"quality of {what} vs {dataset}: "
    print(f"{head}{q}")
    print(f"{'data floor (real vs real): ':<{len(head)}}{floor}")


def _resume_train(args, changes: dict) -> int:
    from .train.state import config_for_resume
    from .runs import is_finished
    from .train import train

    if args.config or args.out:
        raise InputError("--resume RUN_DIR continues that run with its own config; drop --config and --out")
    if is_finished(args.resume):
        print(f"{args.resume}: already finished (quality.json exists); nothing to do")
        return 0
    cfg = config_for_resume(args.resume, changes)
    result = train(cfg, args.resume, progress=None if not args.quiet else False, resume=True)
    print(f"run folder: {result.out_dir}")
    _print_quality(f"{len(result.samples)} samples", cfg.dataset, result.quality, result.floor)
    return 0


def cmd_export(args) -> int:
    from .export import export_run

    out = _output_path(args.out, (".safetensors",)) if args.out else Path(args.run_dir) / "model.safetensors"
    export_run(args.run_dir, out, use_ema=not args.no_ema)
    print(f"wrote {out}")
    return 0


def _load_run(run_dir: str, device: str):
    from .runs import load_run

    dev = _device(device)
    return (*load_run(run_dir, dev), dev)


def cmd_sample(args) -> int:
    if not _folder_like(args.out):  # the file type is checked before the (slow) run loading
        _output_path(args.out, (".csv", ".npy", ".png"))
    cfg, model, diffusion, device = _load_run(args.run_dir, args.device)
    out = _image_output(args.out) if cfg.images else _output_path(args.out, (".csv", ".npy"))
    from .samplers import sample

    x = sample(model, diffusion, args.n, args.seed, device=device, **sampling_options(args, diffusion, cfg)).cpu()
    if cfg.images:
        save_images(out, x)
    else:
        save_points(out, x.numpy())
    print(f"wrote {len(x)} samples to {out}")
    return 0


def _folder_like(path: str) -> bool:
    """An --out that names a folder: a trailing slash, an existing folder, or no suffix."""
    return path.endswith(("/", "\\")) or os.path.isdir(path) or not Path(path).suffix  # isdir: False on OSError


def _image_output(path: str) -> Path:
    """--out for images: FILE.npy (float32 (N, C, H, W) in [-1, 1]), FILE.png (a grid), or DIR/ (one PNG each)."""
    return Path(path) if _folder_like(path) else _output_path(path, (".npy", ".png"))


def save_images(path: Path, x) -> None:
    """Samples (N, C, H, W) in [-1, 1]: .npy as float32, .png as one grid, a folder as one PNG per image."""
    import numpy as np

    from .runs import atomic_write
    from .viz.images import save_grid, save_png_folder

    if path.suffix.lower() == ".npy":
        atomic_write(path, lambda f: np.save(f, x.clamp(-1, 1).numpy().astype(np.float32)))
    elif path.suffix.lower() == ".png":
        save_grid(x.numpy(), path)
    else:
        save_png_folder(x.numpy(), path)


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
    from .metrics import COVERAGE_K, data_floor, quality, references

    if not COVERAGE_K < args.n <= 20_000:  # k-NN needs more than k points; n^2 distances must fit in memory
        raise InputError(f"--n {args.n}: evaluate needs {COVERAGE_K + 1} to 20000 points per set; e.g. --n 1000")

    target = Path(args.target)
    if _is_image_target(target, args.dataset):
        return _evaluate_images(args, target)
    if args.nll and not target.is_dir():
        raise InputError(f"{target}: --nll needs a run folder (a model), not a point file")
    if target.is_dir():
        cfg, model, diffusion, device = _load_run(str(target), args.device)
        from .samplers import sample

        dataset = args.dataset or cfg.dataset
        if len(args.steps or []) > 1 or len(args.sampler or []) > 1:
            return _steps_curve(args, target, model, diffusion, dataset, device)
        options = sampling_options(args, diffusion)
        x = sample(model, diffusion, args.n, args.seed, device=device, **options).cpu().numpy()
        what = f"{args.n} samples of {target} ({options['sampler']}, {options['steps'] or diffusion.T} steps)"
    else:
        from .data import read_points

        if args.steps or args.sampler:
            raise InputError(f"{target}: --steps and --sampler need a run folder to sample from, not a point file")
        x = read_points(target)
        dataset = args.dataset or "dino"
        what = f"{len(x)} points of {target}"
    refs = references(dataset, n=args.n)
    q, floor = quality(x, refs), data_floor(dataset, n=args.n)
    print(f"{what} vs {dataset}: {q}")
    print(f"data floor (real vs real): {floor}")
    if args.nll:
        from .likelihood import held_out_likelihood

        lik = held_out_likelihood(model, diffusion, dataset, args.n)
        print(f"NLL of {args.n} held-out {dataset} points: {lik['nll']:.4f} nats/point (probability-flow ODE), "
              f"ELBO bound {lik['elbo']:.4f} nats/point")
    return 0


def _is_image_target(target: Path, dataset: str | None) -> bool:
    """An image run, or images to score (a folder of PNGs, an .npy of (N, C, H, W)) against image data."""
    from .data.image_names import is_image_dataset
    from .runs import CONFIG, run_config

    if os.path.isfile(target / CONFIG):  # os.path: False, not OSError, for a name too long for the file system
        return run_config(target).images
    return dataset is not None and is_image_dataset(dataset) or (os.path.isdir(target) and dataset is None)


def _evaluate_images(args, target: Path) -> int:
    """Classifier metrics of a run's fresh samples, or of image files, beside the floor and noise."""
    from .eval.report import score_images
    from .runs import CONFIG

    if args.nll:
        raise InputError("--nll: likelihoods are computed for points only; drop --nll for images")
    if len(args.steps or []) > 1 or len(args.sampler or []) > 1:
        raise InputError("several --steps or --sampler values (a steps curve) are for points only; give one of each")
    changes = {k: v for k, v in (("dataset", args.dataset), ("data_dir", args.data_dir)) if v is not None}
    if (target / CONFIG).is_file():
        from .samplers import sample
        from .viz.images import to_uint8

        cfg, model, diffusion, device = _load_run(str(target), args.device)
        cfg = cfg.replace(**changes) if changes else cfg
        options = sampling_options(args, diffusion, cfg)
        images = to_uint8(sample(model, diffusion, args.n, args.seed, device=device, **options))
        what = f"{args.n} samples of {target} ({options['sampler']}, {options['steps'] or diffusion.T} steps)"
    else:
        from .train import resolve_device
        from .viz.images import read_images

        if args.dataset is None:
            raise InputError(f"{target}: give --dataset NAME, the real images to compare with (e.g. --dataset mnist)")
        if args.steps or args.sampler:
            raise InputError(f"{target}: --steps and --sampler need a run folder to sample from, not image files")
        images, device = read_images(target), resolve_device(args.device)
        cfg = TrainConfig.from_dict({**changes, "image_size": images.shape[-1], "channels": images.shape[1]},
                                    "command line")
        what = f"{len(images)} images of {target}"
    report = score_images(cfg, images, device)
    _print_quality(what, cfg.dataset, report.quality, report.floor)
    print(f"noise images:  {report.noise}")
    print(f"classifier accuracy on held-out real images: {report.accuracy:.3f}")
    return 0


def _steps_curve(args, run_dir: Path, model, diffusion, dataset: str, device) -> int:
    from . import steps_curve
    from .samplers import SAMPLERS

    steps = args.steps or [diffusion.T]
    _check_steps(steps, diffusion, args.lambda_min)
    csv_path = _output_path(args.csv or str(run_dir / "steps_curve.csv"), (".csv",), "--csv")
    figure = _output_path(args.figure or str(run_dir / "steps_curve.png"), (".png", ".pdf", ".svg"), "--figure")
    steps_curve.run(model, diffusion, dataset, steps, args.sampler or list(SAMPLERS), csv_path, figure, args.n,
                    args.seed, device, args.spacing, args.eta, args.lambda_min,
                    title=f"{run_dir.name}: {args.n} samples vs {dataset}")
    print(f"wrote {csv_path} and {figure}")
    return 0


def cmd_plot(args) -> int:
    out = _output_path(args.out, (".png", ".pdf", ".svg"))
    from . import figures

    given = config_overrides(args, SCHEDULE_FIELDS)
    if args.process == "forward":
        if args.run_dir:  # the run's own data and schedule; flags may change them
            from .runs import run_config

            base = run_config(args.run_dir).to_dict()
            changes = {k: v for k, v in (("dataset", args.dataset), ("data_dir", args.data_dir)) if v is not None}
            cfg = TrainConfig.from_dict({**base, **changes, **given}, f"{args.run_dir}/config.json")
        else:
            changes = {"dataset": args.dataset or "dino", **({"data_dir": args.data_dir} if args.data_dir else {})}
            cfg = TrainConfig.from_dict({**given, **changes})
        figures.forward_figure(cfg, out, args.n, args.seed, args.panels)
    else:
        if not args.run_dir:
            raise InputError("plot reverse: give the run folder, e.g. `tiny-diffusion plot reverse runs/dino-...`")
        ignored = [_flag(k) for k in given] + ["--dataset"] * (args.dataset is not None) + \
                  ["--data-dir"] * (args.data_dir is not None)
        if ignored:
            raise InputError(f"plot reverse samples the run's own model, data and schedule; drop {', '.join(ignored)}")
        figures.reverse_figure(args.run_dir, out, args.n, args.seed, args.panels, _device(args.device))
    print(f"wrote {out}")
    return 0


def _device(name: str):
    from .train import resolve_device

    return resolve_device(name)


def cmd_animate(args) -> int:
    import shutil

    from . import figures

    from .runs import run_config

    run_dir = Path(args.run_dir)
    run_config(run_dir)  # the one-line error for a folder that is not a run, before anything is written
    name = "reverse" if args.reverse else "animation"  # distinct defaults: --reverse never overwrites training's
    out = Path(args.out) if args.out else run_dir / (name + (".mp4" if shutil.which("ffmpeg") else ".gif"))
    _output_path(str(out), (".gif", ".mp4"))
    if out.suffix == ".mp4" and not shutil.which("ffmpeg"):
        raise InputError(f"--out {out}: MP4 needs ffmpeg on PATH; install it or write a .gif")
    if args.reverse:
        figures.reverse_animation(run_dir, out, args.n, args.seed, args.fps, _device(args.device))
    else:
        figures.training_animation(run_dir, out, args.fps)
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
    from .data.image_names import IMAGE_DATASETS
    from .data.points import DATASETS

    rows = [(name, _describe(name, fn, DATASETS)) for name, fn in DATASETS.items()]
    rows += [(name, IMAGE_DATASETS[name]) for name in IMAGE_DATASETS]
    rows += [("FILE.csv / FILE.npy", "your own 2D points (header x,y; or an (n, 2) array)"),
             ("FOLDER", "your own images, any folder (classes: its first-level subfolders)")]
    width = max(len(name) for name, _ in rows)
    print("\n".join(f"{name:<{width}}  {text}" for name, text in rows))
    return 0


def _describe(name: str, fn, table: dict) -> str:
    """What a point set is: a Datasaurus shape, or the first line of its function's docstring; and which
    other name draws the same distribution (dino is datasaurus:dino)."""
    key = (getattr(fn, "func", fn), getattr(fn, "args", ()))
    twin = next((other for other, g in table.items() if other != name and
                 (getattr(g, "func", g), getattr(g, "args", ())) == key), None)
    if key[1]:
        text = f"the Datasaurus Dozen's {key[1][0]!r} shape: its 142 points, each with a little Gaussian jitter"
    else:
        text = (fn.__doc__ or "").strip().split("\n")[0]
    return text + (f" (the same as {twin})" if twin else "")


SCHEDULE_FIELDS = ("timesteps", "schedule", "beta_start", "beta_end", "terminal_alpha_bar")


# -- the parser ---------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="Denoising diffusion models (DDPM) on 2D point clouds and images: train, sample, "
                                        "evaluate and plot.")
    from . import __version__

    p.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    t = sub.add_parser("train", help="train a model; writes a run folder")
    t.add_argument("--out", help="run folder to create (default runs/DATASET-TIMESTAMP)")
    t.add_argument("--config", help="TOML file of config values (flat keys or a [train] table); flags override it")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run exactly where its last "
                                                       "checkpoint left it (with the run's own config)")
    add_config_flags(t)
    t.set_defaults(func=cmd_train)

    s = sub.add_parser("sample", help="draw samples from a trained run")
    s.add_argument("run_dir", metavar="RUN_DIR")
    s.add_argument("--n", type=_positive_int, default=1000, help="number of samples (default 1000)")
    s.add_argument("--seed", type=_seed, default=0, help="seed of the sampling noise (default 0)")
    s.add_argument("--out", required=True, help="points: FILE.csv (header x,y) or FILE.npy; images: FILE.npy "
                   "(float32 (N, C, H, W) in [-1, 1]), FILE.png (a grid) or DIR/ (one PNG per image)")
    s.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    add_sampling_flags(s)
    s.set_defaults(func=cmd_sample)

    e = sub.add_parser("evaluate", help="energy distance, precision and coverage of samples or of a run")
    e.add_argument("target", metavar="FILE|DIR|RUN_DIR", help="a .csv/.npy of points, images (a folder of PNGs or "
                   "an .npy of (N, C, H, W) in [-1, 1]), or a run folder to sample from")
    e.add_argument("--dataset", help="the true distribution (default: the run's data set, or dino for a point file; "
                   "needed for image files)")
    e.add_argument("--data-dir", help="folder holding the image data set's files (else downloaded once)")
    e.add_argument("--n", type=_positive_int, default=1000, help="points per set (default 1000)")
    e.add_argument("--seed", type=_seed, default=0, help="sampling seed for a run folder (default 0)")
    e.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    add_sampling_flags(e, lists=True)
    e.add_argument("--csv", help="sweep table (default RUN_DIR/steps_curve.csv); with several --steps or samplers")
    e.add_argument("--figure", help="sweep figure .png|.pdf|.svg (default RUN_DIR/steps_curve.png)")
    e.add_argument("--nll", action="store_true", help="also the exact NLL (probability-flow ODE) and the DDPM "
                   "ELBO of held-out points, nats per point (run folders only)")
    e.set_defaults(func=cmd_evaluate)

    pl = sub.add_parser("plot", help="the classic figures: forward or reverse process as a grid")
    pl.add_argument("process", choices=("forward", "reverse"))
    pl.add_argument("run_dir", nargs="?", metavar="RUN_DIR", help="run folder (reverse: required; forward: its data "
                    "and schedule)")
    pl.add_argument("--out", required=True, help="FILE.png|.pdf|.svg")
    pl.add_argument("--dataset", default=None, help="data set (forward only; default the run's, or dino)")
    pl.add_argument("--data-dir", help="folder holding the image data set's files (forward only; else downloaded)")
    pl.add_argument("--n", type=_positive_int, default=None, help="points (default 1000) or image rows (default 8)")
    pl.add_argument("--seed", type=_seed, default=0, help="seed of the data draw and of the noise (default 0)")
    pl.add_argument("--panels", type=_positive_int, default=10, help="snapshots in the grid (default 10)")
    pl.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    add_config_flags(pl, SCHEDULE_FIELDS)
    pl.set_defaults(func=cmd_plot)

    a = sub.add_parser("animate", help="GIF (or MP4 with ffmpeg) of a run's training snapshots")
    a.add_argument("run_dir", metavar="RUN_DIR")
    a.add_argument("--out", help="FILE.gif or FILE.mp4 (default RUN_DIR/animation.mp4 with ffmpeg, else .gif; "
                   "reverse.* for --reverse)")
    a.add_argument("--reverse", action="store_true", help="animate the sampling trajectory x_T ... x_0 instead")
    a.add_argument("--n", type=_positive_int, default=None, help="samples for --reverse (default 1000 points or a "
                   "grid of 64 images)")
    a.add_argument("--seed", type=_seed, default=0, help="seed of the sampling noise for --reverse (default 0)")
    a.add_argument("--fps", type=_positive_int, default=10, help="frames per second (default 10)")
    a.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    a.set_defaults(func=cmd_animate)

    x = sub.add_parser("export", help="write a run's weights as safetensors (config in the metadata)")
    x.add_argument("run_dir", metavar="RUN_DIR")
    x.add_argument("--format", choices=("safetensors",), default="safetensors")
    x.add_argument("--out", help="FILE.safetensors (default RUN_DIR/model.safetensors)")
    x.add_argument("--no-ema", action="store_true", help="export the raw weights, not the EMA ones")
    x.set_defaults(func=cmd_export)

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

    d = sub.add_parser("datasets", help="list the built-in data sets (points, then images; any folder of images "
                       "works too)")
    d.set_defaults(func=cmd_datasets)
    return p


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    print(f"{PROG}: warning: {message}", file=sys.stderr)


def _config_spelling(argv: list[str]) -> list[str]:
    """--hidden_size (the config key's spelling, as errors and TOML files write it) -> --hidden-size."""
    keys = {f.name for f in TrainConfig.fields()}
    out = []
    for arg in argv:
        flag, eq, value = arg.partition("=")
        if flag.startswith("--") and flag[2:] in keys:
            arg = _flag(flag[2:]) + eq + value
        out.append(arg)
    return out


def main(argv: list[str] | None = None) -> int:
    warnings.showwarning = _one_line_warning
    parser = build_parser()
    try:
        args, unknown = parser.parse_known_args(_config_spelling(sys.argv[1:] if argv is None else argv))
        if unknown:  # point to the help page of the command that was given, which lists its flags
            command = f"{PROG} {args.command}" if getattr(args, "command", None) else PROG
            raise InputError(f"unrecognized arguments: {' '.join(unknown)} (see `{command} --help`)")
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        return args.func(args)
    except InputError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except TrainingStopped as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `tiny-diffusion datasets | head`: the reader left; nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at interpreter exit
        return 0
    except OSError as e:  # a file the user named could not be written or read (a full disk, /proc, no permission)
        if e.filename is None:
            raise
        print(f"{PROG}: error: {e.filename}: {e.strerror or type(e).__name__}; choose a path you can write "
              f"(or read)", file=sys.stderr)
        return 2
