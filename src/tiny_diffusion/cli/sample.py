"""`tiny-diffusion sample`: draw samples from a trained run into a file or a folder of PNGs."""

from __future__ import annotations

import os
from pathlib import Path

from .common import (add_device_flag, add_sampling_flags, add_threads_flag, load_run_on, output_path, positive_int,
                     grid_text, sampling_options, seed_arg)
from .conditional import add_class_flags


def add_parser(sub) -> None:
    p = sub.add_parser("sample", help="draw samples from a trained run")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--n", type=positive_int, default=1000, help="number of samples (default 1000)")
    p.add_argument("--seed", type=seed_arg, default=0, help="seed of the sampling noise (default 0)")
    p.add_argument("--out", required=True, help="points: FILE.csv (header x,y) or FILE.npy; images: FILE.npy "
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

    from ..core.guidance import request
    from ..sampling import sample
    from ..runtime import dist
    from ..runtime.graphs import for_sampling

    from ..runs import CONFIG, run_config

    # --out is checked against what the run can write before the (slow) loading: its config.json says points or images
    known = os.path.isfile(os.path.join(args.run_dir, CONFIG))  # else load_run says what is wrong with the folder
    out = _output(args.out, run_config(args.run_dir).images) if known else None
    cfg, model, diffusion, device = load_run_on(args.run_dir, args.device)
    out = out or _output(args.out, cfg.images)
    options = sampling_options(args, diffusion, cfg)
    cond = request(model, cfg, args.n, args.classes, args.guidance, args.guidance_interval)  # {}: unconditional
    # sample i depends only on (seed, i) (sampling.trajectory) and its class, so each rank draws its own range
    # of i and the gathered whole is what one process draws
    lo, hi = dist.shard(args.n)
    mine = {**cond, "y": cond["y"][lo:hi]} if cond else {}
    net = for_sampling(model, device, cfg.cuda_graphs)
    x = (sample(net, diffusion, hi - lo, args.seed, device=device, start=lo, **options, **mine).cpu() if hi > lo
         else torch.empty((0, *model.sample_shape)))
    x = dist.gather_rows(x)
    if not dist.is_main():
        return 0
    labels = cond["y"].numpy() if cond else None
    if cfg.images:
        save_images(out, x, labels, model.classes)
    else:
        save_points(out, x.numpy())
    grid = grid_text(options, diffusion, cfg)
    print(f"wrote {len(x)} samples to {out} ({grid}, seed {args.seed})")
    if cond:  # the class each sample was asked for, beside the samples
        from ..runs import labels_path, write_labels

        write_labels(labels_path(out), labels, model.classes)
        print(f"their classes (guidance {cond['guidance']:g}) in {labels_path(out)}")
    return 0


def _folder_like(path: str) -> bool:
    """An --out that names a folder: a trailing slash, an existing folder, or no suffix."""
    return path.endswith(("/", "\\")) or os.path.isdir(path) or not Path(path).suffix  # isdir: False on OSError


def _output(path: str, images: bool) -> Path:
    """--out as the run can write it: points FILE.csv or FILE.npy; images FILE.npy (float32 (N, C, H, W) in
    [-1, 1]), FILE.png (a grid) or DIR/ (one PNG each). A refused one names what this run can write."""
    if not images:
        return output_path(path, (".csv", ".npy"), use="FILE.csv (header x,y) or FILE.npy for the points of this run")
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


def save_points(path: Path, x) -> None:
    """(n, 2) points to .npy, or to .csv with header x,y."""
    import numpy as np

    from ..fileio import atomic_write

    if path.suffix.lower() == ".npy":
        atomic_write(path, lambda f: np.save(f, x))
    else:
        rows = "".join(f"{a!r},{b!r}\n" for a, b in x.astype(float).tolist())
        atomic_write(path, lambda f: f.write(("x,y\n" + rows).encode()))
