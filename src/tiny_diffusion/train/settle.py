"""Settle a run's config: the one function that turns the user's values and the data into the resolved config that
config.json records and the whole run reads (the sample shape, whether the labels are used, the evaluation that
fits the run's length), and the run's length in steps.

A TrainConfig is frozen: made from the user's layers (a TOML file, then flags) it already holds its kind's defaults
(config.POINT_DEFAULTS / IMAGE_DEFAULTS, filled when made); what depends on the data itself is decided here, once.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

from ..config import (EVAL_SHARE, FRAME_POINTS, FULL_EVAL_N, FULL_EVAL_STEPS, IMAGE_DEFAULTS, LABELS_GUIDANCE,
                      MIN_EVAL_N, QUICK_EVAL_STEPS, TRAIN_PASSES, TrainConfig)
from ..config_values import shape_text
from ..sampling import IMAGE_BLOCK
from .length import eval_passes, schedule_length, snapshot_steps


class Length(NamedTuple):
    """How long a run trains, in steps, and when it takes its snapshots."""
    batch: int  # samples per step (the batch size, or the whole data set when smaller)
    steps_per_epoch: int
    total_steps: int
    n_epochs: int  # epochs begun (a kimg run's last one is cut short)
    snapshot_at: frozenset  # the steps (counted from 1) after which a snapshot is sampled


def settle(cfg: TrainConfig, data) -> tuple[TrainConfig, Length]:
    """(the resolved config, the run's length) for training `cfg` on `data` (a data.source.DataSource)."""
    return resolve(cfg, data.shape, data.labels is not None and len(data.classes) > 1, len(data))


def resolve(cfg: TrainConfig, shape, labelled: bool, n: int) -> tuple[TrainConfig, Length]:
    """(the resolved config, the run's length) for training `cfg` on `n` samples of `shape`, `labelled` when they
    carry class labels of two classes or more:
    - sample_shape: one sample's shape, from the data;
    - class_cond auto: on for images with class labels (two classes or more), whose final samples then draw
      every class in turn at LABELS_GUIDANCE (W = 1, the plain conditional model: the data's own mix) unless a
      weight was given; off for points and unlabelled images; an explicit class_cond is kept;
    - an image run's unset frame_points / eval_n / eval_steps, fitted to its length (fit_evaluation).
    Every other value was settled when the config was made; the result is validated once (replace)."""
    changes = {"sample_shape": shape_text(shape)}
    if cfg.class_cond is None:
        on = cfg.images and labelled
        changes["class_cond"] = on
        changes["guidance"] = cfg.guidance if cfg.guidance is not None else \
            LABELS_GUIDANCE if on else IMAGE_DEFAULTS["guidance"]
    batch, per_epoch, total = schedule_length(cfg, n)
    shots = frozenset(snapshot_steps(total, per_epoch, cfg.frames, by_step=cfg.images))
    labels_settled = dataclasses.replace(cfg, **changes)  # (not validated: only to price the evaluation)
    changes.update(fit_evaluation(labels_settled, total * batch, len(shots)))
    return cfg.replace(**changes), Length(batch, per_epoch, total, -(-total // per_epoch), shots)


def fit_evaluation(cfg: TrainConfig, images_seen: int, n_snapshots: int) -> dict:
    """The values of cfg's unset (None) frame_points / eval_n / eval_steps fitted to a run that sees `images_seen`
    images and takes `n_snapshots` snapshots (the rule beside FULL_EVAL_N in config.py): the full values, then, when
    their passes exceed EVAL_SHARE of training's (TRAIN_PASSES per image), the unset counts shrink by one factor to
    fit what the given ones leave. Values the user gave are kept ({} when none is unset: points never leave any)."""
    unset = [k for k in ("frame_points", "eval_n", "eval_steps") if getattr(cfg, k) is None]
    if not unset:
        return {}
    share = min(1.0, images_seen / (IMAGE_DEFAULTS["kimg"] * 1000))
    full = {"frame_points": FRAME_POINTS, "eval_n": max(MIN_EVAL_N, math.ceil(share * FULL_EVAL_N / 100) * 100),
            "eval_steps": FULL_EVAL_STEPS if share >= 0.5 else QUICK_EVAL_STEPS}
    values = {k: full[k] for k in unset}
    shots, final = eval_passes(dataclasses.replace(cfg, **values), n_snapshots)
    allowed = EVAL_SHARE * TRAIN_PASSES * images_seen
    scalable = (shots if "frame_points" in unset else 0) + (final if "eval_n" in unset else 0)
    if shots + final <= allowed or scalable == 0:
        return values
    factor = max(0.0, allowed - (shots + final - scalable)) / scalable  # what the given counts leave
    return {**values, **{k: _shrunk(values[k], factor) for k in ("frame_points", "eval_n") if k in unset}}


def _shrunk(n: int, factor: float) -> int:
    """n scaled by factor, rounded down to what fills its blocks (a power of two below IMAGE_BLOCK, else a
    multiple of it), at least 1."""
    m = max(1, int(n * factor))
    return m // IMAGE_BLOCK * IMAGE_BLOCK if m >= IMAGE_BLOCK else 1 << (m.bit_length() - 1)
