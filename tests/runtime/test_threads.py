"""--threads N: torch's CPU thread count for train, sample and evaluate, during the command only; auto (0, the
default) one thread per core other processes leave free, re-checked while training (threads.py)."""

from __future__ import annotations

import json
import os
import time

import pytest
import torch

from tiny_diffusion import sampling
from tiny_diffusion.runtime import threads
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


def _loaded(others: float):
    """A read_cpu stand-in: `others` cores busy with other processes, on the real clock, beside this one's use."""
    def read():
        wall = time.monotonic()
        own = sum(os.times()[:2])
        return threads.Reading(busy=wall * others + own, own=own, wall=wall)
    return read


@pytest.mark.parametrize("value", [[], ["--threads", "0"], ["--threads", "auto"]])
def test_auto_threads_is_the_default_and_backs_off_when_cores_are_busy(run_dir, tmp_path, threads_at_work,
                                                                        monkeypatch, value):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)  # the tests' own cap (conftest), which auto honours
    monkeypatch.setattr(threads, "usable_cores", lambda: 4)
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    before = torch.get_num_threads()
    for others, wanted in ((0.0, 4), (3.0, 1), (2.2, 2)):
        monkeypatch.setattr(threads, "read_cpu", _loaded(others))
        with pytest.raises(Reached):
            main(["sample", str(run_dir), "--n", "5", "--out", str(tmp_path / "s.npy"), *value])
        assert threads_at_work[-1] == wanted and torch.get_num_threads() == before


def test_choose_gives_one_thread_per_free_core():
    assert threads.choose(2, 0.0, images=True) == 2  # idle: every core
    assert threads.choose(2, 1.0, images=True) == 1  # one busy process on two cores
    assert threads.choose(2, 0.67, images=True) == 1  # our two threads sharing with it: still busy
    assert threads.choose(2, 0.4, images=True) == 2  # a core more than half free counts
    assert threads.choose(4, 9.0, images=True) == 1  # never fewer than one
    assert threads.choose(16, 3.0, images=True) == 13
    assert threads.choose(16, 0.0, images=False) == threads.POINT_MAX_THREADS  # the small MLP stops at 2
    assert threads.choose(2, 1.0, images=False) == 1


def test_others_busy_subtracts_our_own_use_and_counts_our_cores():
    before = threads.Reading(busy=100.0, own=5.0, wall=10.0)
    after = threads.Reading(busy=103.0, own=6.0, wall=12.0)  # 1.5 cores busy in all, 0.5 of them ours
    assert threads.others_busy(before, after, machine_cores=2, usable=2) == pytest.approx(1.0)
    assert threads.others_busy(before, after, machine_cores=8, usable=2) == pytest.approx(0.25)
    idle = threads.Reading(busy=100.5, own=5.5, wall=12.0)  # only we ran
    assert threads.others_busy(before, idle, machine_cores=2, usable=2) == 0.0


def test_auto_threads_rechecks_the_load_every_few_seconds():
    clock, busy, own, readings, set_to = [0.0], [0.0], [0.0], [], []

    def read():  # `others` cores busy over each window
        readings.append(clock[0])
        return threads.Reading(busy=busy[0], own=own[0], wall=clock[0])

    def advance(seconds: float, others: float):
        clock[0] += seconds
        busy[0] += seconds * others

    auto = threads.AutoThreads(images=True, set_threads=set_to.append, read=read, usable=2, machine_cores=2,
                               sleep=lambda s: advance(s, 0.0), clock=lambda: clock[0])
    assert auto.start() == 2 and set_to == [2]  # idle: waited MIN_WINDOW for a second reading
    n_reads = len(readings)
    advance(threads.RECHECK_SECONDS / 2, 1.0)
    auto.update()
    assert len(readings) == n_reads and set_to == [2]  # too soon: the clock alone, no reading
    advance(threads.RECHECK_SECONDS / 2, 1.0)
    auto.update()
    assert set_to == [2, 1]  # a busy process started: one thread
    advance(threads.RECHECK_SECONDS, 1.0)
    auto.update()
    assert set_to == [2, 1]  # unchanged: not set again
    advance(threads.RECHECK_SECONDS, 0.0)
    auto.update()
    assert set_to == [2, 1, 2] and auto.choices == [2, 1, 2]  # it left: both cores again


@pytest.fixture
def threads_in_steps(monkeypatch):
    """torch's thread count at each training step, under the real torch.set_num_threads (restored afterwards)."""
    from tiny_diffusion.train import step

    before, seen, real = torch.get_num_threads(), [], step.TrainStep.__call__

    def call(self, *args):
        seen.append(torch.get_num_threads())
        return real(self, *args)

    monkeypatch.setattr(step.TrainStep, "__call__", call)
    yield seen
    torch.set_num_threads(before)


def _cores(monkeypatch, n: int, others: float) -> None:
    """A machine of n cores (without the tests' OMP_NUM_THREADS cap, which auto honours) with `others` busy."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "usable_cores", lambda: n)
    monkeypatch.setattr(os, "cpu_count", lambda: n)
    monkeypatch.setattr(threads, "read_cpu", _loaded(others))


def test_train_with_auto_threads_follows_the_load(tmp_path, monkeypatch, threads_in_steps):
    _cores(monkeypatch, 2, others=2.0)  # both cores busy with other work
    train(TrainConfig.from_dict({**RUN, "frames": 0}), tmp_path / "run", progress=False, threads=0)
    assert threads_in_steps == [1] and json.loads((tmp_path / "run" / "quality.json").read_text())["threads"] == [1]
    threads_in_steps.clear()
    torch.set_num_threads(3)
    train(TrainConfig.from_dict({**RUN, "frames": 0}), tmp_path / "run2", progress=False)  # None: torch's count alone
    assert threads_in_steps == [3] and torch.get_num_threads() == 3
    assert "threads" not in json.loads((tmp_path / "run2" / "quality.json").read_text())


def test_a_points_run_caps_its_threads_on_an_idle_machine(tmp_path, monkeypatch, threads_in_steps):
    """Four idle cores: a point model trains on POINT_MAX_THREADS of them (an image model would take all four:
    test_choose_gives_one_thread_per_free_core)."""
    _cores(monkeypatch, 4, others=0.0)
    cfg = {**RUN, "epochs": 2, "frames": 0, "timesteps": 20, "terminal_alpha_bar": 1e-4}  # 20 steps: a quick final sample
    train(TrainConfig.from_dict(cfg), tmp_path / "points", progress=False, threads=0)
    assert threads_in_steps == [threads.POINT_MAX_THREADS] * 2 == [2, 2]
    assert json.loads((tmp_path / "points" / "quality.json").read_text())["threads"] == [2]


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


@pytest.mark.parametrize("env, expected", [("1", 1), ("3", 3), ("0", 4), ("x", 4), (None, 4)])
def test_auto_takes_omp_num_threads_as_its_upper_bound(env, expected, monkeypatch):
    """A user's OMP_NUM_THREADS caps auto as it caps torch's own default (and keeps a process that forks workers,
    such as the tests' torchrun ranks, on one OpenMP thread); a missing or meaningless value leaves the cores."""
    monkeypatch.setattr(threads, "usable_cores", lambda: 4)
    if env is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", env)
    idle = threads.Reading(0.0, 0.0, 0.0)
    auto = threads.AutoThreads(True, set_threads=lambda n: None, read=lambda: idle, machine_cores=4)
    assert auto.usable == expected
