"""Run folders and checkpoint I/O: where a run's files live and safe loading (atomic writes: fileio.py).

A run folder holds config.json, checkpoint.pt, metrics.csv, frames.npy (snapshots), samples.npy (final samples), quality.json,
samples.png and loss.png. Checkpoints hold tensors and plain Python only, so they load with
torch.load(weights_only=True), which cannot run code hidden in a pickle. checkpoint.pt is rewritten
atomically during training (see resume.py for what it holds); quality.json is written last, so a
run is finished exactly when it exists (is_finished).
"""

from __future__ import annotations

import json
from pathlib import Path

from . import fileio
from .choices import kind_of_shape
from .config import TrainConfig
from .config_values import shape_text
from .errors import InputError

CHECKPOINT = "checkpoint.pt"
CONFIG = "config.json"
METRICS = "metrics.csv"
FRAMES = "frames.npy"
SAMPLES = "samples.npy"
QUALITY = "quality.json"
LOCK = "lock"  # held while a process writes the folder (lock_run_dir)
FORMAT_VERSION = 1  # bump when the checkpoint layout changes incompatibly


def labels_path(out: Path) -> Path:
    """Where the class labels of samples written to `out` go: FILE.labels.csv beside a file, labels.csv in a folder."""
    out = Path(out)
    return out / "labels.csv" if not out.suffix else out.with_name(out.stem + ".labels.csv")


def write_labels(path: Path, labels, classes: list[str]) -> None:
    """The requested class of each sample as a CSV: index (the sample's row, or its PNG's number), label, class."""
    fileio.write_csv(path, [{"index": i, "label": int(k), "class": classes[int(k)]} for i, k in enumerate(labels)],
              ("index", "label", "class"))


def save_checkpoint(path: Path, state: dict) -> None:
    import torch

    fileio.atomic_write(path, lambda f: torch.save(state, f))


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """A checkpoint loaded with weights_only=True; InputError if it is missing, corrupt or unsafe."""
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no checkpoint there; pass a run folder made by `tiny-diffusion train`")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0][:120] if str(e).strip() else "unsafe content"
        raise InputError(f"{path}: refused to load, it is not a plain-tensor checkpoint ({first})") from None
    except Exception as e:  # truncated zip, wrong format...
        raise InputError(f"{path}: not a readable checkpoint ({type(e).__name__}); it may be truncated") from None
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise InputError(f"{path}: not a tiny-diffusion checkpoint (no model or config inside)")
    version = state.get("version")
    if version != FORMAT_VERSION:
        raise InputError(f"{path}: checkpoint format {version}, this tiny-diffusion reads {FORMAT_VERSION}")
    return state


def is_finished(run_dir: str | Path) -> bool:
    """A run is finished when its quality.json exists: training writes it last."""
    return (Path(run_dir) / QUALITY).is_file()


def warn_unfinished(run_dir: str | Path, state: dict) -> None:
    """One line (a warning) when the run whose checkpoint `state` was loaded has not finished training (no
    quality.json: stopped by Ctrl-C or SIGTERM, or still training): its weights are those of its last checkpoint."""
    import warnings

    if not is_finished(run_dir):
        warnings.warn(f"{run_dir}: an unfinished run (its checkpoint stands at step {state.get('step')}, "
                      f"{state.get('epoch')} epochs done): a partly trained model; finish it with `tiny-diffusion "
                      f"train --resume {run_dir}`", stacklevel=2)


def new_run_dir(out: str | Path) -> Path:
    """Create `out` for a new run and take its lock (`lock_run_dir`); refuse a folder that already holds a run."""
    out = Path(out)
    _refuse_a_run(out)
    lock_run_dir(out)
    try:
        _refuse_a_run(out)  # written by another process before we locked
    except InputError:
        unlock_run_dir(out)
        raise
    return out


def _refuse_a_run(out: Path) -> None:
    if (out / CHECKPOINT).exists() or (out / CONFIG).exists():
        raise InputError(f"{out}: already holds a run; choose another --out or delete it first")


def lock_run_dir(out: str | Path) -> Path:
    """Create the run folder `out` and take its lock file (fileio.take_lock): one writer (train, distill) at a time;
    InputError naming the live holder. This process may take it again (a distillation's last round trains in its
    own folder); give each hold back with `unlock_run_dir`."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"{out}: cannot create the run folder ({e.strerror})") from None
    holder = fileio.take_lock(out / LOCK, reentrant=True)
    if holder is not None:
        raise InputError(f"{out}: another process ({holder}) is writing this run folder; wait for it to end, or "
                         f"choose another --out")
    return out


def unlock_run_dir(out: str | Path) -> None:
    fileio.release_lock(Path(out) / LOCK)


def recorded(values: dict, shape) -> dict:
    """A run's config values with its kind and sample shape: as recorded, or, in a run written before they
    were, derived once from the checkpoint's sample `shape` (never from the dataset string, which may be a
    folder path relative to another working directory)."""
    if values.get("kind") is not None or shape is None:
        return values
    return {**values, "kind": kind_of_shape(shape), "sample_shape": shape_text(shape)}


def checkpoint_config(state: dict, path: Path) -> TrainConfig:
    """The config a loaded checkpoint holds, its kind and shape resolved (`recorded`)."""
    return TrainConfig.from_dict(recorded(state["config"], state.get("shape", (2,))), source=str(path))


def run_config(run_dir: str | Path) -> TrainConfig:
    """The resolved config of a finished or running run (kind and sample shape: see `recorded`)."""
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise InputError(f"{run_dir}: not a run folder (no {CONFIG}); pass a folder made by `tiny-diffusion train`")
    try:
        values = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(values, dict):
        raise InputError(f"{path}: expected a JSON object of config values")
    if values.get("kind") is None and (Path(run_dir) / CHECKPOINT).is_file():  # a run from before kinds were recorded
        values = recorded(values, load_checkpoint(Path(run_dir) / CHECKPOINT).get("shape", (2,)))
    values.setdefault("guidance_interval", "all")  # runs from before guidance intervals guided every step
    return TrainConfig.from_dict(values, source=str(path))


def frame_epochs(epochs: int, frames: int) -> list[int]:
    """The epochs (0-based) after which a snapshot is sampled: evenly spaced, always the last."""
    import numpy as np

    if frames <= 0:
        return []
    return sorted({int(round(e)) for e in np.linspace(epochs - 1, 0, min(frames, epochs))})


def frame_epochs_of(run_dir: str | Path) -> list[int]:
    """The (1-based) epochs of a finished run's snapshots in frames.npy."""
    path = Path(run_dir) / QUALITY
    if path.is_file():
        try:
            epochs = json.loads(path.read_text()).get("frame_epochs")
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            epochs = None
        if isinstance(epochs, list):
            return epochs
    cfg = run_config(run_dir)  # runs from before frame_epochs was recorded: derived from the config
    return [e + 1 for e in frame_epochs(cfg.epochs, cfg.frames)]


def load_run(run_dir: str | Path, device="cpu", use_ema: bool = True):
    """(config, model in eval mode, diffusion) of a run, the EMA weights by default; the model's
    `sample_shape` is the shape of one sample, its `classes` the class names of a class-conditional run (else None)."""
    from .core.diffusion import Diffusion
    from .models import build_model

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError(f"{run_dir}: no such run folder")
    state = load_checkpoint(run_dir / CHECKPOINT)
    cfg = checkpoint_config(state, run_dir / CHECKPOINT)
    model = build_model(cfg, tuple(state.get("shape", (2,))), classes=state.get("classes") if cfg.class_cond else None)
    weights = state["ema"] if use_ema and state.get("ema") is not None else state["model"]
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        raise InputError(f"{run_dir / CHECKPOINT}: weights do not fit the config's model ({str(e).splitlines()[0]})") from None
    warn_unfinished(run_dir, state)  # a run that loads, but is not finished
    model.to(device).eval()
    return cfg, model, Diffusion.from_config(cfg, device)
