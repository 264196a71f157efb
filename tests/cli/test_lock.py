"""One writer per run folder: a second `train` or `distill` into a folder another live process writes exits 2 with
one line naming that process; a lock left by a dead process is taken over."""

import socket
import subprocess
import sys

import pytest

from tiny_diffusion import runs
from tiny_diffusion.cli import main
from tests.helpers import TINY_POINTS, flags

TINY = {**TINY_POINTS, "epochs": 2, "frames": 2}


@pytest.fixture
def live():
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield p.pid
    p.kill()
    p.wait()


def test_a_second_writer_is_refused_in_one_line(tmp_path, capsys, live):
    out = tmp_path / "run"
    out.mkdir()
    (out / runs.LOCK).write_text(f"{socket.gethostname()} {live}\n")  # a train started 0.3 s before this one
    assert main(["train", "--out", str(out), "--quiet", *flags(TINY)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"pid {live} on {socket.gethostname()}" in err[0] and str(out) in err[0]
    assert not (out / runs.CONFIG).exists() and not (out / runs.CHECKPOINT).exists()
    assert main(["train", "--resume", str(out), "--quiet"]) == 2
    assert main(["distill", str(out), "--out", str(out / "s"), "--steps", "2"]) == 2  # out is not finished either


def test_a_dead_writers_lock_is_taken_over_and_given_back(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / runs.LOCK).write_text(f"{socket.gethostname()} {dead.pid}\n")
    assert main(["train", "--out", str(out), "--quiet", *flags(TINY)]) == 0
    assert runs.is_finished(out) and not (out / runs.LOCK).exists()


def test_distill_takes_its_folders_lock(tmp_path, capsys, live):
    teacher = tmp_path / "teacher"
    assert main(["train", "--out", str(teacher), "--quiet", *flags(TINY)]) == 0
    out = tmp_path / "student"
    out.mkdir()
    (out / runs.LOCK).write_text(f"{socket.gethostname()} {live}\n")
    capsys.readouterr()
    assert main(["distill", str(teacher), "--out", str(out), "--steps", "2", "--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"pid {live}" in err[0]
    (out / runs.LOCK).unlink()
    assert main(["distill", str(teacher), "--out", str(out), "--steps", "2", "--epochs", "1"]) == 0
    assert not list(out.rglob(runs.LOCK))
