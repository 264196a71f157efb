"""Training: a TrainConfig in, a run folder out (config, checkpoint, metrics, frames, figures).

Fast on a CPU because the data stays one tensor on the device (no DataLoader), batches are large,
and the loop never waits for the device except once per epoch to log the loss.
"""

from __future__ import annotations

import copy
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import runs
from .config import TrainConfig
from .data import load_dataset
from .diffusion import Diffusion
from .errors import InputError
from .metrics import Quality, data_floor, quality, references
from .models import build_model
from .samplers import sample

FRAME_SEED = 1234  # every frame starts from the same noise, so the animation shows learning, not resampling


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA, then Apple's MPS, then the CPU."""
    from .errors import InputError

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


@dataclass
class TrainResult:
    config: TrainConfig
    model: torch.nn.Module  # the sampling weights (EMA if enabled)
    diffusion: Diffusion
    samples: np.ndarray  # (frame_points, 2), the final snapshot
    quality: Quality
    floor: Quality
    train_seconds: float
    out_dir: Path | None


def train(cfg: TrainConfig, out_dir: str | Path | None = None, progress: bool | None = None, log=None,
          resume: bool = False) -> TrainResult:
    """Train the model `cfg` describes; write a run folder to `out_dir` when given.

    With resume=True, `out_dir` is an interrupted run of the same config: training continues from its
    last checkpoint exactly as if it had never stopped (on the CPU: bit-identical weights and metrics).
    A folder without a checkpoint starts from scratch; a finished one (runs.is_finished) is not rewritten."""
    from . import resume as ckpt

    log = log or (lambda msg: print(msg, file=sys.stderr))
    if resume and out_dir is None:
        raise InputError("resume=True needs the run folder to continue as out_dir")
    device = resolve_device(cfg.device)
    points = load_dataset(cfg.dataset, cfg.n_points, cfg.seed)  # bad data fails here, before any folder exists
    out = Path(out_dir) if resume else runs.new_run_dir(out_dir) if out_dir is not None else None
    torch.manual_seed(cfg.seed)  # model initialisation

    data = torch.from_numpy(points).to(device)  # (n, 2)
    model = build_model(cfg).to(device)
    ema_model = copy.deepcopy(model).requires_grad_(False) if cfg.ema > 0 else model
    diffusion = Diffusion.from_config(cfg, device, warn=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    params, ema_params = list(model.parameters()), list(ema_model.parameters())

    n = len(data)
    batch = min(cfg.batch_size, n)
    steps_per_epoch = n // batch  # drop the ragged last batch, as the classic study did
    total_steps = cfg.epochs * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, total_steps, cfg.warmup, cfg.lr_decay))
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    snapshot_at = set(frame_epochs(cfg.epochs, cfg.frames))

    metrics_rows, frames = [], []
    step, start_epoch, start_batch, skipped, seconds_before = 0, 0, 0, 0, 0.0
    perm = loss_sum = None
    state = ckpt.load_state(out, cfg, device) if resume else None
    if resume:  # a folder with no checkpoint yet (or none at all) simply starts there: resume is "start or continue"
        out.mkdir(parents=True, exist_ok=True)
        ckpt.clean_stale_temp_files(out)
    if state is not None:
        try:
            model.load_state_dict(state["model"])
            if state["ema"] is not None:
                ema_model.load_state_dict(state["ema"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            ckpt.restore_rng(state["rng"], generator)
            step, start_epoch, start_batch = int(state["step"]), int(state["epoch"]), int(state["batch"])
            skipped, seconds_before, metrics_rows = state["skipped"], state["seconds"], list(state["metrics"])
            frames = list(state["frames"].numpy()) if state["frames"] is not None else []
            if start_batch > 0:
                perm, loss_sum = state["perm"].to(device), state["loss_sum"].to(device)
        except (RuntimeError, KeyError, ValueError, TypeError, AttributeError) as e:
            raise InputError(f"{out / runs.CHECKPOINT}: training state does not fit the config "
                             f"({str(e).splitlines()[0][:120] if str(e) else type(e).__name__})") from None
        log(f"resuming {out} at epoch {start_epoch} step {step}")
    finished = resume and runs.is_finished(out)
    if out is not None and not finished:
        runs.write_json(out / runs.CONFIG, cfg.to_dict())

    def save(epoch_done: int, batch_done: int) -> None:
        ckpt.save_state(out / runs.CHECKPOINT, cfg=cfg, model=model, ema_model=ema_model, optimizer=optimizer,
                        scheduler=scheduler, generator=generator, epoch=epoch_done, batch=batch_done, step=step,
                        perm=perm, loss_sum=loss_sum, metrics_rows=metrics_rows, frames=frames,
                        seconds=seconds_before + time.perf_counter() - start, skipped=skipped)

    # non-finite guard without a host sync per step: remember the first bad step in a tensor, look once
    # per epoch (before anything is written); --skip-nonfinite N must look every step, and does
    first_bad = torch.full((), -1, device=device, dtype=torch.long)
    show = sys.stderr.isatty() if progress is None else progress
    from tqdm.auto import tqdm

    bar = tqdm(range(start_epoch, cfg.epochs), desc="train", unit="epoch", disable=not show, leave=False,
               initial=start_epoch, total=cfg.epochs)
    start = time.perf_counter()
    with ckpt.StopSignals() as stop:
        for epoch in bar:
            model.train()
            if start_batch == 0:
                perm = torch.randperm(n, device=device, generator=generator)
                loss_sum = torch.zeros((), device=device)
            for i in range(start_batch, steps_per_epoch):
                x0 = data[perm[i * batch:(i + 1) * batch]]  # (B, 2)
                loss = diffusion.loss(model, x0, generator)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                # the total gradient norm, clipped to grad_clip (inf: measured only)
                grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip if cfg.grad_clip > 0 else math.inf)
                finite = torch.isfinite(loss.detach()) & torch.isfinite(grad_norm)
                if cfg.skip_nonfinite > 0 and not finite:  # a host sync per step, only in this mode
                    skipped += 1
                    if skipped > cfg.skip_nonfinite:
                        raise ckpt.nonfinite_error(step + 1, cfg, out)
                    log(f"skipping step {step + 1}: non-finite loss or gradient ({skipped}/{cfg.skip_nonfinite})")
                else:
                    optimizer.step()
                    loss_sum += loss.detach()
                first_bad = torch.where((first_bad < 0) & ~finite, step + 1, first_bad)
                scheduler.step()
                step += 1
                if cfg.ema > 0:  # EMA with the usual warm-up: short runs are not dominated by the initial weights
                    decay = min(cfg.ema, (1 + step) / (10 + step))
                    torch._foreach_lerp_(ema_params, params, 1 - decay)
                if stop.signum is not None:
                    if cfg.skip_nonfinite == 0 and first_bad.item() >= 0:
                        raise ckpt.nonfinite_error(first_bad.item(), cfg, out)
                    if out is not None:
                        save(epoch, i + 1)
                    raise stop.stopped(f"after step {step} (epoch {epoch + 1})", out)
            start_batch = 0
            epoch_loss = (loss_sum / steps_per_epoch).item()  # the one host sync per epoch
            if cfg.skip_nonfinite == 0 and first_bad.item() >= 0:
                raise ckpt.nonfinite_error(first_bad.item(), cfg, out)
            elapsed = seconds_before + time.perf_counter() - start
            metrics_rows.append({"epoch": epoch + 1, "step": step, "loss": epoch_loss,
                                 "lr": optimizer.param_groups[0]["lr"], "seconds": round(elapsed, 3)})
            bar.set_postfix(loss=f"{epoch_loss:.4f}")
            if epoch in snapshot_at:
                ema_model.eval()
                # logsnr spacing: on the default dino model, 20 DPM-Solver++ steps reach precision 0.28 with
                # the trailing spacing and about 0.7 already at 10 steps with logsnr (docs/samplers.md)
                frames.append(sample(ema_model, diffusion, cfg.frame_points, FRAME_SEED, device=device,
                                     sampler=cfg.frame_sampler, steps=min(cfg.frame_steps, cfg.timesteps),
                                     spacing="logsnr").cpu().numpy())
            if out is not None and (epoch + 1 == cfg.epochs or (cfg.checkpoint_every > 0 and
                                                                 (epoch + 1) % cfg.checkpoint_every == 0)):
                save(epoch + 1, 0)
        if stop.signum is not None and not finished:
            raise stop.stopped("after the last epoch, before the final files", out)
    bar.close()
    train_seconds = seconds_before + time.perf_counter() - start
    ema_model.eval()

    # the final samples: full ancestral sampling (Ho et al. Alg. 2), whatever sampled the snapshots
    samples = sample(ema_model, diffusion, cfg.frame_points, FRAME_SEED, device=device).cpu().numpy()
    refs = references(cfg.dataset)
    q, floor = quality(samples, refs), data_floor(cfg.dataset)
    if out is not None and not finished:
        _write_run(out, cfg, metrics_rows, frames, samples, q, floor, train_seconds)
    return TrainResult(cfg, ema_model, diffusion, samples, q, floor, train_seconds, out)


def _write_run(out, cfg, metrics_rows, frames, samples, q, floor, seconds):
    """The run's files after its final checkpoint; quality.json last, as it marks the run finished."""
    runs.write_csv(out / runs.METRICS, metrics_rows)
    runs.atomic_write(out / runs.FRAMES, lambda f: np.save(f, np.stack(frames) if frames else samples[None]))
    runs.atomic_write(out / runs.SAMPLES, lambda f: np.save(f, samples))
    from . import plots

    plots.scatter(samples, out / "samples.png", title=f"{cfg.dataset}: {q}")
    plots.loss_curve([r["step"] for r in metrics_rows], [r["loss"] for r in metrics_rows], out / "loss.png")
    runs.write_json(out / runs.QUALITY, {"quality": q.as_dict(), "data_floor": floor.as_dict(),
                                         "train_seconds": round(seconds, 3), "n_eval": len(samples)})
