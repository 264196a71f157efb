"""A class-conditional image run end to end on a tiny labelled folder whose two classes differ grossly (dark and
bright 8x8 images), so that every check can tell a model that draws the class it was asked for from one that
does not: its final files (the labels of the PNGs and what they show), sample --class into a grid and a file,
evaluate along the guidance curve (as asked more often at W = 3 than at W = 0), and the reverse figures."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

from tests.helpers import TINY_IMAGES, cache, flags  # noqa: F401  (cache: a private data cache)
from tiny_diffusion.cli import main
from tiny_diffusion.eval.guidance_curve import IMAGE_COLUMNS

# kimg 0.5 (62 steps, a few seconds): at seeds 0, 1, 2 the samples asked for a class were >= 98% of it at W = 1
# and W = 3 (64 per class, dpm++ 4 steps), while W = 0 drew dark and bright in ratios from 0:1 to 4:1
COND = {**TINY_IMAGES, "kimg": 0.5}
DARK, BRIGHT = 40, 215  # grey levels of the two classes (+-30 noise): their means are 0.7 apart in [-1, 1]


def _image(level: int, i: int) -> np.ndarray:
    return np.clip(level + np.random.default_rng([level, i]).integers(-30, 31, (8, 8)), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("dark_bright")
    for name, level in (("dark", DARK), ("bright", BRIGHT)):
        (root / name).mkdir()
        for i in range(16):
            Image.fromarray(_image(level, i), mode="L").save(root / name / f"{i}.png")
    return root  # classes in name order: 0 bright, 1 dark


@pytest.fixture(scope="module")
def run(folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("cond") / "run"
    assert main(["train", "--dataset", str(folder), *flags(COND), "--class-cond", "--guidance", "2", "--out",
                 str(out), "--quiet"]) == 0
    return out


def _rows(path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def _shows(images) -> list[str]:
    """'bright' or 'dark' for each image (uint8, or float in [-1, 1]): which side of mid-grey its mean lies."""
    x = np.asarray(images, dtype=np.float64)
    mid = 127.5 if x.max() > 1.5 else 0.0
    return ["bright" if m > mid else "dark" for m in x.reshape(len(x), -1).mean(1)]


def test_a_conditional_image_run_draws_its_classes(run):
    q = json.loads((run / "quality.json").read_text())
    assert q["guidance"] == 2.0 and q["classifier_accuracy"] == 1.0  # the two classes cannot be confused
    assert q["labelled_as_requested"] >= 0.9  # the classifier's view; W = 0 or ignored labels give ~0.5
    rows = _rows(run / "samples" / "labels.csv")
    asked = [r["class"] for r in rows]
    assert len(rows) == COND["eval_n"] and asked[:3] == ["bright", "dark", "bright"]
    shown = _shows([np.array(Image.open(run / "samples" / f"{int(r['index']):06d}.png")) for r in rows])
    assert np.mean([a == s for a, s in zip(asked, shown)]) >= 0.9, (asked, shown)


def test_sample_a_class_into_a_grid_and_a_file(run, tmp_path):
    out = tmp_path / "x.npy"
    assert main(["sample", str(run), "--n", "6", "--class", "dark,bright", "--guidance", "3", "--out", str(out)]) == 0
    assert [r["class"] for r in _rows(tmp_path / "x.labels.csv")] == ["dark"] * 3 + ["bright"] * 3
    assert _shows(np.load(out)) == ["dark"] * 3 + ["bright"] * 3
    grid = tmp_path / "grid.png"
    assert main(["sample", str(run), "--n", "6", "--class", "dark,bright", "--guidance", "3", "--out", str(grid)]) == 0
    one_row = tmp_path / "one.png"
    assert main(["sample", str(run), "--n", "3", "--class", "bright", "--out", str(one_row)]) == 0
    (w2, h2), (w1, h1) = Image.open(grid).size, Image.open(one_row).size
    assert w2 == w1 and h2 > 1.8 * h1  # two rows of three images, where one class made one row
    cells = np.asarray(Image.open(grid).convert("L"), dtype=float)[:, -h1 // 2:]  # the last images' column
    top, bottom = cells[: h2 // 2].mean(), cells[h2 // 2:].mean()
    assert bottom - top > 50, (top, bottom)  # the dark row above the bright one


def test_guidance_draws_the_requested_class_more_often_at_w3_than_at_w0(run, tmp_path):
    """Through evaluate's guidance curve, scored by the data set's classifier. At W = 0 the network never sees the
    label, so asking for bright or for dark draws the same images (same seed): their two shares sum to 1. Every step
    guided (--guidance-interval all): on an interval, the steps outside it stay plainly conditional."""
    share = {}
    for name in ("bright", "dark"):
        path = tmp_path / f"{name}.csv"
        assert main(["evaluate", str(run), "--n", "16", "--class", name, "--guidance", "0,3", "--guidance-interval",
                     "all", "--csv", str(path), "--figure", str(tmp_path / f"{name}.png")]) == 0
        rows = _rows(path)
        assert list(rows[0]) == list(IMAGE_COLUMNS) and [r["guidance"] for r in rows] == ["0.0", "3.0"]
        assert rows[0]["ceiling"] == rows[1]["ceiling"] == "1.0"  # the classifier's, whatever W
        share[name] = [float(r["labelled_as_requested"]) for r in rows]
    assert share["bright"][0] + share["dark"][0] == pytest.approx(1.0)  # so as asked half the time at W = 0
    assert min(share["bright"][1], share["dark"][1]) >= 0.9, share  # and nearly always at W = 3


def test_a_guidance_interval_that_starts_below_zero_is_taken_as_the_help_writes_it(run, tmp_path):
    """`--guidance-interval -2,1` (the help's own example) is the interval, not an unknown flag: the same samples as
    `--guidance-interval=-2,1`, and not those of every step guided."""
    base = ["sample", str(run), "--n", "4", "--guidance", "3"]
    assert main([*base, "--guidance-interval", "-2,1", "--out", str(tmp_path / "a.npy")]) == 0
    assert main([*base, "--guidance-interval=-2,1", "--out", str(tmp_path / "b.npy")]) == 0
    assert main([*base, "--guidance-interval", "all", "--out", str(tmp_path / "c.npy")]) == 0
    a, b, c = (np.load(tmp_path / f"{k}.npy") for k in "abc")
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_reverse_figures_of_one_class_end_on_that_class(run, tmp_path):
    """The last frame of `animate --reverse` and the last (x_0) panel of `plot reverse`, asked for bright and for
    dark: the same titles and layout, so only the images can make the bright ones brighter."""
    ends = {}
    for name in ("bright", "dark"):
        gif, strip = tmp_path / f"{name}.gif", tmp_path / f"{name}.png"
        assert main(["animate", str(run), "--reverse", "--class", name, "--n", "4", "--out", str(gif)]) == 0
        assert main(["plot", "reverse", str(run), "--class", name, "--n", "2", "--panels", "3", "--out",
                     str(strip)]) == 0
        with Image.open(gif) as g:
            g.seek(g.n_frames - 1)
            last_frame = np.asarray(g.convert("L"), dtype=float)
        x0_panel = np.asarray(Image.open(strip).convert("L"), dtype=float)[:, -Image.open(strip).size[0] // 4:]
        ends[name] = (last_frame.mean(), x0_panel.mean())
    assert all(b - d > 30 for b, d in zip(ends["bright"], ends["dark"])), ends
    assert main(["animate", str(run), "--class", "1", "--out", str(tmp_path / "t.gif")]) == 2
    assert not (tmp_path / "t.gif").exists()


def test_labelled_images_train_with_their_labels_by_default(folder, tmp_path):
    """No --class-cond: a labelled folder trains with its labels (class_cond auto), the final samples ask for
    every class in turn at W = 1 and draw them; --class-cond off trains an unconditional network."""
    out = tmp_path / "auto"
    assert main(["train", "--dataset", str(folder), *flags(COND), "--out", str(out), "--quiet"]) == 0
    cfg, q = json.loads((out / "config.json").read_text()), json.loads((out / "quality.json").read_text())
    assert cfg["class_cond"] is True and cfg["guidance"] == 1.0 and q["guidance"] == 1.0
    rows = _rows(out / "samples" / "labels.csv")
    shown = _shows([np.array(Image.open(out / "samples" / f"{int(r['index']):06d}.png")) for r in rows])
    assert np.mean([r["class"] == s for r, s in zip(rows, shown)]) >= 0.9
    off = tmp_path / "off"
    assert main(["train", "--dataset", str(folder), *flags(COND), "--class-cond", "off", "--out", str(off),
                 "--quiet"]) == 0
    assert json.loads((off / "config.json").read_text())["class_cond"] is False
    assert not (off / "samples" / "labels.csv").exists()
