"""`tiny-diffusion evaluate`: quality of a run's samples, of a point file or of image files, beside the data floor."""

from __future__ import annotations

import os
from pathlib import Path

from ..config import TrainConfig
from ..errors import InputError
from .common import (add_device_flag, add_sampling_flags, add_threads_flag, check_steps, device_of, load_run_on,
                     output_path, positive_int, print_quality, run_plan, seed_arg)
from .conditional import add_class_flags


def add_parser(sub) -> None:
    p = sub.add_parser("evaluate", help="quality of samples or of a run: energy distance, precision and coverage "
                       "(points); classifier-FID and friends (images)")
    p.add_argument("target", metavar="FILE|DIR|RUN_DIR", help="a .csv/.npy of points, images (a folder of PNGs or "
                   "an .npy of (N, C, H, W) in [-1, 1]), or a run folder to sample from")
    p.add_argument("--dataset", help="the true distribution (default: the run's data set, or dino for a point file; "
                   "needed for image files)")
    p.add_argument("--data-dir", help="folder holding the image data set's files (else downloaded once)")
    p.add_argument("--n", type=positive_int, default=None,
                   help="samples drawn from a run (default: as many as its final ones, eval_n for images, as train "
                        "scored them); points: also the size of each reference set (default 1000)")
    p.add_argument("--seed", type=seed_arg, default=None,
                   help="sampling seed for a run folder (default: that of the run's final samples, 1234, so that "
                        "`evaluate RUN` repeats the numbers train printed)")
    add_device_flag(p)
    add_threads_flag(p)
    add_sampling_flags(p, lists=True)
    add_class_flags(p, lists=True)
    p.add_argument("--csv", help="sweep table (default RUN_DIR/steps_curve.csv); with several --steps or samplers "
                   "(or guidance_curve.csv with several --guidance weights)")
    p.add_argument("--figure", help="sweep figure .png|.pdf|.svg (default RUN_DIR/steps_curve.png, or "
                   "guidance_curve.png)")
    p.add_argument("--nll", action="store_true", help="also the exact NLL of the probability-flow ODE and the DDPM "
                   "-ELBO (an upper bound on the ancestral sampler's NLL) of held-out points, nats per point, lower is "
                   "better (run folders only)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..eval.points import COVERAGE_K, MAX_SCORED, N_EVAL, data_floor, quality, references, subsample

    if args.n is not None and not COVERAGE_K < args.n <= MAX_SCORED:  # k-NN needs more than k points
        raise InputError(f"--n {args.n}: evaluate needs {COVERAGE_K + 1} to {MAX_SCORED} samples (or points) per set; "
                         f"e.g. --n 1000")

    target = Path(args.target)
    asked = args.classes is not None or args.guidance is not None or args.guidance_interval is not None
    image = _is_image_target(target, args.dataset)
    # a conditional image run without class flags is scored as its final samples were: every class in turn at its
    # own guidance, beside the floor and noise; class flags (or a point run's classes) draw the per-class curve
    if asked or (_is_conditional_run(target) and not image):
        return _conditional(args, target)
    if image:
        return _evaluate_images(args, target)
    if args.nll and not target.is_dir():
        raise InputError(f"{target}: --nll needs a run folder (a model), not a point file")
    if target.is_dir():
        cfg, model, diffusion, device = load_run_on(str(target), args.device)
        dataset = args.dataset or cfg.dataset
        if len(args.steps or []) > 1 or len(args.sampler or []) > 1:
            return _steps_curve(args, target, model, diffusion, dataset, device, _run_seed(args, cfg))
        x, what = _run_samples(args, target, cfg, model, diffusion, device)
        x = x.cpu().numpy()
    else:
        from ..data import read_points

        if args.steps or args.sampler:
            raise InputError(f"{target}: --steps and --sampler need a run folder to sample from, not a point file")
        x = read_points(target)
        dataset = args.dataset or "dino"
        what = f"{len(x)} points of {target}"
        if len(x) > MAX_SCORED:  # energy distance costs n^2 distances: a seeded subsample, said
            what = f"a seeded subsample of {MAX_SCORED} of the {what}"
            x = subsample(x)
    n_refs = args.n or N_EVAL  # as train scores its final samples: against references of N_EVAL points
    print_quality(what, dataset, quality(x, references(dataset, n=n_refs)), data_floor(dataset, n=n_refs))
    if args.nll:
        from ..eval.likelihood import describe, held_out_likelihood

        print(f"NLL of {n_refs} held-out {dataset} points: "
              f"{describe(held_out_likelihood(model, diffusion, dataset, n_refs))}")
    return 0


def _run_seed(args, cfg) -> int:
    """--seed, else the seed of the run's final samples."""
    from ..sampling import plan

    return plan(cfg, "evaluate", seed=args.seed).seed


def _run_samples(args, target: Path, cfg, model, diffusion, device):
    """(samples, what): a run's samples as the flags ask; without flags, its final samples as train drew them (a
    conditional run's classes in turn at its guidance)."""
    from ..sampling import sample

    plan = run_plan(args, "evaluate", cfg, model, diffusion, n=args.n, seed=args.seed)
    x = sample(model, diffusion, **plan.kwargs(), device=device)
    guided = f", every class in turn at guidance {plan.guidance:g}" if plan.conditional else ""
    return x, f"{plan.n} samples of {target} ({plan.describe(diffusion)}, seed {plan.seed}{guided})"


def _is_image_target(target: Path, dataset: str | None) -> bool:
    """An image run, or images to score (a folder of PNGs, an .npy of (N, C, H, W)) against image data."""
    from ..data.image_names import dataset_kind
    from ..runs import CONFIG, run_config

    if os.path.isfile(target / CONFIG):  # os.path: False, not OSError, for a name too long for the file system
        return run_config(target).images
    if dataset is None:
        return os.path.isdir(target) or _npy_ndim(target) == 4  # then _evaluate_images asks for --dataset
    return dataset_kind(dataset) == "images"


def _npy_ndim(path: Path) -> int | None:
    """The number of dimensions of the array in a .npy file, from its header alone; None for anything else."""
    import numpy as np

    if path.suffix.lower() != ".npy" or not os.path.isfile(path):
        return None
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False).ndim
    except Exception:  # not a readable .npy: read_points says why
        return None


def _evaluate_images(args, target: Path) -> int:
    """Classifier metrics of a run's fresh samples, or of image files, beside the floor and noise."""
    from ..eval.report import score_images
    from ..runs import CONFIG

    if args.nll:
        raise InputError("--nll: likelihoods are computed for points only; drop --nll for images")
    if len(args.steps or []) > 1 or len(args.sampler or []) > 1:
        raise InputError("several --steps or --sampler values (a steps curve) are for points only; give one of each")
    changes = {k: v for k, v in (("dataset", args.dataset), ("data_dir", args.data_dir)) if v is not None}
    if (target / CONFIG).is_file():
        from ..viz.image_files import to_uint8

        cfg, model, diffusion, device = load_run_on(str(target), args.device)
        cfg = cfg.replace(**changes) if changes else cfg
        images, what = _run_samples(args, target, cfg, model, diffusion, device)
        images = to_uint8(images)
    else:
        from ..runtime.device import resolve_device
        from ..viz.image_files import read_images

        if args.dataset is None:
            raise InputError(f"{target}: images are scored against a data set's real images; give --dataset NAME "
                             f"(e.g. --dataset mnist, or the folder the model was trained on)")
        if args.steps or args.sampler:
            raise InputError(f"{target}: --steps and --sampler need a run folder to sample from, not image files")
        images, device = read_images(target), resolve_device(args.device)
        cfg = TrainConfig.from_dict(changes, "command line")  # the data set at its own size: score_images compares
        what = f"{len(images)} images of {target}"
    report = score_images(cfg, images, device, flag="--n" if (target / CONFIG).is_file() else None)
    print_quality(what, cfg.dataset, report.quality, report.floor, report.notes)
    if report.quality is not None:
        print(f"noise images:  {report.noise}")
        print(f"classifier accuracy on held-out real images: {report.accuracy:.3f}")
    return 0


def _is_conditional_run(target: Path) -> bool:
    from ..runs import CONFIG, run_config

    return os.path.isfile(target / CONFIG) and run_config(target).class_cond


def _conditional(args, target: Path) -> int:
    """A class-conditional run: its samples of the requested classes scored class by class (points) or by the
    classifier (images), at one guidance weight or, with several, as the trade-off curve (CSV + figure)."""
    from ..eval import guidance_curve
    from ..runs import CONFIG, run_config

    if not os.path.isfile(target / CONFIG):
        raise InputError(f"{target}: --class and --guidance need a class-conditional run folder to sample from")
    if args.nll or args.dataset not in (None, run_config(target).dataset):
        raise InputError(f"{target}: a class-conditional run is scored against its own data set, without --nll; "
                         f"drop --dataset and --nll")
    cfg, model, diffusion, device = load_run_on(str(target), args.device)
    cfg = cfg.replace(data_dir=args.data_dir) if args.data_dir else cfg
    # default: the run's final samples; the class flags' errors before the sampling flags'
    plan = run_plan(args, "evaluate", cfg, model, diffusion, classes_first=True, n=args.n, seed=args.seed)
    n, seed, cond, options = plan.n, plan.seed, plan.cond, plan.options
    weights = args.guidance or [plan.guidance]
    print(f"{n} samples of {target} ({plan.describe(diffusion)}, seed {seed}) per guidance weight")
    if len(weights) == 1:
        rows = guidance_curve.sweep(model, diffusion, cfg, weights, cond, n, seed, device, options)
        if not cfg.images:
            print("\n".join(guidance_curve.describe(r) for r in rows))
        return 0
    csv_path = output_path(args.csv or str(target / "guidance_curve.csv"), (".csv",), "--csv")
    figure = output_path(args.figure or str(target / "guidance_curve.png"), (".png", ".pdf", ".svg"), "--figure")
    guidance_curve.run(model, diffusion, cfg, weights, cond, n, seed, device, options, csv_path, figure,
                       title=f"{target.name}: {n} samples per weight")
    print(f"wrote {csv_path} and {figure}")
    return 0


def _steps_curve(args, run_dir: Path, model, diffusion, dataset: str, device, seed: int) -> int:
    from ..eval import steps_curve
    from ..eval.points import N_EVAL
    from ..core.samplers import SAMPLERS

    steps = args.steps or [diffusion.T]
    check_steps(steps, diffusion, args.lambda_min)
    model, diffusion, students, who = _teacher_of(run_dir, model, diffusion, steps, args.device)
    csv_path = output_path(args.csv or str(run_dir / "steps_curve.csv"), (".csv",), "--csv")
    figure = output_path(args.figure or str(run_dir / "steps_curve.png"), (".png", ".pdf", ".svg"), "--figure")
    n = args.n or N_EVAL
    steps_curve.run(model, diffusion, dataset, steps, args.sampler or list(SAMPLERS), csv_path, figure, n,
                    seed, device, args.spacing, args.eta, args.lambda_min,
                    title=f"{who}: {n} samples (seed {seed}) vs {dataset}", students=students)
    print(f"wrote {csv_path} and {figure}")
    return 0


def _teacher_of(run_dir: Path, model, diffusion, steps: list[int], device: str):
    """(model, diffusion, students, title) of a steps curve: a run's own samplers; for a distilled student, its
    teacher's samplers and, beside them, the students of its rounds whose step counts were asked for."""
    from ..runs import load_run
    from ..train.distill import RECORD, read_record

    if not (run_dir / RECORD).is_file():
        return model, diffusion, [], run_dir.name
    record = read_record(run_dir)
    rounds = [r for r in record["rounds"] if r["steps"] in steps]
    if not rounds:
        raise InputError(f"{run_dir}: a student of {', '.join(str(r['steps']) for r in record['rounds'])} steps "
                         f"(its rounds); give one of them in --steps for its curve beside its teacher's samplers")
    dev = device_of(device)
    students = [(r["steps"], *load_run(run_dir / r["folder"], dev)[1:]) for r in rounds]
    _, teacher, teacher_diffusion = load_run(record["teacher"]["path"], dev)
    return teacher, teacher_diffusion, students, f"{Path(record['teacher']['path']).name} and its students"
