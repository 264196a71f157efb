"""Images end to end on a tiny generated folder: train, resume after kill -9, sample, evaluate, plot, animate;
per-sample seeding; the config's image defaults and the CLI's errors."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.helpers import SRC, TINY_IMAGES, cache, flags  # noqa: F401  (cache: a private data cache)
from tiny_diffusion import runs
from tiny_diffusion.cli import main, torch_threads
from tiny_diffusion.config import IMAGE_DEFAULTS, TrainConfig
from tiny_diffusion.sampling import IMAGE_LAMBDA_MIN, sample
from tiny_diffusion.train import train


def _digit(cls: int, i: int) -> np.ndarray:
    """An 8x8 'image' of class 0 (a bar on the left) or 1 (a bar on the right), with a little noise."""
    img = np.random.default_rng(100 * cls + i).integers(0, 40, (8, 8))
    img[:, [1, 2] if cls == 0 else [5, 6]] = 230
    return img.astype(np.uint8)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("imgs")
    for cls, name in enumerate(("left", "right")):
        (root / name).mkdir()
        for i in range(16):
            Image.fromarray(_digit(cls, i), mode="L").save(root / name / f"{i}.png")
    return root


def tiny(folder, **changes) -> TrainConfig:
    return TrainConfig.from_dict({"dataset": str(folder), **TINY_IMAGES, **changes})


@pytest.fixture(scope="module")
def run(folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "run"
    assert main(["train", "--dataset", str(folder), *flags(TINY_IMAGES), "--out", str(out), "--quiet"]) == 0
    return out


def test_image_defaults_fill_what_the_user_left_unset(folder):
    cfg = TrainConfig.from_dict({"dataset": "mnist", "lr": 5e-4})
    assert cfg.model == "unet" and cfg.lr == 5e-4 and cfg.batch_size == IMAGE_DEFAULTS["batch_size"]
    assert TrainConfig().model == "mlp" and TrainConfig().batch_size == 1024  # points keep theirs
    assert TrainConfig.from_dict({"dataset": str(folder)}).kimg == IMAGE_DEFAULTS["kimg"]


@pytest.mark.parametrize("args, message", [
    (["--dataset", "mnist", "--model", "mlp"], "mlp is for points"),
    (["--dataset", "moons", "--model", "unet"], "unet is for images"),
    (["--dataset", "mnist", "--channel-mult", "1,x"], "comma-separated integers"),
    (["--dataset", "mnist", "--image-size", "0"], "image_size = 0"),
])
def test_bad_image_config_exits_2_with_one_line(args, message, capsys, tmp_path):
    assert main(["train", *args, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert not (tmp_path / "r").exists()  # nothing written for bad input


def test_empty_folder_exits_2_before_any_run_folder(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["train", "--dataset", str(tmp_path / "empty"), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{tmp_path / 'empty'}: no image files" in err and "--dataset" in err, err
    assert not (tmp_path / "r").exists()


def test_a_run_folder_holds_what_users_expect(run):
    for name in ("config.json", "checkpoint.pt", "metrics.csv", "frames.npy", "loss.png", "samples.png", "quality.json"):
        assert (run / name).is_file(), name
    pngs = sorted((run / "samples").glob("*.png"))
    assert len(pngs) == TINY_IMAGES["eval_n"] and Image.open(pngs[0]).size == (8, 8) and Image.open(pngs[0]).mode == "L"
    frames = np.load(run / "frames.npy")
    assert frames.dtype == np.uint8 and frames.shape[1:] == (TINY_IMAGES["frame_points"], 1, 8, 8)
    q = json.loads((run / "quality.json").read_text())
    assert q["quality"]["n"] == TINY_IMAGES["eval_n"] and q["data_floor"]["n"] == TINY_IMAGES["eval_n"]
    assert q["noise"]["fid_features"] > q["data_floor"]["fid_features"]
    assert q["shape"] == [1, 8, 8] and q["classifier_accuracy"] == 1.0  # bars on the left or right: no doubt
    state = runs.load_checkpoint(run / "checkpoint.pt")
    assert state["shape"] == [1, 8, 8] and state["classes"] == ["left", "right"]


def test_image_configs_record_no_point_only_fields_and_old_ones_still_load(run, tmp_path):
    """config.json and the checkpoint of an image run hold no n_points and no MLP sizes; a run written before
    (with them) still loads, samples and passes resume's config check; point configs keep every field."""
    import shutil

    from tiny_diffusion.train.state import load_state

    saved = json.loads((run / runs.CONFIG).read_text())
    point_only = {"n_points", "hidden_size", "hidden_layers", "emb_size", "time_emb", "input_emb", "input_scale"}
    assert not point_only & set(saved) and saved["base_channels"] == TINY_IMAGES["base_channels"]
    assert not point_only & set(runs.load_checkpoint(run / runs.CHECKPOINT)["config"])
    assert point_only <= set(TrainConfig().to_dict())
    old = tmp_path / "old"
    shutil.copytree(run, old)
    (old / runs.CONFIG).write_text(json.dumps({**saved, "n_points": 8000, "hidden_size": 64}))
    state = torch.load(old / runs.CHECKPOINT, weights_only=True)
    torch.save({**state, "config": {**state["config"], "n_points": 8000, "hidden_size": 64}}, old / runs.CHECKPOINT)
    assert runs.run_config(old).to_dict() == saved
    assert load_state(old / runs.CHECKPOINT, runs.run_config(old), torch.device("cpu")) is not None
    assert main(["sample", str(old), "--n", "2", "--out", str(tmp_path / "x.npy")]) == 0


def test_images_stay_uint8_on_the_device_and_batches_are_scaled(folder):
    from tiny_diffusion.data.source import load_source

    data = load_source(tiny(folder), "cpu")
    assert data.x.dtype == torch.uint8 and data.shape == (1, 8, 8) and data.labels.tolist().count(1) == 16
    assert data.flip  # flip auto: on for a folder; off here, or the draws below would depend on torch's global RNG
    data.flip = False
    x0 = data.batch(torch.arange(4))
    assert x0.dtype == torch.float32 and x0.min() >= -1 and x0.max() <= 1
    assert torch.equal(x0, data.x[:4].float() / 127.5 - 1)
    data.flip = True
    plain = data.x[:32].float() / 127.5 - 1
    flipped = data.batch(torch.arange(32), torch.Generator().manual_seed(0))
    same = [torch.equal(flipped[i], plain[i]) for i in range(32)]
    assert 4 < sum(same) < 28  # about half of them mirrored (no image here is its own mirror)
    mirrored = same.index(False)
    assert torch.equal(flipped[mirrored], plain[mirrored].flip(-1))


def test_image_samples_depend_only_on_seed_and_index(run):
    _, model, diffusion = runs.load_run(run)
    assert model.sample_shape == (1, 8, 8)
    big = sample(model, diffusion, 70, seed=3, sampler="dpm++", steps=5)  # crosses a 64-image block
    small = sample(model, diffusion, 5, seed=3, sampler="dpm++", steps=5)
    late = sample(model, diffusion, 6, seed=3, sampler="dpm++", steps=5, start=64)
    assert big.shape == (70, 1, 8, 8)
    assert torch.equal(big[:5], small) and torch.equal(big[64:70], late)


def test_the_api_and_the_cli_give_the_same_images_in_the_pixel_range(run, tmp_path):
    import tiny_diffusion as td
    from tiny_diffusion.sampling import trajectory

    _, model, diffusion = runs.load_run(run)
    options = dict(sampler="ddpm", steps=10)
    *_, raw = trajectory(model, diffusion, 12, 2, **options)
    assert raw.abs().max() > 1  # a barely trained model: the sampler's last state overshoots the pixel range
    x = td.sample(model, diffusion, 12, 2, **options)
    assert torch.equal(x, raw.clamp(-1, 1))
    assert main(["sample", str(run), "--n", "12", "--seed", "2", "--sampler", "ddpm", "--steps", "10",
                 "--out", str(tmp_path / "x.npy")]) == 0
    assert np.array_equal(np.load(tmp_path / "x.npy"), x.numpy())


def test_sample_writes_npy_grid_and_png_folder(run, tmp_path, capsys):
    assert main(["sample", str(run), "--n", "12", "--out", str(tmp_path / "x.npy")]) == 0
    x = np.load(tmp_path / "x.npy")
    assert x.dtype == np.float32 and x.shape == (12, 1, 8, 8) and x.min() >= -1 and x.max() <= 1
    assert main(["sample", str(run), "--n", "12", "--out", str(tmp_path / "grid.png")]) == 0
    assert Image.open(tmp_path / "grid.png").size[0] >= 8 * 4
    assert main(["sample", str(run), "--n", "5", "--sampler", "ddim", "--steps", "5", "--out", str(tmp_path / "d") + "/"]) == 0
    assert len(list((tmp_path / "d").glob("*.png"))) == 5
    # the PNG folder holds exactly the .npy's images (same seed, same default sampler)
    from tiny_diffusion.viz.image_files import read_images, to_uint8

    assert main(["sample", str(run), "--n", "5", "--out", str(tmp_path / "e")]) == 0
    assert np.array_equal(read_images(tmp_path / "e"), to_uint8(x[:5]))


@pytest.mark.parametrize("name", ["x.jpg", "x.csv"])
def test_sample_refuses_a_file_type_naming_those_an_image_run_writes(run, tmp_path, capsys, name):
    assert main(["sample", str(run), "--out", str(tmp_path / name)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"--out {tmp_path / name}: unsupported file type" in err, err
    assert "use FILE.npy, FILE.png (a grid) or a folder DIR/ (one PNG per image)" in err and ".csv" not in err[-80:]
    assert not any(tmp_path.iterdir())


def test_evaluate_a_run_and_image_files(run, folder, tmp_path, capsys):
    assert main(["evaluate", str(run), "--n", "16"]) == 0
    out = capsys.readouterr().out
    assert "classifier-FID" in out and "data floor" in out and "noise" in out
    assert main(["sample", str(run), "--n", "16", "--out", str(tmp_path / "s") + "/"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "s"), "--dataset", str(folder)]) == 0
    assert "16 images of" in capsys.readouterr().out
    assert main(["evaluate", str(tmp_path / "s")]) == 2  # which real images? one line says --dataset
    assert "--dataset" in capsys.readouterr().err
    assert main(["evaluate", str(run), "--nll"]) == 2


def test_plots_and_animations_of_an_image_run(run, folder, tmp_path, monkeypatch):
    from tiny_diffusion.viz import figures
    from tiny_diffusion.viz import images as vi

    assert main(["plot", "forward", "--dataset", str(folder), "--n", "3", "--panels", "5",
                 "--out", str(tmp_path / "f.png")]) == 0
    strip = Image.open(tmp_path / "f.png")
    real, labels = vi.process_strip, []
    monkeypatch.setattr(vi, "process_strip", lambda traj, path, shown: real(traj, path, labels.extend(shown) or shown))
    assert main(["plot", "reverse", str(run), "--n", "3", "--panels", "5", "--sampler", "ddpm",  # every step
                 "--out", str(tmp_path / "r.png")]) == 0
    assert Image.open(tmp_path / "r.png").size[0] >= strip.size[0]  # the same columns, perhaps wider for the labels
    # x_T, then steps evenly in log-SNR from lambda -2.5 (this cosine schedule ends at lambda -10), then x_0
    steps = [re.fullmatch(r"t = (\d+)\nlambda = (\S+)", label) for label in labels]
    ts, lams = [int(m[1]) for m in steps], [float(m[2]) for m in steps]
    assert ts[0] == TINY_IMAGES["timesteps"] and ts[-1] == 0 and len(ts) == 5 and lams[-1] == float("inf")
    assert lams[1] == pytest.approx(figures.SHAPE_FROM, abs=0.3) and lams[0] < lams[1] < lams[2] < lams[3]
    assert main(["animate", str(run)]) == 0
    assert main(["animate", str(run), "--reverse", "--n", "4"]) == 0
    for name, n_frames in (("animation.gif", TINY_IMAGES["frames"]), ("reverse.gif", TINY_IMAGES["timesteps"] + 1)):
        with Image.open(run / name) as gif:
            gif.seek(gif.n_frames - 1)  # the last frame stays up HOLD_LAST seconds
            assert gif.n_frames <= n_frames and gif.info["duration"] == 1000 * figures.HOLD_LAST


def test_a_run_of_a_relative_folder_is_images_from_any_working_directory(folder, tmp_path, monkeypatch, capsys):
    """config.json records the kind, the sample shape and the folder's absolute path: `--dataset imgs` (a folder
    relative to where training ran) is still an image run of that folder when sample, evaluate, plot and animate run
    elsewhere, where `imgs` does not exist."""
    monkeypatch.chdir(folder.parent)
    run = tmp_path / "run"
    assert main(["train", "--dataset", folder.name, *flags(TINY_IMAGES), "--frames", "0", "--eval-n", "4", "--out",
                 str(run), "--quiet"]) == 0
    recorded = json.loads((run / runs.CONFIG).read_text())
    assert (recorded["dataset"], recorded["kind"], recorded["sample_shape"]) == (str(folder.resolve()), "images", "1,8,8")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert not Path(folder.name).exists()
    assert main(["sample", str(run), "--n", "3", "--out", "x.npy"]) == 0
    assert np.load("x.npy").shape == (3, 1, 8, 8)
    assert main(["plot", "reverse", str(run), "--n", "2", "--panels", "3", "--out", "r.png"]) == 0
    assert Image.open("r.png").size[0] >= 3 * 8
    assert main(["animate", str(run), "--reverse", "--n", "2", "--out", "r.gif"]) == 0
    assert Image.open("r.gif").n_frames > 1
    assert main(["evaluate", str(run), "--n", "8"]) == 0  # the real images, found by their recorded path
    assert "classifier-FID" in capsys.readouterr().out


def test_a_run_from_before_kinds_were_recorded_takes_its_kind_from_the_checkpoint(run, tmp_path, monkeypatch):
    """Run folders written before config.json recorded kind and sample_shape (e.g. trained on a relative folder
    that is not here): both come from the checkpoint's sample shape, never from the dataset string."""
    import shutil

    old = tmp_path / "old"
    shutil.copytree(run, old)
    values = json.loads((old / runs.CONFIG).read_text())
    values = {k: v for k, v in values.items() if k not in ("kind", "sample_shape")} | {"dataset": "pics"}
    (old / runs.CONFIG).write_text(json.dumps(values))
    state = torch.load(old / runs.CHECKPOINT, weights_only=True)
    state["config"] = values
    torch.save(state, old / runs.CHECKPOINT)
    monkeypatch.chdir(tmp_path)  # no folder `pics` here: the dataset string alone would say points
    assert (runs.run_config(old).kind, runs.run_config(old).sample_shape) == ("images", "1,8,8")
    cfg, model, _ = runs.load_run(old)
    assert (cfg.kind, model.kind, model.sample_shape) == ("images", "images", (1, 8, 8))
    assert main(["sample", str(old), "--n", "2", "--steps", "3", "--out", "x.npy"]) == 0
    assert np.load("x.npy").shape == (2, 1, 8, 8)


def test_reverse_figure_of_images_samples_as_the_final_samples_by_default(run, tmp_path, monkeypatch, capsys):
    """Not 1000 ancestral steps: the run's eval_sampler and eval_steps (dpm++ in 4 here), so x_0 is `sample`'s."""
    from tiny_diffusion.viz import images as vi

    shown = []
    monkeypatch.setattr(vi, "process_strip", lambda traj, path, titles: shown.append((traj, titles)))
    assert main(["plot", "reverse", str(run), "--n", "3", "--out", str(tmp_path / "r.png")]) == 0
    assert f"(dpm++, {TINY_IMAGES['eval_steps']} steps, logsnr from lambda -5, seed 0)" in capsys.readouterr().out
    (traj, titles), = shown
    assert len(titles) == TINY_IMAGES["eval_steps"] + 1 and titles[-1].startswith("t = 0\n")  # every state of 4 steps
    _, model, diffusion = runs.load_run(run)
    x0 = sample(model, diffusion, 3, 0, sampler="dpm++", steps=TINY_IMAGES["eval_steps"])
    assert np.array_equal(traj[-1], vi.to_uint8(x0))


def test_unlabelled_folder_trains_without_metrics(tmp_path, capsys):
    for i in range(12):
        Image.fromarray(_digit(i % 2, i), mode="L").save(tmp_path / f"{i}.png")
    assert main(["train", "--dataset", str(tmp_path), *flags(TINY_IMAGES), "--out", str(tmp_path / "run"),
                 "--quiet"]) == 0
    assert "no quality numbers" in capsys.readouterr().out
    q = json.loads((tmp_path / "run" / "quality.json").read_text())
    assert "quality" not in q and q["n_eval"] == TINY_IMAGES["eval_n"]


def test_image_run_resumes_bit_identically_after_kill_9(folder, tmp_path):
    """An image run killed with SIGKILL after its first checkpoint and resumed gives the weights, metrics
    and frames of the same run trained without a stop. One thread throughout: a convolution's sums depend on
    the thread count, and the CLI's default (auto) would follow the machine's load."""
    cfg = {**TINY_IMAGES, "kimg": 0.32, "frames": 3}  # 40 steps: 10 epochs of 4 steps, a checkpoint after each
    ref = tmp_path / "ref"
    with torch_threads(1):
        train(tiny(folder, **cfg), ref, progress=False)
    env = {**os.environ, "PYTHONPATH": SRC}
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "tiny_diffusion", "train", "--dataset", str(folder), *flags(cfg),
           "--out", str(out), "--quiet", "--threads", "1"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while proc.poll() is None and time.time() < deadline:
        try:
            if torch.load(out / runs.CHECKPOINT, weights_only=True)["epoch"] >= 2:
                break
        except Exception:  # not written yet, or being replaced
            pass
        time.sleep(0.01)
    killed = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert killed and not runs.is_finished(out)
    subprocess.run([sys.executable, "-m", "tiny_diffusion", "train", "--resume", str(out), "--quiet", "--threads", "1"],
                   env=env, check=True, capture_output=True)
    a, b = torch.load(ref / runs.CHECKPOINT, weights_only=True), torch.load(out / runs.CHECKPOINT, weights_only=True)
    for part in ("model", "ema"):
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), f"{part}.{k}"
    assert np.array_equal(np.load(ref / runs.FRAMES), np.load(out / runs.FRAMES))
    assert _metrics(ref) == _metrics(out)


def _metrics(run_dir: Path) -> list[dict]:
    """metrics.csv without its wall-clock column."""
    with open(run_dir / runs.METRICS) as f:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]


def test_a_sweep_of_image_runs_tabulates_their_final_metrics(folder, tmp_path):
    assert main(["sweep", "--out", str(tmp_path / "s"), "--dataset", str(folder), *flags(TINY_IMAGES),
                 "--vary", "lr=1e-3,3e-3"]) == 0
    with open(tmp_path / "s" / "sweep.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["lr"] for r in rows] == ["0.001", "0.003"]
    for r in rows:  # each row holds its own run's final numbers
        q = json.loads((tmp_path / "s" / "runs" / r["run"] / runs.QUALITY).read_text())["quality"]
        assert float(r["fid_features"]) == pytest.approx(q["fid_features"]) and int(r["n"]) == q["n"]
    assert rows[0]["fid_features"] != rows[1]["fid_features"]


def test_aligned_batches_hand_each_sample_its_own_label():
    """Labels travel with their samples through the fixed-size blocks, whatever the batch and offset."""
    from tiny_diffusion.sampling import AlignedBatches

    def model(x, t, y=None):  # each row's output names its label
        return x * 0 + y.float().reshape(-1, 1, 1, 1)

    y = torch.arange(70) % 7
    out = AlignedBatches(model, start=5, block=64, y=y)(torch.zeros(70, 1, 2, 2), torch.tensor(3))
    assert torch.equal(out[:, 0, 0, 0], y.float())


def test_run_files_honour_the_umask(tmp_path):
    """Atomic writes go through a private temporary file, but the file they leave is as readable as any other."""
    from tiny_diffusion.fileio import atomic_write

    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "a.json", lambda f: f.write(b"{}"))
        os.umask(0o077)
        atomic_write(tmp_path / "b.json", lambda f: f.write(b"{}"))
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "b.json").stat().st_mode & 0o777 == 0o600


def test_an_image_run_given_steps_samples_on_logsnr(run, tmp_path, capsys):
    """--steps K on an image run: the logsnr grid from lambda -5 (sampling.IMAGE_LAMBDA_MIN, as its final samples
    use), not diffusers' trailing; --spacing trailing is honoured."""
    _, model, diffusion = runs.load_run(run)
    flags = ["--n", "3", "--sampler", "ddim", "--steps", "5"]
    assert main(["sample", str(run), *flags, "--out", str(tmp_path / "x.npy")]) == 0
    assert main(["sample", str(run), *flags, "--spacing", "trailing", "--out", str(tmp_path / "t.npy")]) == 0
    out = capsys.readouterr().out
    assert "(ddim, 5 steps, logsnr from lambda -5, seed 0)" in out and "(ddim, 5 steps, trailing, seed 0)" in out
    for name, grid in (("x", {"spacing": "logsnr", "lambda_min": IMAGE_LAMBDA_MIN}), ("t", {"spacing": "trailing"})):
        expected = sample(model, diffusion, 3, 0, sampler="ddim", steps=5, **grid).clamp(-1, 1).numpy()
        assert np.array_equal(np.load(tmp_path / f"{name}.npy"), expected), name
    assert not np.array_equal(np.load(tmp_path / "x.npy"), np.load(tmp_path / "t.npy"))


def test_evaluate_an_image_run_repeats_the_numbers_train_wrote(run, capsys):
    from tiny_diffusion.eval.images import ImageQuality

    saved = json.loads((run / runs.QUALITY).read_text())
    assert main(["evaluate", str(run)]) == 0
    out = capsys.readouterr().out
    assert f"{TINY_IMAGES['eval_n']} samples of" in out and "seed 1234" in out
    assert str(ImageQuality(**saved["quality"])) in out and str(ImageQuality(**saved["data_floor"])) in out, out
