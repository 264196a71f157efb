"""What the reverse figures and the animations show: panels spaced in log-SNR where the shape forms, titled
with t and lambda; points beyond the axes drawn at the edge and counted; a last frame held long enough to see."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
from PIL import Image

from tiny_diffusion import runs
from tiny_diffusion.viz import figures
from tiny_diffusion.viz import points as plots
from tiny_diffusion.cli import main
from tiny_diffusion.config import TrainConfig
from tiny_diffusion.core.diffusion import Diffusion
from tiny_diffusion.core.samplers import log_snr
from tiny_diffusion.train import train

# T = 1000 linear (Ho et al.'s schedule, lambda from -5.06 to 4.61): one epoch of a small model
RUN = dict(dataset="moons", n_points=256, batch_size=256, epochs=1, hidden_size=16, hidden_layers=1, emb_size=8,
           frames=1, frame_points=50, device="cpu")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("fig") / "run"
    train(TrainConfig.from_dict(RUN), out, progress=False)
    return out


def parse_titles(titles: list[str]) -> tuple[list[int], list[float]]:
    """(t, lambda) of titles 't = 700, lambda = -2.5' (any separator between the two)."""
    found = [re.fullmatch(r"t = (\d+)\W+lambda = (\S+)", t) for t in titles]
    assert all(found), titles
    return [int(m[1]) for m in found], [float(m[2]) for m in found]


def assert_log_snr_spaced(titles: list[str], alpha_bar: np.ndarray, panels: int):
    """x_T first, x_0 last, and between them panels evenly spaced in lambda from max(lambda_T, SHAPE_FROM) to
    min(lambda_1, SHAPE_UNTIL) (each the step nearest its lambda), each title's lambda the one of its t."""
    ts, lams = parse_titles(titles)
    T, lam = len(alpha_bar), log_snr(alpha_bar)
    assert len(ts) == panels and ts[0] == T and ts[-1] == 0 and lams[-1] == np.inf
    assert lams[:-1] == pytest.approx([round(lam[t - 1], 1) for t in ts[:-1]], abs=0.051)
    low = max(lam[-1], figures.SHAPE_FROM)
    spaced = ts[:-1] if low == lam[-1] else ts[1:-1]  # x_T is one of them when lambda_T is above SHAPE_FROM
    targets = np.linspace(low, min(lam[0], figures.SHAPE_UNTIL), len(spaced))
    assert spaced == [int(np.abs(lam - v).argmin()) + 1 for v in targets]  # the steps nearest to even lambdas


def test_plot_reverse_spaces_panels_in_log_snr(run_dir, tmp_path, monkeypatch):
    shown = []
    monkeypatch.setattr(plots, "grid", lambda panels, path, **kw: shown.extend(title for title, _ in panels))
    assert main(["plot", "reverse", str(run_dir), "--n", "20", "--out", str(tmp_path / "r.png")]) == 0
    alpha_bar = Diffusion.from_config(runs.run_config(run_dir)).alpha_bar.double().numpy()
    assert_log_snr_spaced(shown, alpha_bar, 10)
    ts, lams = parse_titles(shown)
    assert sum(lam < figures.SHAPE_FROM for lam in lams) == 1  # one panel of noise (x_T), not nine
    assert sum(t < 200 for t in ts) >= 5  # half the panels where the dino's detail forms


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
@pytest.mark.parametrize("T, panels", [(1000, 10), (1000, 2), (50, 5), (8, 3)])
def test_reverse_columns_cover_both_ends_in_log_snr(schedule, T, panels):
    cfg = TrainConfig(timesteps=T, schedule=schedule)
    alpha_bar = Diffusion.from_config(cfg).alpha_bar.double().numpy()
    cols = figures.reverse_columns(alpha_bar, panels)
    assert cols[0] == 0 and cols[-1] == T and np.all(np.diff(cols) > 0) and len(cols) <= panels
    if T >= 50:
        assert_log_snr_spaced([figures.step_title(T - c, alpha_bar) for c in cols], alpha_bar, panels)
    assert figures.reverse_columns(alpha_bar, 1).tolist() == [T]  # one panel: what the model makes
    assert figures.reverse_columns(alpha_bar, T + 5).tolist() == list(range(T + 1))


def gif_durations(path) -> list[int]:
    with Image.open(path) as im:
        durations = []
        for i in range(im.n_frames):
            im.seek(i)
            durations.append(im.info["duration"])
    return durations


def test_reverse_animation_spaces_frames_in_log_snr_and_holds_x0(run_dir, tmp_path, monkeypatch):
    real, shown = plots.animate, []

    def animate(frames, path, titles, **kw):
        shown.extend(titles)
        return real(frames, path, titles, **kw)

    monkeypatch.setattr(plots, "animate", animate)
    assert main(["animate", str(run_dir), "--reverse", "--n", "20"]) == 0
    durations = gif_durations(run_dir / "reverse.gif")
    ts, lams = parse_titles(shown)
    assert ts[0] == 1000 and ts[-1] == 0 and len(durations) == len(ts) > 80
    assert sum(lam < figures.SHAPE_FROM for lam in lams) == 1
    assert durations[-1] == 1000 * figures.HOLD_LAST and len(set(durations[:-1])) == 1


def fake_training(run_dir, tmp_path, frames: np.ndarray):
    """A copy of the run's folder whose frames.npy holds `frames`, one snapshot per epoch."""
    out = tmp_path / "snapshots"
    out.mkdir()
    shutil.copy(run_dir / runs.CONFIG, out / runs.CONFIG)
    np.save(out / runs.FRAMES, frames)
    (out / runs.QUALITY).write_text(json.dumps({"frame_epochs": list(range(1, len(frames) + 1))}))
    return out


def red_pixels(path, frame: int) -> int:
    with Image.open(path) as im:
        im.seek(frame)
        rgb = np.asarray(im.convert("RGB")).astype(int)
    return int(((rgb[..., 0] > 150) & (rgb[..., 1] < 100) & (rgb[..., 2] < 100)).sum())


def test_training_animation_shows_far_points_at_the_edge_and_lasts(run_dir, tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    far = rng.normal(0, 300, (100, 2))  # an epoch-1 model's samples: hundreds of units out
    far[:10] = rng.normal(0, 1, (10, 2))
    frames = np.stack([far] + [rng.normal(0, 1, (100, 2)) for _ in range(19)]).astype(np.float32)
    out = fake_training(run_dir, tmp_path, frames)
    real, titles = plots._scatter_ax, []

    def scatter_ax(ax, pts, limit=plots.LIMIT, title=None, size=2.0):
        titles.append(title)
        return real(ax, pts, limit, title, size)

    monkeypatch.setattr(plots, "_scatter_ax", scatter_ax)
    assert main(["animate", str(out)]) == 0
    gif = out / "animation.gif"
    assert red_pixels(gif, 0) > 50 and red_pixels(gif, 1) == 0  # the far points, at the border
    n_out = int((np.abs(far) > plots.LIMIT).any(axis=1).sum())
    assert titles[0] == f"epoch 1\n{n_out} of 100 points beyond the axes, shown at the edge"
    assert titles[1] == "epoch 2"
    durations = gif_durations(gif)
    assert durations[-1] == 1000 * figures.HOLD_LAST  # the trained model's samples stay up
    assert sum(durations) >= 1000 * figures.PLAY_SECONDS  # 20 snapshots play in seconds, not in 2
    assert main(["animate", str(out), "--fps", "10", "--out", str(tmp_path / "fast.gif")]) == 0
    assert gif_durations(tmp_path / "fast.gif")[:-1] == [100] * 19  # --fps still rules


@pytest.mark.parametrize("frames, fps", [(2, 1), (10, 2), (20, 4), (100, 10), (1000, 10)])
def test_default_fps_plays_the_frames_in_seconds(frames, fps):
    assert figures.default_fps(frames) == fps


def _panels(monkeypatch) -> list:
    """The (title, points) panels `plot reverse` of points draws."""
    shown = []
    monkeypatch.setattr(plots, "grid", lambda panels, path, **kw: shown.extend(panels))
    return shown


def test_points_default_reverse_figure_is_every_ancestral_step(run_dir, tmp_path, monkeypatch):
    """Unchanged by the sampling flags: without them the panels are states of the full ancestral trajectory."""
    from tiny_diffusion.sampling import trajectory

    shown = _panels(monkeypatch)
    assert main(["plot", "reverse", str(run_dir), "--n", "20", "--seed", "3", "--out", str(tmp_path / "r.png")]) == 0
    _, model, diffusion = runs.load_run(run_dir)
    states = list(trajectory(model, diffusion, 20, 3))  # ddpm, all T steps: states[c] is x_{T-c}
    ts, _ = parse_titles([title for title, _ in shown])
    assert len(states) == diffusion.T + 1 and len(shown) == 10
    for t, (_, points) in zip(ts, shown):
        assert np.array_equal(points, states[diffusion.T - t].numpy())


def test_plot_reverse_honours_the_sampling_flags(run_dir, tmp_path, monkeypatch, capsys):
    import torch

    from tiny_diffusion.sampling import sample
    from tiny_diffusion.core.samplers import timesteps

    threads = []
    real = figures.sampling_trajectory
    monkeypatch.setattr(figures, "sampling_trajectory", lambda *a, **kw: threads.append(torch.get_num_threads())
                        or real(*a, **kw))
    shown = _panels(monkeypatch)
    assert main(["plot", "reverse", str(run_dir), "--n", "20", "--sampler", "ddim", "--steps", "5", "--spacing",
                 "trailing", "--threads", "2", "--out", str(tmp_path / "r.png")]) == 0
    assert "(ddim, 5 steps, trailing, seed 0)" in capsys.readouterr().out
    _, model, diffusion = runs.load_run(run_dir)
    ts, _ = parse_titles([title for title, _ in shown])
    assert ts == [t + 1 for t in timesteps(diffusion.T, 5, "trailing")] + [0]  # all 6 states: 10 panels > 6
    assert np.array_equal(shown[-1][1], sample(model, diffusion, 20, 0, sampler="ddim", steps=5,
                                                spacing="trailing").numpy())
    assert threads == [2]


def test_reverse_figures_show_progress_on_a_terminal(run_dir, tmp_path, monkeypatch, capsys):
    import sys

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert main(["plot", "reverse", str(run_dir), "--n", "5", "--steps", "4", "--out", str(tmp_path / "r.png")]) == 0
    assert "sampling: " in capsys.readouterr().err
    assert main(["animate", str(run_dir), "--reverse", "--n", "5", "--steps", "4", "--out", str(tmp_path / "r.gif")])\
        == 0
    err = capsys.readouterr().err
    assert "sampling: " in err and "0/5 [" in err  # x_T and the 4 steps' states


def test_animate_reverse_honours_the_sampling_flags(run_dir, tmp_path, monkeypatch, capsys):
    real, shown = plots.animate, []
    monkeypatch.setattr(plots, "animate", lambda frames, path, titles, **kw: shown.extend(titles)
                        or real(frames, path, titles, **kw))
    assert main(["animate", str(run_dir), "--reverse", "--n", "5", "--sampler", "dpm++", "--steps", "7",
                 "--out", str(tmp_path / "r.gif")]) == 0
    assert "dpm++, 7 steps" in capsys.readouterr().out and len(shown) == 8 and parse_titles(shown)[0][-1] == 0


@pytest.mark.parametrize("argv, message", [
    (["animate", "RUN", "--steps", "5"], "--steps: apply to --reverse"),
    (["animate", "RUN", "--sampler", "ddim", "--class", "a"], "--class, --sampler: apply to --reverse"),
    (["plot", "forward", "--sampler", "ddim", "--out", "OUT"], "samples nothing; drop --sampler"),
])
def test_sampling_flags_where_nothing_is_sampled_are_one_line(run_dir, tmp_path, capsys, argv, message):
    argv = [str(run_dir) if a == "RUN" else str(tmp_path / "f.png") if a == "OUT" else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_data_pixels_counts_the_data_and_not_the_axes(tmp_path):
    """tests.helpers.data_pixels, which the figure tests use: nothing for a figure of axes, ticks, title, grid and a
    black reference line; the points of a scatter plot, more of them for more points."""
    from tests.helpers import DRAWN, data_pixels

    plt = plots._plt()
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.set_title("axes only")
    ax.grid(alpha=0.3)
    ax.axhline(0.5, color="k", ls="--")
    fig.savefig(tmp_path / "axes.png", dpi=100)
    plt.close(fig)
    assert data_pixels(tmp_path / "axes.png") == 0
    pts = np.random.default_rng(0).normal(size=(400, 2))
    plots.scatter(pts[:40], tmp_path / "few.png")  # about 5 pixels each
    plots.scatter(pts, tmp_path / "many.png")
    assert DRAWN < data_pixels(tmp_path / "few.png") < data_pixels(tmp_path / "many.png")
