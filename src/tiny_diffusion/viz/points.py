"""Figures: scatter of samples, loss curve, process grids (of forward/reverse panels) and the animation.
matplotlib with the Agg backend (files only, no screen)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

LIMIT = 6.0  # the classic study's axes: [-6, 6]^2 holds every data set and most of N(0, I)


def _plt():
    """pyplot for the figures we save (and close): the file backend Agg, unless pyplot is already in use, as in a
    notebook, whose inline backend must survive a training run (switching it stopped the notebook's own plots)."""
    import sys

    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
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


def samples_figure(pts: np.ndarray, path: Path, title: str, labels=None, classes=None) -> None:
    """A run's samples as `train` draws them (samples.png) and `sample --out FILE.png` too: one scatter, or with
    class labels one panel per class."""
    if labels is None:
        scatter(pts, path, title=title)
    else:
        grid([(c, pts[labels == k]) for k, c in enumerate(classes)], path, cols=5)


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
        outside = int(_outside(pts, limit).sum())
        title = titles[i] if titles else ""
        if outside:
            title += f"\n{outside} of {len(pts)} points beyond the axes, shown at the edge"
        _scatter_edges(ax, pts, limit, title or None, size=3.0)
        fig.canvas.draw()
        images.append(Image.fromarray(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()))
    plt.close(fig)
    return save_animation(images, path, fps, hold_last)


def _outside(pts: np.ndarray, limit: float) -> np.ndarray:
    """Which points lie beyond the axes [-limit, limit]^2 (early in training they lie far out); NaN counts."""
    return ~(np.abs(pts) <= limit).all(axis=1)


def _scatter_edges(ax, pts: np.ndarray, limit: float, title: str | None, size: float) -> None:
    """Points on fixed axes, those beyond them drawn at the edge as red crosses, so a cell is never blank."""
    outside = _outside(pts, limit)
    _scatter_ax(ax, pts[~outside], limit, title, size=size)
    edge = np.clip(pts[outside], -limit, limit)
    ax.scatter(edge[:, 0], edge[:, 1], s=6.0, marker="x", color="tab:red", linewidths=0.8, clip_on=False)


SWEEP_COLUMNS = 10  # snapshot columns at most in a sweep's figure, so it reads at 100% (20 made 3040 px of 6-pt text)
SWEEP_FONT = 8  # points at 100 dpi: 11-pixel text
SWEEP_CELL = 2.3  # inches per cell at 100 dpi: 230 pixels


def sweep_grid(rows: list[tuple[str, list[tuple[int, dict, np.ndarray]]]], path: Path, limit: float = LIMIT,
               title: str | None = None) -> tuple[int, int]:
    """The classic ablation figure: one row per run (hyperparameter value), one column per snapshot
    epoch, axes shared; each cell titled with its epoch and quality numbers. rows: (label, cells),
    a cell (epoch, {'energy', 'precision', 'coverage'}, points). At most SWEEP_COLUMNS snapshots per row, spread
    evenly (the first and the last kept); points beyond the axes drawn at the edge and counted in the cell's
    title, as `animate` does. Returns (rows, columns)."""
    plt = _plt()
    rows = [(label, [cells[i] for i in _spread(len(cells), SWEEP_COLUMNS)]) for label, cells in rows]
    cols = max(len(cells) for _, cells in rows)
    fig, axes = plt.subplots(len(rows), cols, figsize=(SWEEP_CELL * cols, (SWEEP_CELL + 0.2) * len(rows)),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for r, (label, cells) in enumerate(rows):
        for c, (epoch, q, pts) in enumerate(cells):
            ax = axes[r, c]
            ax.axis("on")
            outside = int(_outside(pts, limit).sum())
            beyond = f", {outside} off axes" if outside else ""
            _scatter_edges(ax, pts, limit, f"ep {epoch}{beyond}\nE {q['energy']:.3f} P {q['precision']:.2f} "
                                           f"C {q['coverage']:.2f}", size=1.0)
            ax.title.set_fontsize(SWEEP_FONT)
        axes[r, 0].set_ylabel(label, fontsize=SWEEP_FONT)
    if title:
        fig.suptitle(title, fontsize=SWEEP_FONT + 3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return len(rows), cols


def _spread(n: int, most: int) -> list[int]:
    """At most `most` of the indices 0..n-1, evenly spread, the first and the last included."""
    return list(range(n)) if n <= most else np.unique(np.linspace(0, n - 1, most).round().astype(int)).tolist()
