"""A class-conditional image run end to end on the tiny two-class folder of test_images_train: its final files
(one row per class, the labels of the PNGs, the share labelled as requested), sample --class into a grid,
evaluate at one weight and along the guidance curve, and the reverse figure of one class."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from test_images_train import TINY, _flags, cache, folder  # noqa: F401  (fixtures: the folder and a private cache)
from tiny_diffusion.cli import main
from tiny_diffusion.eval.guidance_curve import IMAGE_COLUMNS


@pytest.fixture(scope="module")
def run(folder, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("cond") / "run"
    assert main(["train", "--dataset", str(folder), *_flags(TINY), "--class-cond", "--guidance", "2", "--out",
                 str(out), "--quiet"]) == 0
    return out


def _rows(path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def test_a_conditional_image_run_writes_its_classes(run):
    q = json.loads((run / "quality.json").read_text())
    assert q["guidance"] == 2.0 and 0 <= q["labelled_as_requested"] <= 1 and 0 < q["classifier_accuracy"] <= 1
    rows = _rows(run / "samples" / "labels.csv")
    assert len(rows) == TINY["eval_n"] and [r["class"] for r in rows[:3]] == ["left", "right", "left"]
    assert (run / "samples" / "000000.png").is_file() and (run / "samples.png").is_file()


def test_sample_a_class_into_a_grid_with_one_row_per_class(run, tmp_path, capsys):
    from PIL import Image

    out = tmp_path / "grid.png"
    assert main(["sample", str(run), "--n", "6", "--class", "right,left", "--out", str(out)]) == 0
    assert [r["class"] for r in _rows(tmp_path / "grid.labels.csv")] == ["right"] * 3 + ["left"] * 3
    one_row = tmp_path / "one.png"
    assert main(["sample", str(run), "--n", "3", "--class", "right", "--out", str(one_row)]) == 0
    (w2, h2), (w1, h1) = Image.open(out).size, Image.open(one_row).size
    assert w2 == w1 and h2 > 1.8 * h1  # two rows of three images, where one class made one row


def test_evaluate_scores_the_requested_classes_and_the_curve(run, tmp_path, capsys):
    assert main(["evaluate", str(run), "--n", "16"]) == 0
    out = capsys.readouterr().out
    assert "labelled as requested" in out and "classifier-FID" in out
    csv_path = tmp_path / "curve.csv"
    assert main(["evaluate", str(run), "--n", "16", "--class", "left", "--guidance", "0,1,4", "--csv", str(csv_path),
                 "--figure", str(tmp_path / "curve.png")]) == 0
    rows = _rows(csv_path)
    assert list(rows[0]) == list(IMAGE_COLUMNS) and [r["guidance"] for r in rows] == ["0.0", "1.0", "4.0"]
    assert all(0 <= float(r["labelled_as_requested"]) <= 1 for r in rows)
    assert len({r["ceiling"] for r in rows}) == 1  # the ceiling is the classifier's, whatever W


def test_reverse_figure_of_one_class(run, tmp_path):
    assert main(["plot", "reverse", str(run), "--class", "left", "--n", "2", "--panels", "3", "--out",
                 str(tmp_path / "r.png")]) == 0
    assert main(["animate", str(run), "--reverse", "--class", "1", "--n", "2", "--out", str(tmp_path / "r.gif")]) == 0
    assert main(["animate", str(run), "--class", "1", "--out", str(tmp_path / "t.gif")]) == 2
    assert np.all([p.stat().st_size > 0 for p in tmp_path.iterdir()])
