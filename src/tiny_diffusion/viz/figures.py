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


def reverse_columns(alpha_bar, panels: int, t_states=None) -> np.ndarray:
    """Which states of a sampling trajectory a reverse figure shows, as indices into it: the first (x_T), then
    states evenly spaced in log-SNR lambda_t = log(alpha_t / sigma_t) over [SHAPE_FROM, SHAPE_UNTIL] (within the
    trajectory's lambdas; each the state nearest its lambda), then the last (x_0); `panels` in all (fewer when
    states coincide). t_states[c]: the timestep of state c (`state_timesteps`); default every step, x_T ... x_0,
    so that index c holds x_{T-c}."""
    from ..core.samplers import log_snr

    T = len(alpha_bar)
    t_states = np.arange(T, -1, -1) if t_states is None else np.asarray(t_states)
    last = len(t_states) - 1  # x_0
    if panels > last:
        return np.arange(last + 1)
    if panels == 1:
        return np.array([last])  # x_0: what the model makes
    with np.errstate(divide="ignore"):  # alpha_bar 0 or 1 (a zero beta): lambda -inf or inf
        lam = log_snr(np.asarray(alpha_bar)[t_states[:-1] - 1])  # lam[c] belongs to state c; increasing in c
    finite = np.flatnonzero(np.isfinite(lam))  # the states of finite lambda, increasing lambda
    ascending = lam[finite]
    low = max(ascending[0], SHAPE_FROM)
    high = max(low, min(ascending[-1], SHAPE_UNTIL))
    targets = np.linspace(low, high, panels - 1 - (low > lam[0]))  # x_T's own lambda when low is x_T's
    right = np.clip(np.searchsorted(ascending, targets), 1, len(ascending) - 1)
    nearer = np.where(targets - ascending[right - 1] <= ascending[right] - targets, right - 1, right)
    return np.unique(np.concatenate([[0], finite[nearer], [last]]))


def state_timesteps(diffusion, options: dict, kind: str, recorded=None) -> np.ndarray:
    """The timestep of each state x_T ... x_0 that `trajectory(**options)` yields, as the titles count them:
    the state a step at (0-based) t starts from is x_{t+1}, the last one is x_0. Every step: T, T-1, ..., 0.
    recorded: a distilled student's own grid (its model's `grid`), which it samples on unless told otherwise."""
    from ..core.samplers import timesteps
    from ..sampling import grid, own_grid

    steps = options.get("steps")
    ts = own_grid(recorded, steps, options.get("spacing"), options.get("lambda_min"))
    if ts is None:
        spacing, lambda_min = grid(options.get("sampler", "ddpm"), diffusion, steps, options.get("spacing"),
                                   options.get("lambda_min"), kind)
        ts = timesteps(diffusion.T, steps, spacing, _alpha_bar(diffusion), lambda_min)
    return np.append(ts + 1, 0)


def step_title(t: int, alpha_bar, sep: str = ", ") -> str:
    """'t = 700, lambda = -2.5': a reverse panel's timestep and its log-SNR (x_0: lambda = inf)."""
    from ..core.samplers import log_snr

    with np.errstate(divide="ignore"):
        lam = float(log_snr(alpha_bar[t - 1])) if t > 0 else np.inf
    return f"t = {t}{sep}lambda = {lam:.1f}"


def sampling_trajectory(model, diffusion, n: int, seed: int, device, keep=None, cond: dict | None = None,
                        options: dict | None = None, progress: bool | None = False) -> np.ndarray:
    """(states, n, *model.sample_shape): x_T ... x_0 of ancestral sampling (or of `options`, sample()'s sampler
    keywords: a Plan's options), or only the indices in `keep`; x_0 is exactly `sample --seed`'s output (before
    images are clipped). Images come back as uint8. cond: class labels and guidance (a Plan's cond) of a
    class-conditional model. progress: a bar on stderr (None: when stderr is a terminal)."""
    import sys

    from tqdm.auto import tqdm

    from ..sampling import trajectory

    options = options or {}
    show = sys.stderr.isatty() if progress is None else progress
    total = len(state_timesteps(diffusion, options, model.kind, getattr(model, "grid", None)))
    states = []
    with tqdm(total=total, desc="sampling", unit="step", disable=not show, leave=False) as bar:
        for i, x in enumerate(trajectory(model, diffusion, n, seed, device=device, **options, **(cond or {}))):
            if keep is None or i in keep:
                states.append(_to_numpy(x, images=model.kind == "images"))
            bar.update()
    return np.stack(states)


def _to_numpy(x: torch.Tensor, images: bool) -> np.ndarray:
    if images:
        from .image_files import to_uint8

        return to_uint8(x)
    return x.cpu().numpy()


def forward_figure(cfg, out: Path, n: int | None = None, seed: int = 0, panels: int = 10, warn: bool = False) -> Path:
    """x_0 ... x_T of the forward process (Ho et al. eq. 2) in `panels` steps spaced in log-SNR (forward_columns),
    each titled with its t and lambda, for cfg's data and schedule (warn: about a schedule whose alpha_bar_T is far
    from 0)."""
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
    alpha_bar = _alpha_bar(diffusion)
    cols = forward_columns(alpha_bar, panels)
    titles = [step_title(int(t), alpha_bar, "\n" if cfg.images else ", ") for t in cols]
    if cfg.images:
        from .images import process_strip

        return process_strip(_to_numpy(traj[cols], True), out, titles)
    from . import points as plots

    plots.grid(list(zip(titles, traj[cols].numpy())), out, cols=min(len(titles), 5))
    return Path(out)


def forward_columns(alpha_bar, panels: int) -> np.ndarray:
    """Which x_t a forward figure shows, as t (0 = the data, T = the noise): the reverse figure's states
    (reverse_columns) read forwards, so the panels between x_0 and x_T are spaced evenly in log-SNR over
    [SHAPE_FROM, SHAPE_UNTIL], where the shape dissolves (evenly in t, 9 of 10 dino panels were noise at T = 1000)."""
    return np.sort(len(alpha_bar) - reverse_columns(alpha_bar, panels))


def _reverse(run_dir, n, seed, device, planner, progress, panels: int, animation: bool):
    """(cfg, titles, states) of a run's reverse process for figures and animations: `panels` states of the
    trajectory spaced in log-SNR (reverse_columns), each titled with its t and lambda (newline-separated for
    images). planner(cfg, model, diffusion, n, seed) -> the draw's sampling.Plan (default `figure_plan`)."""
    cfg, model, diffusion = runs.load_run(run_dir, device)
    n = n or default_n(cfg.images, animation)
    plan = (planner or figure_plan)(cfg, model, diffusion, n, seed)
    alpha_bar = _alpha_bar(diffusion)
    t_states = state_timesteps(diffusion, plan.options, cfg.kind, model.grid)
    cols = reverse_columns(alpha_bar, panels, t_states)
    traj = sampling_trajectory(model, diffusion, plan.n, plan.seed, device, set(cols.tolist()), plan.cond,
                               plan.options, progress)
    sep = "\n" if cfg.images and not animation else ", "
    return cfg, [step_title(int(t), alpha_bar, sep) for t in t_states[cols]], traj


def figure_plan(cfg, model, diffusion, n: int, seed: int):
    """How reverse figures sample when not told (sampling.plan's "figure"): as the run's final samples (and
    `sample`) do, so x_0 is what `sample --seed` writes: images by DPM-Solver++ in 10 steps by default (not
    minutes of 1000 ancestral steps), points by every ancestral step, as ever (their eval_sampler and eval_steps
    default to it); a class-conditional run's samples every class in turn at the run's guidance."""
    from ..sampling import plan

    return plan(cfg, "figure", classes=model.classes, n=n, seed=seed)


def reverse_figure(run_dir, out: Path, n: int | None = None, seed: int = 0, panels: int = 10, device="cpu",
                   planner=None, progress: bool | None = False) -> Path:
    """A run's reverse process: `panels` states from x_T to x_0 spaced in log-SNR (reverse_columns), each titled
    with its t and lambda; for images rows = samples, columns = steps. planner(cfg, model, diffusion, n, seed): the
    draw's sampling.Plan (default `figure_plan`: as the run's final samples; the CLI's: its flags, cli.common.
    planner_of); progress: a bar."""
    cfg, titles, traj = _reverse(run_dir, n, seed, device, planner, progress, panels, False)
    if cfg.images:
        from .images import process_strip

        return process_strip(traj, out, titles)
    from . import points as plots

    plots.grid(list(zip(titles, traj)), out, cols=min(len(titles), 5))
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
        if not runs.is_finished(run_dir):  # the snapshots are in its checkpoint until training ends
            raise InputError(f"{run_dir}: an unfinished run, whose snapshots are written when its training ends; "
                             f"finish it with `tiny-diffusion train --resume {run_dir}`")
        raise InputError(f"{run_dir}: no {runs.FRAMES}; train with --frames N (N > 0) to record snapshots")
    frames = np.load(path, allow_pickle=False)
    epochs = runs.frame_epochs_of(run_dir)
    titles = [f"epoch {e}" for e in epochs] if len(epochs) == len(frames) else None
    return _animate(cfg.images, frames, out, titles, fps)


def reverse_animation(run_dir, out: Path, n: int | None = None, seed: int = 0, fps: int | None = None,
                      device="cpu", planner=None, progress: bool | None = False) -> Path:
    """The sampling trajectory x_T ... x_0: at most MAX_ANIMATION_FRAMES states of it, spaced in log-SNR
    (reverse_columns) and titled with t and lambda; x_0 held HOLD_LAST seconds; fps: default_fps. planner,
    progress: as `reverse_figure`."""
    cfg, titles, frames = _reverse(run_dir, n, seed, device, planner, progress, MAX_ANIMATION_FRAMES, True)
    return _animate(cfg.images, frames, out, titles, fps)


def _animate(images: bool, frames: np.ndarray, out: Path, titles, fps: int | None) -> Path:
    fps = default_fps(len(frames)) if fps is None else fps
    if images:
        from .images import animate_grids

        return animate_grids(frames, out, titles, fps=fps, hold_last=HOLD_LAST)
    from . import points as plots

    return plots.animate(frames, out, titles, fps=fps, hold_last=HOLD_LAST)
