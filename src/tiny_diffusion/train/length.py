"""How long a run trains and when it does what: the schedule's length, the learning-rate curve, the steps
that take snapshots, and the lines that tell the user (how long, and why; what the final samples cost)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..config import IMAGE_DEFAULTS, POINT_DEFAULTS, TrainConfig
from ..runs import frame_epochs
from .hooks import final_sampling


def lr_factor(step: int, total: int, warmup: float, decay: str) -> float:
    """Linear warm-up over the first warmup*total steps, then constant or cosine decay to 0."""
    n_warm = int(warmup * total)
    if step < n_warm:
        return (step + 1) / n_warm
    if decay == "constant":
        return 1.0
    progress = (step - n_warm) / max(1, total - n_warm)
    return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def schedule_length(cfg: TrainConfig, n: int) -> tuple[int, int, int]:
    """(batch, steps per epoch, total steps) for n training samples: `epochs` full passes, or, when kimg > 0,
    ceil(kimg * 1000 / batch) steps (the last epoch cut short). The ragged last batch of an epoch is
    dropped, as the classic study did."""
    batch = min(cfg.batch_size, n)
    per_epoch = n // batch
    total = math.ceil(cfg.kimg * 1000 / batch) if cfg.kimg > 0 else cfg.epochs * per_epoch
    return batch, per_epoch, total


def snapshot_steps(total_steps: int, steps_per_epoch: int, frames: int, by_step: bool) -> list[int]:
    """The steps (counted from 1) after which a snapshot is sampled, always the last. by_step (images): evenly
    over the run's steps, so a short run (a few epochs, or less than one) still animates with `frames` frames;
    else (points, as since the start, so their frames stay the same) at the ends of frame_epochs' epochs."""
    if frames <= 0:
        return []
    if not by_step:
        n_epochs = -(-total_steps // steps_per_epoch)
        return [min((e + 1) * steps_per_epoch, total_steps) for e in frame_epochs(n_epochs, frames)]
    return sorted({max(1, int(round(s))) for s in np.linspace(total_steps, 0, frames + 1)[:-1]})


def snapshot_epochs(steps: list[int], steps_per_epoch: int, total_steps: int) -> list:
    """Each snapshot's epoch as quality.json records it: whole at an epoch's end (and at the last step, the
    run's last epoch), else to 2 decimals (0.25: a quarter into the first epoch)."""
    return [-(-s // steps_per_epoch) if s % steps_per_epoch == 0 or s == total_steps
            else round(s / steps_per_epoch, 2) for s in steps]


def describe_length(cfg: TrainConfig, n: int, batch: int, total_steps: int) -> str:
    """How long the run trains and why, e.g. 'training 3 epochs (epochs = 3) = 3 steps of 10 = 30 images'."""
    what = "images" if cfg.images else "points"
    if cfg.kimg > 0:
        why = "the default for images; --epochs N or --kimg K to change" if cfg.images and \
            cfg.kimg == IMAGE_DEFAULTS["kimg"] else f"kimg = {cfg.kimg:g}"
        return (f"training {cfg.kimg:g} kimg ({why}) = {total_steps} steps of {batch} = "
                f"{total_steps * batch / n:.3g} epochs of {n} {what}")
    why = "the default for points" if not cfg.images and cfg.epochs == POINT_DEFAULTS["epochs"] \
        else f"epochs = {cfg.epochs}"
    return f"training {cfg.epochs} epochs ({why}) = {total_steps} steps of {batch} = {total_steps * batch} {what}"


def quick_try_hints(cfg: TrainConfig, data) -> list[str]:
    """What an image run prints on how to try things fast."""
    if not data.images:
        return []
    hints = []
    if cfg.image_size is None and data.shape[-1] == 64 and Path(cfg.dataset).is_dir():
        hints.append("images at 64 px (no --image-size given): --image-size 32 trains on a quarter of the pixels")
    hints.append("a quick try: --kimg 5 (and --image-size 32 for photos); the final samples scale with the run's "
                 "length unless --eval-n / --eval-steps are given")
    return hints


def final_estimate(cfg: TrainConfig, batch: int, step_seconds: float) -> str:
    """A line on the final samples and about how long they take: a sampling step is one forward pass of
    its batch (two when guided), a training step about three of `batch` (forward, and backward at twice it)."""
    final = final_sampling(cfg)
    steps = final["steps"] or cfg.timesteps
    passes = final["n"] * steps * (2 if cfg.class_cond and cfg.guidance not in (0, 1) else 1)
    seconds = step_seconds * passes / (3 * batch)
    return (f"final samples: {final['n']} x {steps} {final['sampler']} steps, about {seconds:.0f} s (estimated from "
            f"the training step's speed)")
