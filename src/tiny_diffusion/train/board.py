"""Watch a run in TensorBoard (`train --tensorboard`): event files in the run folder itself.

What is logged, and at which step (the optimisation step, so a resumed run continues the same curves):
  train/loss, train/lr                  each epoch's row of metrics.csv (the same numbers)
  train/images_per_s (points_per_s)     examples trained per second since the previous row (snapshots included)
  snapshot/...                          each snapshot's quality: energy, precision, coverage of the frame's
                                        points (points) or the classifier numbers of metrics.csv (images)
  snapshot/samples                      the snapshot itself: a scatter plot (points) or a grid (images)
  final/...                             the final samples' quality (quality.json's numbers)
  hparams                               the config (config.json's values) against the final/... metrics

The event files sit beside config.json, so `tensorboard --logdir SWEEP` shows a sweep's runs side by side
(each run folder is one TensorBoard run). A resumed run appends a new event file and drops what the stopped
session logged after its last checkpoint (SummaryWriter's purge_step). tensorboard is an optional extra.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import numpy as np

from ..errors import InputError

INSTALL = "pip install 'tiny-diffusion[tensorboard]'"
EVENTS_GLOB = "events.out.tfevents.*"
GRID_PIXELS = 256  # a snapshot grid is scaled up (nearest neighbour) to about this width: 8x8 digits stay visible


def check_available() -> None:
    """InputError naming the install when the tensorboard package is missing (before any folder is made)."""
    if importlib.util.find_spec("tensorboard") is None:
        raise InputError(f"--tensorboard needs the tensorboard package, which is not installed: {INSTALL}")


def has_events(run_dir) -> bool:
    """Whether a run folder was watched before (a resumption keeps watching it)."""
    return run_dir is not None and any(Path(run_dir).glob(EVENTS_GLOB))


def quality_names(images: bool) -> list[str]:
    """The names of the final quality numbers of a run's kind (the hparams view's metrics)."""
    if images:
        from ..eval.images import ImageQuality as Q
    else:
        from ..eval.points import Quality as Q
    return [f.name for f in dataclasses.fields(Q)]


def hparam_values(config: dict) -> dict:
    """config.json's values as TensorBoard takes hyperparameters: numbers, strings and booleans."""
    return {k: v if isinstance(v, (bool, int, float, str)) else str(v) for k, v in config.items()}


class Board:
    """One SummaryWriter for a run's whole session: made when training starts, closed at the end or on a stop."""

    def __init__(self, cfg, out: Path, step: int, seconds: float, batch: int):
        from torch.utils.tensorboard import SummaryWriter

        fresh = not has_events(out)
        # purge_step: a resumed run drops the events its stopped session wrote after the checkpoint
        self.writer = SummaryWriter(log_dir=str(out), purge_step=None if fresh else step)
        self.cfg, self.batch, self.images = cfg, batch, cfg.images
        self.last = (step, seconds)  # (step, training seconds) of the previous row: the throughput's start
        self.refs = None  # points: the reference draws a snapshot is scored against, drawn once
        if fresh:
            self._hparams()

    def _hparams(self) -> None:
        from torch.utils.tensorboard.summary import hparams

        metrics = {f"final/{name}": 0.0 for name in quality_names(self.images)}  # names only: values come at the end
        for summary in hparams(hparam_values(self.cfg.to_dict()), metrics):
            self.writer.file_writer.add_summary(summary)

    def epoch(self, row: dict) -> None:
        """One metrics.csv row: loss, learning rate and the throughput since the previous row."""
        step, seconds = row["step"], row["seconds"]
        self.writer.add_scalar("train/loss", row["loss"], step)
        self.writer.add_scalar("train/lr", row["lr"], step)
        done, took = step - self.last[0], seconds - self.last[1]
        if done > 0 and took > 0:
            unit = "images" if self.images else "points"
            self.writer.add_scalar(f"train/{unit}_per_s", done * self.batch / took, step)
        self.last = (step, seconds)

    def snapshot(self, step: int, frame: np.ndarray, metrics: dict) -> None:
        """A snapshot: its picture and its quality (an image run's metrics; a point frame is scored here)."""
        if self.images:
            from ..viz.images import make_grid

            scale = max(1, GRID_PIXELS // (frame.shape[-1] * int(np.ceil(np.sqrt(len(frame))))))
            grid = make_grid(frame, scale=scale)
            self.writer.add_image("snapshot/samples", grid, step, dataformats="HW" if grid.ndim == 2 else "HWC")
        else:
            from ..eval.points import quality, references
            from ..viz.points import scatter_figure

            if self.refs is None:
                self.refs = references(self.cfg.dataset, len(frame))
            metrics = quality(frame, self.refs).as_dict()
            self.writer.add_figure("snapshot/samples", scatter_figure(frame, f"step {step}"), step, close=True)
        for name, value in metrics.items():
            if value is not None:
                self.writer.add_scalar(f"snapshot/{name}", value, step)
        self.writer.flush()

    def final(self, step: int, quality) -> None:
        """The final samples' quality (None: an image run without a metric) under the hparams view's names."""
        if quality is not None:
            for name, value in quality.as_dict().items():
                if value is not None:
                    self.writer.add_scalar(f"final/{name}", value, step)

    def close(self) -> None:
        self.writer.close()
