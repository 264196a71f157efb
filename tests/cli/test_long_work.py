"""Long work says how long: sweep and reproduce print their number of runs and an estimate before they start, and
ask on a terminal when it is past an hour (never on piped input or CI; --yes skips the question)."""

import io
import sys

import pytest

from tiny_diffusion.cli import common, main
from tiny_diffusion.experiments import estimate, sweep

TINY = ["--dataset=moons", "--n-points=256", "--epochs=1", "--batch-size=128", "--timesteps=10", "--hidden-size=16",
        "--hidden-layers=1", "--emb-size=8", "--frames=2", "--frame-points=50", "--device=cpu"]


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def _huge(monkeypatch):
    """An estimate of a day, whatever this machine's speed."""
    real = estimate.sweep_estimate
    monkeypatch.setattr(estimate, "sweep_estimate", lambda pending, jobs: (86400.0, real(pending, jobs)[1]))


def test_sweep_prints_its_run_count_and_an_estimate_before_training(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    asked = []
    monkeypatch.setattr("builtins.input", lambda prompt="": asked.append(prompt) or "n")
    _huge(monkeypatch)  # past the hour, but stdin is not a terminal: no question, the sweep runs
    assert main(["sweep", "--out", str(tmp_path), "--vary", "lr=1e-2,1e-3", *TINY]) == 0
    out = capsys.readouterr().out
    first = out.splitlines()[0]
    assert first.startswith("2 runs to train: about 24.0 h (an estimate of the training alone: 512 training images in all")
    assert not asked
    assert (tmp_path / "sweep.csv").is_file()


def test_a_terminal_is_asked_past_an_hour_and_no_trains_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", _Terminal(""))
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr("builtins.input", lambda prompt="": "n")
    _huge(monkeypatch)
    assert main(["sweep", "--out", str(tmp_path), "--vary", "lr=1e-2,1e-3", *TINY]) == 1
    assert "nothing trained" in capsys.readouterr().err
    assert not list(tmp_path.glob("runs/*/*"))  # no run folder holds anything
    monkeypatch.setenv("CI", "true")  # CI never asks
    monkeypatch.setattr("builtins.input", lambda prompt="": pytest.fail("asked on CI"))
    common.announce_runs(yes=False)([sweep.make_run({"dataset": "moons", "n_points": 256, "epochs": 1}, {})], 1)
    assert "1 run to train: about 24.0 h (an estimate of the training alone: " in capsys.readouterr().out


def test_yes_skips_the_question(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "stdin", _Terminal(""))
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr("builtins.input", lambda prompt="": pytest.fail("asked despite --yes"))
    _huge(monkeypatch)
    assert main(["sweep", "--out", str(tmp_path), "--yes", *TINY]) == 0
    assert (tmp_path / "runs" / "base" / "quality.json").is_file()
