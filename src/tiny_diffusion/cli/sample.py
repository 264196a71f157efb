"""`tiny-diffusion sample`: draw samples from a trained run into a file or a folder of PNGs."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from .common import (add_device_flag, add_sampling_flags, add_threads_flag, load_run_on, output_path, positive_int,
                     run_plan, seed_arg)
from .conditional import add_class_flags

LONG_CALLS = 1000  # a draw of more network calls than this says how long it will take, and shows a bar on a terminal


def add_parser(sub) -> None:
    p = sub.add_parser("sample", help="draw samples from a trained run")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--n", type=positive_int, default=1000, help="number of samples (default 1000)")
    p.add_argument("--seed", type=seed_arg, default=0, help="seed of the sampling noise (default 0)")
    p.add_argument("--out", required=True, help="points: FILE.csv (header x,y), FILE.npy or FILE.png (a scatter, as "
                   "train draws); images: FILE.npy "
                   "(float32 (N, C, H, W) in [-1, 1]), FILE.png (a grid) or DIR/ (one PNG per image)")
    add_device_flag(p)
    add_threads_flag(p)
    add_sampling_flags(p)
    add_class_flags(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..runtime import dist

    with dist.session():  # under torchrun: the seeds split across the ranks, rank 0 writes
        return _sample(args)


def _sample(args) -> int:
    import torch

    from ..sampling import BLOCKS, grid_of, sample
    from ..runtime import dist
    from ..runtime.graphs import for_sampling

    from ..runs import CONFIG, run_config

    # --out is checked against what the run can write before the (slow) loading: its config.json says points or images
    known = os.path.isfile(os.path.join(args.run_dir, CONFIG))  # else load_run says what is wrong with the folder
    out = _output(args.out, run_config(args.run_dir).images) if known else None
    cfg, model, diffusion, device = load_run_on(args.run_dir, args.device)
    out = out or _output(args.out, cfg.images)
    plan = run_plan(args, "sample", cfg, model, diffusion, n=args.n, seed=args.seed)
    # sample i depends only on (seed, i) (sampling.trajectory) and its class, so each rank draws its own range
    # of i and the gathered whole is what one process draws
    lo, hi = dist.shard(plan.n)
    net = for_sampling(model, device, cfg.cuda_graphs)
    steps = len(grid_of(model, diffusion, plan.sampler, plan.steps, plan.spacing, plan.lambda_min, cfg.kind))
    block = BLOCKS[cfg.kind]
    with _progress(steps, -(-hi // block) - lo // block, block, hi - lo) as tick:
        x = (sample(net, diffusion, **plan.kwargs(lo, hi), device=device, stop=tick).cpu()
             if hi > lo else torch.empty((0, *model.sample_shape)))
    x = dist.gather_rows(x)
    if not dist.is_main():
        return 0
    labels = plan.y.numpy() if plan.conditional else None
    grid = plan.describe(diffusion)
    if cfg.images:
        save_images(out, x, labels, model.classes)
    else:
        save_points(out, x.numpy(), f"{cfg.dataset}: {len(x)} samples ({grid})", labels, model.classes)
    print(f"wrote {len(x)} samples to {out} ({grid}, seed {plan.seed})")
    if plan.conditional:  # the class each sample was asked for, beside the samples
        from ..runs import labels_path, write_labels

        write_labels(labels_path(out), labels, model.classes)
        print(f"their classes (guidance {plan.guidance:g}) in {labels_path(out)}")
    return 0


def _folder_like(path: str) -> bool:
    """An --out that names a folder: a trailing slash, an existing folder, or no suffix."""
    return path.endswith(("/", "\\")) or os.path.isdir(path) or not Path(path).suffix  # isdir: False on OSError


def _output(path: str, images: bool) -> Path:
    """--out as the run can write it: points FILE.csv or FILE.npy; images FILE.npy (float32 (N, C, H, W) in
    [-1, 1]), FILE.png (a grid) or DIR/ (one PNG each). A refused one names what this run can write."""
    if not images:
        return output_path(path, (".csv", ".npy", ".png"), use="FILE.csv (header x,y), FILE.npy or FILE.png (a "
                                                                "scatter) for the points of this run")
    if _folder_like(path):
        return Path(path)
    return output_path(path, (".npy", ".png"), use="FILE.npy, FILE.png (a grid) or a folder DIR/ (one PNG per "
                                                   "image) for the images of this run")


def save_images(path: Path, x, labels=None, classes=None) -> None:
    """Samples (N, C, H, W) in [-1, 1]: .npy as float32, .png as one grid (one row per class when labels are
    given), a folder as one PNG per image."""
    import numpy as np

    from ..fileio import atomic_write
    from ..viz.images import save_class_grid, save_grid, save_png_folder

    if path.suffix.lower() == ".npy":
        atomic_write(path, lambda f: np.save(f, x.numpy().astype(np.float32)))  # sample() clipped them
    elif path.suffix.lower() == ".png" and labels is not None:
        save_class_grid(x.numpy(), labels, classes, path)
    elif path.suffix.lower() == ".png":
        save_grid(x.numpy(), path)
    else:
        save_png_folder(x.numpy(), path)


def save_points(path: Path, x, title: str = "", labels=None, classes=None) -> None:
    """(n, 2) points to .npy, to .csv with header x,y, or to .png as train draws them (one panel per class when
    labels are given)."""
    import numpy as np

    from ..fileio import atomic_write

    if path.suffix.lower() == ".npy":
        atomic_write(path, lambda f: np.save(f, x))
    elif path.suffix.lower() == ".png":
        from ..viz.points import samples_figure

        samples_figure(x, path, title, labels, classes)
    else:
        rows = "".join(f"{a!r},{b!r}\n" for a, b in x.astype(float).tolist())
        atomic_write(path, lambda f: f.write(("x,y\n" + rows).encode()))


@contextlib.contextmanager
def _progress(steps: int, blocks: int, block: int, n: int):
    """sample's `stop` hook, asked before every network call (steps x blocks of them): for a draw of more than
    LONG_CALLS, one line with the estimate (the first call timed here, times their number) and a tqdm bar on a
    terminal (as train's: off when stderr is not one)."""
    import sys
    import time

    from tqdm.auto import tqdm

    from ..train.estimate import duration

    calls = steps * blocks
    bar = tqdm(total=calls, desc="sample", unit="call", disable=calls <= LONG_CALLS or not sys.stderr.isatty(),
               leave=False)
    first = []

    def tick() -> bool:
        if len(first) < 2:
            first.append(time.perf_counter())
            if len(first) == 2 and calls > LONG_CALLS:
                tqdm.write(f"sampling {n} samples: {steps} steps x {blocks} blocks of {block} = {calls} network "
                           f"calls, about {duration((first[1] - first[0]) * calls)} (an estimate: the first call "
                           f"timed here, times their number)", file=sys.stderr)
        bar.update(1)
        return False
    try:
        yield tick
    finally:
        bar.close()
