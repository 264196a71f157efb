"""The loop's upkeep between optimisation steps: the checkpoint, the snapshots, an epoch's metrics row, the
non-finite guard, and the run's final samples and files. Each takes the Run (setup.py) and reads where the loop
stands from its TrainState."""

from __future__ import annotations

import time

import numpy as np

from .. import fileio, runs
from ..errors import SamplingStopped
from ..runtime import dist
from . import state as ckpt
from .estimate import Speed, final_line
from .length import epoch_at, eval_calls, snapshot_epochs
from .setup import METRIC_COLUMNS, Run


def checkpoint(run: Run, loss_sum=None) -> None:
    """metrics.csv, then the checkpoint of where the loop stands: a folder with a checkpoint always has the
    metrics up to it (before the first row: the header). Within an epoch, `loss_sum` is its running loss (the
    ranks' mean: every rank computes it, rank 0 writes)."""
    s = run.state
    fileio.write_csv(run.out / runs.METRICS, s.metrics, None if s.metrics else METRIC_COLUMNS)
    s.seconds, s.loss_sum = run.seconds(), loss_sum
    ckpt.save_state(run.out / runs.CHECKPOINT, s)


STOP_CHECK_EVERY = 64  # under torchrun, ranks agree on a stop signal every this many steps and at epoch ends


def stop_requested(run: Run, stop, last_of_epoch: bool) -> bool:
    """One process looks every step; several agree now and then (a collective)."""
    if run.world == 1:
        return stop.signum is not None
    every = run.state.step % STOP_CHECK_EVERY == 0
    return (last_of_epoch or every) and dist.any_rank(stop.signum is not None, run.device)


def check_finite(run: Run) -> None:
    """The non-finite guard without a host sync per step: the step remembers the first bad one in a tensor."""
    first_bad = dist.maximum(run.loss_state.first_bad).item()
    if run.cfg.skip_nonfinite == 0 and first_bad >= 0:
        raise ckpt.nonfinite_error(first_bad, run.cfg, run.out)


def note_skipped(run: Run) -> None:
    """--skip-nonfinite: a non-finite step left the weights alone; too many stop the run."""
    run.state.skipped += 1
    if run.state.skipped > run.cfg.skip_nonfinite:
        raise ckpt.nonfinite_error(run.state.step + 1, run.cfg, run.out)
    run.log(f"skipping step {run.state.step + 1}: non-finite loss or gradient ({run.state.skipped}/"
            f"{run.cfg.skip_nonfinite})")


def snapshot(run: Run, stop) -> dict:
    """A frame for frames.npy; its metrics (images) for the epoch's metrics row. A stop signal during its sampling
    checkpoints the position before it: resuming takes this snapshot first."""
    run.state.ema_model.eval()
    try:
        frame = run.hooks.snapshot(run.sampling_model, run.diffusion)
    except SamplingStopped:
        if run.out is not None:
            checkpoint(run, dist.mean(run.loss_state.loss_sum))
        s = run.state
        raise stop.stopped(f"during the snapshot at {ckpt.position(s.step, s.epoch, s.batch)}", run.out) from None
    run.state.frames.append(frame)
    metrics = run.hooks.snapshot_metrics(frame)
    if run.board is not None:
        run.board.snapshot(run.state.step, frame, metrics)
    return metrics


def epoch_row(run: Run, epoch_steps: int, bar) -> dict:
    """The epoch's metrics row: its mean loss (the one host sync per epoch), the learning rate, the time."""
    s = run.state
    loss = (dist.mean(run.loss_state.loss_sum) / epoch_steps).item()
    elapsed = run.seconds()
    if run.data.images:
        bar.set_postfix(loss=f"{loss:.4f}", img_s=f"{s.step * run.length.batch / max(elapsed, 1e-9):.0f}")
    else:
        bar.set_postfix(loss=f"{loss:.4f}")
    # the epochs done: a kimg run's last row is within an epoch (79 steps of 62: 1.27)
    return {"epoch": epoch_at(s.step, run.length.steps_per_epoch), "step": s.step, "loss": loss,
            "lr": float(s.optimizer.param_groups[0]["lr"]), "seconds": round(elapsed, 3)}


def checkpoint_due(run: Run, epochs_done: int) -> bool:
    every = run.cfg.checkpoint_every
    return run.out is not None and (epochs_done == run.length.n_epochs or (every > 0 and epochs_done % every == 0))


def finish(run: Run, stop, train_seconds: float):
    """(samples, quality, floor) of the final samples, and the run's last files (quality.json last: it marks the
    run finished). Other ranks of a torchrun run draw nothing: (None, None, None)."""
    s = run.state
    s.ema_model.eval()
    if not run.main:
        return None, None, None
    step_seconds = (time.perf_counter() - run.start) / max(1, s.step - run.start_step)
    blocks = [block for block, _ in eval_calls(run.cfg, 1)]
    run.log(final_line(run.cfg, run.speed or Speed.from_training(step_seconds, run.length.batch, blocks)))
    try:
        samples, q, floor = run.hooks.final(run.sampling_model, run.diffusion)
    except SamplingStopped:  # the last epoch's checkpoint holds the trained weights: resuming draws them again
        raise stop.stopped("during the final samples (training is complete)", run.out) from None
    if run.board is not None:
        run.board.final(s.step, q)
    if run.out is not None and not run.finished:
        _write_files(run, samples, q, floor, train_seconds)
    return samples, q, floor


def _write_files(run: Run, samples, q, floor, train_seconds: float) -> None:
    from ..viz import points as plots

    out, s = run.out, run.state
    fileio.atomic_write(out / runs.FRAMES, lambda f: np.save(f, np.stack(s.frames) if s.frames else samples[None]))
    plots.loss_curve([r["step"] for r in s.metrics], [r["loss"] for r in s.metrics], out / "loss.png")
    shots = sorted(run.length.snapshot_at)
    extra = {"train_seconds": round(train_seconds, 3), "frame_steps": shots,
             "frame_epochs": snapshot_epochs(shots, run.length.steps_per_epoch),
             "world_size": run.world, "device": run.device.type, **run.plan.as_dict(),
             "cuda_graphs": run.plan.graphs and run.train_step.graphed}  # False after auto fell back to eager
    if run.compile_seconds is not None:
        extra["compile_seconds"] = round(run.compile_seconds, 3)
    if run.auto_threads is not None:
        extra["threads"] = run.auto_threads.choices  # every count auto set, in order
    run.hooks.write(out, samples, q, floor, extra)
