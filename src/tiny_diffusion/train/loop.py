"""The training loop: a TrainConfig in, a run folder out (config, checkpoint, metrics, frames, figures).

Fast on a CPU because the data stays one tensor on the device (no DataLoader; images as uint8), and
the loop never waits for the device except once per epoch to log the loss. What differs between
points and images (snapshots, metrics, final files) lives in hooks.py; checkpoints in state.py.
"""

from __future__ import annotations

import copy
import importlib.util
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .. import fileio, runs
from ..config import TrainConfig, shape_text
from ..core.diffusion import Diffusion
from ..data.source import load_source
from ..errors import InputError, SamplingStopped
from ..models import build_model
from ..runtime import dist
from ..runtime.device import resolve_device
from ..runtime.graphs import CudaGraphBackend, GraphedStep, for_sampling, make_graph_safe
from . import board
from . import state as ckpt
from .estimate import Speed, describe_estimate, final_line, measure, run_estimate, synced_seconds
from .hooks import FRAME_SEED, hooks_for
from .length import (describe_length, epoch_at, eval_calls, fit_evaluation, lr_factor, quick_try_hints, schedule_length,
                     snapshot_epochs, snapshot_steps)
from .step import TrainStep, ema_decay, plan_for

STOP_CHECK_EVERY = 64  # under torchrun, ranks agree on a stop signal every this many steps and at epoch ends
METRIC_COLUMNS = ("epoch", "step", "loss", "lr", "seconds")  # metrics.csv's header before its first row

__all__ = ["FRAME_SEED", "TrainResult", "lr_factor", "train"]


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


@dataclass
class Run:
    """Everything one training run holds and changes, in one place: what `_setup` builds, where the loop
    stands (step, epoch, batch, perm), and what it has produced (metrics rows, frames)."""
    cfg: TrainConfig
    device: torch.device
    data: object  # data.source.DataSource
    main: bool  # this process writes the run folder and logs (rank 0, or the only process)
    world: int
    log: object
    out: Path | None
    batch: int
    steps_per_epoch: int
    total_steps: int
    n_epochs: int
    rows: object  # this rank's rows of a global batch (dist.rows)
    plan: object  # step.Plan: how the step runs here
    model: torch.nn.Module
    ema_model: torch.nn.Module
    diffusion: Diffusion
    optimizer: torch.optim.Optimizer
    scheduler: object
    generator: torch.Generator
    hooks: object  # hooks.PointHooks or hooks.ImageHooks (rank 0), else None
    snapshot_at: set
    step: int = 0
    epoch: int = 0  # the epoch to start (or resume) at
    batch_start: int = 0  # ... and its first batch (> 0 when resumed mid-epoch)
    skipped: int = 0
    seconds_before: float = 0.0  # training time before a resumption
    perm: torch.Tensor | None = None
    metrics_rows: list = field(default_factory=list)
    frames: list = field(default_factory=list)
    pending: dict = field(default_factory=dict)  # the numbers of a snapshot taken within the unfinished epoch
    finished: bool = False  # resumed a finished run: nothing is rewritten
    restored: dict | None = None
    train_step: object = None
    loss_state: object = None  # where the loss sum and the non-finite marker live (the step, or its graph)
    sampling_model: object = None
    start: float = 0.0  # perf_counter when the loop started
    start_step: int = 0  # ... and the step it started from
    compile_seconds: float | None = None
    auto_threads: object = None  # threads.AutoThreads under --threads auto, else None
    speed: Speed | None = None  # the network's timed passes (images, rank 0): the estimates
    board: object = None  # board.Board under --tensorboard (rank 0, a run folder), else None
    objective: object = None  # what the step minimises: None, the diffusion loss; else a distillation target
    desc: str = "train"  # the progress bar's label

    def seconds(self) -> float:
        return self.seconds_before + time.perf_counter() - self.start


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
    if resume and out_dir is None:
        raise InputError("resume=True needs the run folder to continue as out_dir")
    if tensorboard:
        if out_dir is None:
            raise InputError("--tensorboard writes its events into the run folder: give one (out_dir)")
        board.check_available()
    run = _setup(cfg, out_dir, resume, log)  # takes the run folder's lock (runs.lock_run_dir)
    try:
        run.auto_threads = auto_threads
        run.objective, run.desc = objective, desc
        if resume:
            _restore(run, out_dir)
        if init is not None and run.restored is None:  # a fresh start from given weights (a resumed run has its own)
            run.model.load_state_dict(init)
            if run.ema_model is not run.model:
                run.ema_model.load_state_dict(init)
        for line in _intro(run):
            run.log(line)
        if run.out is not None and not run.finished:
            fileio.write_json(run.out / runs.CONFIG, run.cfg.to_dict())
            if run.restored is not None:  # a kill between save()'s two writes leaves metrics.csv ahead of the checkpoint
                fileio.write_csv(run.out / runs.METRICS, run.metrics_rows)
        _build_step(run)
        run.board = _open_board(run, tensorboard)
        try:
            with ckpt.StopSignals() as stop:  # from here a signal stops the run within a step or one sampling block
                if run.hooks is not None and run.world == 1:  # (several ranks agree on stops between steps only)
                    run.hooks.stop = lambda: stop.signum is not None
                _train_epochs(run, progress, stop)
                return _finish(run, stop)
        finally:  # one writer for the session: closed at the end, on a stop and on an error
            if run.board is not None:
                run.board.close()
    finally:
        if run.out is not None:
            runs.unlock_run_dir(run.out)


def _intro(run: Run) -> list[str]:
    """The lines a run starts with: its length and why, an image run's estimate of what is left of it (from
    timed passes of the network), and how to try things fast (after ~10 min of estimate, or at the default length)."""
    lines, seconds = [describe_length(run.cfg, len(run.data), run.batch, run.total_steps)], None
    if run.main and run.data.images and not run.finished:
        blocks = [block for block, _ in eval_calls(run.cfg, 1)]
        run.speed = measure(run.model, run.data.shape, run.device, blocks, run.cfg.class_cond)
        steps_left, shots_left = run.total_steps - run.step, _snapshots_left(run)
        estimate = run_estimate(run.cfg, run.speed, steps_left * run.batch // run.world, shots_left)
        seconds = estimate["total"]
        lines.append(describe_estimate(run.cfg, estimate, steps_left, shots_left))
    return lines + quick_try_hints(run.cfg, run.data, seconds)


def _snapshots_left(run: Run) -> int:
    """Snapshots still to take: those after the current step, and one interrupted at it (taken on resuming)."""
    return sum(s > run.step for s in run.snapshot_at) + _snapshots_missing(run)


def _snapshots_missing(run: Run) -> int:
    return max(0, sum(s <= run.step for s in run.snapshot_at) - len(run.frames))


def _open_board(run: Run, tensorboard: bool | None):
    """The run's TensorBoard writer (rank 0 only), or None: off, a finished run, or the package missing when
    a resumed run was watched before (said once; training goes on without it)."""
    if run.out is None or run.finished or tensorboard is False:
        return None
    if tensorboard is None and not (run.restored is not None and board.has_events(run.out)):
        return None
    if tensorboard is None and importlib.util.find_spec("tensorboard") is None:
        run.log(f"{run.out}: was watched with --tensorboard, but tensorboard is not installed here ({board.INSTALL});"
                f" no events this session")
        return None
    return board.Board(run.cfg, run.out, run.step, run.seconds_before, run.batch)


def _setup(cfg: TrainConfig, out_dir, resume: bool, log) -> Run:
    """Data, schedule length, model, EMA copy, diffusion, optimizer, hooks and generator, in the order that
    fixes every random stream; the run folder is made only once data and model have been checked."""
    main, world = dist.is_main(), dist.world_size()
    log = (log or (lambda msg: print(msg, file=sys.stderr))) if main else (lambda msg: None)
    device = resolve_device(cfg.device)
    data = load_source(cfg, device)  # bad data (and below, a model that cannot take it) fail before any folder exists
    # recorded in config.json and the checkpoint: the sample shape, and whether the labels are used (class_cond auto)
    cfg = cfg.replace(sample_shape=shape_text(data.shape)).with_labels(data.labels is not None and len(data.classes) > 1)
    batch, steps_per_epoch, total_steps = schedule_length(cfg, len(data))
    snapshot_at = set(snapshot_steps(total_steps, steps_per_epoch, cfg.frames, by_step=data.images))
    cfg = fit_evaluation(cfg, total_steps * batch, len(snapshot_at))  # an image run's evaluation fits its length
    rows = dist.rows(batch)
    plan = plan_for(cfg, device, world, data.images)
    torch.manual_seed(cfg.seed)  # model initialisation
    model = build_model(cfg, data.shape, classes=data.classes if cfg.class_cond else None).to(device)
    if plan.channels_last:
        model = model.to(memory_format=torch.channels_last)
    # the folder (and its lock, which train() gives back) once data and model are checked, before any warning
    out = None if out_dir is None else dist.on_main(lambda: runs.lock_run_dir(out_dir) if resume else runs.new_run_dir(out_dir))
    out = out if main else None  # rank 0 alone writes
    try:
        return _build_run(cfg, device, data, main, world, log, out, batch, steps_per_epoch, total_steps, rows, plan,
                          model, snapshot_at)
    except BaseException:
        if out is not None:
            runs.unlock_run_dir(out)
        raise


def _build_run(cfg, device, data, main, world, log, out, batch, steps_per_epoch, total_steps, rows, plan, model,
               snapshot_at) -> Run:
    """The rest of a Run: the EMA copy, diffusion, optimizer, hooks, scheduler and generator, in that order."""
    ema_model = copy.deepcopy(model).requires_grad_(False) if cfg.ema > 0 else model
    diffusion = Diffusion.from_config(cfg, device, warn=main)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    hooks = hooks_for(cfg, data, device, log) if main else None
    n_epochs = -(-total_steps // steps_per_epoch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, total_steps, cfg.warmup, cfg.lr_decay))
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    return Run(cfg, device, data, main, world, log, out, batch, steps_per_epoch, total_steps, n_epochs, rows, plan,
               model, ema_model, diffusion, optimizer, scheduler, generator, hooks, snapshot_at)


def _restore(run: Run, out_dir) -> None:
    """Continue from the run folder's checkpoint (when it has one): weights, optimizer, RNG streams and
    the loop's position; a finished run is only reloaded."""
    run.restored = dist.on_main(lambda: ckpt.load_state(run.out, run.cfg, run.device))
    run.finished = dist.on_main(lambda: runs.is_finished(run.out))
    if run.out is not None:  # a folder with no checkpoint yet (or none at all) simply starts there
        run.out.mkdir(parents=True, exist_ok=True)
        ckpt.clean_stale_temp_files(run.out)
    r = run.restored
    if r is None:
        return
    try:
        run.model.load_state_dict(r["model"])
        if r["ema"] is not None:
            run.ema_model.load_state_dict(r["ema"])
        run.optimizer.load_state_dict(r["optimizer"])
        run.scheduler.load_state_dict(r["scheduler"])
        ckpt.restore_rng(r["rng"], run.generator)
        run.step, run.epoch, run.batch_start = int(r["step"]), int(r["epoch"]), int(r["batch"])
        run.skipped, run.seconds_before = r["skipped"], r["seconds"]
        run.metrics_rows = list(r["metrics"])
        run.pending = dict(r.get("pending", {}))  # a snapshot's numbers within the unfinished epoch
        run.frames = list(r["frames"].numpy()) if r["frames"] is not None else []
        if run.batch_start > 0:
            run.perm = r["perm"].to(run.device)
    except (RuntimeError, KeyError, ValueError, TypeError, AttributeError) as e:
        raise InputError(f"{Path(out_dir) / runs.CHECKPOINT}: training state does not fit the config "
                         f"({str(e).splitlines()[0][:120] if str(e) else type(e).__name__})") from None
    run.log(f"resuming {run.out} after {ckpt.position(run.step, run.epoch, run.batch_start)}")


def _build_step(run: Run) -> None:
    """The training step as it runs here (DDP, torch.compile, a CUDA graph) and the sampling network."""
    net = dist.wrap(run.model, run.device)
    if run.plan.compile:
        net = torch.compile(net)
    step = TrainStep(run.cfg, net, run.model, run.ema_model, run.optimizer, run.diffusion, run.data, run.generator,
                     run.rows, run.plan, run.objective)
    if run.plan.graphs:  # auto: kept only once a replayed step has matched the eager one (runtime/graphs.py)
        step = GraphedStep(step, run.batch, run.optimizer, CudaGraphBackend(run.generator),
                           lambda: make_graph_safe(run.optimizer, run.device), check=run.cfg.cuda_graphs == "auto",
                           log=run.log)
    run.train_step = step
    run.loss_state = step.step if run.plan.graphs else step
    if run.restored is not None and run.batch_start > 0:
        run.loss_state.loss_sum.copy_(run.restored["loss_sum"])
    run.sampling_model = for_sampling(run.ema_model, run.device, run.cfg.cuda_graphs, run.log)


def _save(run: Run, epoch_done: int, batch_done: int, loss_sum=None) -> None:
    # first: a folder with a checkpoint always has the metrics up to it (before the first row: the header)
    fileio.write_csv(run.out / runs.METRICS, run.metrics_rows, None if run.metrics_rows else METRIC_COLUMNS)
    ckpt.save_state(run.out / runs.CHECKPOINT, cfg=run.cfg, model=run.model, ema_model=run.ema_model,
                    optimizer=run.optimizer, scheduler=run.scheduler, generator=run.generator, epoch=epoch_done,
                    batch=batch_done, step=run.step, perm=run.perm, loss_sum=loss_sum, metrics_rows=run.metrics_rows,
                    frames=run.frames, seconds=run.seconds(), skipped=run.skipped, shape=run.data.shape,
                    classes=run.data.classes, world_size=run.world, pending=run.pending)


def _stop_requested(run: Run, stop, last_of_epoch: bool) -> bool:
    """One process looks every step; several agree now and then (a collective)."""
    if run.world == 1:
        return stop.signum is not None
    return (last_of_epoch or run.step % STOP_CHECK_EVERY == 0) and dist.any_rank(stop.signum is not None, run.device)


def _train_epochs(run: Run, progress: bool | None, stop) -> None:
    """Every epoch from where the run stands; a stop signal checkpoints and raises TrainingStopped."""
    show = run.main and (sys.stderr.isatty() if progress is None else progress)
    from tqdm.auto import tqdm

    bar = tqdm(range(run.epoch, run.n_epochs), desc=run.desc, unit="epoch", disable=not show, leave=False,
               initial=run.epoch, total=run.n_epochs)
    if run.auto_threads is not None:
        run.log(f"threads: {run.auto_threads.start()} (auto: the free cores of {run.auto_threads.usable}, re-checked "
                f"while training; --threads N to fix it)")
    run.start, run.start_step = time.perf_counter(), run.step
    for epoch in bar:
        epoch_steps = _run_epoch(run, epoch, stop)
        _end_epoch(run, epoch, epoch_steps, bar, stop)
    if not run.finished and (stop.signum is not None if run.world == 1 else
                             dist.any_rank(stop.signum is not None, run.device)):
        raise stop.stopped("after the last epoch, before the final files", run.out)
    bar.close()


def _run_epoch(run: Run, epoch: int, stop) -> int:
    """The optimisation steps of one epoch (from run.batch_start); its number of steps."""
    cfg, state = run.cfg, run.loss_state
    run.model.train()
    epoch_steps = min(run.steps_per_epoch, run.total_steps - epoch * run.steps_per_epoch)
    if run.batch_start == 0:
        run.perm = torch.randperm(len(run.data), device=run.device, generator=run.generator)
        state.loss_sum.zero_()
    elif run.main and run.batch_start < epoch_steps and _snapshots_missing(run):  # stopped during this step's one
        run.pending = _snapshot(run, stop, epoch, run.batch_start)
    for i in range(run.batch_start, epoch_steps):
        first = run.plan.compile and run.compile_seconds is None
        t0 = time.perf_counter() if first else 0.0
        if run.train_step(run.perm[i * run.batch:(i + 1) * run.batch], run.step + 1, ema_decay(cfg.ema, run.step + 1, cfg.ema_gamma)):
            run.skipped += 1  # only with --skip-nonfinite: a non-finite step left the weights alone
            if run.skipped > cfg.skip_nonfinite:
                raise ckpt.nonfinite_error(run.step + 1, cfg, run.out)
            run.log(f"skipping step {run.step + 1}: non-finite loss or gradient ({run.skipped}/{cfg.skip_nonfinite})")
        if first:
            run.compile_seconds = synced_seconds(t0, run.device)
            run.log(f"torch.compile: the first step took {run.compile_seconds:.1f} s (compilation included)")
        run.scheduler.step()
        run.step += 1
        if run.auto_threads is not None:
            run.auto_threads.update()  # between steps: a busy process that starts is seen within seconds
        if _stop_requested(run, stop, i == epoch_steps - 1):
            # non-finite guard without a host sync per step: the step remembers the first bad step in a tensor
            if cfg.skip_nonfinite == 0 and dist.maximum(state.first_bad).item() >= 0:
                raise ckpt.nonfinite_error(dist.maximum(state.first_bad).item(), cfg, run.out)
            loss_sum = dist.mean(state.loss_sum)  # every rank resumes with the ranks' mean
            if run.out is not None:
                _save(run, epoch, i + 1, loss_sum)
            raise stop.stopped(f"after {ckpt.position(run.step, epoch, i + 1)}", run.out)
        if run.step in run.snapshot_at and i < epoch_steps - 1 and run.main:  # a short run's snapshot within an epoch
            run.pending = _snapshot(run, stop, epoch, i + 1)
    run.batch_start = 0
    return epoch_steps


def _end_epoch(run: Run, epoch: int, epoch_steps: int, bar, stop) -> None:
    """The epoch's loss (the one host sync per epoch), the non-finite check, a snapshot, a checkpoint."""
    cfg = run.cfg
    epoch_loss = (dist.mean(run.loss_state.loss_sum) / epoch_steps).item()
    first_bad = dist.maximum(run.loss_state.first_bad).item()
    if cfg.skip_nonfinite == 0 and first_bad >= 0:
        raise ckpt.nonfinite_error(first_bad, cfg, run.out)
    elapsed = run.seconds()
    # the epochs done: a kimg run's last row is within an epoch (79 steps of 62: 1.27)
    row = {"epoch": epoch_at(run.step, run.steps_per_epoch), "step": run.step, "loss": epoch_loss,
           "lr": float(run.optimizer.param_groups[0]["lr"]), "seconds": round(elapsed, 3)}
    if run.data.images:
        bar.set_postfix(loss=f"{epoch_loss:.4f}", img_s=f"{run.step * run.batch / max(elapsed, 1e-9):.0f}")
    else:
        bar.set_postfix(loss=f"{epoch_loss:.4f}")
    if run.step in run.snapshot_at and run.main:
        run.pending = _snapshot(run, stop, epoch, epoch_steps)
    row.update(run.pending)  # the epoch's last snapshot's numbers
    run.pending = {}
    run.metrics_rows.append(row)
    if run.board is not None:
        run.board.epoch(row)
    if run.out is not None and (epoch + 1 == run.n_epochs or (cfg.checkpoint_every > 0 and
                                                              (epoch + 1) % cfg.checkpoint_every == 0)):
        _save(run, epoch + 1, 0)


def _snapshot(run: Run, stop, epoch: int, batch_done: int) -> dict:
    """A frame for frames.npy; its metrics (images) for the epoch's metrics row. A stop signal during its sampling
    checkpoints the position before it (`batch_done` steps of `epoch`): resuming takes this snapshot first."""
    run.ema_model.eval()
    try:
        frame = run.hooks.snapshot(run.sampling_model, run.diffusion)
    except SamplingStopped:
        if run.out is not None:
            _save(run, epoch, batch_done, dist.mean(run.loss_state.loss_sum))
        raise stop.stopped(f"during the snapshot at {ckpt.position(run.step, epoch, batch_done)}", run.out) from None
    run.frames.append(frame)
    metrics = run.hooks.snapshot_metrics(frame)
    if run.board is not None:
        run.board.snapshot(run.step, frame, metrics)
    return metrics


def _finish(run: Run, stop) -> TrainResult:
    """The final samples, their quality and the run's last files (quality.json last: it marks the run finished)."""
    train_seconds = run.seconds()
    run.ema_model.eval()
    if not run.main:
        return TrainResult(run.cfg, run.ema_model, run.diffusion, None, None, None, train_seconds, None,
                           run.seconds_before)
    step_seconds = (time.perf_counter() - run.start) / max(1, run.step - run.start_step)
    blocks = [block for block, _ in eval_calls(run.cfg, 1)]
    run.log(final_line(run.cfg, run.speed or Speed.from_training(step_seconds, run.batch, blocks)))
    try:
        samples, q, floor = run.hooks.final(run.sampling_model, run.diffusion)
    except SamplingStopped:  # the last epoch's checkpoint holds the trained weights: resuming draws them again
        raise stop.stopped("during the final samples (training is complete)", run.out) from None
    if run.board is not None:
        run.board.final(run.step, q)
    out = run.out
    if out is not None and not run.finished:
        frames = run.frames
        fileio.atomic_write(out / runs.FRAMES, lambda f: np.save(f, np.stack(frames) if frames else samples[None]))
        from ..viz import points as plots

        rows = run.metrics_rows
        plots.loss_curve([r["step"] for r in rows], [r["loss"] for r in rows], out / "loss.png")
        shots = sorted(run.snapshot_at)
        extra = {"train_seconds": round(train_seconds, 3), "frame_steps": shots,
                 "frame_epochs": snapshot_epochs(shots, run.steps_per_epoch),
                 "world_size": run.world, "device": run.device.type, **run.plan.as_dict(),
                 "cuda_graphs": run.plan.graphs and run.train_step.graphed}  # False after auto fell back to eager
        if run.compile_seconds is not None:
            extra["compile_seconds"] = round(run.compile_seconds, 3)
        if run.auto_threads is not None:
            extra["threads"] = run.auto_threads.choices  # every count auto set, in order
        run.hooks.write(out, samples, q, floor, extra)
    return TrainResult(run.cfg, run.ema_model, run.diffusion, samples, q, floor, train_seconds, out, run.seconds_before)
