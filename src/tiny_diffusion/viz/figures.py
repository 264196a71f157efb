"""The figures of a run or a data set, for points and images alike: the forward and reverse processes
(a grid of scatter plots for points; rows = images, columns = steps for images) and the animations
(the snapshots across training; the sampling trajectory). The CLI and `reproduce` both call these.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .. import runs
from ..errors import InputError

POINT_N, IMAGE_N = 1000, 8  # default samples: the classic 1000 points; 8 image rows
IMAGE_GRID = 64  # images in an animation's grid
MAX_ANIMATION_FRAMES = 100
# Where the shape forms, in log-SNR lambda = log(alpha / sigma) of x_t = alpha x_0 + sigma eps, for data of unit
# scale (the points; images in [-1, 1]): in the reverse figures of the default dino and MNIST runs, x_t is a blob
# or noise up to lambda = -1.5 and looks like x_0 from lambda = 3 on (noise sigma / alpha < 0.05). Reverse
# figures spend their panels between the two.
SHAPE_FROM, SHAPE_UNTIL = -1.5, 3.0
PLAY_SECONDS = 5.0  # default fps: the frames of an animation play in about this long...
MAX_FPS = 10  # ...at most this fast (a long trajectory plays longer)
HOLD_LAST = 2.0  # seconds the last frame (the trained model's samples; x_0) stays up before the loop restarts


def default_n(images: bool, animation: bool = False) -> int:
    return (IMAGE_GRID if animation else IMAGE_N) if images else POINT_N


def _columns(length: int, panels: int) -> np.ndarray:
    """`panels` indices spread evenly over 0..length-1 (distinct, both ends included)."""
    return np.unique(np.linspace(0, length - 1, panels).round().astype(int))


def reverse_columns(alpha_bar, panels: int) -> np.ndarray:
    """Which states of the sampling trajectory x_T ... x_0 (index c holds x_{T-c}) a reverse figure shows:
    x_T, then states evenly spaced in log-SNR lambda_t = log(alpha_t / sigma_t) over [SHAPE_FROM, SHAPE_UNTIL]
    (within lambda_T .. lambda_1; each the step nearest its lambda), then x_0; `panels` in all (fewer when
    steps coincide)."""
    from ..core.samplers import log_snr

    with np.errstate(divide="ignore"):  # alpha_bar 0 or 1 (a zero beta): lambda -inf or inf
        lam = log_snr(alpha_bar)  # lam[t - 1] belongs to x_t, t = 1..T; decreasing in t
    T = len(lam)
    if panels > T:
        return np.arange(T + 1)
    if panels == 1:
        return np.array([T])  # x_0: what the model makes
    t_of = np.flatnonzero(np.isfinite(lam))[::-1] + 1  # the steps of finite lambda, increasing lambda
    ascending = lam[t_of - 1]
    low = max(ascending[0], SHAPE_FROM)
    high = max(low, min(ascending[-1], SHAPE_UNTIL))
    targets = np.linspace(low, high, panels - 1 - (low > lam[-1]))  # lambda_T itself when low = lambda_T
    right = np.clip(np.searchsorted(ascending, targets), 1, len(ascending) - 1)
    nearer = np.where(targets - ascending[right - 1] <= ascending[right] - targets, right - 1, right)
    return np.unique(np.concatenate([[0], T - t_of[nearer], [T]]))


def step_title(t: int, alpha_bar, sep: str = ", ") -> str:
    """'t = 700, lambda = -2.5': a reverse panel's timestep and its log-SNR (x_0: lambda = inf)."""
    from ..core.samplers import log_snr

    with np.errstate(divide="ignore"):
        lam = float(log_snr(alpha_bar[t - 1])) if t > 0 else np.inf
    return f"t = {t}{sep}lambda = {lam:.1f}"


def sampling_trajectory(model, diffusion, n: int, seed: int, device, keep=None, cond: dict | None = None) -> np.ndarray:
    """(steps + 1, n, *model.sample_shape): x_T ... x_0 of ancestral sampling, or only the indices in
    `keep`; x_0 is exactly `sample --seed`'s output. Images come back as uint8. cond: class labels and
    guidance (`guidance.request`) of a class-conditional model."""
    from ..sampling import trajectory

    states = []
    for i, x in enumerate(trajectory(model, diffusion, n, seed, device=device, **(cond or {}))):
        if keep is None or i in keep:
            states.append(_to_numpy(x, images=model.kind == "images"))
    return np.stack(states)


def _to_numpy(x: torch.Tensor, images: bool) -> np.ndarray:
    if images:
        from .images import to_uint8

        return to_uint8(x)
    return x.cpu().numpy()


def forward_figure(cfg, out: Path, n: int | None = None, seed: int = 0, panels: int = 10, warn: bool = False) -> Path:
    """x_0 ... x_T of the forward process (Ho et al. eq. 2) for `panels` steps, for cfg's data and schedule
    (warn: about a schedule whose alpha_bar_T is far from 0)."""
    from ..data.source import load_source
    from ..core.diffusion import Diffusion

    diffusion = Diffusion.from_config(cfg, warn=warn)
    n = n or default_n(cfg.images)
    if cfg.images:
        data = load_source(cfg, "cpu")
        x0 = data.batch(torch.arange(min(n, len(data))))
    else:
        from ..data import load_dataset

        x0 = torch.from_numpy(load_dataset(cfg.dataset, n, seed))
    traj = diffusion.forward_trajectory(x0, torch.Generator().manual_seed(seed))  # (T + 1, n, ...)
    cols = _columns(len(traj), panels)
    if cfg.images:
        from .images import process_strip

        return process_strip(_to_numpy(traj[cols], True), out, [f"t = {c}" for c in cols])
    from . import points as plots

    plots.process_grid(traj.numpy(), out, panels, steps=list(range(diffusion.T + 1)))
    return Path(out)


def reverse_figure(run_dir, out: Path, n: int | None = None, seed: int = 0, panels: int = 10,
                   device="cpu", classes: str | None = None, guidance: float | None = None) -> Path:
    """x_T ... x_0 of ancestral sampling from a run: `panels` steps spaced in log-SNR (reverse_columns), each
    titled with its t and lambda; for images rows = samples, columns = steps. classes, guidance: a
    class-conditional run's --class and --guidance (`guidance.request`)."""
    from ..core.guidance import request

    cfg, model, diffusion = runs.load_run(run_dir, device)
    n = n or default_n(cfg.images)
    alpha_bar = _alpha_bar(diffusion)
    cols = reverse_columns(alpha_bar, panels)
    cond = request(model, cfg, n, classes, guidance)
    traj = sampling_trajectory(model, diffusion, n, seed, device, keep=set(cols.tolist()), cond=cond)
    if cfg.images:
        from .images import process_strip

        return process_strip(traj, out, [step_title(diffusion.T - c, alpha_bar, "\n") for c in cols])
    from . import points as plots

    titles = [step_title(diffusion.T - c, alpha_bar) for c in cols]
    plots.grid(list(zip(titles, traj)), out, cols=min(len(cols), 5))
    return Path(out)


def _alpha_bar(diffusion) -> np.ndarray:
    return diffusion.alpha_bar.double().cpu().numpy()


def default_fps(frames: int) -> int:
    """The frame rate that plays `frames` frames in about PLAY_SECONDS, at most MAX_FPS (at least 1)."""
    return int(min(MAX_FPS, max(1, round(frames / PLAY_SECONDS))))


def training_animation(run_dir, out: Path, fps: int | None = None) -> Path:
    """The snapshots in frames.npy (one per snapshot epoch), titled with their epochs; the last one held
    HOLD_LAST seconds; fps: default_fps."""
    run_dir = Path(run_dir)
    cfg = runs.run_config(run_dir)
    path = run_dir / runs.FRAMES
    if not path.is_file():
        raise InputError(f"{run_dir}: no {runs.FRAMES}; train with --frames N (N > 0) to record snapshots")
    frames = np.load(path, allow_pickle=False)
    epochs = runs.frame_epochs_of(run_dir)
    titles = [f"epoch {e}" for e in epochs] if len(epochs) == len(frames) else None
    return _animate(cfg.images, frames, out, titles, fps)


def reverse_animation(run_dir, out: Path, n: int | None = None, seed: int = 0, fps: int | None = None,
                      device="cpu", classes: str | None = None, guidance: float | None = None) -> Path:
    """The sampling trajectory x_T ... x_0: at most MAX_ANIMATION_FRAMES states of it, spaced in log-SNR
    (reverse_columns) and titled with t and lambda; x_0 held HOLD_LAST seconds; fps: default_fps. classes,
    guidance: as `reverse_figure`."""
    from ..core.guidance import request

    cfg, model, diffusion = runs.load_run(run_dir, device)
    n = n or default_n(cfg.images, animation=True)
    alpha_bar = _alpha_bar(diffusion)
    keep = reverse_columns(alpha_bar, MAX_ANIMATION_FRAMES)
    cond = request(model, cfg, n, classes, guidance)
    frames = sampling_trajectory(model, diffusion, n, seed, device, keep=set(keep.tolist()), cond=cond)
    return _animate(cfg.images, frames, out, [step_title(diffusion.T - c, alpha_bar) for c in keep], fps)


def _animate(images: bool, frames: np.ndarray, out: Path, titles, fps: int | None) -> Path:
    fps = default_fps(len(frames)) if fps is None else fps
    if images:
        from .images import animate_grids

        return animate_grids(frames, out, titles, fps=fps, hold_last=HOLD_LAST)
    from . import points as plots

    return plots.animate(frames, out, titles, fps=fps, hold_last=HOLD_LAST)
