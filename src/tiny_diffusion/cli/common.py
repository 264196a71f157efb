"""What the commands share: the one-line-error parser, flag types, config and sampling flags, loading a run."""

from __future__ import annotations

import argparse
import contextlib
import math
from pathlib import Path

from ..choices import SAMPLERS, SPACINGS
from ..config import (FULL_EVAL_STEPS, IMAGE_DEFAULTS, LABELS_GUIDANCE, POINT_DEFAULTS, QUICK_EVAL_STEPS, TrainConfig,
                      parse_value)
from ..errors import InputError

PROG = "tiny-diffusion"
MAX_COUNT = 10_000_000  # no --n/--panels/--fps is sensible above this; larger ones only exhaust memory
MAX_THREADS = 1024  # --threads: more than any machine's cores; a larger pool only costs memory
ASK_SECONDS = 3600  # sweep/reproduce: an estimate past this asks before starting (on a terminal, without --yes)
# How `train --help` states the image defaults that the run decides (IMAGE_DEFAULTS leaves them unset)
IMAGE_AUTO_HELP = {
    "eval_n": "scaled to the run's length",
    "eval_steps": f"{FULL_EVAL_STEPS}" if FULL_EVAL_STEPS == QUICK_EVAL_STEPS else
                  f"{FULL_EVAL_STEPS} ({QUICK_EVAL_STEPS} for runs under half the default length)",
    "class_cond": "on when the images have class labels",
    "guidance": f"{LABELS_GUIDANCE:g} when the labels are on by default, {IMAGE_DEFAULTS['guidance']:g} with --class-cond",
}


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (no usage block) and exit code 2."""

    def error(self, message: str):
        raise InputError(f"{message} (see `{self.prog} --help`)")


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


# `train --help` and `sweep --help` list the config flags in these groups, in this order (every field that is a flag
# has one: tests/cli/test_help.py checks)
FLAG_GROUPS = {
    "data": ("dataset", "n_points", "data_dir", "image_size", "channels", "flip"),
    "model": ("model", "hidden_size", "hidden_layers", "emb_size", "time_emb", "input_emb", "input_scale",
              "base_channels", "channel_mult", "num_res_blocks", "attn_resolutions", "dropout", "class_cond",
              "cond_drop"),
    "diffusion": ("timesteps", "schedule", "beta_start", "beta_end", "terminal_alpha_bar", "prediction", "t_sampling",
                  "min_snr", "loss"),
    "optimizer": ("epochs", "kimg", "batch_size", "lr", "weight_decay", "warmup", "lr_decay", "grad_clip", "ema",
                  "ema_gamma", "skip_nonfinite"),
    "evaluation": ("eval_n", "eval_sampler", "eval_steps", "guidance", "guidance_interval"),
    "runtime": ("seed", "device", "cuda_graphs", "autocast", "compile"),
    "output": ("frames", "frame_points", "frame_sampler", "frame_steps", "checkpoint_every"),
}


def add_config_flags(parser: argparse.ArgumentParser, names=None, scope: str = "") -> None:
    """One flag per TrainConfig field (or per field in `names`), each help prefixed with `scope` (e.g. "forward
    only: "); unset flags stay out of the namespace. All of them: in FLAG_GROUPS' groups."""
    groups = {} if names is not None else {title: parser.add_argument_group(title) for title in FLAG_GROUPS}
    group_of = {name: groups[title] for title, members in FLAG_GROUPS.items() if groups for name in members}
    for f in TrainConfig.fields():
        if (names is not None and f.name not in names) or f.metadata["resolved"]:
            continue
        m = f.metadata
        extra = f" ({'|'.join(m['choices'])})" if m["choices"] else ""
        image_default = IMAGE_AUTO_HELP.get(f.name, IMAGE_DEFAULTS.get(f.name))
        point_default = POINT_DEFAULTS.get(f.name)
        point_default = ("on" if point_default else "off") if isinstance(point_default, bool) else point_default
        default = (f"{point_default} for points, {image_default} for images" if m["auto"]
                   else ("on" if f.default else "off") if isinstance(f.default, bool) else f.default)
        switch = {"nargs": "?", "const": "on", "metavar": "on|off"} if f.type in (bool, "bool") else \
            {"metavar": f.name.upper()}  # a switch: --class-cond alone means on
        group_of.get(f.name, parser).add_argument(flag_name(f.name), dest=f.name, default=argparse.SUPPRESS,
                            help=f"{scope}{m['help']}{extra}; default {default}", **switch)


def config_overrides(args: argparse.Namespace, names=None) -> dict:
    """The config values given as flags, parsed to their types."""
    return {f.name: parse_value(f, getattr(args, f.name)) for f in TrainConfig.fields()
            if (names is None or f.name in names) and hasattr(args, f.name)}


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} must be positive")
    if value > MAX_COUNT:
        raise argparse.ArgumentTypeError(f"{value} is too large (at most {MAX_COUNT})")
    return value


def seed_arg(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} must be >= 0")
    return value


def output_path(path: str, suffixes: tuple[str, ...], flag: str = "--out", use: str | None = None) -> Path:
    """`path` if it ends in one of `suffixes` (its folder created); else InputError saying what to `use` instead
    (default: the suffixes)."""
    p = Path(path)
    if p.suffix.lower() not in suffixes:
        raise InputError(f"{flag} {path}: unsupported file type; use {use or ' or '.join(suffixes)}")
    if p.parent and not p.parent.exists():
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:  # a path under a file, a read-only place
            raise InputError(f"{flag} {path}: cannot create its folder ({e.strerror}); choose a writable path") from None
    return p


def list_of(kind, choices=None):
    """argparse type: a comma-separated list of positive ints (kind=int) or of names from `choices`."""
    def parse(text: str):
        items = [i.strip() for i in text.split(",") if i.strip()]
        if not items:
            raise argparse.ArgumentTypeError(f"{text!r} is empty")
        if kind is int:
            return [positive_int(i) for i in items]
        bad = [i for i in items if i not in choices]
        if bad:
            raise argparse.ArgumentTypeError(f"{bad[0]!r} is not one of {', '.join(choices)}")
        return items
    return parse


SAMPLER_NAMES = SAMPLERS  # the names tests and users import from cli
SPACING_NAMES = SPACINGS
SCHEDULE_FIELDS = ("timesteps", "schedule", "beta_start", "beta_end", "terminal_alpha_bar")


def add_sampling_flags(parser: argparse.ArgumentParser, lists: bool = False) -> None:
    """--sampler, --steps, --eta, --spacing (and --clip for single runs); lists=True takes comma lists."""
    many = " (comma-separated list)" if lists else ""
    parser.add_argument("--sampler", type=list_of(str, SAMPLER_NAMES), default=None, metavar="|".join(SAMPLER_NAMES),
                        help=f"sampler{many} (default ddpm, or without --steps the run's eval_sampler, as its final "
                             "samples: dpm++ for images" + ("; all three for a sweep)" if lists else ")"))
    parser.add_argument("--steps", type=list_of(int), default=None, metavar="K" + (",K..." if lists else ""),
                        help=f"network evaluations{many}, at most the run's timesteps (default: all of them, or "
                             "without --sampler the run's eval_steps: 10 for images)")
    parser.add_argument("--eta", type=float, default=None,
                        help="DDIM's noise scale: 0 deterministic (default), 1 = ancestral (ddim only)")
    parser.add_argument("--spacing", choices=SPACING_NAMES, default=None,
                        help="which timesteps a K-step run visits (default: the grid measured best for the sampler "
                             "and K, logsnr when K is below the run's timesteps; docs/samplers.md)")
    parser.add_argument("--lambda-min", type=float, default=None, metavar="L",
                        help="start at the noisiest step with log-SNR lambda = log(alpha/sigma) >= L instead of "
                             "at t = T-1 (default: off, except on the default grid of a K-step run of points, "
                             "which starts where it was measured best: -1.5 or -2.0 by sampler; docs/samplers.md)")
    if not lists:
        parser.add_argument("--clip", type=float, default=None, metavar="R",
                            help="clip each predicted x0 to [-R, R] (default: off)")


def check_steps(steps: list[int], diffusion, lambda_min: float | None) -> None:
    """Every --steps value fits the run's timesteps (those with log-SNR >= --lambda-min, if given)."""
    T = diffusion.T
    for k in steps:
        if k > T:
            raise InputError(f"--steps {k}: the run has only {T} timesteps; use --steps {T} or fewer")
    if lambda_min is None:
        return
    from ..core.samplers import log_snr, steps_from

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


def run_plan(args, purpose: str, cfg, model, diffusion, classes_first: bool = False, **given):
    """sampling.plan of a loaded run for `purpose` (given: its n and seed) with the sampling flags (add_sampling_flags)
    and the class flags (conditional.add_class_flags), each checked against the run first, the sampling flags' one
    line before the class flags' (classes_first: after). Without --sampler and --steps, a run samples as its final
    samples were (sampling.sampler_of); without --spacing, on sampling.default_grid's grid for its steps."""
    from ..sampling import plan
    from .conditional import class_request

    if classes_first:
        labels = class_request(args, model.classes)
        check_sampling(args, cfg, diffusion)
    else:
        check_sampling(args, cfg, diffusion)
        labels = class_request(args, model.classes)
    return plan(cfg, purpose, classes=model.classes, sampler=_one(args.sampler), steps=_one(args.steps),
                spacing=args.spacing, lambda_min=args.lambda_min, eta=args.eta, clip=getattr(args, "clip", None),
                **labels, **given)


def _one(values: list | None):
    return values[0] if values else None


def check_sampling(args, cfg, diffusion) -> None:
    """The sampling flags fit the run: one --sampler and --steps value, steps within its timesteps, --eta for ddim,
    --clip positive; else InputError naming the flag."""
    from ..sampling import sampler_of

    if len(args.sampler or []) > 1 or len(args.steps or []) > 1:
        raise InputError("give one --sampler and one --steps value here")
    sampler, steps = sampler_of(cfg, _one(args.sampler), _one(args.steps))
    check_steps([steps or diffusion.T], diffusion, args.lambda_min)
    if args.eta is not None and (sampler != "ddim" or not 0 <= args.eta < float("inf")):
        raise InputError(f"--eta {args.eta}: only the ddim sampler takes eta, a number >= 0; add --sampler ddim")
    clip = getattr(args, "clip", None)
    if clip is not None and not 0 < clip < float("inf"):
        raise InputError(f"--clip {clip}: must be a positive number, e.g. 4 for data in [-4, 4]")


def sampling_flags_given(args) -> list[str]:
    """The sampling flags (add_sampling_flags) given on the command line, as typed: for commands that sample
    only in some modes, to refuse them in the others."""
    names = ("sampler", "steps", "eta", "spacing", "lambda_min", "clip")
    return [flag_name(name) for name in names if getattr(args, name, None) is not None]


def planner_of(args, said: list):
    """planner(cfg, model, diffusion, n, seed) -> run_plan of the flags for that run, for figures' reverse process
    (viz.figures loads the run itself); appends the grid it chose (Plan.describe) to `said`, for the printed result."""
    def planner(cfg, model, diffusion, n, seed):
        sampling = run_plan(args, "figure", cfg, model, diffusion, n=n, seed=seed)
        said.append(sampling.describe(diffusion))
        return sampling
    return planner


def print_quality(what: str, dataset: str, q, floor, notes=()) -> None:
    """The quality line and the data floor's beneath it, each None where it could not be measured, and the
    notes that say why (no labels, too few images, no test split)."""
    if q is None:
        print(f"{what} of {dataset}: no quality numbers" + ("" if notes else " (the classifier metrics need class "
                                                                               "labels)"))
    else:
        head = f"quality of {what} vs {dataset}: "
        print(f"{head}{q}")
        print(f"{'data floor (real vs real): ':<{len(head)}}{'not available' if floor is None else floor}")
    for note in notes:
        print(f"  note: {note}")


def add_yes_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--yes", action="store_true", help="start without asking, however long the estimate "
                        f"(a terminal is asked past {ASK_SECONDS // 3600} h; CI and piped input never are)")


def announce_runs(yes: bool):
    """sweep/reproduce's `before`: print the number of runs and the estimate of their time; on a terminal (not
    CI), past ASK_SECONDS and without --yes, ask, and stop with nothing trained unless the answer is yes."""
    import os
    import sys

    from ..errors import TrainingStopped
    from ..experiments.estimate import sweep_estimate
    from ..train.estimate import duration

    def before(pending: list, jobs: int) -> None:
        seconds, how = sweep_estimate(pending, jobs)
        said = f"about {duration(seconds)} ({how})" if pending else how
        print(f"{len(pending)} run{'s' if len(pending) != 1 else ''} to train: {said}", flush=True)
        if seconds <= ASK_SECONDS or yes or not sys.stdin.isatty() or os.environ.get("CI"):
            return
        if input("start? [y/N] ").strip().lower() not in ("y", "yes"):
            raise TrainingStopped("not started (answered no): nothing trained; --yes starts without asking")
    return before


def add_device_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"),
                        help="where to run (default auto: CUDA, then MPS, then CPU)")


def add_threads_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=thread_count, default=0, metavar="N",
                        help="CPU threads torch may use (default auto, also 0: one per core that other processes "
                             "leave free, at most 2 for point models, re-checked while training; N: exactly N)")


def thread_count(text: str) -> int:
    if text.strip().lower() == "auto":
        return 0
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not 0 <= value <= MAX_THREADS:
        raise argparse.ArgumentTypeError(f"{value} must be auto (or 0) to {MAX_THREADS}")
    return value


@contextlib.contextmanager
def torch_threads(n: int):
    """torch.set_num_threads(n) while the block runs (then the old count again); 0: auto, one thread per core
    other processes leave free (threads.py; `train` re-checks it during training)."""
    from ..runtime.threads import AutoThreads

    auto = AutoThreads(None, set_threads=lambda k: None) if n == 0 else None  # first reading before torch loads
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(auto.start() if auto is not None else n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def device_of(name: str):
    from ..runtime.device import resolve_device

    return resolve_device(name)


def load_run_on(run_dir: str, device: str):
    from ..runs import load_run

    dev = device_of(device)
    return (*load_run(run_dir, dev), dev)
