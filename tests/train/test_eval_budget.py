"""An image run's evaluation scales with the run (issue 26 items 1, 7, 8): snapshots and final samples fit a share
of training's network passes at any length; the run starts with an estimate of all of it from timed passes, names
the quick option past ~10 min (and only then, or at the default length); a stop signal ends sampling within one
network call and the run resumes to what an uninterrupted one writes; a kimg run's last epoch is its own."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from tiny_diffusion import runs
from tiny_diffusion.cli import main
from tiny_diffusion.config import EVAL_SHARE, TRAIN_PASSES, TrainConfig
from tiny_diffusion.errors import SamplingStopped, TrainingStopped
from tiny_diffusion.sampling import AlignedBatches, aligned_block
from tiny_diffusion.train import setup, train
from tiny_diffusion.train.estimate import Speed, measure, run_estimate
from tiny_diffusion.train.length import eval_passes, quick_try_hints, snapshot_epochs
from tiny_diffusion.train.setup import fit_evaluation
from tests.helpers import assert_same_run, cache, flags, stop_at_frame  # noqa: F401  (cache: autouse fixture)

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
TINY = dict(base_channels=4, channel_mult="1,2", timesteps=20, batch_size=4, frame_steps=3, device="cpu")


def _fitted(cfg, images_seen: int, n_snapshots: int):
    """cfg with its evaluation fitted (settle's part of it)."""
    return cfg.replace(**fit_evaluation(cfg, images_seen, n_snapshots))


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Twenty 16x16 RGB photos, no labels."""
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for i in range(20):
        Image.fromarray(rng.integers(0, 255, (16, 16, 3)).astype(np.uint8), mode="RGB").save(root / f"{i:02d}.png")
    return root


def _allowed(images_seen: int) -> float:
    return EVAL_SHARE * TRAIN_PASSES * images_seen


# -- 26.1: evaluation fits the run ---------------------------------------------------------------------

def test_the_default_mnist_run_keeps_its_evaluation():
    cfg = _fitted(TrainConfig.from_dict({"dataset": "mnist"}), 1563 * 64, 10)
    assert (cfg.frame_points, cfg.eval_n, cfg.eval_steps) == (64, 1000, 10)
    assert eval_passes(cfg, 10) == (10 * 64 * 20, 1000 // 64 * 64 * 10 + 64 * 10)  # 16 blocks of 64 per step
    assert sum(eval_passes(cfg, 10)) <= _allowed(1563 * 64)


def test_the_tutorial_recipe_on_twenty_photos_draws_one_image_grids(photos):
    cfg = TrainConfig.from_toml(CONFIGS / "cars-tutorial.toml", {"dataset": str(photos), "epochs": 3})
    fitted = _fitted(cfg, 3 * 20, 3)  # 3 steps of 20 photos, a snapshot after each
    assert (fitted.frame_points, fitted.eval_n, fitted.eval_steps) == (1, 1, 10)  # was 64 and 100 (padded to 128)
    assert eval_passes(fitted, 3) == (3 * 20, 10)  # 70 one-image passes against training's 180


def test_a_quick_try_shrinks_grids_and_final_samples_together_and_given_values_stay():
    quick = _fitted(TrainConfig.from_dict({"dataset": "mnist", "kimg": 5.0}), 79 * 64, 10)
    # full: 10 x 64 x 20 + 128 x 10 = 14080 passes > 5056 allowed: x 0.359, rounded down to whole blocks
    assert (quick.frame_points, quick.eval_n, quick.eval_steps) == (16, 32, 10)
    given = _fitted(TrainConfig.from_dict({"dataset": "mnist", "kimg": 5.0, "eval_n": 300}), 79 * 64, 10)
    assert (given.eval_n, given.frame_points) == (300, 8)  # 300 x 10 leaves 2056 passes: grids of 8
    points = TrainConfig()
    assert fit_evaluation(points, 10, 20) == {}  # points: nothing unset, nothing changes


@pytest.mark.parametrize("kimg", [0.064, 0.5, 2.0, 5.0, 20.0, 45.0, 90.0, 400.0])
@pytest.mark.parametrize("cond", [False, True])
def test_at_any_length_evaluation_stays_within_its_share_or_at_one_image(kimg, cond):
    cfg = TrainConfig.from_dict({"dataset": "mnist", "kimg": kimg, "class_cond": cond})
    seen = -(-int(kimg * 1000) // 64) * 64
    fitted = _fitted(cfg, seen, 10)
    assert sum(eval_passes(fitted, 10)) <= _allowed(seen) or (fitted.frame_points, fitted.eval_n) == (1, 1)


def test_small_image_draws_run_in_small_blocks_and_big_ones_still_agree():
    assert [aligned_block("images", n) for n in (1, 3, 4, 5, 64, 100)] == [1, 4, 4, 8, 64, 64]
    assert aligned_block("points", 3) == 1024  # points as ever
    rows = []
    model = lambda x, t: (rows.append(len(x)), x)[1]  # noqa: E731
    AlignedBatches(model, block=aligned_block("images", 3))(torch.zeros(3, 1, 2, 2), torch.tensor(1))
    assert rows == [4]  # one call of 4 rows, not 64


# -- 26.1: the estimate, the quick option --------------------------------------------------------------

def test_the_estimate_is_calls_times_their_measured_seconds(photos):
    cfg = TrainConfig.from_dict({"dataset": str(photos), "epochs": 3, **TINY, "frame_points": 3, "eval_n": 100,
                                 "eval_steps": 5})
    seconds = run_estimate(cfg, Speed(forward={4: 0.5, 64: 2.0}, train=0.05), 60, 3)
    # snapshots: 3 x 3 steps of one block of 4; final samples: 5 steps of two blocks of 64
    assert seconds == pytest.approx({"total": 3.0 + 4.5 + 20.0, "training": 3.0, "snapshots": 9 * 0.5,
                                     "final samples": 10 * 2.0})


def test_timed_passes_leave_the_model_as_they_found_it():
    from tiny_diffusion.models import build_model

    cfg = TrainConfig.from_dict({"dataset": "mnist", "model": "simple-unet", "image_size": 8})
    model = build_model(cfg, (1, 8, 8)).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}  # BatchNorm's running statistics too
    rng = torch.get_rng_state()
    speed = measure(model, (1, 8, 8), torch.device("cpu"), blocks=[1, 4, 4])
    assert set(speed.forward) == {1, 4} and min(speed.forward.values()) > 0 and speed.train > 0
    assert model.training and all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert torch.equal(rng, torch.get_rng_state())


def test_the_run_starts_with_its_estimate_and_names_the_quick_option_only_when_long(photos, tmp_path, capsys,
                                                                                     monkeypatch):
    args = ["train", "--dataset", str(photos), "--epochs", "2", *flags({**TINY, "frames": 2}), "--quiet"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err
    assert "about " in err and " in all: training " in err and "final samples " in err
    assert "a quick try" not in err  # a length was given and the run is short (issue 26 item 8)
    slow = lambda model, shape, device, blocks, cond: Speed({b: 1.0 for b in blocks}, 100.0)  # noqa: E731
    monkeypatch.setattr(setup, "measure", slow)  # training 40 images: 4000 s
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    assert "a quick try: --kimg 5" in capsys.readouterr().err


def test_the_quick_option_is_named_at_the_default_length_only_if_not_long():
    data = SimpleNamespace(images=True, shape=(1, 28, 28))
    default = TrainConfig.from_dict({"dataset": "mnist"})
    assert any("a quick try" in h for h in quick_try_hints(default, data, 60.0))
    given = TrainConfig.from_dict({"dataset": "mnist", "kimg": 20.0})
    assert not any("a quick try" in h for h in quick_try_hints(given, data, 599.0))
    assert any("a quick try" in h for h in quick_try_hints(given, data, 601.0))


# -- 26.1: a stop during sampling ----------------------------------------------------------------------

def _config(photos, **changes) -> TrainConfig:
    # 20 photos, batch 4: 5 steps an epoch, 2 epochs (unless kimg); 5 snapshots: steps 2, 4, 6, 8 within epochs, 10
    length = {} if "kimg" in changes else {"epochs": 2}
    return TrainConfig.from_dict({"dataset": str(photos), **length, **TINY, "frames": 5, "frame_points": 4,
                                  "eval_n": 4, "eval_steps": 3, **changes})


def test_a_signal_during_sampling_stops_within_one_network_call():
    calls = []
    model = lambda x, t: (calls.append(1), x)[1]  # noqa: E731
    stop = iter([False, False, True])
    net = AlignedBatches(model, block=2, stop=lambda: next(stop))
    with pytest.raises(SamplingStopped):
        net(torch.zeros(6, 1, 2, 2), torch.tensor(1))  # three blocks of 2
    assert len(calls) == 2


@pytest.mark.parametrize("frame", [2, 5])  # 2: within the first epoch (step 4 of 5); 5: at the end of epoch 2
def test_a_stop_during_a_snapshot_resumes_to_the_uninterrupted_run(photos, tmp_path, monkeypatch, frame):
    cfg = _config(photos)
    train(cfg, tmp_path / "whole", progress=False)
    stop_at_frame(monkeypatch, frame, lambda: signal.raise_signal(signal.SIGTERM))
    with pytest.raises(TrainingStopped, match="SIGTERM during the snapshot at step"):
        train(cfg, tmp_path / "cut", progress=False)
    assert len(torch.load(tmp_path / "cut" / runs.CHECKPOINT, weights_only=True)["frames"]) == frame - 1
    monkeypatch.undo()
    train(runs.run_config(tmp_path / "cut"), tmp_path / "cut", progress=False, resume=True)
    assert_same_run(tmp_path / "whole", tmp_path / "cut")


def test_a_stop_during_the_final_samples_resumes_to_the_same_samples(photos, tmp_path, monkeypatch):
    cfg = _config(photos, frames=0)
    train(cfg, tmp_path / "whole", progress=False)
    stop_at_frame(monkeypatch, 1, lambda: signal.raise_signal(signal.SIGINT))  # frames 0: the final samples
    with pytest.raises(TrainingStopped, match="SIGINT during the final samples"):
        train(cfg, tmp_path / "cut", progress=False)
    assert not runs.is_finished(tmp_path / "cut")
    monkeypatch.undo()
    train(runs.run_config(tmp_path / "cut"), tmp_path / "cut", progress=False, resume=True)
    assert_same_run(tmp_path / "whole", tmp_path / "cut")
    a, b = (sorted((d / "samples").glob("*.png")) for d in (tmp_path / "whole", tmp_path / "cut"))
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]


# -- 26.7: a kimg run's last epoch ---------------------------------------------------------------------

def test_the_last_snapshot_of_a_kimg_run_is_at_its_own_epoch(photos, tmp_path):
    assert snapshot_epochs([8, 62, 79], 62) == [0.13, 1, 1.27]  # --kimg 5 on 4000 digits: 79 steps of 62
    # 20 photos, batch 4: 5 steps an epoch; 0.028 kimg = 7 steps = 1.4 epochs
    out = tmp_path / "run"
    train(_config(photos, kimg=0.028, frames=2), out, progress=False)
    assert json.loads((out / runs.QUALITY).read_text())["frame_epochs"] == [0.8, 1.4]
    assert [r["epoch"] for r in runs_metrics(out)] == ["1", "1.4"]


def runs_metrics(run_dir):
    import csv

    with open(run_dir / runs.METRICS, newline="") as f:
        return list(csv.DictReader(f))
