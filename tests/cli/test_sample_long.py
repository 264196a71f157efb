"""`sample`: points as a .png (the figure train draws), and a large draw says how long it will take."""

import numpy as np
import pytest
from PIL import Image

from tests.helpers import assert_data_drawn
from tiny_diffusion.cli import main, sample


@pytest.fixture(scope="module")
def point_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sample") / "run"
    assert main(["train", "--dataset", "moons", "--n-points", "256", "--epochs", "40", "--batch-size", "128",
                 "--timesteps", "20", "--terminal-alpha-bar", "1e-4", "--hidden-size", "16", "--hidden-layers", "1", "--emb-size", "8", "--frames",
                 "1", "--frame-points", "50", "--device", "cpu", "--out", str(out)]) == 0
    return out


def test_points_are_written_as_a_png_scatter(point_run, tmp_path, capsys):
    path = tmp_path / "points.png"
    assert main(["sample", str(point_run), "--n", "500", "--out", str(path)]) == 0
    assert f"wrote 500 samples to {path}" in capsys.readouterr().out
    with Image.open(path) as im:
        im.verify()  # a whole PNG
    assert_data_drawn(path)  # its points are drawn
    assert main(["sample", str(point_run), "--n", "500", "--out", str(tmp_path / "points.txt")]) == 2
    assert "FILE.png" in capsys.readouterr().err  # the refusal names it


def test_a_large_draw_prints_its_estimate_and_a_small_one_does_not(point_run, tmp_path, capsys, monkeypatch):
    assert main(["sample", str(point_run), "--n", "3000", "--steps", "5", "--out", str(tmp_path / "a.npy")]) == 0
    assert "network calls" not in capsys.readouterr().err  # 5 steps x 3 blocks: small
    monkeypatch.setattr(sample, "LONG_CALLS", 10)
    assert main(["sample", str(point_run), "--n", "3000", "--steps", "5", "--out", str(tmp_path / "b.npy")]) == 0
    err = capsys.readouterr().err
    assert "sampling 3000 samples: 5 steps x 3 blocks of 1024 = 15 network calls, about " in err
    assert "(an estimate: the first call timed here, times their number)" in err
    # the hook only watches: the samples are those of the small draw
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))
