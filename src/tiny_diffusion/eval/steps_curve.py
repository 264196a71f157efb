"""Quality versus the number of network evaluations (NFE), per sampler: the sweep behind
`tiny-diffusion evaluate RUN_DIR --steps 5,10,20,...`, its CSV and its figure.

Every sampler here calls the network once per step, so NFE = steps. Each point of the curve draws
the same n samples (same seed, so the same x_T) and scores them with `metrics.quality` against the
same fresh references; the data floor (true samples scored the same way) is drawn as a line.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .. import fileio
from .points import Quality, data_floor, quality, references

COLUMNS = ("sampler", "spacing", "lambda_min", "steps", "nfe", "energy", "precision", "coverage", "seconds")


def sweep(model, diffusion, dataset: str, steps: list[int], samplers: list[str], n: int = 1000, seed: int = 0,
          device="cpu", spacing: str | None = None, eta: float | None = None, lambda_min: float | None = None,
          log=None) -> list[dict]:
    """One row per (sampler, steps): quality of n samples and the seconds sampling took. spacing None: each
    sampler on its default grid for that many steps (`samplers.default_grid`); the row records the grid."""
    from ..sampling import describe_grid, grid, sample

    refs = references(dataset, n=n)
    rows = []
    for name in samplers:
        for k in steps:
            start = time.perf_counter()
            x = sample(model, diffusion, n, seed, device=device, sampler=name, steps=k, spacing=spacing,
                       eta=eta if name == "ddim" else None, lambda_min=lambda_min)
            x = x.cpu().numpy()
            seconds = time.perf_counter() - start
            q = quality(x, refs)
            used_spacing, used_lambda_min = grid(name, diffusion, k, spacing, lambda_min)
            rows.append({"sampler": name, "spacing": used_spacing, "lambda_min": used_lambda_min, "steps": k, "nfe": k,
                         **q.as_dict(), "seconds": round(seconds, 4)})
            if log:
                log(f"{describe_grid(name, diffusion, k, spacing, lambda_min):40s}  {q}  ({seconds:.2f} s)")
    return rows


STUDENT = "distilled"  # the sampler column of a distilled student's rows (DDIM on its own grid)


def student_rows(students, dataset: str, n: int = 1000, seed: int = 0, device="cpu", log=None) -> list[dict]:
    """One row per (steps, model, diffusion) in `students`: distilled students (a distillation's rounds), each
    sampled with DDIM on its own recorded grid, scored as `sweep` scores the samplers."""
    from ..sampling import sample

    refs = references(dataset, n=n)
    rows = []
    for k, model, diffusion in students:
        start = time.perf_counter()
        x = sample(model, diffusion, n, seed, device=device, sampler="ddim", steps=k).cpu().numpy()
        seconds = time.perf_counter() - start
        q = quality(x, refs)
        rows.append({"sampler": STUDENT, "spacing": "student", "lambda_min": None, "steps": k, "nfe": k,
                     **q.as_dict(), "seconds": round(seconds, 4)})
        if log:
            log(f"{f'distilled student, {k} steps':40s}  {q}  ({seconds:.2f} s)")
    return rows


def plot(rows: list[dict], floor: Quality, path: Path, title: str | None = None) -> None:
    """Energy, precision and coverage against NFE (log axis), one line per sampler, the floor dashed."""
    from ..viz.points import _plt

    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    samplers = list(dict.fromkeys(r["sampler"] for r in rows))
    for ax, metric in zip(axes, ("energy", "precision", "coverage")):
        for name in samplers:
            pts = sorted((r["nfe"], r[metric]) for r in rows if r["sampler"] == name)
            student = name == STUDENT  # the distilled students: one network each, drawn bold
            ax.plot(*np.array(pts).T, marker="s" if student else "o", lw=2.5 if student else 1.5,
                    color="k" if student else None, label="distilled student (ddim, own grid)" if student else name)
        ax.axhline(getattr(floor, metric), color="k", ls="--", lw=1, label="data floor")
        ax.set_xscale("log")
        ax.set_xlabel("network evaluations (NFE)")
        ax.set_ylabel(metric + (" (lower is better)" if metric == "energy" else " (higher is better)"))
        ax.grid(alpha=0.3)
    axes[0].set_yscale("log")
    axes[0].legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run(model, diffusion, dataset: str, steps: list[int], samplers: list[str], csv_path: Path, figure_path: Path,
        n: int = 1000, seed: int = 0, device="cpu", spacing: str | None = None, eta: float | None = None,
        lambda_min: float | None = None, log=print, title: str | None = None, students=()) -> list[dict]:
    """The sweep, written to csv_path and figure_path; returns the rows. students: (steps, model, diffusion) of
    distilled students, whose curve is drawn beside the samplers' (`student_rows`)."""
    rows = sweep(model, diffusion, dataset, steps, samplers, n, seed, device, spacing, eta, lambda_min, log)
    rows += student_rows(students, dataset, n, seed, device, log)
    floor = data_floor(dataset, n=n)
    log(f"data floor (real vs real): {floor}")
    fileio.write_csv(csv_path, rows, COLUMNS)
    plot(rows, floor, figure_path, title)
    return rows
