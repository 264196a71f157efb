"""What a sweep measures of each finished run, cached in its evaluation.json: points, the quality of every snapshot
and the NLL / ELBO of held-out points; images, the final classifier metrics."""

from __future__ import annotations

import json
from pathlib import Path

from .. import fileio, runs

EVALUATION = "evaluation.json"
N_HELD_OUT = 1000  # held-out points for the NLL/ELBO: standard error about 0.03 nats at this n


def evaluate_run(run_dir: Path) -> dict:
    """Quality at each snapshot epoch, plus NLL and ELBO of held-out points; cached in evaluation.json."""
    import numpy as np

    from ..eval.likelihood import held_out_likelihood
    from ..eval.points import quality, references

    path = Path(run_dir) / EVALUATION
    if path.is_file():
        return json.loads(path.read_text())
    cfg = runs.run_config(run_dir)
    if cfg.images:
        return _evaluate_image_run(run_dir, path)
    frames = np.load(Path(run_dir) / runs.FRAMES, allow_pickle=False)
    refs = references(cfg.dataset)
    per_epoch = [{"epoch": e, **quality(x, refs).as_dict()} for e, x in zip(snapshot_epochs(run_dir), frames)]
    _, model, diffusion = runs.load_run(run_dir)
    lik = held_out_likelihood(model, diffusion, cfg.dataset, N_HELD_OUT)
    train_seconds = json.loads((Path(run_dir) / runs.QUALITY).read_text())["train_seconds"]
    result = {"epochs": per_epoch, **lik, "train_seconds": train_seconds}
    fileio.write_json(path, result)
    return result


def snapshot_epochs(run_dir: Path) -> list:
    """The (1-based) epochs of a finished run's frames as the run recorded them (a kimg run's length is not
    `epochs`; a short run's snapshots fall within epochs); without snapshots, the last epoch (frames.npy then
    holds the final samples)."""
    return runs.frame_epochs_of(run_dir) or [_last_epoch(run_dir)]


def _last_epoch(run_dir: Path):
    """The last row's epoch in metrics.csv: an int, or a float when the run ended within an epoch (1.27)."""
    import csv

    with open(Path(run_dir) / runs.METRICS) as f:
        epoch = float(list(csv.DictReader(f))[-1]["epoch"])
    return int(epoch) if epoch.is_integer() else epoch


def _evaluate_image_run(run_dir: Path, path: Path) -> dict:
    """An image run's row: its final classifier metrics (quality.json) after its last epoch; no likelihoods."""
    q = json.loads((Path(run_dir) / runs.QUALITY).read_text())
    result = {"epochs": [{"epoch": _last_epoch(run_dir), **q.get("quality", {})}], "nll": None, "elbo": None,
              "train_seconds": q["train_seconds"]}
    fileio.write_json(path, result)
    return result
