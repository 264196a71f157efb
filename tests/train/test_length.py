"""A run's length and what it costs (issue 17 items 1, 3, 9; issue 16 defect 4): an explicit --epochs is the
length of an image run, --epochs with --kimg is refused, the run says how long it trains and why; an image
run's final samples scale with its length; a short image run still animates with `frames` snapshots; a stop
in the first epoch leaves metrics.csv; a resumed run prints what a fresh one prints; sweeps use each run's own
snapshot epochs."""

from __future__ import annotations

import csv
import json
import signal
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from tiny_diffusion import runs
from tiny_diffusion.experiments import sweep
from tiny_diffusion.cli import main
from tiny_diffusion.config import IMAGE_DEFAULTS, TrainConfig
from tiny_diffusion.core.diffusion import Diffusion
from tiny_diffusion.errors import InputError, TrainingStopped
from tiny_diffusion.train import train
from tiny_diffusion.runs import frame_epochs
from tiny_diffusion.train.length import describe_length, quick_try_hints, snapshot_steps
from tiny_diffusion.train.setup import fit_evaluation

# a U-Net of a few thousand weights on 8x8 grayscale images, no labels (so no classifier to train)
IMAGE = dict(base_channels=4, channel_mult="1,2", timesteps=20, batch_size=4, frame_points=4, frame_steps=2,
             device="cpu")
POINTS = dict(dataset="moons", n_points=128, batch_size=64, hidden_size=8, hidden_layers=1, emb_size=4,
              timesteps=20, terminal_alpha_bar=1e-4, frame_points=16, device="cpu")


def _fitted(cfg, images_seen: int, n_snapshots: int):
    """cfg with its evaluation fitted (settle's part of it)."""
    return cfg.replace(**fit_evaluation(cfg, images_seen, n_snapshots))


def _flags(values: dict) -> list[str]:
    return [a for k, v in values.items() for a in (f"--{k.replace('_', '-')}", str(v))]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Ten unlabelled 8x8 gray images."""
    root = tmp_path_factory.mktemp("ten")
    rng = np.random.default_rng(0)
    for i in range(10):
        Image.fromarray(rng.integers(0, 255, (8, 8)).astype(np.uint8), mode="L").save(root / f"{i}.png")
    return root


@pytest.fixture(scope="module", autouse=True)
def cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TINY_DIFFUSION_DATA", str(tmp_path_factory.mktemp("cache")))
        yield


def _metrics(run_dir: Path) -> list[dict]:
    with open(run_dir / runs.METRICS, newline="") as f:
        return list(csv.DictReader(f))


# -- 17.1: --epochs is the length --------------------------------------------------------------

def test_epochs_on_an_image_run_is_its_length_and_the_run_says_so(folder, tmp_path, capsys):
    out = tmp_path / "run"
    flags = _flags({**IMAGE, "frames": 0, "eval_n": 4, "eval_steps": 2})
    assert main(["train", "--dataset", str(folder), "--epochs", "3", *flags, "--out", str(out), "--quiet"]) == 0
    assert [r["epoch"] for r in _metrics(out)] == ["1", "2", "3"]  # not the default 100 kimg
    cfg = runs.run_config(out)
    assert cfg.epochs == 3 and cfg.kimg == 0
    err = capsys.readouterr().err
    assert "training 3 epochs (epochs = 3) = 6 steps of 4 = 24 images" in err  # 10 // 4 = 2 steps per epoch


@pytest.mark.parametrize("where", ["flags", "toml"])
def test_epochs_and_kimg_together_exit_2_with_one_line(folder, tmp_path, capsys, where):
    out = tmp_path / "run"
    if where == "flags":
        args = ["--dataset", str(folder), "--epochs", "3", "--kimg", "1"]
    else:
        (tmp_path / "c.toml").write_text(f'dataset = "{folder}"\nepochs = 3\nkimg = 1.0\n')
        args = ["--config", str(tmp_path / "c.toml")]
    assert main(["train", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "both set the training length" in err
    assert ("--epochs 3 and --kimg 1" if where == "flags" else "c.toml: epochs 3 and kimg 1") in err
    assert not out.exists()


def test_a_later_layer_sets_the_length_over_an_earlier_one(folder, tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text(f'dataset = "{folder}"\nkimg = 5.0\n')
    cfg = TrainConfig.from_toml(toml, {"epochs": 3})  # the command line's --epochs over the file's kimg
    assert (cfg.epochs, cfg.kimg) == (3, 0)
    toml.write_text(f'dataset = "{folder}"\nepochs = 3\n')
    cfg = TrainConfig.from_toml(toml, {"kimg": 2.0})
    assert (cfg.epochs, cfg.kimg) == (IMAGE_DEFAULTS["epochs"], 2.0)
    base = {"dataset": str(folder), "kimg": 5.0}
    assert sweep.make_run(base, {"epochs": 4}).config.kimg == 0
    assert TrainConfig.from_dict(base).replace(epochs=4).kimg == 0
    with pytest.raises(InputError, match="sweep run .*both set the training length"):
        sweep.expand(sweep.Spec(base=base, grid={"epochs": [2], "kimg": [1.0]}))


def test_the_length_line_says_why():
    images = TrainConfig.from_dict({"dataset": "mnist"})
    assert describe_length(images, 4000, 64, 1563) == ("training 100 kimg (the default for images; --epochs N or "
                                                       "--kimg K to change) = 1563 steps of 64 = 25 epochs of 4000 "
                                                       "images")
    assert describe_length(TrainConfig(), 8000, 1024, 4200) == ("training 600 epochs (the default for points) = "
                                                                "4200 steps of 1024 = 4300800 points")


# -- 17.3: quick tries quick ---------------------------------------------------------------------

def test_final_samples_scale_with_the_run_unless_given():
    def fitted(values: dict, seen: int):
        return _fitted(TrainConfig.from_dict({"dataset": "mnist", **values}), seen, 10)

    quick = fitted({"kimg": 5.0}, 5000)
    # 100 x 10 by the share of the default length, then with the grids shrunk to a third of training's passes
    # (issue 26): 10 grids of 16 and 32 final samples
    assert (quick.eval_n, quick.eval_steps, quick.frame_points) == (32, 10, 16)
    full = fitted({}, 100_000)
    assert (full.eval_n, full.eval_steps) == (1000, 10)  # the default run as measured in docs/images.md
    half = fitted({}, 50_000)
    assert (half.eval_n, half.eval_steps) == (500, 10)
    given = fitted({"kimg": 5.0, "eval_n": 300}, 5000)
    assert (given.eval_n, given.eval_steps) == (300, 10)
    assert fit_evaluation(TrainConfig(), 10, 20) == {}  # points: unchanged


def test_a_short_image_run_animates_with_every_frame_and_scales_its_final_samples(folder, tmp_path, capsys):
    out = tmp_path / "run"
    # 2 epochs of 2 steps, 5 frames: by epoch there would be 2
    assert main(["train", "--dataset", str(folder), *_flags({**IMAGE, "frames": 5, "epochs": 2}),
                 "--out", str(out), "--quiet"]) == 0
    assert np.load(out / runs.FRAMES).shape[0] == 4  # 4 steps: one snapshot after each
    q = json.loads((out / runs.QUALITY).read_text())
    assert q["frame_steps"] == [1, 2, 3, 4] and q["frame_epochs"] == [0.5, 1, 1.5, 2]
    cfg = runs.run_config(out)
    # 16 images seen allow 16 passes; the given grids (4 x 4 images x 2 steps) take more: 1 final sample (issue 26)
    assert (cfg.eval_n, cfg.eval_steps) == (1, 10) and q["n_eval"] == 1  # config.json records what ran
    err = capsys.readouterr().err
    assert "final samples: 1 x 10 dpm++ steps, about" in err and "a quick try: --kimg 5" not in err


def test_snapshot_steps_keep_the_points_schedule_and_spread_short_image_runs():
    # points: the ends of frame_epochs' epochs, as always (the default dino: 600 epochs of 7 steps)
    assert snapshot_steps(4200, 7, 20, by_step=False) == [(e + 1) * 7 for e in frame_epochs(600, 20)]
    assert snapshot_steps(10, 5, 20, by_step=False) == [5, 10]
    assert snapshot_steps(40, 4, 4, by_step=True) == [10, 20, 30, 40]
    assert snapshot_steps(3, 2, 10, by_step=True) == [1, 2, 3]
    assert snapshot_steps(3, 2, 0, by_step=True) == []


def test_a_folder_at_64_px_by_default_gets_a_hint(tmp_path):
    cfg = TrainConfig.from_dict({"dataset": str(tmp_path)})
    hints = quick_try_hints(cfg, SimpleNamespace(images=True, shape=(3, 64, 64)))
    assert any("--image-size 32" in h for h in hints)
    sized = TrainConfig.from_dict({"dataset": str(tmp_path), "image_size": 64})
    assert not any("--image-size 32 trains" in h for h in quick_try_hints(sized, SimpleNamespace(images=True,
                                                                                                   shape=(3, 64, 64))))


# -- 17.9: a stop in the first epoch; the resumed run's last lines ----------------------------------

def test_a_stop_in_the_first_epoch_leaves_metrics_csv_and_the_resumed_run_prints_its_time(tmp_path, monkeypatch,
                                                                                          capsys):
    out, real, calls = tmp_path / "run", Diffusion.loss, []

    def loss(self, *args, **kwargs):  # SIGINT during the second step of the first epoch
        calls.append(1)
        if len(calls) == 2:
            signal.raise_signal(signal.SIGINT)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Diffusion, "loss", loss)
    cfg = TrainConfig.from_dict({**POINTS, "n_points": 512, "epochs": 2, "frames": 1})
    with pytest.raises(TrainingStopped, match="SIGINT"):
        train(cfg, out, progress=False)
    assert (out / runs.METRICS).read_text().splitlines() == ["epoch,step,loss,lr,seconds"]  # header, no rows yet
    assert torch.load(out / runs.CHECKPOINT, weights_only=True)["batch"] == 2
    monkeypatch.undo()
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    said = capsys.readouterr().out
    assert "trained 2 epochs in" in said and "with sampling and figures" in said
    assert len(_metrics(out)) == 2


# -- 16.4: sweeps use the run's own snapshot epochs ----------------------------------------------

def test_a_sweep_reports_each_run_at_its_own_snapshot_epochs(folder, tmp_path):
    # points by kimg: 0.512 kimg = 8 steps of 64 on 128 points = 4 epochs (the config's epochs, 600, is unused)
    spec = sweep.Spec(base={**POINTS, "kimg": 0.512, "frames": 2}, grid={"lr": [1e-2]})
    sweep.run_sweep(spec, tmp_path / "p", jobs=1, log=lambda m: None, threads=1)
    assert [r["epoch"] for r in sweep.collect(spec, tmp_path / "p", figure=False)] == [1, 4]
    # a tiny image sweep: 2 epochs of 2 steps; the row is at the run's last recorded epoch
    spec = sweep.Spec(base={"dataset": str(folder), **IMAGE, "epochs": 2, "frames": 3, "eval_n": 4, "eval_steps": 2},
                      grid={"lr": [1e-3]})
    sweep.run_sweep(spec, tmp_path / "i", jobs=1, log=lambda m: None, threads=1)
    run_dir = tmp_path / "i" / "runs" / sweep.expand(spec)[0].name
    recorded = json.loads((run_dir / runs.QUALITY).read_text())["frame_epochs"]
    assert sweep.snapshot_epochs(run_dir) == recorded == [0.5, 1.5, 2]  # steps 1, 3, 4 of 4
    assert [r["epoch"] for r in sweep.collect(spec, tmp_path / "i", figure=False)] == [2]
