"""Runs (issue 35): a relative data path is found from any directory, an unfinished run says so, a finished run is
not extended without a word, and a setting for the other kind of data is refused."""

from __future__ import annotations

import json
import signal

import numpy as np
import pytest

from tiny_diffusion import runs
from tiny_diffusion.cli import main
from tiny_diffusion.config import TrainConfig
from tiny_diffusion.errors import TrainingStopped
from tiny_diffusion.train import train
from tests.helpers import TINY_POINTS, flags, stop_at_frame

TINY = dict(n_points=256, batch_size=64, epochs=2, timesteps=20, terminal_alpha_bar=1e-4, hidden_size=16,
            hidden_layers=1, emb_size=8, frames=2, frame_points=64, eval_n=64, eval_steps=5, device="cpu")


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


def test_a_relative_point_file_is_found_from_another_directory(tmp_path, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    xy = np.random.default_rng(0).normal(size=(256, 2))
    (a / "one.csv").write_text("x,y\n" + "".join(f"{x},{y}\n" for x, y in xy))
    monkeypatch.chdir(a)
    assert main(["train", "--dataset", "one.csv", "--out", "run", "--quiet", *flags(TINY)]) == 0
    assert json.loads((a / "run" / runs.CONFIG).read_text())["dataset"] == str(a / "one.csv")
    monkeypatch.chdir(b)
    assert main(["evaluate", str(a / "run"), "--n", "64"]) == 0  # read one.csv again, from b


def test_an_old_relative_path_still_loads_as_it_did(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert TrainConfig.from_dict({"dataset": "gone.csv"}).dataset == "gone.csv"  # no such file: named as given
    assert TrainConfig.from_dict({"dataset": "dino"}).dataset == "dino"  # a name, not a path


@pytest.fixture
def stopped(tmp_path, monkeypatch):
    """A run stopped by SIGINT at its 3rd snapshot of 4 (epoch 4 of 8)."""
    out = tmp_path / "stopped"
    stop_at_frame(monkeypatch, 3, lambda: signal.raise_signal(signal.SIGINT))
    with pytest.raises(TrainingStopped):
        train(TrainConfig.from_dict(TINY_POINTS), out, progress=False)
    monkeypatch.undo()
    return out


@pytest.mark.filterwarnings("always::UserWarning")  # printed by the CLI as one line, as a user sees it (once a process)
def test_commands_on_an_unfinished_run_say_so_in_one_line(stopped, tmp_path, capsys):
    capsys.readouterr()
    commands = [["sample", str(stopped), "--n", "8", "--out", str(tmp_path / "s.csv")],
                ["evaluate", str(stopped), "--n", "64"],
                ["export", str(stopped), "--out", str(tmp_path / "m.safetensors")],
                ["plot", "reverse", str(stopped), "--n", "50", "--out", str(tmp_path / "r.png")]]
    for argv in commands:
        assert main(argv) == 0, argv
        said = [line for line in capsys.readouterr().err.splitlines() if "unfinished" in line]
        assert len(said) == 1 and f"train --resume {stopped}" in said[0], (argv, said)
    assert main(["animate", str(stopped), "--out", str(tmp_path / "a.gif")]) == 2
    err = one_line(capsys.readouterr().err)
    assert "unfinished" in err and f"--resume {stopped}" in err and "--frames" not in err


@pytest.mark.filterwarnings("always::UserWarning")
def test_a_finished_run_is_quiet(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--quiet", *flags(TINY)]) == 0
    capsys.readouterr()
    assert main(["sample", str(out), "--n", "8", "--out", str(tmp_path / "s.csv")]) == 0
    assert "unfinished" not in capsys.readouterr().err


def test_resuming_a_finished_run_longer_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--quiet", *flags(TINY)]) == 0
    before = (out / runs.CHECKPOINT).read_bytes()
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--epochs", "4", "--quiet"]) == 2
    err = one_line(capsys.readouterr().err)
    assert "cannot be extended" in err and "--epochs 4" in err
    assert main(["train", "--resume", str(out), "--kimg", "1", "--quiet"]) == 2
    assert "--kimg 1" in one_line(capsys.readouterr().err)
    assert (out / runs.CHECKPOINT).read_bytes() == before
    assert main(["train", "--resume", str(out), "--quiet"]) == 0  # no flags: nothing to do, as before


@pytest.mark.parametrize("argv, flag", [
    (["--dataset", "moons", "--image-size", "16"], "--image-size"),
    (["--dataset", "moons", "--base-channels", "8"], "--base-channels"),
    (["--dataset", "mnist", "--hidden-size", "8"], "--hidden-size"),
    (["--dataset", "mnist", "--n-points", "100"], "--n-points"),
])
def test_a_flag_for_the_other_kind_of_data_is_refused(argv, flag, tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "run"), "--quiet", *argv]) == 2
    err = one_line(capsys.readouterr().err)
    assert flag in err and "ignored" in err
    assert not (tmp_path / "run").exists()


def test_a_toml_key_for_the_other_kind_of_data_is_refused(tmp_path, capsys):
    toml = tmp_path / "c.toml"
    toml.write_text('dataset = "moons"\nchannel_mult = "1,2"\n')
    assert main(["train", "--config", str(toml), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = one_line(capsys.readouterr().err)
    assert str(toml) in err and "channel_mult" in err
