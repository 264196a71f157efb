"""The sampling flags of `tiny-diffusion sample` and the quality-vs-NFE sweep of `evaluate`."""

import csv

import numpy as np
import pytest

from tiny_diffusion.cli import main
from tiny_diffusion.config import TrainConfig


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from tiny_diffusion.train import train

    out = tmp_path_factory.mktemp("runs") / "tiny"
    cfg = TrainConfig.from_dict({"timesteps": 50, "hidden_size": 16, "hidden_layers": 1, "emb_size": 8, "epochs": 2,
                                 "n_points": 512, "batch_size": 256, "frames": 0, "frame_points": 200,
                                 "device": "cpu", "terminal_alpha_bar": 1e-3})
    train(cfg, out, progress=False)
    return out


@pytest.mark.parametrize("flags", [["--sampler", "ddpm", "--steps", "10"], ["--sampler", "ddim", "--eta", "0.3"],
                                   ["--sampler", "dpm++", "--steps", "5", "--spacing", "logsnr"],
                                   ["--sampler", "ddim", "--steps", "7", "--clip", "4"],
                                   ["--sampler", "dpm++", "--steps", "5", "--spacing", "logsnr", "--lambda-min", "-2"]])
def test_sample_with_each_sampler(run_dir, tmp_path, flags):
    out = tmp_path / "x.npy"
    assert main(["sample", str(run_dir), "--n", "30", "--out", str(out), "--device", "cpu", *flags]) == 0
    x = np.load(out)
    assert x.shape == (30, 2) and np.isfinite(x).all()
    if "--clip" in flags:
        assert np.abs(x).max() <= 4


def test_sample_is_batch_size_independent_through_the_cli(run_dir, tmp_path):
    for n in (5, 40):
        assert main(["sample", str(run_dir), "--n", str(n), "--out", str(tmp_path / f"{n}.npy"), "--device", "cpu",
                     "--sampler", "ddim", "--eta", "1", "--steps", "20", "--seed", "3"]) == 0
    assert np.array_equal(np.load(tmp_path / "5.npy"), np.load(tmp_path / "40.npy")[:5])


@pytest.mark.parametrize("flags,message", [
    (["--steps", "51"], "only 50 timesteps"),
    (["--sampler", "dpm++", "--eta", "0.5"], "only the ddim sampler takes eta"),
    (["--sampler", "euler"], "not one of ddpm, ddim, dpm++"),
    (["--steps", "0"], "must be positive"),
    (["--steps", "5,10"], "one --sampler and one --steps"),
    (["--sampler", "ddim", "--eta", "-1"], "a number >= 0"),
    (["--clip", "0"], "--clip 0.0: must be a positive number"),
    (["--lambda-min", "9"], "--lambda-min 9.0: must be a finite number up to the run's largest log-SNR"),
    (["--lambda-min", "nan"], "must be a finite number"),
    (["--steps", "40", "--lambda-min", "0"], "timesteps have log-SNR lambda >= --lambda-min 0.0; use --steps"),
])
def test_bad_sampling_flags_exit_2_with_one_line(run_dir, tmp_path, capsys, flags, message):
    assert main(["sample", str(run_dir), "--out", str(tmp_path / "x.csv"), "--device", "cpu", *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err


def test_sample_refuses_a_file_type_points_cannot_be_written_as_naming_those_it_writes(run_dir, tmp_path, capsys):
    assert main(["sample", str(run_dir), "--out", str(tmp_path / "x.gif")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "x.gif: unsupported file type; use FILE.csv (header x,y), FILE.npy or FILE.png (a scatter)" in err
    assert not any(tmp_path.iterdir())


def _quality_by_definition(x, refs) -> tuple[float, float, float]:
    """Energy distance, precision (k = 3) and coverage (k = 5) from their papers' definitions with scipy's
    distances, averaged over the reference sets: a second implementation beside eval/points.py's."""
    from scipy.spatial.distance import cdist

    scores = []
    for r in refs:
        radius = np.sort(cdist(r, r), axis=1)  # column 0: each real point itself
        scores.append((2 * cdist(x, r).mean() - cdist(x, x).mean() - cdist(r, r).mean(),
                       (cdist(x, r) <= radius[:, 3][None, :]).any(axis=1).mean(),
                       (cdist(r, x) <= radius[:, 5][:, None]).any(axis=1).mean()))
    return tuple(np.mean(scores, axis=0))


def test_evaluate_sweeps_steps_and_writes_csv_and_figure(run_dir, tmp_path, capsys, monkeypatch):
    from tests.helpers import assert_data_drawn, data_pixels
    from tiny_diffusion.data import load_dataset
    from tiny_diffusion.eval import steps_curve
    from tiny_diffusion.eval.points import data_floor

    csv_path, fig = tmp_path / "curve.csv", tmp_path / "curve.png"
    assert main(["evaluate", str(run_dir), "--steps", "2,5,50", "--n", "100", "--device", "cpu",
                 "--csv", str(csv_path), "--figure", str(fig)]) == 0
    rows = list(csv.DictReader(csv_path.open()))
    assert [(r["sampler"], int(r["nfe"])) for r in rows] == [(s, k) for s in ("ddpm", "ddim", "dpm++")
                                                             for k in (2, 5, 50)]
    # each 5-step row scores what `sample` draws with that sampler from train's final seed (1234), against 3 fresh
    # draws of 100 true points (seeds 10000, 10001, 10002), the numbers computed here from their definitions
    refs = [load_dataset("dino", 100, seed) for seed in (10_000, 10_001, 10_002)]
    for r in rows[1::3]:
        out = tmp_path / f"{r['sampler']}.npy"
        assert main(["sample", str(run_dir), "--n", "100", "--seed", "1234", "--sampler", r["sampler"], "--steps", "5",
                     "--device", "cpu", "--out", str(out)]) == 0
        expected = _quality_by_definition(np.load(out).astype(np.float64), refs)
        assert tuple(float(r[k]) for k in ("energy", "precision", "coverage")) == pytest.approx(expected), r
    assert len({r["energy"] for r in rows}) == len(rows)  # nine different sample sets
    # the figure shows the curves: more coloured pixels than the same figure with each curve cut to its first point
    # (the legend and one marker per curve: what a figure of axes and legend alone stays below)
    from matplotlib.axes import Axes

    real_plot, blank = Axes.plot, tmp_path / "blank.png"
    monkeypatch.setattr(Axes, "plot", lambda ax, x, y, **style: real_plot(ax, x[:1], y[:1], **style))
    steps_curve.plot([{**r, "nfe": int(r["nfe"]), **{k: float(r[k]) for k in ("energy", "precision", "coverage")}}
                      for r in rows], data_floor("dino", 100), blank)
    assert_data_drawn(fig, blank=data_pixels(blank))
    assert "data floor" in capsys.readouterr().out


def test_lambda_min_moves_the_start_and_is_recorded_in_the_curve(run_dir, tmp_path):
    paths = [tmp_path / "all.npy", tmp_path / "clipped.npy"]
    flags = ["--n", "30", "--device", "cpu", "--sampler", "dpm++", "--steps", "5", "--spacing", "logsnr"]
    assert main(["sample", str(run_dir), "--out", str(paths[0]), *flags]) == 0
    assert main(["sample", str(run_dir), "--out", str(paths[1]), *flags, "--lambda-min", "-1"]) == 0
    assert not np.allclose(np.load(paths[0]), np.load(paths[1]))
    csv_path = tmp_path / "c.csv"
    assert main(["evaluate", str(run_dir), "--steps", "5,10", "--sampler", "dpm++", "--n", "100", "--device", "cpu",
                 "--lambda-min", "-1", "--csv", str(csv_path), "--figure", str(tmp_path / "c.png")]) == 0
    assert [r["lambda_min"] for r in csv.DictReader(csv_path.open())] == ["-1.0", "-1.0"]
    assert main(["evaluate", str(run_dir), "--steps", "5,45", "--lambda-min", "0", "--n", "100",
                 "--device", "cpu", "--csv", str(csv_path), "--figure", str(tmp_path / "c.png")]) == 2


def test_evaluate_single_sampler_and_file_target_errors(run_dir, tmp_path, capsys):
    assert main(["evaluate", str(run_dir), "--sampler", "dpm++", "--steps", "5", "--n", "100",
                 "--device", "cpu"]) == 0
    assert "dpm++, 5 steps" in capsys.readouterr().out
    pts = tmp_path / "p.csv"
    pts.write_text("x,y\n0,0\n1,1\n")
    assert main(["evaluate", str(pts), "--steps", "5"]) == 2
    assert "need a run folder" in capsys.readouterr().err


def test_reverse_trajectory_ends_at_the_sampled_points(run_dir):
    from tiny_diffusion.viz.figures import sampling_trajectory
    from tiny_diffusion.runs import load_run
    from tiny_diffusion.sampling import sample

    _, model, diffusion = load_run(run_dir)
    traj = sampling_trajectory(model, diffusion, 20, 4, "cpu")
    assert traj.shape == (51, 20, 2)
    assert np.array_equal(traj[-1], sample(model, diffusion, 20, 4).numpy())


def test_cli_name_lists_mirror_the_library():
    from tiny_diffusion.cli import SAMPLER_NAMES, SPACING_NAMES
    from tiny_diffusion.core.samplers import SAMPLERS, SPACINGS

    assert SAMPLER_NAMES == tuple(SAMPLERS) and SPACING_NAMES == SPACINGS


def _model(run_dir):
    from tiny_diffusion.runs import load_run

    _, model, diffusion = load_run(run_dir)
    return model, diffusion


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "dpm++"])
def test_few_steps_without_grid_flags_take_the_measured_grid(run_dir, tmp_path, capsys, sampler):
    """`sample --steps 10` with no --spacing / --lambda-min samples exactly as with the measured grid named, and
    says so; an explicit --spacing trailing (diffusers') is honoured."""
    from tiny_diffusion.sampling import FEW_STEP_LAMBDA_MIN, sample

    lam = FEW_STEP_LAMBDA_MIN[sampler]
    flags = ["--n", "40", "--device", "cpu", "--sampler", sampler, "--steps", "10"]
    grids = {"default": [], "named": ["--spacing", "logsnr", "--lambda-min", str(lam)],
             "trailing": ["--spacing", "trailing"]}
    x = {}
    for name, extra in grids.items():
        assert main(["sample", str(run_dir), "--out", str(tmp_path / f"{name}.npy"), *flags, *extra]) == 0
        x[name] = np.load(tmp_path / f"{name}.npy")
    out = capsys.readouterr().out
    assert out.count(f"({sampler}, 10 steps, logsnr from lambda {lam:g}, seed 0)") == 2, out
    assert f"({sampler}, 10 steps, trailing, seed 0)" in out
    assert np.array_equal(x["default"], x["named"]) and not np.allclose(x["default"], x["trailing"])
    model, diffusion = _model(run_dir)
    assert np.array_equal(x["trailing"], sample(model, diffusion, 40, 0, sampler=sampler, steps=10, spacing="trailing"))


def test_evaluate_and_its_steps_curve_use_and_record_the_default_grid(run_dir, tmp_path, capsys):
    from tiny_diffusion.sampling import FEW_STEP_LAMBDA_MIN

    lam = FEW_STEP_LAMBDA_MIN["dpm++"]
    base = ["--n", "100", "--device", "cpu", "--sampler", "dpm++"]
    assert main(["evaluate", str(run_dir), *base, "--steps", "10"]) == 0
    single = capsys.readouterr().out
    assert f"(dpm++, 10 steps, logsnr from lambda {lam:g}, seed 1234)" in single, single
    csv_path = tmp_path / "c.csv"
    assert main(["evaluate", str(run_dir), *base, "--steps", "10,50", "--csv", str(csv_path),
                 "--figure", str(tmp_path / "c.png")]) == 0
    rows = list(csv.DictReader(csv_path.open()))
    assert [(r["steps"], r["spacing"], r["lambda_min"]) for r in rows] == [("10", "logsnr", str(lam)),
                                                                          ("50", "trailing", "")]
    # the curve's 10-step point is the single run's samples (same grid, seed and n): the same energy
    assert f"energy {float(rows[0]['energy']):.4f}" in single
    assert main(["evaluate", str(run_dir), *base, "--steps", "10,50", "--spacing", "trailing", "--csv",
                 str(csv_path), "--figure", str(tmp_path / "c.png")]) == 0
    assert [r["spacing"] for r in csv.DictReader(csv_path.open())] == ["trailing", "trailing"]


def test_evaluate_nll_prints_both_numbers_as_nlls(run_dir, capsys):
    from tiny_diffusion.eval.likelihood import held_out_likelihood

    assert main(["evaluate", str(run_dir), "--nll", "--n", "100", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    model, diffusion = _model(run_dir)
    lik = held_out_likelihood(model, diffusion, "dino", 100)
    assert (f"probability-flow ODE {lik['nll']:.4f} (its exact NLL); ancestral DDPM <= {lik['elbo']:.4f} (the -ELBO"
            in out), out
