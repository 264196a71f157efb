"""Never lose a run: the full training state in a checkpoint, exact resumption, and clean stops.

A training checkpoint holds everything the loop needs to continue as if it had never stopped:
model, EMA, optimizer, LR scheduler, where in which epoch it was (with that epoch's batch order),
every RNG state (the training torch.Generator, torch CPU/CUDA, numpy, Python `random`), the metrics
rows and frames so far, and the resolved config. Tensors and plain Python only, so it loads with
torch.load(weights_only=True). Files are written atomically (fileio.atomic_write), so a crash at any
moment leaves the previous good checkpoint in place.
"""

from __future__ import annotations

import random
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .. import runs
from ..config import TrainConfig
from ..errors import InputError, TrainingStopped

# config fields that may differ between a run and its resumption: they change how the run is kept
# safe, not what it computes
RESUMABLE_CHANGES = ("checkpoint_every", "skip_nonfinite", "device", "cuda_graphs", "autocast", "compile")


# -- RNG states ------------------------------------------------------------------------------

def capture_rng(generator: torch.Generator) -> dict:
    """Every RNG state the training loop can touch, as tensors and plain Python."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "generator": generator.get_state(),
        "torch_cpu": torch.get_rng_state(),
        "torch_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": random.getstate(),
    }


def restore_rng(rng: dict, generator: torch.Generator) -> None:
    generator.set_state(rng["generator"])
    torch.set_rng_state(rng["torch_cpu"])
    if rng["torch_cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["torch_cuda"])
    n = rng["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    random.setstate(_as_tuples(rng["python"]))


def _as_tuples(x):
    return tuple(_as_tuples(v) for v in x) if isinstance(x, (list, tuple)) else x


# -- the training state ----------------------------------------------------------------------

@dataclass
class TrainState:
    """What a checkpoint holds: everything the loop needs to continue as if it had never stopped. The live objects
    (model, EMA, optimizer, LR scheduler, the training generator), where the loop stands, and what it has recorded.
    What a run only uses while it runs (data, hooks, the step as it runs here, the clock) is setup.Run's.

    Every rank of a torchrun run holds the same state (the same weights, generator and batch order), so rank 0's
    checkpoint is what each needs to resume; `world_size` is recorded for the reader."""
    cfg: TrainConfig
    model: torch.nn.Module
    ema_model: torch.nn.Module  # the model itself when EMA is off
    optimizer: torch.optim.Optimizer  # (with the scheduler: made by loop.optimizer_for)
    scheduler: object
    generator: torch.Generator
    shape: tuple[int, ...]  # one sample's shape, and below the data's class names: what sampling needs without data
    classes: list[str] | None
    world_size: int = 1
    step: int = 0  # optimisation steps done
    epoch: int = 0  # the epoch the loop is in (= epochs complete) ...
    batch: int = 0  # ... and its steps done; > 0: within it, `perm` its batch order and `loss_sum` its running loss
    perm: torch.Tensor | None = None
    loss_sum: torch.Tensor | None = None  # (saved within an epoch: the ranks' mean, which every rank resumes with)
    metrics: list = field(default_factory=list)  # metrics.csv's rows
    frames: list = field(default_factory=list)  # the snapshots so far (frames.npy)
    pending: dict = field(default_factory=dict)  # the numbers of a snapshot taken within the unfinished epoch
    seconds: float = 0.0  # training time: up to the save (written), before this resumption (read)
    skipped: int = 0  # non-finite steps skipped (--skip-nonfinite)

    def restore(self, saved: dict, path: Path) -> None:
        """Take the state `load_state` read from `path`: weights, optimizer, scheduler, RNG streams, position and
        records. InputError naming `path` when its weights or optimizer do not fit this state's (another model)."""
        try:
            self.model.load_state_dict(saved["model"])
            if saved["ema"] is not None:
                self.ema_model.load_state_dict(saved["ema"])
            self.optimizer.load_state_dict(saved["optimizer"])
            self.scheduler.load_state_dict(saved["scheduler"])
            restore_rng(saved["rng"], self.generator)
            self.step, self.epoch, self.batch = int(saved["step"]), int(saved["epoch"]), int(saved["batch"])
            self.skipped, self.seconds = saved["skipped"], saved["seconds"]
            self.metrics = list(saved["metrics"])
            self.pending = dict(saved.get("pending", {}))  # (absent in checkpoints before snapshots within epochs)
            self.frames = list(saved["frames"].numpy()) if saved["frames"] is not None else []
            if self.batch > 0:
                self.perm, self.loss_sum = saved["perm"].to(self.generator.device), saved["loss_sum"]
        except (RuntimeError, KeyError, ValueError, TypeError, AttributeError) as e:
            raise InputError(f"{path}: training state does not fit the config "
                             f"({str(e).splitlines()[0][:120] if str(e) else type(e).__name__})") from None


def save_state(path: Path, state: TrainState) -> None:
    """Write `state` atomically to `path` (the checkpoint's keys have not changed since the format began: older
    checkpoints of points, images and distilled students load with `load_state`)."""
    within = state.batch > 0
    runs.save_checkpoint(path, {
        "version": runs.FORMAT_VERSION,
        "config": state.cfg.to_dict(),
        "shape": list(state.shape),
        "classes": list(state.classes) if state.classes is not None else None,
        "model": state.model.state_dict(),
        "ema": state.ema_model.state_dict() if state.ema_model is not state.model else None,
        "optimizer": state.optimizer.state_dict(),
        "scheduler": state.scheduler.state_dict(),
        "step": state.step,
        "epoch": state.epoch,
        "batch": state.batch,
        "perm": state.perm.cpu() if within else None,
        "loss_sum": state.loss_sum.cpu() if within else None,
        "rng": capture_rng(state.generator),
        "device": state.generator.device.type,  # the resolved device: its RNG streams differ from other devices
        "metrics": [dict(r) for r in state.metrics],
        "frames": torch.from_numpy(np.stack(state.frames)) if state.frames else None,
        "seconds": float(state.seconds),
        "skipped": int(state.skipped),
        "world_size": int(state.world_size),
        "pending": dict(state.pending),
    })


def position(step: int, epoch: int, batch: int) -> str:
    """Where a checkpoint stands, in the words of both the stop and the resume message: `epoch` epochs
    complete and `batch` steps of the next one done, `step` steps in all."""
    if batch > 0:
        return f"step {step} (step {batch} of epoch {epoch + 1})"
    return f"step {step} (the end of epoch {epoch})"


def load_state(path: Path, cfg: TrainConfig | None = None, device: torch.device | None = None) -> dict | None:
    """What the checkpoint at `path` holds (TrainState.restore takes it), or None when none was written yet.
    InputError if it is unsafe, corrupt, from another version, holds no training state, or (given the config and
    device that would resume it) was trained with a different config or on another device."""
    path = Path(path)
    if not path.exists():
        return None
    state = runs.load_checkpoint(path)
    if "rng" not in state or "scheduler" not in state:
        raise InputError(f"{path}: holds weights but no training state (an older format); it cannot be resumed")
    saved = runs.checkpoint_config(state, path).to_dict()
    for name in (cfg.differences(saved, RESUMABLE_CHANGES) if cfg is not None else [])[:1]:
        raise InputError(f"{path}: was trained with {name} = {saved[name]!r}, not {getattr(cfg, name)!r}; resume "
                         f"with the run's own config or start a new run")
    if device is not None and state.get("device", device.type) != device.type:
        raise InputError(f"{path}: was trained on {state['device']}, this resumption would run on {device.type}; "
                         f"resume with --device {state['device']} (random streams differ between devices)")
    return state


def clean_stale_temp_files(run_dir: Path) -> None:
    """Remove temporary files a killed atomic_write left behind (never the real files)."""
    for tmp in Path(run_dir).glob(".*.tmp"):
        tmp.unlink(missing_ok=True)


def config_for_resume(run_dir: str | Path, changes: dict | None = None) -> TrainConfig:
    """The run's own config (from its config.json), with only the RESUMABLE_CHANGES allowed on top."""
    changes = changes or {}
    bad = sorted(set(changes) - set(RESUMABLE_CHANGES))
    if bad:
        raise InputError(f"--resume continues the run's own config; drop --{bad[0].replace('_', '-')} "
                         f"(only {', '.join('--' + c.replace('_', '-') for c in RESUMABLE_CHANGES)} may change)")
    cfg = runs.run_config(run_dir)
    return cfg.replace(**changes) if changes else cfg


# -- stopping cleanly ------------------------------------------------------------------------

class StopSignals:
    """While active, SIGINT and SIGTERM only set `signum`; the loop checks it after each step, saves a
    checkpoint and stops. A second signal stops at once (KeyboardInterrupt). Outside the main thread
    signals cannot be caught, so this does nothing there."""

    def __init__(self):
        self.signum: int | None = None
        self._old = {}

    def _handle(self, signum, frame):
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc):
        for s, old in self._old.items():
            signal.signal(s, old)
        self._old = {}
        return False

    def stopped(self, where: str, out: Path | None) -> TrainingStopped:
        signum = self.signum or signal.SIGTERM  # under torchrun a rank may stop because another one was signalled
        name = signal.Signals(signum).name
        how = f"; continue with `tiny-diffusion train --resume {out}`" if out is not None else ""
        return TrainingStopped(f"stopped by {name} {where}{how}", exit_code=128 + signum)


def nonfinite_error(step: int, cfg: TrainConfig, out: Path | None) -> TrainingStopped:
    kept = f"; the last good checkpoint in {out} is kept" if out is not None else ""
    return TrainingStopped(
        f"non-finite loss or gradient at step {step}: the learning rate (lr = {cfg.lr}) is the usual cause; "
        f"lower --lr, keep --grad-clip on, or pass --skip-nonfinite N to skip such steps{kept}", exit_code=1)
