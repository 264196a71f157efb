"""Many processes and one fast GPU step, on the CPU: gloo ranks train the one-process model, rank 0 alone
writes, resume and sampling under several ranks, a lost rank stops the others; the CUDA-graph step's
plumbing against the eager loop; the flags' errors.

The default tests start the ranks by forking this process (env:// rendezvous, exactly torchrun's
environment variables) so that no rank pays torch's import again; the slow ones run real `torchrun`."""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import SRC
from tiny_diffusion import fileio, runs
from tiny_diffusion.cli import main
from tiny_diffusion.config import TrainConfig
from tiny_diffusion.train import train

TINY = dict(dataset="moons", n_points=512, batch_size=128, epochs=3, timesteps=20, terminal_alpha_bar=1e-4,
            hidden_size=16, hidden_layers=1,
            emb_size=8, frames=2, frame_points=64, checkpoint_every=1, device="cpu")
TOL = 1e-4


def flags(values: dict) -> list[str]:
    return [a for k, v in values.items() for a in (f"--{k.replace('_', '-')}", str(v))]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(argv: list[str], tmp_path: Path, n: int = 2, setup=None, timeout: float = 120) -> list[tuple[int, str]]:
    """`tiny-diffusion ARGV` as n ranks of one process group, forked from this process with torchrun's
    environment; setup(rank) runs first in each. [(exit code, stdout + stderr)] per rank."""
    ctx, port = multiprocessing.get_context("fork"), _free_port()

    def rank_main(rank: int) -> None:
        os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(n), LOCAL_WORLD_SIZE=str(n),
                          MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        sys.stdout = open(tmp_path / f"rank{rank}.out", "w")
        sys.stderr = open(tmp_path / f"rank{rank}.err", "w")
        os.dup2(sys.stderr.fileno(), 2)
        code = 1
        try:
            if setup is not None:
                setup(rank)
            code = main(argv)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)

    procs = [ctx.Process(target=rank_main, args=(r,)) for r in range(n)]
    for p in procs:
        p.start()
    deadline = time.monotonic() + timeout
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
    for p in procs:
        if p.is_alive():
            p.kill()
            p.join()
    return [(p.exitcode, (tmp_path / f"rank{r}.out").read_text() + (tmp_path / f"rank{r}.err").read_text())
            for r, p in enumerate(procs)]


def weights(run_dir: Path) -> dict:
    state = torch.load(run_dir / runs.CHECKPOINT, weights_only=True)
    return {**{f"model.{k}": v for k, v in state["model"].items()},
            **{f"ema.{k}": v for k, v in (state["ema"] or {}).items()}}


def assert_close_runs(a: Path, b: Path, tol: float = TOL) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    worst = max((wa[k] - wb[k]).abs().max().item() for k in wa)
    assert worst <= tol, f"weights differ by {worst:.2e}"
    la, lb = ([float(r["loss"]) for r in csv.DictReader(open(d / runs.METRICS))] for d in (a, b))
    assert np.allclose(la, lb, rtol=1e-4, atol=1e-6)


def no_writes(rank: int) -> None:
    """On every rank but 0, any attempt to write a run file fails loudly."""
    if rank == 0:
        return

    def refuse(*args, **kwargs):
        raise AssertionError(f"rank {rank} tried to write")

    for name in ("atomic_write", "write_json", "write_csv"):
        setattr(fileio, name, refuse)
    for name in ("new_run_dir", "save_checkpoint"):
        setattr(runs, name, refuse)


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    out = tmp_path_factory.mktemp("one") / "run"
    train(TrainConfig.from_dict(TINY), out, progress=False)
    return out


def test_two_ranks_train_the_one_process_model_and_rank_0_alone_writes(one_process, tmp_path):
    parent = tmp_path / "runs"
    results = launch(["train", *flags(TINY), "--out", str(parent / "two"), "--quiet"], tmp_path, setup=no_writes)
    assert [code for code, _ in results] == [0, 0], results
    assert [p.name for p in parent.iterdir()] == ["two"]  # exactly one run folder
    assert "run folder: " in results[0][1] and results[1][1] == ""  # rank 1 says nothing
    assert_close_runs(one_process, parent / "two")
    quality = json.loads((parent / "two" / runs.QUALITY).read_text())
    assert quality["world_size"] == 2 and quality["cuda_graphs"] is False
    assert json.loads((parent / "two" / runs.CONFIG).read_text()) == TrainConfig.from_dict({**TINY, "sample_shape": "2"}).to_dict()
    assert torch.load(parent / "two" / runs.CHECKPOINT, weights_only=True)["world_size"] == 2


def test_a_stop_signal_under_two_ranks_checkpoints_and_resume_continues(one_process, tmp_path):
    out = tmp_path / "run"

    def signal_rank_0_at_first_snapshot(rank):
        from tiny_diffusion.train import hooks

        real = hooks.sample
        if rank == 0:
            def sample(*args, **kwargs):
                signal.raise_signal(signal.SIGTERM)
                return real(*args, **kwargs)

            hooks.sample = sample

    results = launch(["train", *flags(TINY), "--out", str(out), "--quiet"], tmp_path, setup=signal_rank_0_at_first_snapshot)
    assert [code for code, _ in results] == [128 + signal.SIGTERM] * 2, results
    assert "--resume" in results[0][1]
    state = torch.load(out / runs.CHECKPOINT, weights_only=True)
    assert (state["epoch"], state["batch"]) == (1, 4)  # the ranks agreed at the end of the next epoch
    assert not runs.is_finished(out)
    results = launch(["train", "--resume", str(out), "--quiet"], tmp_path)
    assert [code for code, _ in results] == [0, 0], results
    assert_close_runs(one_process, out)
    assert json.loads((out / runs.QUALITY).read_text())["world_size"] == 2


def test_a_one_process_run_stopped_mid_epoch_resumes_under_two_ranks(one_process, tmp_path, monkeypatch):
    from tiny_diffusion.errors import TrainingStopped
    from tiny_diffusion.train import hooks

    real = hooks.sample

    def sample(*args, **kwargs):
        signal.raise_signal(signal.SIGTERM)
        return real(*args, **kwargs)

    monkeypatch.setattr(hooks, "sample", sample)
    out = tmp_path / "run"
    with pytest.raises(TrainingStopped):
        train(TrainConfig.from_dict(TINY), out, progress=False)
    monkeypatch.undo()
    state = torch.load(out / runs.CHECKPOINT, weights_only=True)
    # a stop during the first snapshot checkpoints the position before it (issue 26): resuming takes it first
    assert (state["epoch"], state["batch"], state["world_size"]) == (0, 4, 1)
    results = launch(["train", "--resume", str(out), "--quiet"], tmp_path)
    assert [code for code, _ in results] == [0, 0], results
    assert_close_runs(one_process, out)


def test_a_lost_rank_stops_the_others_with_one_clear_line(tmp_path):
    def crash_rank_1(rank):
        from tiny_diffusion.train import step

        real, calls = step.TrainStep.__call__, []
        if rank == 1:
            def call(self, *args):
                calls.append(1)
                if len(calls) == 3:
                    os._exit(3)
                return real(self, *args)

            step.TrainStep.__call__ = call

    start = time.monotonic()
    results = launch(["train", *flags(TINY), "--out", str(tmp_path / "run"), "--quiet"], tmp_path, setup=crash_rank_1)
    assert results[1][0] == 3
    assert results[0][0] == 1
    assert "rank 0 of 2: lost contact with another process" in results[0][1]
    assert "Traceback" not in results[0][1]
    assert time.monotonic() - start < 60
    assert not runs.is_finished(tmp_path / "run")


def test_batch_not_split_evenly_is_one_line_on_every_rank(tmp_path):
    results = launch(["train", *flags({**TINY, "batch_size": 127}), "--out", str(tmp_path / "run")], tmp_path)
    assert [code for code, _ in results] == [2, 2]
    assert results[0][1].strip().endswith("use a multiple of 2") and results[0][1].count("\n") == 1
    assert results[1][1].startswith("rank 1: ")
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """32 8x8 grayscale images of a bar on the left or on the right; no class folders, so no classifier to train."""
    from PIL import Image

    root = tmp_path_factory.mktemp("imgs")
    for i in range(32):
        img = np.random.default_rng(i).integers(0, 40, (8, 8))
        img[:, [1, 2] if i % 2 else [5, 6]] = 230
        Image.fromarray(img.astype(np.uint8), mode="L").save(root / f"{i}.png")
    return root


def test_two_ranks_train_the_one_process_image_model(image_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("TINY_DIFFUSION_DATA", str(tmp_path / "cache"))  # decoded folder and classifier, shared
    values = dict(dataset=str(image_folder), base_channels=4, channel_mult="1,2", timesteps=50, batch_size=8,
                  kimg=0.064, flip="on", frames=1, frame_points=4, eval_n=8, eval_steps=2, frame_steps=2, device="cpu")
    assert main(["train", *flags(values), "--out", str(tmp_path / "one"), "--quiet"]) == 0
    results = launch(["train", *flags(values), "--out", str(tmp_path / "two"), "--quiet"], tmp_path, setup=no_writes)
    assert [code for code, _ in results] == [0, 0], results
    assert_close_runs(tmp_path / "one", tmp_path / "two")
    assert json.loads((tmp_path / "two" / runs.QUALITY).read_text())["world_size"] == 2


def test_sampling_splits_the_seeds_and_gathers_what_one_process_draws(one_process, tmp_path):
    assert main(["sample", str(one_process), "--n", "37", "--seed", "5", "--out", str(tmp_path / "one.npy")]) == 0
    results = launch(["sample", str(one_process), "--n", "37", "--seed", "5", "--out", str(tmp_path / "two.npy")],
                     tmp_path, setup=no_writes)
    assert [code for code, _ in results] == [0, 0], results
    assert np.array_equal(np.load(tmp_path / "one.npy"), np.load(tmp_path / "two.npy"))


# -- real torchrun (slow: every rank imports torch again) -------------------------------------

def torchrun(args: list[str], cwd: Path, n: int = 2, **kwargs) -> subprocess.Popen | subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}",
           "-m", "tiny_diffusion", "--", *args]  # `--`: sample's --n would be taken for an abbreviation of torchrun's
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, **kwargs)


@pytest.mark.slow
def test_torchrun_two_ranks_match_one_process(one_process, tmp_path):
    r = torchrun(["train", *flags(TINY), "--quiet"], tmp_path)  # default folder: runs/moons-TIMESTAMP
    assert r.returncode == 0, r.stderr
    made = list((tmp_path / "runs").iterdir())
    assert len(made) == 1 and r.stdout.count("run folder:") == 1
    assert_close_runs(one_process, made[0])
    r = torchrun(["sample", str(made[0]), "--n", "50", "--out", str(tmp_path / "two.csv")], tmp_path)
    assert r.returncode == 0, r.stderr
    assert main(["sample", str(made[0]), "--n", "50", "--out", str(tmp_path / "one.csv")]) == 0
    assert (tmp_path / "one.csv").read_text() == (tmp_path / "two.csv").read_text()


@pytest.mark.slow
def test_torchrun_a_killed_rank_stops_the_run(tmp_path):
    """SIGKILL one worker mid-run: torchrun stops the other and names the failure; the last checkpoint stays."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "tiny_diffusion",
           "train", *flags({**TINY, "epochs": 400}), "--out", str(tmp_path / "run"), "--quiet"]
    proc = subprocess.Popen(cmd, env={**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (tmp_path / "run" / runs.CHECKPOINT).exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    victim = next(pid for pid in _children(proc.pid) if _environ(pid).get("RANK") == "1")
    os.kill(victim, signal.SIGKILL)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert "rank 0 of 2: lost contact with another process of this run" in err  # ours, one line
    assert "Signal 9 (SIGKILL)" in err  # torchrun's summary names the rank that died
    assert runs.load_checkpoint(tmp_path / "run" / runs.CHECKPOINT)["epoch"] >= 1
    assert not runs.is_finished(tmp_path / "run")


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _environ(pid: int) -> dict:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(kv.decode(errors="replace").split("=", 1) for kv in raw if b"=" in kv)
