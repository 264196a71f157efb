import os
import subprocess
import sys

import numpy as np
import pytest

from tiny_diffusion.cli import main

TINY = ["--n-points", "512", "--epochs", "2", "--batch-size", "128", "--timesteps", "20", "--hidden-size", "32",
        "--hidden-layers", "1", "--emb-size", "16", "--frames", "2", "--frame-points", "100", "--device", "cpu"]


def _run(*args):
    """The CLI as a user runs it: a fresh interpreter, captured output."""
    return subprocess.run([sys.executable, "-m", "tiny_diffusion", *args], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)


def test_help_does_not_import_torch_or_matplotlib():
    code = ("import sys\nfrom tiny_diffusion.cli import main\n"
            "for argv in (['--help'], ['train', '--help'], ['sample', '--help']):\n"
            "    try: main(argv)\n    except SystemExit: pass\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'matplotlib')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("[]")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    proc = _run("train", *TINY, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "quality of 100 samples vs dino: energy" in proc.stdout
    assert "data floor" in proc.stdout
    return out


def test_train_writes_run(run_dir):
    assert (run_dir / "checkpoint.pt").is_file() and (run_dir / "samples.png").is_file()


def test_sample_csv_and_npy_and_seed(run_dir, tmp_path, capsys):
    assert main(["sample", str(run_dir), "--n", "50", "--seed", "3", "--out", str(tmp_path / "a.csv")]) == 0
    assert main(["sample", str(run_dir), "--n", "50", "--seed", "3", "--out", str(tmp_path / "a.npy")]) == 0
    lines = (tmp_path / "a.csv").read_text().splitlines()
    assert lines[0] == "x,y" and len(lines) == 51
    from_csv = np.array([[float(v) for v in ln.split(",")] for ln in lines[1:]])
    from_npy = np.load(tmp_path / "a.npy")
    assert from_npy.shape == (50, 2) and np.allclose(from_csv, from_npy)


def test_evaluate_file_and_run(run_dir, tmp_path, capsys):
    main(["sample", str(run_dir), "--n", "100", "--out", str(tmp_path / "s.npy")])
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "s.npy"), "--dataset", "dino", "--n", "100"]) == 0
    assert main(["evaluate", str(run_dir), "--n", "100"]) == 0
    out = capsys.readouterr().out
    assert out.count("energy") == 4 and "data floor" in out


def test_plots_and_animation(run_dir, tmp_path, capsys):
    assert main(["plot", "forward", "--dataset", "moons", "--timesteps", "50", "--n", "200",
                 "--out", str(tmp_path / "f.png")]) == 0
    assert main(["plot", "reverse", str(run_dir), "--n", "200", "--out", str(tmp_path / "r.png")]) == 0
    assert main(["animate", str(run_dir), "--out", str(tmp_path / "a.gif")]) == 0
    assert main(["animate", str(run_dir), "--reverse", "--n", "100", "--out", str(tmp_path / "b.gif")]) == 0
    from PIL import Image

    for name in ("f.png", "r.png"):
        assert Image.open(tmp_path / name).size[0] > 200
    gif = Image.open(tmp_path / "a.gif")
    assert gif.n_frames == 2
    assert Image.open(tmp_path / "b.gif").n_frames == 21  # x_T ... x_0 for T = 20


def test_config_file_and_flag_override(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[train]\ndataset = "moons"\nepochs = 1\nhidden_size = 16\n')
    out = tmp_path / "run"
    assert main(["train", "--config", str(cfg), *TINY[:-6], "--epochs", "1", "--terminal-alpha-bar", "1e-4",
                 "--out", str(out), "--quiet"]) == 0  # a schedule that ends at noise: no warning
    import json

    saved = json.loads((out / "config.json").read_text())
    assert saved["dataset"] == "moons" and saved["hidden_size"] == 32 and saved["epochs"] == 1


@pytest.mark.parametrize("args, message", [
    (["train", "--dataset", "dinosaur"], "unknown dataset 'dinosaur'"),
    (["train", "--epochs", "0"], "epochs = 0 must be >= 1"),
    (["train", "--epochs", "ten"], "'ten' is not a valid int"),
    (["train", "--time-emb", "fourier"], "time_emb = 'fourier' is not one of"),
    (["train", "--hidden-size", "-4"], "hidden_size = -4 must be >= 1"),
    (["train", "--lr", "nan"], "lr = nan must be a finite number"),
    (["train", "--dataset", "missing.csv"], "missing.csv: no such file"),
    (["train", "--config", "missing.toml"], "missing.toml: no such config file"),
    (["sample", "no-such-run", "--out", "x.csv"], "no such run folder"),
    (["sample", "no-such-run", "--out", "x.txt"], "no-such-run: no such run folder"),
    (["sample", "no-such-run", "--n", "0", "--out", "x.csv"], "must be positive"),
    (["evaluate", "missing.npy"], "no such file"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_input_exits_2_with_one_line(args, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and "Traceback" not in err
    assert not any(tmp_path.iterdir())  # nothing written


def test_bad_input_in_a_fresh_process_has_no_traceback(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("x,y\n1,2\nthree,4\n")
    proc = _run("train", "--dataset", str(bad), "--out", str(tmp_path / "r"))
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "line 3" in proc.stderr and "Traceback" not in proc.stderr


def test_refuses_to_overwrite_a_run(run_dir, capsys):
    before = (run_dir / "checkpoint.pt").read_bytes()
    assert main(["train", *TINY, "--out", str(run_dir)]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert (run_dir / "checkpoint.pt").read_bytes() == before


def test_reverse_trajectory_ends_at_sample_output(run_dir):
    """The reverse figure and animation show the very samples `sample --seed` writes, bit for bit."""
    import torch

    from tiny_diffusion.viz.figures import sampling_trajectory
    from tiny_diffusion.runs import load_run
    from tiny_diffusion.sampling import sample

    cfg, model, diffusion = load_run(run_dir)
    traj = sampling_trajectory(model, diffusion, 50, 3, "cpu")
    assert traj.shape == (diffusion.T + 1, 50, 2)
    assert np.array_equal(traj[-1], sample(model, diffusion, 50, 3).numpy())
    torch.manual_seed(0)  # nothing global is used: the result does not depend on torch's global RNG
    assert np.array_equal(sampling_trajectory(model, diffusion, 50, 3, "cpu")[-1], traj[-1])


def test_the_library_shows_its_lazy_names():
    import tiny_diffusion

    assert {"train", "sample", "load_run", "TrainConfig", "load_images"} <= set(dir(tiny_diffusion))


def test_config_flags_take_the_config_keys_spelling_too(tmp_path, monkeypatch):
    import tiny_diffusion.train as train_module

    class Reached(Exception):
        """Parsing got through to train(); nothing is trained."""

    seen = {}

    def fake_train(cfg, *args, **kwargs):
        seen["cfg"] = cfg
        raise Reached

    monkeypatch.setattr(train_module, "train", fake_train)
    with pytest.raises(Reached):
        main(["train", "--hidden_size", "48", "--frame_points=99", "--out", str(tmp_path / "r")])
    assert seen["cfg"].hidden_size == 48 and seen["cfg"].frame_points == 99


def test_a_csv_with_more_columns_says_which_it_ignores(tmp_path):
    from tiny_diffusion.data import read_points

    (tmp_path / "p.csv").write_text("x,y,z\n1,2,3\n4,5,6\n")
    with pytest.warns(UserWarning, match="using columns x and y, ignoring 'z'"):
        assert read_points(tmp_path / "p.csv").tolist() == [[1, 2], [4, 5]]


@pytest.mark.parametrize("args", [
    ["plot", "forward", "--dataset", "moons", "--n", "50", "--timesteps", "10", "--out", "{file}/x.png"],
    ["plot", "forward", "--dataset", "moons", "--n", "50", "--timesteps", "10", "--out", "/proc/x.png"],
    ["sample", "{run}", "--n", "5", "--out", "{file}/x.csv"],
    ["sample", "{run}", "--n", "5", "--out", "/proc/x.csv"],
    ["export", "{run}", "--out", "{file}/m.safetensors"],
    ["animate", "{run}", "--out", "/proc/a.gif"],
    ["evaluate", "{run}", "--n", "50", "--steps", "2,3", "--figure", "{file}/f.png"],
    ["sweep", "--out", "{file}/s", "--epochs", "1", "--n-points", "64", "--vary", "lr=1e-3"],
])
def test_unwritable_outputs_exit_2_with_one_line(args, run_dir, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    argv = [a.replace("{file}", str(blocker)).replace("{run}", str(run_dir)) for a in args]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    errors = [line for line in err.splitlines() if not line.startswith("tiny-diffusion: warning:")]
    assert len(errors) == 1 and errors[0].startswith("tiny-diffusion: error:") and "Traceback" not in err


def test_datasets_lists_each_with_a_description(capsys):
    assert main(["datasets"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    names = [line.split()[0] for line in lines]
    assert {"dino", "datasaurus:star", "moons", "mnist", "cifar10"} <= set(names)
    assert all(len(line.split(maxsplit=1)) == 2 for line in lines)  # a name, then what it is
    dino = next(line for line in lines if line.startswith("dino "))
    assert "datasaurus:dino" in dino  # the alias is explained


def test_an_unknown_flag_points_to_its_commands_help(capsys):
    assert main(["train", "--bogus", "1"]) == 2
    assert "see `tiny-diffusion train --help`" in capsys.readouterr().err


def _helps(command: str | None = None) -> dict[str, str]:
    """The help text of each flag of `command` as `--help` shows it (unwrapped), or of each command (None)."""
    import argparse

    from tiny_diffusion.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    if command is None:
        return {a.dest: a.help for a in sub._choices_actions}
    return {a.option_strings[0]: a.help for a in sub.choices[command]._actions if a.option_strings}


POINT_ONLY = ("--n-points", "--hidden-size", "--hidden-layers", "--emb-size", "--time-emb", "--input-emb",
              "--input-scale")  # the point set and the MLP
IMAGE_ONLY = ("--data-dir", "--image-size", "--channels", "--flip", "--base-channels", "--channel-mult",
              "--num-res-blocks", "--attn-resolutions", "--dropout", "--eval-n")  # the image data and the U-Net


def test_help_marks_the_flags_of_points_or_images_only():
    marked = {flag: h.split(":")[0] for flag, h in _helps("train").items() if h.startswith(("points:", "images:"))}
    assert marked == {**dict.fromkeys(POINT_ONLY, "points"), **dict.fromkeys(IMAGE_ONLY, "images")}
    n = _helps("evaluate")["--n"]
    assert n.startswith("samples drawn from a run") and "eval_n for images" in n and "points per set" not in n
    commands = _helps()
    assert "classifier-FID" in commands["evaluate"] and "images" in commands["evaluate"]
    assert "--reverse" in commands["animate"]
    plot = _helps("plot")
    assert all(plot[flag].startswith("forward only") for flag in ("--timesteps", "--schedule", "--beta-start",
                                                                 "--beta-end", "--terminal-alpha-bar"))


def test_plot_reverse_refuses_flags_it_would_ignore(run_dir, tmp_path, capsys):
    assert main(["plot", "reverse", str(run_dir), "--timesteps", "50", "--schedule", "cosine", "--dataset", "moons",
                 "--out", str(tmp_path / "r.png")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "plot reverse samples the run's own model, data and schedule; drop " \
        "--timesteps, --schedule, --dataset" in err, err
    assert not (tmp_path / "r.png").exists()


def test_plot_forward_of_a_run_uses_its_data_and_schedule(run_dir, tmp_path, monkeypatch):
    from tiny_diffusion.viz import figures
    from tiny_diffusion.runs import run_config

    seen = []
    monkeypatch.setattr(figures, "forward_figure", lambda cfg, *a, **k: seen.append(cfg))
    assert main(["plot", "forward", str(run_dir), "--out", str(tmp_path / "f.png")]) == 0
    assert main(["plot", "forward", str(run_dir), "--timesteps", "7", "--out", str(tmp_path / "g.png")]) == 0
    own = run_config(run_dir)
    assert (seen[0].dataset, seen[0].timesteps, seen[0].schedule) == (own.dataset, own.timesteps, own.schedule)
    assert seen[1].timesteps == 7 and seen[1].dataset == own.dataset  # a flag changes only what it names


def _quality_lines(stdout: str) -> list[str]:
    """The numbers of the quality line and of the data floor's line."""
    return [line.split(": ", 1)[1].strip() for line in stdout.splitlines()
            if line.startswith(("quality of", "data floor"))]


def test_evaluate_a_run_repeats_the_numbers_train_printed(tmp_path):
    run = tmp_path / "run"
    trained = _run("train", *TINY, "--out", str(run))
    assert trained.returncode == 0, trained.stderr
    evaluated = _run("evaluate", str(run))
    assert evaluated.returncode == 0, evaluated.stderr
    assert len(_quality_lines(trained.stdout)) == 2
    assert _quality_lines(evaluated.stdout) == _quality_lines(trained.stdout), (trained.stdout, evaluated.stdout)
    assert "100 samples of" in evaluated.stdout and "ddpm, all 20 steps, seed 1234" in evaluated.stdout
    # other samples give other numbers, so the equality above is not for free; the data floor stays
    other = _run("evaluate", str(run), "--seed", "0")
    assert _quality_lines(other.stdout)[0] != _quality_lines(trained.stdout)[0]
    assert _quality_lines(other.stdout)[1] == _quality_lines(trained.stdout)[1]
