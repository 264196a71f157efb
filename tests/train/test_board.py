"""`train --tensorboard` (train/board.py): the event files read back with TensorBoard's own reader hold
metrics.csv's loss and lr, each snapshot's picture and quality, the final quality and the config; a watched
run trains the same weights; resume appends; a sweep's runs sit side by side; without the package the flag
is refused with the install line."""

from __future__ import annotations

import csv
import io
import json
import signal

import numpy as np
import pytest
import torch

pytest.importorskip("tensorboard")  # the test extra installs it; a bare checkout skips this file

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402
from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer  # noqa: E402
from tensorboard.plugins.hparams import plugin_data_pb2  # noqa: E402

from tests.helpers import TINY_IMAGES, cache, flags, stop_at_frame, weights  # noqa: E402,F401  (cache: autouse)
from tiny_diffusion import runs  # noqa: E402
from tiny_diffusion.cli import main  # noqa: E402
from tiny_diffusion.eval.points import quality, references  # noqa: E402
from tiny_diffusion.experiments import sweep  # noqa: E402
from tiny_diffusion.train import board  # noqa: E402

POINTS = dict(dataset="moons", n_points=256, batch_size=64, epochs=3, timesteps=20, terminal_alpha_bar=1e-4,
              hidden_size=16, hidden_layers=1, emb_size=8, frames=2, frame_points=64, device="cpu")
EVERYTHING = {"scalars": 0, "images": 0, "tensors": 0}  # size_guidance 0: keep every event, not a sample


def events(run_dir) -> EventAccumulator:
    acc = EventAccumulator(str(run_dir), size_guidance=EVERYTHING)
    acc.Reload()
    return acc


def series(acc, tag) -> list[tuple[int, float]]:
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def csv_rows(run_dir) -> list[dict]:
    with open(run_dir / runs.METRICS, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def watched(tmp_path_factory):
    """The same points run twice, once with --tensorboard."""
    root = tmp_path_factory.mktemp("board")
    for name, extra in (("plain", []), ("watched", ["--tensorboard"])):
        assert main(["train", *flags(POINTS), "--out", str(root / name), "--quiet", "--threads", "1", *extra]) == 0
    return root / "plain", root / "watched"


def test_a_watched_points_run_logs_metrics_csv_snapshots_final_quality_and_config(watched):
    plain, run = watched
    acc = events(run)
    rows = csv_rows(run)
    steps = [int(r["step"]) for r in rows]
    assert steps == [4, 8, 12]
    # the logged loss and lr are metrics.csv's (events store float32)
    assert series(acc, "train/loss") == [(s, np.float32(float(r["loss"]))) for s, r in zip(steps, rows)]
    assert series(acc, "train/lr") == [(s, np.float32(float(r["lr"]))) for s, r in zip(steps, rows)]
    speed = series(acc, "train/points_per_s")
    assert [s for s, _ in speed] == steps and all(v > 0 for _, v in speed)
    # each snapshot: its scatter plot and its quality, scored again here from frames.npy
    quality_json = json.loads((run / runs.QUALITY).read_text())
    shots = quality_json["frame_steps"]
    frames = np.load(run / runs.FRAMES)
    assert [e.step for e in acc.Images("snapshot/samples")] == shots == [4, 12]
    refs = references("moons", POINTS["frame_points"])
    for name in ("energy", "precision", "coverage"):
        expected = [np.float32(quality(f, refs).as_dict()[name]) for f in frames]
        assert series(acc, f"snapshot/{name}") == list(zip(shots, expected))
        assert series(acc, f"final/{name}") == [(12, np.float32(quality_json["quality"][name]))]
    # the config as hyperparameters, with the final numbers as the metrics
    hp = plugin_data_pb2.HParamsPluginData.FromString(
        acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]).session_start_info.hparams
    saved = json.loads((run / runs.CONFIG).read_text())
    assert hp["lr"].number_value == saved["lr"] and hp["dataset"].string_value == "moons"
    assert hp["epochs"].number_value == 3 and hp["class_cond"].bool_value is False
    experiment = plugin_data_pb2.HParamsPluginData.FromString(
        acc.PluginTagToContent("hparams")["_hparams_/experiment"]).experiment
    assert sorted(m.name.tag for m in experiment.metric_infos) == ["final/coverage", "final/energy", "final/precision"]
    # watching changes nothing the run computes
    assert not board.has_events(plain)
    wa, wb = weights(plain), weights(run)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert np.array_equal(np.load(plain / runs.FRAMES), frames)


def test_a_watched_image_run_logs_each_snapshot_as_the_grid_of_its_frame(tmp_path):
    from PIL import Image

    from tiny_diffusion.viz.images import make_grid

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(16):  # no class folders: no classifier, so no quality numbers, only pictures
        img = np.random.default_rng(i).integers(0, 40, (8, 8))
        img[:, [1, 2] if i % 2 else [5, 6]] = 230
        Image.fromarray(img.astype(np.uint8), mode="L").save(folder / f"{i}.png")
    out = tmp_path / "run"
    assert main(["train", *flags({**TINY_IMAGES, "dataset": str(folder)}), "--out", str(out), "--quiet",
                 "--threads", "1", "--tensorboard"]) == 0
    acc = events(out)
    frames = np.load(out / runs.FRAMES)
    shots = json.loads((out / runs.QUALITY).read_text())["frame_steps"]
    images = acc.Images("snapshot/samples")
    assert [e.step for e in images] == shots and len(shots) == len(frames) == 2
    scale = board.GRID_PIXELS // (8 * 2)  # 4 frame points: a 2 x 2 grid of 8x8 images
    for e, frame in zip(images, frames):
        logged = np.asarray(Image.open(io.BytesIO(e.encoded_image_string)).convert("L"))
        assert np.array_equal(logged, make_grid(frame, scale=scale))
    rows = csv_rows(out)
    assert series(acc, "train/loss") == [(int(r["step"]), np.float32(float(r["loss"]))) for r in rows]
    assert [s for s, _ in series(acc, "train/images_per_s")] == [int(r["step"]) for r in rows]
    assert not any(t.startswith("final/") for t in acc.Tags()["scalars"])  # no metric, no final numbers


def test_a_stopped_watched_run_resumes_appending_each_step_once(tmp_path, monkeypatch):
    out = tmp_path / "run"
    stop_at_frame(monkeypatch, 2, lambda: signal.raise_signal(signal.SIGTERM))  # the 2nd: the first epoch logged its loss
    argv = ["train", *flags({**POINTS, "checkpoint_every": 1}), "--out", str(out), "--quiet", "--threads", "1",
            "--tensorboard"]
    assert main(argv) == 128 + signal.SIGTERM
    monkeypatch.undo()
    assert series(events(out), "train/loss")[0][0] == 4 and len(list(out.glob(board.EVENTS_GLOB))) == 1
    assert main(["train", "--resume", str(out), "--quiet", "--threads", "1"]) == 0  # no flag: keeps watching
    assert len(list(out.glob(board.EVENTS_GLOB))) == 2  # appended, the first session's file kept
    acc = events(out)
    rows = csv_rows(out)
    assert series(acc, "train/loss") == [(int(r["step"]), np.float32(float(r["loss"]))) for r in rows]
    assert [e.step for e in acc.Images("snapshot/samples")] == [4, 12]


def test_a_watched_sweep_puts_its_runs_side_by_side(tmp_path):
    spec = sweep.Spec(base={**POINTS, "epochs": 1, "frames": 1}, grid={"lr": [1e-2, 1e-3]})
    sweep.run_sweep(spec, tmp_path, jobs=1, log=lambda m: None, threads=1, tensorboard=True)
    mux = EventMultiplexer(size_guidance=EVERYTHING).AddRunsFromDirectory(str(tmp_path))
    mux.Reload()
    names = [r.name for r in sweep.expand(spec)]
    assert sorted(mux.Runs()) == sorted(f"runs/{name}" for name in names) and len(names) == 2
    for name in names:
        lr = float(csv_rows(tmp_path / "runs" / name)[0]["lr"])
        assert [e.value for e in mux.Scalars(f"runs/{name}", "train/lr")] == [np.float32(lr)]


@pytest.mark.parametrize("command", [["train", "--out", "{tmp}/run"], ["sweep", "--out", "{tmp}/sweep"]])
def test_without_tensorboard_the_flag_is_refused_naming_the_install(tmp_path, monkeypatch, capsys, command):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    argv = [c.format(tmp=tmp_path) for c in command]
    assert main([*argv, *flags(POINTS), "--tensorboard"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "pip install 'tiny-diffusion[tensorboard]'" in err
    assert list(tmp_path.iterdir()) == []  # nothing made
