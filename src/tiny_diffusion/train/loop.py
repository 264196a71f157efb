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
from ..config import TrainConfig
from ..data.source import load_source
from ..diffusion import Diffusion
from ..errors import InputError
from ..models import build_model
from . import dist
from . import state as ckpt
from .graphs import CudaGraphBackend, GraphedStep, for_sampling, make_graph_safe
from .hooks import FRAME_SEED, hooks_for
from .step import TrainStep, ema_decay, plan_for

STOP_CHECK_EVERY = 64  # under torchrun, ranks agree on a stop signal every this many steps and at epoch ends

__all__ = ["FRAME_SEED", "TrainResult", "frame_epochs", "lr_factor", "resolve_device", "train"]


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
          resume: bool = False) -> TrainResult:
    """Train the model `cfg` describes; write a run folder to `out_dir` when given.

    With resume=True, `out_dir` is an interrupted run of the same config: training continues from its
    last checkpoint exactly as if it had never stopped (on the CPU: bit-identical weights and metrics).
    A folder without a checkpoint starts from scratch; a finished one (runs.is_finished) is not rewritten.

    Under torchrun (train/dist.py) every rank calls this: the model is the same whatever the number of
    processes, rank 0 alone writes the run folder and logs, and the other ranks return a result without
    samples (samples, quality and out_dir None)."""
    main, world = dist.is_main(), dist.world_size()
    log = (log or (lambda msg: print(msg, file=sys.stderr))) if main else (lambda msg: None)
    if resume and out_dir is None:
        raise InputError("resume=True needs the run folder to continue as out_dir")
    device = resolve_device(cfg.device)
    data = load_source(cfg, device)  # bad data (and below, a model that cannot take it) fail before any folder exists
    n = len(data)
    batch, steps_per_epoch, total_steps = schedule_length(cfg, n)
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
    snapshot_at = set(frame_epochs(n_epochs, cfg.frames))

    metrics_rows, frames = [], []
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
            frames = list(restored["frames"].numpy()) if restored["frames"] is not None else []
            if start_batch > 0:
                perm = restored["perm"].to(device)
        except (RuntimeError, KeyError, ValueError, TypeError, AttributeError) as e:
            raise InputError(f"{Path(out_dir) / runs.CHECKPOINT}: training state does not fit the config "
                             f"({str(e).splitlines()[0][:120] if str(e) else type(e).__name__})") from None
        log(f"resuming {out} after {ckpt.position(step, start_epoch, start_batch)}")
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
        if metrics_rows:  # first: a folder with a checkpoint always has the metrics up to it
            runs.write_csv(out / runs.METRICS, metrics_rows)
        ckpt.save_state(out / runs.CHECKPOINT, cfg=cfg, model=model, ema_model=ema_model, optimizer=optimizer,
                        scheduler=scheduler, generator=generator, epoch=epoch_done, batch=batch_done, step=step,
                        perm=perm, loss_sum=loss_sum, metrics_rows=metrics_rows, frames=frames,
                        seconds=seconds_before + time.perf_counter() - start, skipped=skipped,
                        shape=data.shape, classes=data.classes, world_size=world)

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
    start = time.perf_counter()
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
                if stop_requested(i == epoch_steps - 1):
                    if cfg.skip_nonfinite == 0 and dist.maximum(state.first_bad).item() >= 0:
                        raise ckpt.nonfinite_error(dist.maximum(state.first_bad).item(), cfg, out)
                    loss_sum = dist.mean(state.loss_sum)  # every rank resumes with the ranks' mean
                    if out is not None:
                        save(epoch, i + 1, loss_sum)
                    raise stop.stopped(f"after {ckpt.position(step, epoch, i + 1)}", out)
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
            if epoch in snapshot_at and main:
                ema_model.eval()
                frames.append(hooks.snapshot(sampling_model, diffusion))
                row.update(hooks.snapshot_metrics(frames[-1]))
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

    samples, q, floor = hooks.final(sampling_model, diffusion)
    if out is not None and not finished:
        runs.atomic_write(out / runs.FRAMES, lambda f: np.save(f, np.stack(frames) if frames else samples[None]))
        from .. import plots

        plots.loss_curve([r["step"] for r in metrics_rows], [r["loss"] for r in metrics_rows], out / "loss.png")
        extra = {"train_seconds": round(train_seconds, 3), "frame_epochs": [e + 1 for e in sorted(snapshot_at)],
                 "world_size": world, "device": device.type, **plan.as_dict(),
                 "cuda_graphs": plan.graphs and train_step.graphed}  # False after auto fell back to eager
        if compile_seconds is not None:
            extra["compile_seconds"] = round(compile_seconds, 3)
        hooks.write(out, samples, q, floor, extra)  # quality.json last: it marks the run finished
    return TrainResult(cfg, ema_model, diffusion, samples, q, floor, train_seconds, out)


def _synced_seconds(t0: float, device: torch.device) -> float:
    """Seconds since t0 once the device has finished its queued work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0
