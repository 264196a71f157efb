"""Never lose a run: exact resumption after a stop, a crash or kill -9; the NaN guard; safe loading."""

from __future__ import annotations

import json
import os
import pickle
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import DETERMINISTIC, SRC, TINY_POINTS, assert_same_run, metrics_rows, stop_at_frame
from tiny_diffusion import cli, fileio, runs
from tiny_diffusion.config import TrainConfig
from tiny_diffusion.core.diffusion import Diffusion
from tiny_diffusion.errors import InputError, TrainingStopped
from tiny_diffusion.train import train


def tiny(**changes) -> TrainConfig:
    return TrainConfig.from_dict({**TINY_POINTS, **changes})


def checkpoint_rows(run_dir) -> list[dict]:
    """The metrics rows the checkpoint holds, in metrics.csv's spelling."""
    rows = torch.load(Path(run_dir) / runs.CHECKPOINT, weights_only=True)["metrics"]
    return [{c: str(r[c]) for c in DETERMINISTIC} for r in rows]


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    train(tiny(), out, progress=False)
    return out


@pytest.mark.parametrize("k, sig", [(2, signal.SIGTERM), (3, signal.SIGINT)])  # snapshots after epochs 1, 3, 6, 8
def test_a_signal_stops_at_the_snapshot_and_resume_is_exact(reference_run, tmp_path, monkeypatch, k, sig):
    out = tmp_path / "run"
    stop_at_frame(monkeypatch, k, lambda: signal.raise_signal(sig))
    with pytest.raises(TrainingStopped, match=f"{sig.name}.*--resume") as e:
        train(tiny(), out, progress=False)
    assert e.value.exit_code == 128 + sig
    # stopped during the epoch's snapshot (issue 26): its 4 steps done, the snapshot taken first on resuming
    assert torch.load(out / runs.CHECKPOINT, weights_only=True)["batch"] == 4
    assert not runs.is_finished(out)
    assert metrics_rows(out) == checkpoint_rows(out) != []  # the finished epochs' rows, before the run ends
    monkeypatch.undo()
    said = []
    train(tiny(), out, progress=False, resume=True, log=said.append)
    assert runs.is_finished(out)
    assert_same_run(reference_run, out)
    # the stop and the resume name the same point: the same step and epoch numbers
    stopped_at, resumed_at = str(e.value).split(";")[0], said[0]
    assert re.findall(r"(step|epoch) (\d+)", stopped_at) == re.findall(r"(step|epoch) (\d+)", resumed_at) != []


def test_crash_resumes_from_the_last_interval_checkpoint(reference_run, tmp_path, monkeypatch):
    out = tmp_path / "run"

    def crash():
        raise MemoryError("simulated crash")

    stop_at_frame(monkeypatch, 3, crash)  # frames after epochs 1, 3, 6, 8: crash at the end of epoch 6,
    with pytest.raises(MemoryError):       # before its checkpoint: the one after epoch 4 is the last good one
        train(tiny(), out, progress=False)
    assert torch.load(out / runs.CHECKPOINT, weights_only=True)["epoch"] == 4
    assert metrics_rows(out) == checkpoint_rows(out) == metrics_rows(reference_run)[:4]  # the rows up to it
    monkeypatch.undo()
    assert cli.main(["train", "--resume", str(out), "--quiet"]) == 0
    assert_same_run(reference_run, out)
    assert cli.main(["train", "--resume", str(out), "--quiet"]) == 0  # finished: nothing to do


def test_resume_of_a_run_never_started_starts_it(reference_run, tmp_path):
    out = tmp_path / "new" / "run"
    train(tiny(), out, progress=False, resume=True)  # what a resumed sweep does per run
    assert_same_run(reference_run, out)
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    again = train(tiny(), out, progress=False, resume=True)  # finished: nothing is rewritten
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before
    assert again.quality.as_dict() == json.loads((out / runs.QUALITY).read_text())["quality"]


def test_resume_refuses_a_changed_config(reference_run, tmp_path, capsys):
    with pytest.raises(InputError, match="lr"):
        train(tiny(lr=0.5), reference_run, progress=False, resume=True)
    out = tmp_path / "run"
    (out).mkdir()
    fileio.write_json(out / runs.CONFIG, tiny().to_dict())
    assert cli.main(["train", "--resume", str(out), "--lr", "0.1"]) == 2
    assert "--lr" in capsys.readouterr().err


def test_checkpoint_holds_the_full_training_state(reference_run):
    state = runs.load_checkpoint(reference_run / runs.CHECKPOINT)  # weights_only=True inside
    assert {"model", "ema", "optimizer", "scheduler", "rng", "metrics", "frames", "config", "step"} <= set(state)
    assert {"generator", "torch_cpu", "numpy", "python"} <= set(state["rng"])
    assert len(state["metrics"]) == TINY_POINTS["epochs"] and state["frames"].shape[0] == TINY_POINTS["frames"]


# -- kill -9 at random moments ------------------------------------------------------------

def _cli(*args):
    return [sys.executable, "-m", "tiny_diffusion", *args]


def _check_files_whole(run_dir: Path):
    """Every file a reader might open is complete, whatever moment the kill hit, and metrics.csv holds the
    rows up to the last checkpoint: exactly those, or (killed between the two writes of a checkpoint, the
    metrics first) the next checkpoint's too."""
    if (run_dir / runs.CONFIG).exists():
        runs.run_config(run_dir)
    saved = []
    if (run_dir / runs.CHECKPOINT).exists():
        runs.load_checkpoint(run_dir / runs.CHECKPOINT)
        saved = checkpoint_rows(run_dir)
    if (run_dir / runs.FRAMES).exists():
        np.load(run_dir / runs.FRAMES)
    if saved or (run_dir / runs.METRICS).exists():
        rows = metrics_rows(run_dir)
        ahead = min(KILL_CFG["checkpoint_every"], KILL_CFG["epochs"] - len(saved))
        assert rows[:len(saved)] == saved and len(rows) - len(saved) in (0, ahead)


KILL_CFG = {**TINY_POINTS, "epochs": 150, "checkpoint_every": 7}


def _epochs_done(run_dir: Path) -> int:
    try:
        return torch.load(run_dir / runs.CHECKPOINT, weights_only=True)["epoch"]
    except FileNotFoundError:
        return -1


def _kill_run(tmp_path, n_kills: int, seed: int):
    """Train in subprocesses and kill -9 each at a random moment: a random epoch of the run (0 = during
    start-up, the last = while the final files are written) plus a random delay. Every file must be whole
    after each kill; resuming to the end must give the weights, metrics and frames of the same run trained
    uninterrupted (here in this process: the same torch, threads and CPU), bit for bit."""
    env = {**os.environ, "PYTHONPATH": SRC}
    flags = [a for k, v in KILL_CFG.items() for a in (f"--{k.replace('_', '-')}", str(v))] + ["--quiet"]
    ref, out, rng = tmp_path / "ref", tmp_path / "run", random.Random(seed)
    train(TrainConfig.from_dict(KILL_CFG), ref, progress=False)
    kills = []
    for target in sorted(rng.randint(0, KILL_CFG["epochs"]) for _ in range(n_kills)):
        resume = (out / runs.CONFIG).exists()
        cmd = _cli("train", "--resume", str(out), "--quiet") if resume else _cli("train", *flags, "--out", str(out))
        started = time.time_ns()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while proc.poll() is None and not ((out / runs.CONFIG).exists() and  # past start-up (imports take s)
                                           (out / runs.CONFIG).stat().st_mtime_ns >= started):
            time.sleep(0.005)
        while proc.poll() is None and _epochs_done(out) < target:
            time.sleep(0.005)
        time.sleep(rng.uniform(0, 0.2))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills.append(_epochs_done(out))
        proc.wait()
        _check_files_whole(out)
    assert len(kills) == n_kills, f"only {len(kills)} kills hit a running process"
    assert not runs.is_finished(out)
    cmd = _cli("train", "--resume", str(out), "--quiet") if (out / runs.CONFIG).exists() else \
        _cli("train", *flags, "--out", str(out))
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    print(f"killed with checkpoints at epochs {kills}")
    assert_same_run(ref, out)


def test_kill_9_twice_then_resume_is_bit_identical(tmp_path):
    _kill_run(tmp_path, n_kills=2, seed=1)


@pytest.mark.slow
def test_kill_9_ten_times_then_resume_is_bit_identical(tmp_path):
    _kill_run(tmp_path, n_kills=10, seed=2)


# -- the NaN/Inf guard ---------------------------------------------------------------------

def _poison_steps(monkeypatch, bad_steps: set[int]):
    """Make the loss NaN at the given (1-based) training steps."""
    real, calls = Diffusion.loss, []

    def loss(self, model, x0, generator=None, **kw):
        calls.append(1)
        value = real(self, model, x0, generator, **kw)
        return value * float("nan") if len(calls) in bad_steps else value

    monkeypatch.setattr(Diffusion, "loss", loss)


def test_nan_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    _poison_steps(monkeypatch, {15})  # 4 steps per epoch: epoch 4; the checkpoint after epoch 2 stays
    flags = [a for k, v in TINY_POINTS.items() for a in (f"--{k.replace('_', '-')}", str(v))]
    assert cli.main(["train", *flags, "--out", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "step 15" in err and "lr" in err
    state = runs.load_checkpoint(out / runs.CHECKPOINT)
    assert state["epoch"] == 2
    assert all(torch.isfinite(v).all() for v in state["model"].values())
    assert not runs.is_finished(out)


def test_skip_nonfinite_skips_up_to_n_steps(tmp_path, monkeypatch):
    _poison_steps(monkeypatch, {5, 9})
    result = train(tiny(skip_nonfinite=2), tmp_path / "a", progress=False)
    assert all(torch.isfinite(p).all() for p in result.model.parameters())
    with pytest.raises(TrainingStopped, match="step 9"):
        monkeypatch.undo()
        _poison_steps(monkeypatch, {5, 9})
        train(tiny(skip_nonfinite=1), tmp_path / "b", progress=False)


# -- safe loading ----------------------------------------------------------------------------

class _Payload:
    """Unpickling this calls open(path, 'w'): it creates a file, the proof that code ran."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _evil_run(tmp_path) -> tuple[Path, Path]:
    run, marker = tmp_path / "evil", tmp_path / "pwned"
    run.mkdir()
    fileio.write_json(run / runs.CONFIG, tiny().to_dict())
    torch.save({"version": runs.FORMAT_VERSION, "config": tiny().to_dict(), "model": _Payload(marker)},
               run / runs.CHECKPOINT)
    return run, marker


def test_the_payload_is_real(tmp_path):
    run, marker = _evil_run(tmp_path)
    pickle.loads(pickle.dumps(_Payload(tmp_path / "control")))  # plain unpickling runs it ...
    assert (tmp_path / "control").exists() and not marker.exists()


@pytest.mark.parametrize("command", [["sample", "{run}", "--out", "{tmp}/x.csv"], ["evaluate", "{run}"],
                                     ["train", "--resume", "{run}"], ["export", "{run}"]])
def test_malicious_checkpoint_is_refused_and_never_runs(tmp_path, capsys, command):
    run, marker = _evil_run(tmp_path)
    argv = [a.format(run=run, tmp=tmp_path) for a in command]
    assert cli.main(argv) == 2
    assert "refused" in capsys.readouterr().err
    assert not marker.exists()  # ... but our loaders never ran it


def test_incompatible_checkpoints_are_refused_naming_the_mismatch(reference_run, tmp_path):
    state = torch.load(reference_run / runs.CHECKPOINT, weights_only=True)
    torch.save({**state, "version": 99}, tmp_path / "v.pt")
    with pytest.raises(InputError, match="format 99"):
        runs.load_checkpoint(tmp_path / "v.pt")
    torch.save({**state, "config": {**state["config"], "wings": 2}}, tmp_path / runs.CHECKPOINT)
    with pytest.raises(InputError, match="wings"):  # a config key from another version
        runs.load_run(tmp_path)
    (tmp_path / "t.pt").write_bytes((reference_run / runs.CHECKPOINT).read_bytes()[:1000])
    with pytest.raises(InputError, match="truncated"):
        runs.load_checkpoint(tmp_path / "t.pt")


# -- export ----------------------------------------------------------------------------------

def test_safetensors_export_matches_the_reference_reader(reference_run, tmp_path):
    safetensors = pytest.importorskip("safetensors")
    from safetensors.torch import load_file

    out = tmp_path / "m.safetensors"
    assert cli.main(["export", str(reference_run), "--format", "safetensors", "--out", str(out)]) == 0
    loaded, state = load_file(out), runs.load_checkpoint(reference_run / runs.CHECKPOINT)
    assert loaded.keys() == state["ema"].keys()
    assert all(torch.equal(loaded[k], state["ema"][k]) for k in loaded)
    with safetensors.safe_open(out, "pt") as f:
        import json

        assert TrainConfig.from_dict(json.loads(f.metadata()["config"])) == tiny(sample_shape="2")


def test_safetensors_writer_handles_every_dtype(tmp_path):
    pytest.importorskip("safetensors")
    from safetensors.torch import load_file

    from tiny_diffusion.export import DTYPES, write_safetensors

    g = torch.Generator().manual_seed(0)
    tensors = {f"t{i}": (torch.randn(3, 2, generator=g) * 100).to(dtype) for i, dtype in enumerate(DTYPES)}
    tensors["scalar"], tensors["empty"] = torch.tensor(1.5), torch.zeros(0, 4)
    write_safetensors(tmp_path / "a.safetensors", tensors, {"k": "v"})
    loaded = load_file(tmp_path / "a.safetensors")
    assert loaded.keys() == tensors.keys()
    for k, t in tensors.items():
        assert loaded[k].dtype == t.dtype and torch.equal(loaded[k], t), k
