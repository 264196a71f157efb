"""`tiny-diffusion reproduce`: the classic tiny-diffusion ablation study, plus the ablations it asked
for but never ran (the plan: ablations.py), as one sweep, and a Markdown report (study_report.py) whose
tables and conclusions are computed from the measured numbers (nothing in its text is typed in by hand).

All ablations share one pool of runs: a configuration that appears in several ablations (the base
run appears in nearly all) is trained once. Presets scale the training budget only.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .. import fileio, runs
from . import sweep
from ..config import TrainConfig
from ..errors import InputError
from .ablations import PRESETS, spec_of
from .evaluation import evaluate_run
from .study_report import render


def reproduce(out: str | Path, preset: str = "quick", jobs: int = 2, log=print, before=None) -> Path:
    """Run (or resume) the study into OUT and write OUT/README.md; returns the report's path. before: as
    sweep.run_sweep's (called with the runs still to train)."""
    if preset not in PRESETS:
        raise InputError(f"--preset {preset}: choose one of {', '.join(PRESETS)}")
    out = Path(out)
    spec, study = spec_of(preset)
    start = time.perf_counter()
    statuses = sweep.run_sweep(spec, out, jobs=jobs, log=log, before=before)
    sweep.collect(spec, out, figure=False)
    figs = out / "figures"
    figs.mkdir(exist_ok=True)
    tables = {}
    for a in study:
        members = [sweep.make_run(spec.base, c) for c in a.runs]
        sweep.grid_figure(members, out, figs / f"{a.key}.png", title=a.title,
                          labels=[a.label(r.changes) for r in members])
        tables[a.key] = [_numbers(out / "runs" / r.name, r, a.label(r.changes)) for r in members]
    base_dir = out / "runs" / sweep.run_name({})
    _process_figures(base_dir, figs, preset)
    seconds = time.perf_counter() - start
    report = out / "README.md"
    fileio.atomic_write(report, lambda f: f.write(render(preset, study, tables, seconds, jobs, statuses).encode()))
    fileio.write_json(out / "numbers.json", tables)
    log(f"wrote {report} ({seconds:.0f} s)")
    return report


def _numbers(run_dir: Path, run: sweep.Run, label: str) -> dict:
    """The final-epoch numbers of a run, plus shape checks the questions need."""
    ev = evaluate_run(run_dir)
    final = ev["epochs"][-1]
    x = np.load(run_dir / runs.FRAMES, allow_pickle=False)[-1]
    from ..data import load_dataset
    from ..eval.likelihood import HELD_OUT_SEED

    data = load_dataset(run.config.dataset, len(x), HELD_OUT_SEED)
    ab_T = float(np.prod(1 - _betas(run.config)))
    row = {"label": label, "run": run.name, "energy": final["energy"], "precision": final["precision"],
           "coverage": final["coverage"], "nll": ev["nll"], "elbo": ev["elbo"], "train_seconds": ev["train_seconds"],
           "alpha_bar_T": ab_T, "y_spread": float(x[:, 1].std() / data[:, 1].std())}
    if run.config.dataset == "line":  # share of samples outside the true rectangle |x| <= 2, |y| <= 4
        row["outside"] = float(np.mean((np.abs(x[:, 0]) > 2) | (np.abs(x[:, 1]) > 4)))
    return row


def _betas(cfg: TrainConfig):
    from ..core.schedules import make_betas

    return make_betas(cfg.schedule, cfg.timesteps, cfg.beta_start, cfg.beta_end, cfg.terminal_alpha_bar, warn=False)


def _process_figures(base_dir: Path, figs: Path, preset: str) -> None:
    """The forward-process and reverse-process grids and the training animation of the base run."""
    from ..viz import figures

    cfg = runs.run_config(base_dir)
    n = 200 if preset == "test" else 1000
    figures.forward_figure(cfg, figs / "forward.png", n)
    figures.reverse_figure(base_dir, figs / "reverse.png", n, device="cpu")
    figures.training_animation(base_dir, figs / "training.gif", fps=2)
