"""What several test files share, importable from any folder of tests/ (`from tests.helpers import ...`)."""

import csv
import functools
from pathlib import Path

import numpy as np
import pytest
import torch

from tiny_diffusion import runs
from tiny_diffusion.data import points
from tiny_diffusion.train import hooks as train_module  # the snapshots call its `sample`

# the source tree, for the CLI run in a fresh interpreter (tests/helpers.py sits one below the repository)
SRC = str(Path(__file__).resolve().parents[1] / "src")

# a U-Net of a few thousand weights on 8x8 grayscale images: seconds, not minutes
TINY_IMAGES = dict(base_channels=4, channel_mult="1,2", timesteps=50, batch_size=8, kimg=0.064, frames=2,
                   frame_points=4, eval_n=16, eval_steps=4, frame_steps=4, device="cpu")


def flags(values: dict) -> list[str]:
    """The command-line flags that set `values` (config keys): {"eval_n": 4} -> ["--eval-n", "4"]."""
    return [a for k, v in values.items() for a in (f"--{k.replace('_', '-')}", str(v))]


@pytest.fixture(scope="module", autouse=True)
def cache(tmp_path_factory):
    """Decoded folders and the metrics' classifier are cached in a temporary folder, shared by the module that
    imports this fixture (autouse there, module-scoped: one folder per module)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TINY_DIFFUSION_DATA", str(tmp_path_factory.mktemp("cache")))
        yield


# -- points runs that must match bit for bit (resume) --------------------------------------------------------

# terminal_alpha_bar: 20 steps that end at noise, so no warning about shrunk samples (resume tests compare runs)
TINY_POINTS = dict(dataset="moons", n_points=256, batch_size=64, epochs=8, timesteps=20, terminal_alpha_bar=1e-4,
                   hidden_size=16, hidden_layers=1, emb_size=8, frames=4, frame_points=64, checkpoint_every=2,
                   device="cpu")
DETERMINISTIC = ("epoch", "step", "loss", "lr")  # metrics.csv columns; `seconds` is wall-clock time


def weights(run_dir) -> dict:
    """Every tensor of the checkpoint's model and EMA, by name."""
    state = torch.load(Path(run_dir) / runs.CHECKPOINT, weights_only=True)
    return {**{f"model.{k}": v for k, v in state["model"].items()},
            **{f"ema.{k}": v for k, v in (state["ema"] or {}).items()}}


def assert_same_run(a, b):
    """Two run folders hold the same weights, metrics (but wall-clock time) and frames, bit for bit."""
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), f"{k} differs"
    assert metrics_rows(a) == metrics_rows(b)
    assert np.array_equal(np.load(Path(a) / runs.FRAMES), np.load(Path(b) / runs.FRAMES))


def metrics_rows(run_dir) -> list[dict]:
    """metrics.csv's deterministic columns, as strings."""
    with open(Path(run_dir) / runs.METRICS, newline="") as f:
        return [{c: r[c] for c in DETERMINISTIC} for r in csv.DictReader(f)]


def stop_at_frame(monkeypatch, k: int, action):
    """Make the k-th snapshot (an epoch end) trigger `action`: a signal or a crash."""
    real, calls = train_module.sample, []

    def sample(*args, **kwargs):
        calls.append(1)
        if len(calls) == k:
            action()
        return real(*args, **kwargs)

    monkeypatch.setattr(train_module, "sample", sample)


# -- figures: the data is drawn, not only the axes -------------------------------------------------------------

DRAWN = 100  # saturated pixels a figure's data adds at least: a short curve, or 20 points of scatter() at dpi 100


def data_pixels(path) -> int:
    """Pixels of a saturated colour in a figure file: what matplotlib draws in its colour cycle (points, curves,
    bars), never the axes, ticks, grid, text or black reference lines, which are all grey (r = g = b)."""
    from PIL import Image

    rgb = np.asarray(Image.open(path).convert("RGB")).astype(int)
    return int(((rgb.max(axis=-1) - rgb.min(axis=-1)) > 60).sum())


def assert_data_drawn(path, blank: int = 0) -> None:
    """The figure at `path` shows its data: DRAWN saturated pixels more than `blank`, the count of the same figure
    with the data removed (0 where nothing coloured is left then: no legend swatches)."""
    n = data_pixels(path)
    assert n > blank + DRAWN, f"{path}: {n} coloured pixels, the figure without its data has {blank}"


# -- a labelled point set of two well-separated blobs, registered as datasaurus is ------------------------------

CENTRES = np.array([[-2.5, 0.0], [2.5, 0.0]])  # two well-separated classes, std 0.3


def _two(n, rng):
    labels = rng.integers(0, 2, n)
    return CENTRES[labels] + 0.3 * rng.normal(size=(n, 2)), labels


def _one(k, n, rng):
    return CENTRES[k] + 0.3 * rng.normal(size=(n, 2))


def register_two(mp: pytest.MonkeyPatch) -> None:
    """A labelled point set 'two' (classes left and right, also data sets two:left and two:right of their own)."""
    mp.setitem(points.LABELLED, "two", (_two, ("left", "right"), "two:{}"))
    mp.setitem(points.DATASETS, "two", lambda n, rng: _two(n, rng)[0])
    for k, name in enumerate(("left", "right")):
        mp.setitem(points.DATASETS, f"two:{name}", functools.partial(_one, k))
