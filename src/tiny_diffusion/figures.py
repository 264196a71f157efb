"""The figures of a run or a data set, for points and images alike: the forward and reverse processes
(a grid of scatter plots for points; rows = images, columns = steps for images) and the animations
(the snapshots across training; the sampling trajectory). The CLI and `reproduce` both call these.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from . import runs
from .errors import InputError

POINT_N, IMAGE_N = 1000, 8  # default samples: the classic 1000 points; 8 image rows
IMAGE_GRID = 64  # images in an animation's grid
MAX_ANIMATION_FRAMES = 100


def default_n(images: bool, animation: bool = False) -> int:
    return (IMAGE_GRID if animation else IMAGE_N) if images else POINT_N


def _columns(length: int, panels: int) -> np.ndarray:
    """`panels` indices spread evenly over 0..length-1 (distinct, both ends included)."""
    return np.unique(np.linspace(0, length - 1, panels).round().astype(int))


def sampling_trajectory(model, diffusion, n: int, seed: int, device, keep=None, cond: dict | None = None) -> np.ndarray:
    """(steps + 1, n, *model.sample_shape): x_T ... x_0 of ancestral sampling, or only the indices in
    `keep`; x_0 is exactly `sample --seed`'s output. Images come back as uint8. cond: class labels and
    guidance (`guidance.request`) of a class-conditional model."""
    from .samplers import trajectory

    states = []
    for i, x in enumerate(trajectory(model, diffusion, n, seed, device=device, **(cond or {}))):
        if keep is None or i in keep:
            states.append(_to_numpy(x, images=x.dim() == 4))
    return np.stack(states)


def _to_numpy(x: torch.Tensor, images: bool) -> np.ndarray:
    if images:
        from .viz.images import to_uint8

        return to_uint8(x)
    return x.cpu().numpy()


def forward_figure(cfg, out: Path, n: int | None = None, seed: int = 0, panels: int = 10, warn: bool = False) -> Path:
    """x_0 ... x_T of the forward process (Ho et al. eq. 2) for `panels` steps, for cfg's data and schedule
    (warn: about a schedule whose alpha_bar_T is far from 0)."""
    from .data.source import load_source
    from .diffusion import Diffusion

    diffusion = Diffusion.from_config(cfg, warn=warn)
    n = n or default_n(cfg.images)
    if cfg.images:
        data = load_source(cfg, "cpu")
        x0 = data.batch(torch.arange(min(n, len(data))))
    else:
        from .data import load_dataset

        x0 = torch.from_numpy(load_dataset(cfg.dataset, n, seed))
    traj = diffusion.forward_trajectory(x0, torch.Generator().manual_seed(seed))  # (T + 1, n, ...)
    cols = _columns(len(traj), panels)
    if cfg.images:
        from .viz.images import process_strip

        return process_strip(_to_numpy(traj[cols], True), out, [f"t = {c}" for c in cols])
    from . import plots

    plots.process_grid(traj.numpy(), out, panels, steps=list(range(diffusion.T + 1)))
    return Path(out)


def reverse_figure(run_dir, out: Path, n: int | None = None, seed: int = 0, panels: int = 10,
                   device="cpu", classes: str | None = None, guidance: float | None = None) -> Path:
    """x_T ... x_0 of ancestral sampling from a run: `panels` steps; for images rows = samples, columns = steps.
    classes, guidance: a class-conditional run's --class and --guidance (`guidance.request`)."""
    from .guidance import request

    cfg, model, diffusion = runs.load_run(run_dir, device)
    n = n or default_n(cfg.images)
    cols = _columns(diffusion.T + 1, panels)
    cond = request(model, cfg, n, classes, guidance)
    traj = sampling_trajectory(model, diffusion, n, seed, device, keep=set(cols.tolist()), cond=cond)
    if cfg.images:
        from .viz.images import process_strip

        return process_strip(traj, out, [f"t = {diffusion.T - c}" for c in cols])
    from . import plots

    steps = list(range(diffusion.T, -1, -1))
    plots.grid([(f"t = {steps[c]}", pts) for c, pts in zip(cols, traj)], out, cols=min(len(cols), 5))
    return Path(out)


def training_animation(run_dir, out: Path, fps: int = 10) -> Path:
    """The snapshots in frames.npy (one per snapshot epoch), titled with their epochs."""
    run_dir = Path(run_dir)
    cfg = runs.run_config(run_dir)
    path = run_dir / runs.FRAMES
    if not path.is_file():
        raise InputError(f"{run_dir}: no {runs.FRAMES}; train with --frames N (N > 0) to record snapshots")
    frames = np.load(path, allow_pickle=False)
    epochs = runs.frame_epochs_of(run_dir)
    titles = [f"epoch {e}" for e in epochs] if len(epochs) == len(frames) else None
    return _animate(cfg.images, frames, out, titles, fps)


def reverse_animation(run_dir, out: Path, n: int | None = None, seed: int = 0, fps: int = 10, device="cpu",
                      classes: str | None = None, guidance: float | None = None) -> Path:
    """The sampling trajectory x_T ... x_0, at most MAX_ANIMATION_FRAMES states of it (classes, guidance: as
    `reverse_figure`)."""
    from .guidance import request

    cfg, model, diffusion = runs.load_run(run_dir, device)
    n = n or default_n(cfg.images, animation=True)
    keep = _columns(diffusion.T + 1, min(diffusion.T + 1, MAX_ANIMATION_FRAMES))
    cond = request(model, cfg, n, classes, guidance)
    frames = sampling_trajectory(model, diffusion, n, seed, device, keep=set(keep.tolist()), cond=cond)
    return _animate(cfg.images, frames, out, [f"t = {diffusion.T - i}" for i in keep], fps)


def _animate(images: bool, frames: np.ndarray, out: Path, titles, fps: int) -> Path:
    if images:
        from .viz.images import animate_grids

        return animate_grids(frames, out, titles, fps=fps)
    from . import plots

    return plots.animate(frames, out, titles, fps=fps)
