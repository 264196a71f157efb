"""The training loop: a TrainConfig in, a run folder out (config, checkpoint, metrics, frames, figures).

`train()` below is the whole loop, read top to bottom: the setup (setup.py), then for each step the batch, the
loss, backward, clipping, the optimizer and EMA (step.TrainStep, the one call a CUDA graph can capture whole) and
the LR schedule, then the upkeep (a stop signal, a snapshot; at an epoch's end the metrics row and a checkpoint:
upkeep.py), then the final samples and files. Fast on a CPU because the data stays one tensor on the device (no
DataLoader; images as uint8), and the loop never waits for the device except once per epoch to log the loss.
What differs between points and images lives in hooks.py; what a checkpoint holds in state.py.
"""

from __future__ import annotations

import math
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import runs
from ..config import TrainConfig
from ..core.diffusion import Diffusion
from ..errors import InputError
from ..runtime import dist
from ..sampling import FRAME_SEED
from . import board
from . import state as ckpt
from .setup import build_step, intro, open_board, open_run, restore, snapshots_missing, start_from, write_config
from .step import ema_decay
from .upkeep import (check_finite, checkpoint, checkpoint_due, epoch_row, finish, note_skipped, snapshot,
                     stop_requested)

__all__ = ["FRAME_SEED", "TrainResult", "lr_factor", "optimizer_for", "train"]


@dataclass
class TrainResult:
    config: TrainConfig
    model: torch.nn.Module  # the sampling weights (EMA if enabled)
    diffusion: Diffusion
    samples: np.ndarray  # the final samples: (n, 2) float points or (n, C, H, W) uint8 images
    quality: object  # metrics.Quality (points) or eval.images.ImageQuality (labelled images), or None
    floor: object  # the same numbers for real data at the same n
    train_seconds: float  # all the run's training, before a resumption too
    out_dir: Path | None
    seconds_before: float = 0.0  # ... of which before this resumption (0 for a fresh run)


def train(cfg: TrainConfig, out_dir: str | Path | None = None, progress: bool | None = None, log=None,
          resume: bool = False, threads: int | None = None, tensorboard: bool | None = None, objective=None,
          init: dict | None = None, desc: str = "train") -> TrainResult:
    """Train the model `cfg` describes; write a run folder to `out_dir` when given.

    With resume=True, `out_dir` is an interrupted run of the same config: training continues from its
    last checkpoint exactly as if it had never stopped (on the CPU: bit-identical weights and metrics).
    A folder without a checkpoint starts from scratch; a finished one (runs.is_finished) is not rewritten.

    Under torchrun (runtime/dist.py) every rank calls this: the model is the same whatever the number of
    processes, rank 0 alone writes the run folder and logs, and the other ranks return a result without
    samples (samples, quality and out_dir None).

    threads: None leaves torch's thread count alone; 0 (`--threads auto`) chooses it from the free cores and
    re-checks it during training (threads.py); N > 0 is set by the caller (the CLI's torch_threads).

    tensorboard: True writes TensorBoard event files into the run folder (board.py; the optional extra); None
    (the default) keeps watching a resumed run that was watched, False never writes them.
    A distillation round (train/distill.py) is such a run with a teacher's target: `objective` replaces the
    diffusion loss (core/distill.py: the same sample_t / loss interface), `init` (a model state dict) starts the
    network and its EMA from the teacher's weights unless a checkpoint is resumed, and `desc` labels the bar."""
    from ..runtime.threads import AutoThreads

    auto_threads = AutoThreads(cfg.images) if threads == 0 else None  # its first reading: now
    _check_request(out_dir, resume, tensorboard)
    # -- setup: data, the settled config, network, EMA, diffusion, optimizer, LR schedule, generator; a checkpoint
    run = open_run(cfg, out_dir, resume, log)  # takes the run folder's lock (runs.lock_run_dir), given back at exit
    with ExitStack() as held:
        held.callback(lambda: run.out is not None and runs.unlock_run_dir(run.out))
        s, cfg, B, run.auto_threads = run.state, run.cfg, run.length.batch, auto_threads
        s.optimizer, s.scheduler = optimizer_for(s.model, cfg, run.length.total_steps)  # AdamW, warm-up + cosine
        if resume:
            restore(run, out_dir)  # weights, optimizer, scheduler, RNG streams, position, metrics, frames
        if init is not None and not run.resumed:
            start_from(run, init)  # a distillation's student starts as its teacher
        for line in intro(run):
            run.log(line)
        write_config(run)
        build_step(run, objective)  # step.TrainStep as it runs here: eager, DDP, torch.compile or a CUDA graph
        run.board = open_board(run, tensorboard)
        held.callback(lambda: run.board is not None and run.board.close())
        stop = held.enter_context(ckpt.StopSignals())  # from here a signal stops within a step or a sampling block
        if run.hooks is not None and run.world == 1:  # (several ranks agree on stops between steps only)
            run.hooks.stop = lambda: stop.signum is not None
        bar = _bar(run, progress, desc)
        run.start, run.start_step = time.perf_counter(), s.step
        for epoch in bar:  # from s.epoch
            n = min(run.length.steps_per_epoch, run.length.total_steps - epoch * run.length.steps_per_epoch)
            s.model.train()
            if s.batch == 0:  # a new epoch: its batch order (a run resumed within an epoch keeps its own)
                s.perm = torch.randperm(len(run.data), device=run.device, generator=s.generator)
                run.loss_state.loss_sum.zero_()
            elif run.main and s.batch < n and snapshots_missing(run):  # stopped during this step's snapshot
                s.pending = snapshot(run, stop)
            for i in range(s.batch, n):
                # the step: batch, loss, backward, clipping, optimizer, EMA (step.TrainStep.__call__)
                if run.train_step(s.perm[i * B:(i + 1) * B], s.step + 1, ema_decay(cfg.ema, s.step + 1, cfg.ema_gamma)):
                    note_skipped(run)  # only with --skip-nonfinite: a non-finite step left the weights alone
                s.scheduler.step()  # the learning rate of the next step
                s.step, s.batch = s.step + 1, i + 1
                # upkeep: the thread count, a stop signal (checkpoint, then stop), a snapshot within the epoch
                if run.auto_threads is not None:
                    run.auto_threads.update()  # between steps: a busy process that starts is seen within seconds
                if stop_requested(run, stop, i == n - 1):
                    _stop(run, stop)
                if s.step in run.length.snapshot_at and i < n - 1 and run.main:
                    s.pending = snapshot(run, stop)
            # the epoch's end: its metrics row (the one host sync per epoch), a snapshot, a checkpoint
            row = epoch_row(run, n, bar)
            check_finite(run)
            if s.step in run.length.snapshot_at and run.main:
                s.pending = snapshot(run, stop)
            s.metrics.append({**row, **s.pending})  # the epoch's last snapshot's numbers
            s.pending, s.epoch, s.batch = {}, epoch + 1, 0
            if run.board is not None:
                run.board.epoch(s.metrics[-1])
            if checkpoint_due(run, epoch + 1):
                checkpoint(run)
        if not run.finished and (stop.signum is not None if run.world == 1 else
                                 dist.any_rank(stop.signum is not None, run.device)):
            raise stop.stopped("after the last epoch, before the final files", run.out)
        bar.close()
        # -- the final samples, their quality, and the run's last files
        train_seconds = run.seconds()
        samples, q, floor = finish(run, stop, train_seconds)
        return TrainResult(run.cfg, s.ema_model, run.diffusion, samples, q, floor, train_seconds, run.out,
                           run.seconds_before)


def lr_factor(step: int, total: int, warmup: float, decay: str) -> float:
    """Linear warm-up over the first warmup*total steps, then constant or cosine decay to 0."""
    n_warm = int(warmup * total)
    if step < n_warm:
        return (step + 1) / n_warm
    if decay == "constant":
        return 1.0
    progress = (step - n_warm) / max(1, total - n_warm)
    return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def optimizer_for(model, cfg: TrainConfig, total_steps: int):
    """(optimizer, LR scheduler): AdamW at the peak rate cfg.lr, its rate each step lr * lr_factor(step)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda k: lr_factor(k, total_steps, cfg.warmup,
                                                                                  cfg.lr_decay))
    return optimizer, scheduler


def _check_request(out_dir, resume: bool, tensorboard: bool | None) -> None:
    if resume and out_dir is None:
        raise InputError("resume=True needs the run folder to continue as out_dir")
    if tensorboard:
        if out_dir is None:
            raise InputError("--tensorboard writes its events into the run folder: give one (out_dir)")
        board.check_available()


def _bar(run, progress: bool | None, desc: str):
    """The progress bar over the epochs left (rank 0; None: when stderr is a terminal); --threads auto says its
    first choice."""
    from tqdm.auto import tqdm

    show = run.main and (sys.stderr.isatty() if progress is None else progress)
    bar = tqdm(range(run.state.epoch, run.length.n_epochs), desc=desc, unit="epoch", disable=not show, leave=False,
               initial=run.state.epoch, total=run.length.n_epochs)
    if run.auto_threads is not None:
        run.log(f"threads: {run.auto_threads.start()} (auto: the free cores of {run.auto_threads.usable}, re-checked "
                f"while training; --threads N to fix it)")
    return bar


def _stop(run, stop) -> None:
    """A stop signal between steps: the non-finite guard, a checkpoint of where the loop stands, the stop."""
    check_finite(run)
    loss_sum = dist.mean(run.loss_state.loss_sum)  # every rank resumes with the ranks' mean
    if run.out is not None:
        checkpoint(run, loss_sum)
    s = run.state
    raise stop.stopped(f"after {ckpt.position(s.step, s.epoch, s.batch)}", run.out)
