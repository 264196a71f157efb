"""`tiny-diffusion train`: train a model and write a run folder (or --resume one)."""

from __future__ import annotations

import time
from pathlib import Path

from ..config import TrainConfig
from ..config_values import check_applies, check_length
from ..errors import InputError
from .common import add_config_flags, add_threads_flag, config_overrides, print_quality


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a model; writes a run folder")
    p.add_argument("--out", help="run folder to create (default runs/DATASET-TIMESTAMP)")
    p.add_argument("--config", help="TOML file of config values (flat keys or a [train] table); flags override it")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run exactly where its last "
                                                       "checkpoint left it (with the run's own config)")
    p.add_argument("--tensorboard", action="store_true", help="write TensorBoard event files into the run folder "
                   "(loss, lr, speed, snapshots and their quality, the config); a resumed watched run keeps "
                   "writing them; needs pip install 'tiny-diffusion[tensorboard]'")
    add_threads_flag(p)
    add_config_flags(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..runtime import dist

    with dist.session():  # under torchrun: one process group for the whole command (nothing otherwise)
        overrides = config_overrides(args)
        check_length(overrides, "command line", flags=True)
        if args.resume:
            return _resume_train(args, overrides)
        return _train(args, overrides)


def _train(args, overrides: dict) -> int:
    from ..train import train
    from ..runtime import dist

    cfg = TrainConfig.from_toml(args.config, overrides) if args.config else TrainConfig.from_dict(overrides, "command line")
    check_applies(cfg, overrides, "command line", flags=True)
    # one name for every rank: rank 0's clock decides it
    out = args.out or dist.on_main(lambda: Path("runs") / f"{Path(cfg.dataset).stem.replace(':', '-')}-"
                                                         f"{time.strftime('%Y%m%d-%H%M%S')}")
    start = time.perf_counter()
    result = train(cfg, out, progress=None if not args.quiet else False, threads=args.threads,
                   tensorboard=args.tensorboard or None)
    if dist.is_main():
        _print_result(result, start)
    return 0


def _print_result(result, start: float) -> None:
    """What a finished run (fresh or resumed) prints: its folder, length and time, quality."""
    cfg = result.config
    print(f"run folder: {result.out_dir}")
    length = f"{cfg.kimg:g} kimg" if cfg.kimg > 0 else f"{cfg.epochs} epochs"
    wall = time.perf_counter() - start
    if result.seconds_before > 0:  # a resumed run: its training before the stop is in train_seconds, not in wall
        print(f"trained {length} in {result.train_seconds:.1f} s, {result.seconds_before:.1f} s of it before the "
              f"resumption; this resumption took {wall:.1f} s with sampling and figures")
    else:
        print(f"trained {length} in {result.train_seconds:.1f} s ({wall:.1f} s with sampling and figures)")
    print_quality(f"{len(result.samples)} samples", cfg.dataset, result.quality, result.floor, _notes(result))
    _print_classes(result)


def _notes(result) -> list[str]:
    """What an image run's metrics could not measure, and why (quality.json's notes)."""
    if result.out_dir is None or not result.config.images:
        return []
    import json

    from ..runs import QUALITY

    return json.loads((result.out_dir / QUALITY).read_text()).get("notes", [])


def _print_classes(result) -> None:
    """A class-conditional run's final samples asked for each class in turn: how well they got it."""
    if not result.config.class_cond or result.out_dir is None:
        return
    import json

    from ..runs import QUALITY

    q = json.loads((result.out_dir / QUALITY).read_text())
    if "labelled_as_requested" in q:
        print(f"labelled as the requested class (guidance {q['guidance']:g}): {q['labelled_as_requested']:.3f} "
              f"(the classifier's accuracy on held-out real images: {q['classifier_accuracy']:.3f})")
    elif q.get("per_class"):
        per = list(q["per_class"].values())

        def mean(part: str, key: str) -> float:
            return sum(c[part][key] for c in per) / len(per)

        print(f"each class's samples vs its own points (guidance {q['guidance']:g}, mean of {len(per)} classes): "
              f"precision {mean('quality', 'precision'):.3f} (floor {mean('data_floor', 'precision'):.3f})  coverage "
              f"{mean('quality', 'coverage'):.3f} (floor {mean('data_floor', 'coverage'):.3f}); per class in "
              f"{result.out_dir / QUALITY}")


def _resume_train(args, changes: dict) -> int:
    from ..train.state import config_for_resume
    from ..runs import is_finished
    from ..train import train
    from ..runtime import dist

    if args.config or args.out:
        raise InputError("--resume RUN_DIR continues that run with its own config; drop --config and --out")
    if dist.on_main(lambda: is_finished(args.resume)):  # rank 0 reads the run folder; the others need no copy
        length = [k for k in ("epochs", "kimg") if k in changes]
        if length:  # its schedule (warm-up, decay) was set by its length: a longer run is another run, not more of it
            raise InputError(f"{args.resume}: already finished; a finished run cannot be extended exactly (its "
                             f"learning-rate schedule was set by its length): train a new run with --{length[0]} "
                             f"{changes[length[0]]:g} instead")
        if dist.is_main():
            print(f"{args.resume}: already finished (quality.json exists); nothing to do")
        return 0
    cfg = dist.on_main(lambda: config_for_resume(args.resume, changes))
    if cfg.sample_grid:  # a distillation round: its loss is the teacher's target, which only distill rebuilds
        raise InputError(f"{args.resume}: a round of a distillation; continue it with `tiny-diffusion distill "
                         f"--resume OUT` (OUT: the folder holding distill.json)")
    start = time.perf_counter()
    result = train(cfg, args.resume, progress=None if not args.quiet else False, resume=True, threads=args.threads,
                   tensorboard=args.tensorboard or None)  # None: a watched run keeps being watched
    if dist.is_main():
        _print_result(result, start)  # train_seconds: the run's training time, before the stop and since
    return 0
