"""Everything a training run builds before its first step, in the order that fixes every random stream: the data,
the settled config (`settle`, below: the one place a run's automatic values are decided from the data), the
network, its EMA copy, the diffusion, the hooks, the training generator (the optimizer and its LR schedule, which
draw nothing, train() makes itself); then a resumed run's checkpoint, the step as it runs here (DDP,
torch.compile, a CUDA graph) and the lines the run starts with. `Run` holds what a run uses while it runs;
`state.TrainState` what a checkpoint holds.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch

from .. import fileio, runs
from ..config import (EVAL_SHARE, FRAME_POINTS, FULL_EVAL_N, FULL_EVAL_STEPS, IMAGE_DEFAULTS, LABELS_GUIDANCE,
                      MIN_EVAL_N, QUICK_EVAL_STEPS, TRAIN_PASSES, TrainConfig)
from ..config_values import shape_text
from ..core.diffusion import Diffusion
from ..data.source import load_source
from ..models import build_model
from ..runtime import dist
from ..runtime.device import resolve_device
from ..runtime.graphs import CudaGraphBackend, GraphedStep, for_sampling, make_graph_safe
from ..sampling import IMAGE_BLOCK
from . import board
from . import state as ckpt
from .estimate import Speed, describe_estimate, measure, run_estimate, synced_seconds
from .hooks import hooks_for
from .length import describe_length, eval_calls, eval_passes, quick_try_hints, schedule_length, snapshot_steps
from .state import TrainState
from .step import TrainStep, plan_for

METRIC_COLUMNS = ("epoch", "step", "loss", "lr", "seconds")  # metrics.csv's header before its first row


# -- the settled config: what depends on the data, decided once ---------------------------------------------

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


# -- the run ------------------------------------------------------------------------------------------------

@dataclass
class Run:
    """What one training run uses while it runs (the checkpoint's part is `state`)."""
    cfg: TrainConfig  # settled (`settle`, above): what config.json records
    device: torch.device
    data: object  # data.source.DataSource
    main: bool  # this process writes the run folder and logs (rank 0, or the only process)
    world: int
    log: object
    out: Path | None  # the run folder (rank 0), its lock held until train() returns
    length: Length
    rows: object  # this rank's rows of a global batch (dist.rows)
    plan: object  # step.Plan: how the step runs here
    diffusion: Diffusion
    hooks: object  # hooks.PointHooks or hooks.ImageHooks (rank 0), else None
    state: TrainState
    seconds_before: float = 0.0  # training time before a resumption
    finished: bool = False  # resumed a finished run: nothing is rewritten
    resumed: bool = False  # a checkpoint was restored
    train_step: object = None  # step.TrainStep, or the GraphedStep replaying it
    loss_state: object = None  # where the loss sum and the non-finite marker live (the step, or its graph)
    sampling_model: object = None
    board: object = None  # board.Board under --tensorboard (rank 0, a run folder), else None
    auto_threads: object = None  # threads.AutoThreads under --threads auto, else None
    speed: Speed | None = None  # the network's timed passes (images, rank 0): the estimates
    start: float = 0.0  # perf_counter when the loop started ...
    start_step: int = 0  # ... and the step it started from
    compile_seconds: float | None = None

    def seconds(self) -> float:
        return self.seconds_before + time.perf_counter() - self.start


def open_run(cfg: TrainConfig, out_dir, resume: bool, log) -> Run:
    """A Run of `cfg` in `out_dir` (None: no folder), its folder's lock taken (runs.lock_run_dir; train() gives it
    back); the folder is made only once data and model have been checked."""
    main, world = dist.is_main(), dist.world_size()
    log = (log or (lambda msg: print(msg, file=sys.stderr))) if main else (lambda msg: None)
    device = resolve_device(cfg.device)
    data = load_source(cfg, device)  # bad data (and below, a model that cannot take it) fail before any folder exists
    cfg, length = settle(cfg, data)
    rows = dist.rows(length.batch)  # a batch the ranks cannot share evenly fails here, before any folder exists
    plan = plan_for(cfg, device, world, data.images)
    torch.manual_seed(cfg.seed)  # model initialisation
    model = build_model(cfg, data.shape, classes=data.classes if cfg.class_cond else None).to(device)
    if plan.channels_last:
        model = model.to(memory_format=torch.channels_last)
    take = runs.lock_run_dir if resume else runs.new_run_dir
    out = None if out_dir is None else dist.on_main(lambda: take(out_dir))
    out = out if main else None  # rank 0 alone writes
    try:
        ema_model = copy.deepcopy(model).requires_grad_(False) if cfg.ema > 0 else model
        diffusion = Diffusion.from_config(cfg, device, warn=main)
        hooks = hooks_for(cfg, data, device, log) if main else None
        generator = torch.Generator(device=device).manual_seed(cfg.seed)
        # the optimizer and its LR schedule: train() makes them (loop.optimizer_for), where the loop steps them
        state = TrainState(cfg, model, ema_model, None, None, generator, data.shape, data.classes, world)
        return Run(cfg, device, data, main, world, log, out, length, rows, plan, diffusion, hooks, state)
    except BaseException:
        if out is not None:
            runs.unlock_run_dir(out)
        raise


def restore(run: Run, out_dir) -> None:
    """Continue from the run folder's checkpoint (when it has one): weights, optimizer, RNG streams and
    the loop's position; a finished run is only reloaded. (Rank 0 reads it, every rank takes it.)"""
    path = Path(out_dir) / runs.CHECKPOINT
    saved = dist.on_main(lambda: ckpt.load_state(path, run.cfg, run.device))
    run.finished = dist.on_main(lambda: runs.is_finished(run.out))
    if run.out is not None:  # a folder with no checkpoint yet (or none at all) simply starts there
        run.out.mkdir(parents=True, exist_ok=True)
        ckpt.clean_stale_temp_files(run.out)
    if saved is None:
        return
    run.state.restore(saved, path)
    run.resumed, run.seconds_before = True, run.state.seconds
    s = run.state
    run.log(f"resuming {run.out} after {ckpt.position(s.step, s.epoch, s.batch)}")


def start_from(run: Run, init: dict) -> None:
    """A fresh start from given weights (a distillation's teacher): the network and its EMA."""
    run.state.model.load_state_dict(init)
    if run.state.ema_model is not run.state.model:
        run.state.ema_model.load_state_dict(init)


def write_config(run: Run) -> None:
    """config.json (the settled config); a resumed run's metrics.csv again: a kill between a checkpoint's two
    writes leaves metrics.csv ahead of it."""
    if run.out is None or run.finished:
        return
    fileio.write_json(run.out / runs.CONFIG, run.cfg.to_dict())
    if run.resumed:
        fileio.write_csv(run.out / runs.METRICS, run.state.metrics)


def build_step(run: Run, objective) -> None:
    """The training step as it runs here (DDP, torch.compile, a CUDA graph) and the sampling network."""
    s = run.state
    net = dist.wrap(s.model, run.device)
    if run.plan.compile:
        net = torch.compile(net)
    step = TrainStep(run.cfg, net, s.model, s.ema_model, s.optimizer, run.diffusion, run.data, s.generator,
                     run.rows, run.plan, objective)
    if run.plan.graphs:  # auto: kept only once a replayed step has matched the eager one (runtime/graphs.py)
        step = GraphedStep(step, run.length.batch, s.optimizer, CudaGraphBackend(s.generator),
                           lambda: make_graph_safe(s.optimizer, run.device), check=run.cfg.cuda_graphs == "auto",
                           log=run.log)
    run.train_step = _TimedFirstCall(step, run) if run.plan.compile else step
    run.loss_state = step.step if run.plan.graphs else step
    if s.batch > 0:  # resumed within an epoch: its running loss
        run.loss_state.loss_sum.copy_(s.loss_sum)
    run.sampling_model = for_sampling(s.ema_model, run.device, run.cfg.cuda_graphs, run.log)


class _TimedFirstCall:
    """The step under torch.compile: its first call (the compilation) timed and logged, then the step itself."""

    def __init__(self, step, run: Run):
        self.step, self.run = step, run

    def __getattr__(self, name):  # graphed, ...: the step's own
        return getattr(self.step, name)

    def __call__(self, *args):
        if self.run.compile_seconds is not None:
            return self.step(*args)
        t0 = time.perf_counter()
        skipped = self.step(*args)
        self.run.compile_seconds = synced_seconds(t0, self.run.device)
        self.run.log(f"torch.compile: the first step took {self.run.compile_seconds:.1f} s (compilation included)")
        return skipped


def intro(run: Run) -> list[str]:
    """The lines a run starts with: its length and why, an image run's estimate of what is left of it (from
    timed passes of the network), and how to try things fast (after ~10 min of estimate, or at the default length)."""
    n = run.length
    lines, seconds = [describe_length(run.cfg, len(run.data), n.batch, n.total_steps)], None
    if run.main and run.data.images and not run.finished:
        blocks = [block for block, _ in eval_calls(run.cfg, 1)]
        run.speed = measure(run.state.model, run.data.shape, run.device, blocks, run.cfg.class_cond)
        steps_left, shots_left = n.total_steps - run.state.step, snapshots_left(run)
        estimate = run_estimate(run.cfg, run.speed, steps_left * n.batch // run.world, shots_left)
        seconds = estimate["total"]
        lines.append(describe_estimate(run.cfg, estimate, steps_left, shots_left))
    return lines + quick_try_hints(run.cfg, run.data, seconds)


def snapshots_left(run: Run) -> int:
    """Snapshots still to take: those after the current step, and one interrupted at it (taken on resuming)."""
    return sum(s > run.state.step for s in run.length.snapshot_at) + snapshots_missing(run)


def snapshots_missing(run: Run) -> int:
    return max(0, sum(s <= run.state.step for s in run.length.snapshot_at) - len(run.state.frames))


def open_board(run: Run, tensorboard: bool | None):
    """The run's TensorBoard writer (rank 0 only), or None: off, a finished run, or the package missing when
    a resumed run was watched before (said once; training goes on without it)."""
    if run.out is None or run.finished or tensorboard is False:
        return None
    if tensorboard is None and not (run.resumed and board.has_events(run.out)):
        return None
    if tensorboard is None and importlib.util.find_spec("tensorboard") is None:
        run.log(f"{run.out}: was watched with --tensorboard, but tensorboard is not installed here ({board.INSTALL});"
                f" no events this session")
        return None
    return board.Board(run.cfg, run.out, run.state.step, run.seconds_before, run.length.batch)
