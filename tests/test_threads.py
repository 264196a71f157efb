"""--threads N: torch's CPU thread count for train, sample and evaluate, during the command only; 0 (the
default) leaves torch alone."""

from __future__ import annotations

import pytest
import torch

from tiny_diffusion import sampling
from tiny_diffusion.cli import main
from tiny_diffusion.config import TrainConfig
from tiny_diffusion.train import train

RUN = dict(dataset="moons", n_points=128, batch_size=128, epochs=1, hidden_size=8, hidden_layers=1, emb_size=4,
           frames=1, frame_points=10, device="cpu")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("threads") / "run"
    train(TrainConfig.from_dict(RUN), out, progress=False)
    return out


class Reached(Exception):
    """The command got as far as the work; nothing more is done."""


@pytest.fixture
def threads_at_work(monkeypatch):
    """The torch thread count when sampling (sample, evaluate) or training (train) begins; each stops there."""
    import tiny_diffusion.train as train_package

    seen = []

    def record(*args, **kwargs):
        seen.append(torch.get_num_threads())
        raise Reached

    monkeypatch.setattr(sampling, "sample", record)
    monkeypatch.setattr(train_package, "train", record)
    return seen


def test_threads_sets_torch_threads_while_the_command_runs(run_dir, tmp_path, threads_at_work):
    before = torch.get_num_threads()
    wanted = before + 1
    commands = [["sample", str(run_dir), "--n", "5", "--out", str(tmp_path / "s.npy")],
                ["evaluate", str(run_dir), "--n", "50"],
                ["train", "--dataset", "moons", "--out", str(tmp_path / "run")]]
    for argv in commands:
        with pytest.raises(Reached):
            main([*argv, "--threads", str(wanted)])
        assert torch.get_num_threads() == before  # as it was, after the command
    assert threads_at_work == [wanted] * len(commands)


def test_threads_0_leaves_torch_alone(run_dir, tmp_path, threads_at_work, monkeypatch):
    calls = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    for threads in ([], ["--threads", "0"]):
        with pytest.raises(Reached):
            main(["sample", str(run_dir), "--n", "5", "--out", str(tmp_path / "s.npy"), *threads])
    assert calls == [] and len(threads_at_work) == 2


@pytest.mark.parametrize("value", ["-1", "1025", "two", "1.5"])
def test_bad_threads_exit_2_with_one_line(value, run_dir, tmp_path, capsys):
    assert main(["sample", str(run_dir), "--out", str(tmp_path / "s.npy"), "--threads", value]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--threads" in err
    assert not (tmp_path / "s.npy").exists()


def test_threads_is_in_the_help_of_its_commands(capsys):
    for command in ("train", "sample", "evaluate"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "--threads N" in capsys.readouterr().out
