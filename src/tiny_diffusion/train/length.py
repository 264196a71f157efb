"""How long a run trains and when it does what: the schedule's length, the steps
that take snapshots, and the lines that tell the user (how long, and why; what the final samples cost)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..config import IMAGE_DEFAULTS, POINT_DEFAULTS, TrainConfig
from ..runs import frame_epochs
from ..sampling import aligned_block, plan

QUICK_HINT_SECONDS = 600  # a run estimated longer than this names the quick option


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


def snapshot_epochs(steps: list[int], steps_per_epoch: int) -> list:
    """Each snapshot's epoch as quality.json records it: whole at an epoch's end, else to 2 decimals (0.25: a
    quarter into the first epoch; a kimg run's last step, within its last epoch, too: 79 steps of 62 are 1.27)."""
    return [epoch_at(s, steps_per_epoch) for s in steps]


def epoch_at(step: int, steps_per_epoch: int):
    """The epochs done after `step` steps: an int at an epoch's end, else a float to 2 decimals."""
    return step // steps_per_epoch if step % steps_per_epoch == 0 else round(step / steps_per_epoch, 2)


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


def sampling_calls(cfg: TrainConfig, n: int, steps: int) -> tuple[int, int]:
    """(block, calls): drawing n images in `steps` steps calls the network on blocks of `block` images
    (sampling.aligned_block, padded), ceil(n / block) times a step; a guided draw's calls are twice as wide
    (guidance.Guided: W other than 0 and 1), counted here as two."""
    block = aligned_block(cfg.kind, n)
    guided = 2 if cfg.class_cond and cfg.guidance not in (0, 1) else 1
    return block, -(-n // block) * steps * guided


def eval_calls(cfg: TrainConfig, n_snapshots: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """((block, calls) of the snapshots, (block, calls) of the final samples) of a run's evaluation."""
    final = plan(cfg, "final")
    block, calls = sampling_calls(cfg, cfg.frame_points, min(cfg.frame_steps, cfg.timesteps))
    return (block, n_snapshots * calls), sampling_calls(cfg, final.n, final.steps or cfg.timesteps)


def eval_passes(cfg: TrainConfig, n_snapshots: int) -> tuple[int, int]:
    """(snapshots, final samples): the network passes of a run's evaluation, in one-image forward passes."""
    (b1, c1), (b2, c2) = eval_calls(cfg, n_snapshots)
    return b1 * c1, b2 * c2


def quick_try_hints(cfg: TrainConfig, data, seconds: float | None = None) -> list[str]:
    """What an image run prints on how to try things fast: the quick option when the run has the default length
    (the user chose none) or is estimated past QUICK_HINT_SECONDS."""
    if not data.images:
        return []
    hints = []
    if cfg.image_size is None and data.shape[-1] == 64 and Path(cfg.dataset).is_dir():
        hints.append("images at 64 px (no --image-size given): --image-size 32 trains on a quarter of the pixels")
    default_length = cfg.kimg == IMAGE_DEFAULTS["kimg"]
    if default_length or (seconds is not None and seconds > QUICK_HINT_SECONDS):
        hints.append("a quick try: --kimg 5 (and --image-size 32 for photos); the snapshots and final samples fit "
                     "the run's length unless --frame-points / --eval-n / --eval-steps are given")
    return hints
