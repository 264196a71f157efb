"""The training loop: a TrainConfig in, a run folder out (config, checkpoint, metrics, frames, figures).

Fast on a CPU because the data stays one tensor on the device (no DataLoader; images as uint8), and
the loop never waits for the device except once per epoch to log the loss. What differs between
points and images (snapshots, metrics, final files) lives in hooks.py; checkpoints in state.py.
"""

from __future__ import annotations

import copy
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import runs
from ..config import IMAGE_DEFAULTS, POINT_DEFAULTS, TrainConfig
from ..data.source import load_source
from ..diffusion import Diffusion
from ..errors import InputError
from ..models import build_model
from . import dist
from . import state as ckpt
from .graphs import CudaGraphBackend, GraphedStep, for_sampling, make_graph_safe
from .hooks import FRAME_SEED, final_sampling, hooks_for
from .step import TrainStep, ema_decay, plan_for

STOP_CHECK_EVERY = 64  # under torchrun, ranks agree on a stop signal every this many steps and at epoch ends
METRIC_COLUMNS = ("epoch", "step", "loss", "lr", "seconds")  # metrics.csv's header before its first row

__all__ = ["FRAME_SEED", "TrainResult", "frame_epochs", "lr_factor", "resolve_device", "snapshot_steps", "train"]


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA, then Apple's MPS, then the CPU. Under torchrun, CUDA means this process's own GPU
    (cuda:LOCAL_RANK)."""
    if name in ("auto", "cuda") and torch.cuda.is_available() and dist.launched():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA GPU is visible to torch; use --device cpu or auto")
    if name == "mps" and not torch.backends.mps.is_available():
        raise InputError("--device mps: Apple's MPS backend is not available; use --device cpu or auto")
    return torch.device(name)


def lr_factor(step: int, total: int, warmup: float, decay: str) -> float:
    """Linear warm-up over the first warmup*total steps, then constant or cosine decay to 0."""
    n_warm = int(warmup * total)
    if step < n_warm:
        return (step + 1) / n_warm
    if decay == "constant":
        return 1.0
    progress = (step - n_warm) / max(1, total - n_warm)
    return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def frame_epochs(epochs: int, frames: int) -> list[int]:
    """The epochs (0-based) after which a snapshot is sampled: evenly spaced, always the last."""
    if frames <= 0:
        return []
    return sorted({int(round(e)) for e in np.linspace(epochs - 1, 0, min(frames, epochs))})


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


def schedule_length(cfg: TrainConfig, n: int) -> tuple[int, int, int]:
    """(batch, steps per epoch, total steps) for n training samples: `epochs` full passes, or, when kimg > 0,
    ceil(kimg * 1000 / batch) steps (the last epoch cut short). The ragged last batch of an epoch is
    dropped, as the classic study did."""
    batch = min(cfg.batch_size, n)
    per_epoch = n // batch
    total = math.ceil(cfg.kimg * 1000 / batch) if cfg.kimg > 0 else cfg.epochs * per_epoch
    return batch, per_epoch, total


@dataclass
class TrainResult:
    config: TrainConfig
    model: torch.nn.Module  # the sampling weights (EMA if enabled)
    diffusion: Diffusion
    samples: np.ndarray  # the final samples: (n, 2) float points or (n, C, H, W) uint8 images
    quality: object  # metrics.Quality (points) or eval.images.ImageQuality (labelled images), or None
    floor: object  # the same numbers for real data at the same n
    train_seconds: float
    out_dir: Path | None


def train(cfg: TrainConfig, out_dir: str | Path | None = None, progress: bool | None = None, log=None,
          resume: bool = False, threads: int | None = None) -> TrainResult:
    """Train the model `cfg` describes; write a run folder to `out_dir` when given.

    With resume=True, `out_dir` is an interrupted run of the same config: training continues from its
    last checkpoint exactly as if it had never stopped (on the CPU: bit-identical weights and metrics).
    A folder without a checkpoint starts from scratch; a finished one (runs.is_finished) is not rewritten.

    Under torchrun (train/dist.py) every rank calls this: the model is the same whatever the number of
    processes, rank 0 alone writes the run folder and logs, and the other ranks return a result without
    samples (samples, quality and out_dir None).

    threads: None leaves torch's thread count alone; 0 (`--threads auto`) chooses it from the free cores and
    re-checks it during training (threads.py); N > 0 is set by the caller (the CLI's torch_threads)."""
    from ..threads import AutoThreads

    auto_threads = AutoThreads(cfg.images) if threads == 0 else None  # its first reading: now
    main, world = dist.is_main(), dist.world_size()
    log = (log or (lambda msg: print(msg, file=sys.stderr))) if main else (lambda msg: None)
    if resume and out_dir is None:
        raise InputError("resume=True needs the run folder to continue as out_dir")
    device = resolve_device(cfg.device)
    data = load_source(cfg, device)  # bad data (and below, a model that cannot take it) fail before any folder exists
    n = len(data)
    batch, steps_per_epoch, total_steps = schedule_length(cfg, n)
    cfg = cfg.scaled_eval(total_steps * batch)  # an image run's final samples fit its length (config.py)
    rows = dist.rows(batch)
    plan = plan_for(cfg, device, world, data.images)
    torch.manual_seed(cfg.seed)  # model initialisation
    model = build_model(cfg, data.shape, classes=data.classes if cfg.class_cond else None).to(device)
    if plan.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if out_dir is not None:
        out = dist.on_main(lambda: Path(out_dir) if resume else runs.new_run_dir(out_dir))
    else:
        out = None
    ema_model = copy.deepcopy(model).requires_grad_(False) if cfg.ema > 0 else model
    diffusion = Diffusion.from_config(cfg, device, warn=main)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    hooks = hooks_for(cfg, data, device, log) if main else None

    n_epochs = -(-total_steps // steps_per_epoch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, total_steps, cfg.warmup, cfg.lr_decay))
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    snapshot_at = set(snapshot_steps(total_steps, steps_per_epoch, cfg.frames, by_step=data.images))

    metrics_rows, frames, pending = [], [], {}
    step, start_epoch, start_batch, skipped, seconds_before = 0, 0, 0, 0, 0.0
    perm = None
    restored = dist.on_main(lambda: ckpt.load_state(out, cfg, device)) if resume else None
    finished = resume and dist.on_main(lambda: runs.is_finished(out))
    if not main:
        out = None  # rank 0 alone writes
    if resume and out is not None:  # a folder with no checkpoint yet (or none at all) simply starts there
        out.mkdir(parents=True, exist_ok=True)
        ckpt.clean_stale_temp_files(out)
    if restored is not None:
        try:
            model.load_state_dict(restored["model"])
            if restored["ema"] is not None:
                ema_model.load_state_dict(restored["ema"])
            optimizer.load_state_dict(restored["optimizer"])
            scheduler.load_state_dict(restored["scheduler"])
            ckpt.restore_rng(restored["rng"], generator)
            step, start_epoch, start_batch = int(restored["step"]), int(restored["epoch"]), int(restored["batch"])
            skipped, seconds_before = restored["skipped"], restored["seconds"]
            metrics_rows = list(restored["metrics"])
            pending = dict(restored.get("pending", {}))  # a snapshot's numbers within the unfinished epoch
            frames = list(restored["frames"].numpy()) if restored["frames"] is not None else []
            if start_batch > 0:
                perm = restored["perm"].to(device)
        except (RuntimeError, KeyError, ValueError, TypeError, AttributeError) as e:
            raise InputError(f"{Path(out_dir) / runs.CHECKPOINT}: training state does not fit the config "
                             f"({str(e).splitlines()[0][:120] if str(e) else type(e).__name__})") from None
        log(f"resuming {out} after {ckpt.position(step, start_epoch, start_batch)}")
    for line in [describe_length(cfg, n, batch, total_steps), *quick_try_hints(cfg, data)]:
        log(line)
    if out is not None and not finished:
        runs.write_json(out / runs.CONFIG, cfg.to_dict())
        if restored is not None:  # a kill between save()'s two writes leaves metrics.csv ahead of the checkpoint
            runs.write_csv(out / runs.METRICS, metrics_rows)

    net = dist.wrap(model, device)
    if plan.compile:
        net = torch.compile(net)
    train_step = TrainStep(cfg, net, model, ema_model, optimizer, diffusion, data, generator, rows, plan)
    if plan.graphs:  # auto: kept only once a replayed step has matched the eager one (graphs.GraphedStep)
        train_step = GraphedStep(train_step, batch, optimizer, CudaGraphBackend(generator),
                                 lambda: make_graph_safe(optimizer, device), check=cfg.cuda_graphs == "auto", log=log)
    state = train_step.step if plan.graphs else train_step  # the loss sum and non-finite marker live there
    if restored is not None and start_batch > 0:
        state.loss_sum.copy_(restored["loss_sum"])
    sampling_model = for_sampling(ema_model, device, cfg.cuda_graphs, log)

    def save(epoch_done: int, batch_done: int, loss_sum=None) -> None:
        # first: a folder with a checkpoint always has the metrics up to it (before the first row: the header)
        runs.write_csv(out / runs.METRICS, metrics_rows, None if metrics_rows else METRIC_COLUMNS)
        ckpt.save_state(out / runs.CHECKPOINT, cfg=cfg, model=model, ema_model=ema_model, optimizer=optimizer,
                        scheduler=scheduler, generator=generator, epoch=epoch_done, batch=batch_done, step=step,
                        perm=perm, loss_sum=loss_sum, metrics_rows=metrics_rows, frames=frames,
                        seconds=seconds_before + time.perf_counter() - start, skipped=skipped,
                        shape=data.shape, classes=data.classes, world_size=world, pending=pending)

    def stop_requested(last_of_epoch: bool) -> bool:  # one process: look every step; several: agree now and then
        if world == 1:
            return stop.signum is not None
        return (last_of_epoch or step % STOP_CHECK_EVERY == 0) and dist.any_rank(stop.signum is not None, device)

    # non-finite guard without a host sync per step: the step remembers the first bad step in a tensor, the
    # loop looks once per epoch (before anything is written); --skip-nonfinite N must look every step, and does
    show = main and (sys.stderr.isatty() if progress is None else progress)
    from tqdm.auto import tqdm

    bar = tqdm(range(start_epoch, n_epochs), desc="train", unit="epoch", disable=not show, leave=False,
               initial=start_epoch, total=n_epochs)
    def take_snapshot() -> dict:  # a frame for frames.npy; its metrics (images) for the metrics row
        ema_model.eval()
        frames.append(hooks.snapshot(sampling_model, diffusion))
        return hooks.snapshot_metrics(frames[-1])

    if auto_threads is not None:
        log(f"threads: {auto_threads.start()} (auto: the free cores of {auto_threads.usable}, re-checked while "
            f"training; --threads N to fix it)")
    start, start_step = time.perf_counter(), step
    compile_seconds = None
    with ckpt.StopSignals() as stop:
        for epoch in bar:
            model.train()
            epoch_steps = min(steps_per_epoch, total_steps - epoch * steps_per_epoch)
            if start_batch == 0:
                perm = torch.randperm(n, device=device, generator=generator)
                state.loss_sum.zero_()
            for i in range(start_batch, epoch_steps):
                first = plan.compile and compile_seconds is None
                t0 = time.perf_counter() if first else 0.0
                if train_step(perm[i * batch:(i + 1) * batch], step + 1, ema_decay(cfg.ema, step + 1)):
                    skipped += 1  # only with --skip-nonfinite: a non-finite step left the weights alone
                    if skipped > cfg.skip_nonfinite:
                        raise ckpt.nonfinite_error(step + 1, cfg, out)
                    log(f"skipping step {step + 1}: non-finite loss or gradient ({skipped}/{cfg.skip_nonfinite})")
                if first:
                    compile_seconds = _synced_seconds(t0, device)
                    log(f"torch.compile: the first step took {compile_seconds:.1f} s (compilation included)")
                scheduler.step()
                step += 1
                if auto_threads is not None:
                    auto_threads.update()  # between steps: a busy process that starts is seen within seconds
                if stop_requested(i == epoch_steps - 1):
                    if cfg.skip_nonfinite == 0 and dist.maximum(state.first_bad).item() >= 0:
                        raise ckpt.nonfinite_error(dist.maximum(state.first_bad).item(), cfg, out)
                    loss_sum = dist.mean(state.loss_sum)  # every rank resumes with the ranks' mean
                    if out is not None:
                        save(epoch, i + 1, loss_sum)
                    raise stop.stopped(f"after {ckpt.position(step, epoch, i + 1)}", out)
                if step in snapshot_at and i < epoch_steps - 1 and main:  # a short run's snapshot within an epoch
                    pending = take_snapshot()
            start_batch = 0
            epoch_loss = (dist.mean(state.loss_sum) / epoch_steps).item()  # the one host sync per epoch
            first_bad = dist.maximum(state.first_bad).item()
            if cfg.skip_nonfinite == 0 and first_bad >= 0:
                raise ckpt.nonfinite_error(first_bad, cfg, out)
            elapsed = seconds_before + time.perf_counter() - start
            row = {"epoch": epoch + 1, "step": step, "loss": epoch_loss, "lr": float(optimizer.param_groups[0]["lr"]),
                   "seconds": round(elapsed, 3)}
            if data.images:
                bar.set_postfix(loss=f"{epoch_loss:.4f}", img_s=f"{step * batch / max(elapsed, 1e-9):.0f}")
            else:
                bar.set_postfix(loss=f"{epoch_loss:.4f}")
            if step in snapshot_at and main:
                pending = take_snapshot()
            row.update(pending)  # the epoch's last snapshot's numbers
            pending = {}
            metrics_rows.append(row)
            if out is not None and (epoch + 1 == n_epochs or (cfg.checkpoint_every > 0 and
                                                              (epoch + 1) % cfg.checkpoint_every == 0)):
                save(epoch + 1, 0)
        if not finished and (stop.signum is not None if world == 1 else dist.any_rank(stop.signum is not None, device)):
            raise stop.stopped("after the last epoch, before the final files", out)
    bar.close()
    train_seconds = seconds_before + time.perf_counter() - start
    ema_model.eval()
    if not main:
        return TrainResult(cfg, ema_model, diffusion, None, None, None, train_seconds, None)

    log(final_estimate(cfg, batch, (time.perf_counter() - start) / max(1, step - start_step)))
    samples, q, floor = hooks.final(sampling_model, diffusion)
    if out is not None and not finished:
        runs.atomic_write(out / runs.FRAMES, lambda f: np.save(f, np.stack(frames) if frames else samples[None]))
        from .. import plots

        plots.loss_curve([r["step"] for r in metrics_rows], [r["loss"] for r in metrics_rows], out / "loss.png")
        shots = sorted(snapshot_at)
        extra = {"train_seconds": round(train_seconds, 3), "frame_steps": shots,
                 "frame_epochs": snapshot_epochs(shots, steps_per_epoch, total_steps),
                 "world_size": world, "device": device.type, **plan.as_dict(),
                 "cuda_graphs": plan.graphs and train_step.graphed}  # False after auto fell back to eager
        if compile_seconds is not None:
            extra["compile_seconds"] = round(compile_seconds, 3)
        if auto_threads is not None:
            extra["threads"] = auto_threads.choices  # every count auto set, in order
        hooks.write(out, samples, q, floor, extra)  # quality.json last: it marks the run finished
    return TrainResult(cfg, ema_model, diffusion, samples, q, floor, train_seconds, out)


def _synced_seconds(t0: float, device: torch.device) -> float:
    """Seconds since t0 once the device has finished its queued work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0
