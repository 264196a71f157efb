"""Figures: scatter of samples, loss curve, forward/reverse process grids and the animation.
matplotlib with the Agg backend (files only, no screen)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

LIMIT = 6.0  # the classic study's axes: [-6, 6]^2 holds every data set and most of N(0, I)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _scatter_ax(ax, pts: np.ndarray, limit: float = LIMIT, title: str | None = None, size: float = 2.0):
    ax.scatter(pts[:, 0], pts[:, 1], s=size, alpha=0.6, linewidths=0)
    ax.set_xlim(-limit, limit)
    ax.set_ylim(-limit, limit)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8)


def scatter_figure(pts: np.ndarray, title: str | None = None, limit: float = LIMIT):
    """One scatter plot of (n, 2) points, as a matplotlib figure (the caller saves and closes it)."""
    fig, ax = _plt().subplots(figsize=(5, 5))
    _scatter_ax(ax, pts, limit, title, size=4.0)
    fig.tight_layout()
    return fig


def scatter(pts: np.ndarray, path: Path, title: str | None = None, limit: float = LIMIT) -> None:
    """One scatter plot of (n, 2) points, saved to `path`."""
    fig = scatter_figure(pts, title, limit)
    fig.savefig(path, dpi=100)
    _plt().close(fig)


def loss_curve(steps, losses, path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(steps, losses)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (epoch mean)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def grid(panels: list[tuple[str, np.ndarray]], path: Path, cols: int, limit: float = LIMIT,
         row_labels: list[str] | None = None) -> None:
    """Panels of (title, points) laid out row by row, axes shared: the classic figure layout."""
    plt = _plt()
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.0 * cols, 2.0 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (title, pts) in zip(axes.flat, panels):
        ax.axis("on")
        _scatter_ax(ax, pts, limit, title, size=1.0)
    if row_labels:
        for r, label in enumerate(row_labels):
            axes[r, 0].set_ylabel(label, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def process_grid(trajectory: np.ndarray, path: Path, n_panels: int = 10, label: str = "t",
                 steps: list[int] | None = None) -> None:
    """A row of snapshots of a trajectory (steps, n, 2); `steps` names each index's t."""
    idx = np.unique(np.linspace(0, len(trajectory) - 1, n_panels).round().astype(int))
    steps = steps if steps is not None else list(range(len(trajectory)))
    panels = [(f"{label} = {steps[i]}", trajectory[i]) for i in idx]
    grid(panels, path, cols=min(len(panels), 5))


def animate(frames: np.ndarray, path: Path, titles: list[str] | None = None, fps: int = 10,
            hold_last: float = 1.0, limit: float = LIMIT) -> Path:
    """An animation of (frames, n, 2) on fixed axes [-limit, limit]^2: GIF, or MP4 through ffmpeg when path
    ends in .mp4; the last frame stays hold_last seconds. Points outside the axes (early in training they
    lie far out) are drawn at the edge in another colour, and the title counts them."""
    from PIL import Image

    from .animate import check_animation, save_animation

    check_animation(path, fps, hold_last)
    plt = _plt()
    images = []
    fig, ax = plt.subplots(figsize=(4, 4))
    for i, pts in enumerate(frames):
        ax.clear()
        outside = ~(np.abs(pts) <= limit).all(axis=1)  # NaN counts as outside
        title = titles[i] if titles else ""
        if outside.any():
            title += f"\n{outside.sum()} of {len(pts)} points beyond the axes, shown at the edge"
        _scatter_ax(ax, pts[~outside], limit, title or None, size=3.0)
        edge = np.clip(pts[outside], -limit, limit)
        ax.scatter(edge[:, 0], edge[:, 1], s=6.0, marker="x", color="tab:red", linewidths=0.8, clip_on=False)
        fig.canvas.draw()
        images.append(Image.fromarray(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()))
    plt.close(fig)
    return save_animation(images, path, fps, hold_last)


def sweep_grid(rows: list[tuple[str, list[tuple[int, dict, np.ndarray]]]], path: Path, limit: float = LIMIT,
               title: str | None = None) -> tuple[int, int]:
    """The classic ablation figure: one row per run (hyperparameter value), one column per snapshot
    epoch, axes shared; each cell titled with its epoch and quality numbers. rows: (label, cells),
    a cell (epoch, {'energy', 'precision', 'coverage'}, points). Returns (rows, columns)."""
    plt = _plt()
    cols = max(len(cells) for _, cells in rows)
    fig, axes = plt.subplots(len(rows), cols, figsize=(1.9 * cols, 2.0 * len(rows)), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for r, (label, cells) in enumerate(rows):
        for c, (epoch, q, pts) in enumerate(cells):
            ax = axes[r, c]
            ax.axis("on")
            _scatter_ax(ax, pts, limit, f"ep {epoch}: E {q['energy']:.3f}\nP {q['precision']:.2f} "
                                         f"C {q['coverage']:.2f}", size=0.8)
            ax.title.set_fontsize(6.5)
        axes[r, 0].set_ylabel(label, fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return len(rows), cols
