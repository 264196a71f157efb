"""Folders of 1, 10 and 30 images, labelled (two class subfolders) or not: every image command works on them, the
metrics say what they can at that size and why not the rest (naming the flag), and no run is ever stopped."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from tiny_diffusion import runs
from tiny_diffusion.cli import main

# 8x8 gray images, a U-Net of a few thousand weights, 2 short snapshots of the default 64-image grid (more images
# than any of these folders hold: the floor of a snapshot cannot be drawn), 12 final samples
FLAGS = ["--image-size", "8", "--base-channels", "4", "--channel-mult", "1,2", "--timesteps", "20", "--batch-size", "8",
         "--kimg", "0.016", "--frames", "2", "--eval-n", "12", "--eval-steps", "4", "--frame-steps", "4",
         "--device", "cpu", "--quiet"]


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TINY_DIFFUSION_DATA", str(tmp_path / "cache"))


def _folder(root, n: int, labelled: bool):
    """n 8x8 images: a bar on the left or on the right, alternating; in class subfolders left/ and right/ if
    labelled (with one image, right/ stays empty, so the folder has one class: no labels)."""
    for i in range(n):
        img = np.random.default_rng(i).integers(0, 40, (8, 8)).astype(np.uint8)
        img[:, [1, 2] if i % 2 == 0 else [5, 6]] = 230
        sub = root / ("left" if i % 2 == 0 else "right") if labelled else root
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img, mode="L").save(sub / f"{i}.png")
    (root / "right").mkdir(exist_ok=True) if labelled else None
    return root


@pytest.mark.parametrize("labelled", [True, False], ids=["labelled", "unlabelled"])
@pytest.mark.parametrize("n", [1, 10, 30])
def test_every_image_command_works_on_a_small_folder(tmp_path, capsys, n, labelled):
    data, run = _folder(tmp_path / "data", n, labelled), tmp_path / "run"
    assert main(["train", "--dataset", str(data), *FLAGS, "--out", str(run)]) == 0
    out = capsys.readouterr().out
    for name in ("config.json", "checkpoint.pt", "metrics.csv", "frames.npy", "samples.png", "quality.json"):
        assert (run / name).is_file(), name
    assert len(list((run / "samples").glob("*.png"))) == 12
    q = json.loads((run / "quality.json").read_text())
    notes = " ".join(q["notes"])
    if not labelled or n == 1:  # no classes: no classifier, and the reason is written down
        assert "quality" not in q and "class labels" in notes and "class labels" in out
    else:
        # too few images to hold any out: the classifier metrics are scored against training images, so
        # memorisation cannot be told apart and is reported as not available
        assert q["quality"]["n"] == 12 and q["quality"]["memorised"] is None and "test split" in notes
        assert np.isfinite(q["quality"]["fid_features"]) and "test split" in out
        if n == 10:  # 5 images to draw a floor of 12 from: none, and the flag that would allow one
            assert q["data_floor"] is None and "--eval-n 2 to 5" in notes and "--eval-n 2 to 5" in out
        else:  # 15 images to draw from: a floor at the samples' n
            assert q["data_floor"]["n"] == 12 and q["data_floor"]["fid_features"] < q["noise"]["fid_features"]
        assert "--frame-points" in notes  # the snapshot grid (64) is larger than the folder
    assert main(["train", "--resume", str(run), "--quiet"]) == 0  # a finished run: nothing to do
    assert "already finished" in capsys.readouterr().out
    assert main(["sample", str(run), "--n", "3", "--out", str(tmp_path / "s.npy")]) == 0
    assert np.load(tmp_path / "s.npy").shape == (3, 1, 8, 8)
    assert main(["evaluate", str(run)]) == 0
    out = capsys.readouterr().out
    assert ("no quality numbers" in out) if not labelled or n == 1 else ("classifier-FID" in out and "test split" in out)
    assert main(["plot", "forward", str(run), "--n", "2", "--panels", "3", "--out", str(tmp_path / "f.png")]) == 0
    assert main(["plot", "reverse", str(run), "--n", "2", "--panels", "3", "--out", str(tmp_path / "r.png")]) == 0
    assert main(["animate", str(run)]) == 0 and (run / "animation.gif").is_file()


def _source(n: int, test: int = 0):
    """A labelled DataSource of n random 8x8 gray images (labels alternate), with a test split of `test` images."""
    import torch

    from tiny_diffusion.data.source import DataSource

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (n, 1, 8, 8), dtype=np.uint8)
    held = rng.integers(0, 256, (test, 1, 8, 8), dtype=np.uint8) if test else None
    return DataSource(torch.from_numpy(x), torch.arange(n) % 2, ["a", "b"], held_out=held,
                      held_out_labels=np.arange(test) % 2 if test else None, name="tiny")


def test_without_a_test_split_the_held_out_images_leave_the_floor_and_memorisation_is_not_available(monkeypatch):
    """16.6: the stand-in held-out images are a seeded draw of both classes, taken out of the images the floor
    and the nearest-neighbour distances use; memorisation is None (a copy of a held-out image would pass)."""
    import torch

    from tiny_diffusion.eval import classifier as clf_mod
    from tiny_diffusion.eval.report import image_metric

    monkeypatch.setattr(clf_mod, "train_classifier",
                        lambda images, labels, k, **kw: torch.manual_seed(0) and clf_mod.Classifier(1, k).eval())
    data = _source(40)
    metric, _ = image_metric(data, "cpu")
    x = data.x.numpy()
    train_rows = {r.tobytes() for r in metric.train}
    assert metric.floor_limit == 20 and len(train_rows) == 20  # half held out, the other half to draw floors from
    held = [r for r in x if r.tobytes() not in train_rows]
    assert len(held) == 20 and {int(y) for r, y in zip(x, data.labels) if r.tobytes() not in train_rows} == {0, 1}
    assert "20 of the 40 training images" in metric.held_out_note and "memorisation" in metric.held_out_note
    assert metric.score(x[:6]).memorised is None and metric.floor(20).memorised is None
    assert "memorised n/a" in str(metric.score(x[:6]))
    # with a test split, nothing is held out of the training images and copies of them are caught
    metric, _ = image_metric(_source(40, test=10), "cpu")
    assert metric.held_out_note is None and metric.floor_limit == 40 and metric.score(x[:6]).memorised == 1.0


def test_sets_too_small_to_score_say_why_and_what_would_allow_it():
    import torch

    from tiny_diffusion.data.source import DataSource
    from tiny_diffusion.eval.report import unscorable

    assert unscorable(_source(4)) is None and unscorable(_source(3, test=2)) is None  # a test split: no draw needed
    assert "3 labelled images" in unscorable(_source(3)) and "need 4" in unscorable(_source(3))
    tiny = DataSource(torch.zeros(10, 3, 4, 4, dtype=torch.uint8), torch.arange(10) % 2, ["a", "b"])
    assert "--image-size 8" in unscorable(tiny) and "4x4" in unscorable(tiny)
    assert "class labels" in unscorable(DataSource(torch.zeros(10, 1, 8, 8, dtype=torch.uint8), None, None))
