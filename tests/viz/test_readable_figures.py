"""Figures a new user can read (issue 26 items 4, 5, 9): a one-class grid is a grid and small images are enlarged;
a sweep's figure reads at 100% with the off-axis marks of `animate`; the forward figure is spaced in log-SNR."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tiny_diffusion.cli import main
from tiny_diffusion.viz import figures
from tiny_diffusion.viz import points as plots
from tiny_diffusion.viz.images import MIN_CELL, PAD, save_class_grid, save_grid


def _digits(n: int, size: int = 28) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (n, 1, size, size)).astype(np.uint8)


def test_sixty_four_of_one_class_make_an_eight_by_eight_grid(tmp_path):
    path = save_class_grid(_digits(64), np.full(64, 7), [str(k) for k in range(10)], tmp_path / "sevens.png")
    cell = 28 * 2  # 28-pixel digits at twice their size (MIN_CELL)
    with Image.open(path) as im:
        width, height = im.size
    assert height == 8 * (cell + PAD) + PAD  # 8 rows, not one 1936x32 strip
    assert width > 8 * (cell + PAD) + PAD  # and the class name in a margin on the left
    assert width < 9 * (cell + PAD) + PAD + 40


def test_classes_keep_a_row_each_and_a_long_class_wraps(tmp_path):
    labels = np.arange(100) % 10  # the conditional run's 100 samples: 10 rows of 10
    path = save_class_grid(_digits(100), labels, [str(k) for k in range(10)], tmp_path / "c.png")
    with Image.open(path) as im:
        assert im.size[1] == 10 * (MIN_CELL + PAD) + PAD
    path = save_class_grid(_digits(3), np.zeros(3, int), ["a"], tmp_path / "three.png")
    with Image.open(path) as im:  # a few of one class: one row (of 3 cells, at 3x to be MIN_WIDTH wide)
        assert im.size[1] == 3 * 28 + 2 * PAD
    path = save_class_grid(_digits(33), np.array([0] * 30 + [1] * 3), ["a", "b"], tmp_path / "w.png")
    with Image.open(path) as im:  # 33 images: 6 columns; class a 5 rows, class b 1 row (ending in blanks)
        assert im.size[1] == 6 * (MIN_CELL + PAD) + PAD
        cells = np.asarray(im.convert("L"))[-(MIN_CELL + PAD):-PAD, -3 * (MIN_CELL + PAD):-PAD]
    assert (cells == 255).all()  # the three blank cells after class b's three


@pytest.mark.parametrize("size, scale", [(28, 2), (32, 2), (8, 7), (64, 1)])
def test_small_images_are_enlarged_when_saved(tmp_path, size, scale):
    with Image.open(save_grid(_digits(100, size), tmp_path / "g.png")) as im:
        assert im.size == (10 * (size * scale + PAD) + PAD,) * 2


def _cells(n_frames: int, far: bool):
    rng = np.random.default_rng(0)
    pts = [rng.normal(0, 300 if far and e == 0 else 1, (200, 2)) for e in range(n_frames)]
    return [(e + 1, {"energy": 0.1, "precision": 0.5, "coverage": 0.5}, p) for e, p in enumerate(pts)]


def test_a_sweep_figure_of_twenty_snapshots_reads_at_full_size(tmp_path, monkeypatch):
    titles, fonts, crosses = [], [], []
    real_scatter = plots._scatter_ax

    def scatter_ax(ax, pts, limit=plots.LIMIT, title=None, size=2.0):
        titles.append(title)
        return real_scatter(ax, pts, limit, title, size)

    monkeypatch.setattr(plots, "_scatter_ax", scatter_ax)
    shape = plots.sweep_grid([("lr=0.01", _cells(20, far=True)), ("lr=0.001", _cells(20, far=False))],
                             tmp_path / "grid.png")
    assert shape == (2, plots.SWEEP_COLUMNS)
    with Image.open(tmp_path / "grid.png") as im:
        width = im.size[0]
        rgb = np.asarray(im.convert("RGB")).astype(int)
    assert width <= 2400  # 3040 before, for 20 columns of 6.5-point titles at 80 dpi
    assert plots.SWEEP_FONT * 100 / 72 >= 11  # pixels of title text at the figure's 100 dpi
    n_off = int((np.abs(_cells(1, far=True)[0][2]) > plots.LIMIT).any(axis=1).sum())
    assert titles[0].startswith(f"ep 1, {n_off} off axes\n") and titles[1].startswith("ep 3\n")  # 1, 3, 5, ... 20
    assert titles[9].startswith("ep 20\n")  # the last snapshot is kept
    red = (rgb[..., 0] > 150) & (rgb[..., 1] < 100) & (rgb[..., 2] < 100)
    assert red.sum() > 50  # the far points, at the edge of their cell, as in `animate`


def test_the_forward_figure_is_spaced_in_log_snr_and_titled_with_it(tmp_path, monkeypatch):
    panels = []
    monkeypatch.setattr(plots, "grid", lambda cells, path, cols: panels.extend(cells))
    assert main(["plot", "forward", "--dataset", "dino", "--out", str(tmp_path / "f.png")]) == 0
    titles = [t for t, _ in panels]
    assert titles[0] == "t = 0, lambda = inf" and titles[-1].startswith("t = 1000, lambda = -5.")
    lams = [float(t.split("lambda = ")[1]) for t in titles[1:-1]]
    assert lams[0] == pytest.approx(3.0, abs=0.1) and lams[-1] == pytest.approx(-1.5, abs=0.1)
    assert np.ptp(np.diff(lams)) < 0.2  # evenly spaced in log-SNR
    x0 = panels[0][1]
    kept = [np.corrcoef(x0[:, 0], x[:, 0])[0, 1] for _, x in panels]  # how much of x_0 each panel still holds
    assert sum(c > 0.25 for c in kept) == 9  # all but x_T (evenly in t, t = 0, 111, ..., 1000: 6 of 10)
    assert figures.forward_columns(np.linspace(0.999, 1e-4, 1000), 10)[0] == 0
