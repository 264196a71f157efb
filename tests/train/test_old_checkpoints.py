"""Checkpoints written before the loop was rewritten (issue 32: TrainState, settle) still load, resume and sample.

The fixtures in tests/fixtures/old_checkpoints were written by the code of commit 4fc9de6 (their make.py says
how): a point run and an image run stopped within an epoch, and a finished distilled student. Floating point
differs between CPUs, so weights trained on today's host are not compared with the fixtures' host; what is
compared bit for bit: today's TrainState reads every part of an old checkpoint and writes it back unchanged, a
resumed old run ends where a fresh run ends, and the student samples exactly what it sampled when it was made."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import cache, metrics_rows  # noqa: F401  (cache: decoded images in a fresh folder)
from tiny_diffusion import runs
from tiny_diffusion.cli import main
from tiny_diffusion.config import TrainConfig
from tiny_diffusion.train import train
from tiny_diffusion.train.loop import optimizer_for
from tiny_diffusion.train.setup import open_run
from tiny_diffusion.train.state import load_state, save_state

OLD = Path(__file__).resolve().parents[1] / "fixtures" / "old_checkpoints"
_spec = importlib.util.spec_from_file_location("make_old", OLD / "make.py")
make = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make)


def _copy(name: str, tmp_path: Path) -> Path:
    """The fixture `name` in tmp_path; the image run's folder of images written again and recorded in its place."""
    old = shutil.copytree(OLD / name, tmp_path / name)
    if name == "images":
        folder = str(make.write_images(tmp_path / "imgs"))
        (old / runs.CONFIG).write_text(json.dumps({**json.loads((old / runs.CONFIG).read_text()), "dataset": folder}))
        state = torch.load(old / runs.CHECKPOINT, weights_only=True)
        torch.save({**state, "config": {**state["config"], "dataset": folder}}, old / runs.CHECKPOINT)
    return old


def _same(a, b, where: str = "") -> None:
    """Two checkpoint values are equal, tensors bit for bit, recursively."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


@pytest.mark.parametrize("name", ["points", "images", "student"])
def test_an_old_checkpoint_is_read_whole_and_written_back_unchanged(name, tmp_path):
    old = _copy(name, tmp_path)
    cfg = runs.run_config(old)
    run = open_run(cfg, None, False, lambda m: None)  # today's setup: the model, optimizer ... of the run's config
    run.state.optimizer, run.state.scheduler = optimizer_for(run.state.model, run.cfg, run.length.total_steps)
    run.state.restore(load_state(old / runs.CHECKPOINT, run.cfg, run.device), old / runs.CHECKPOINT)
    save_state(tmp_path / "again.pt", run.state)
    before, again = (torch.load(p, weights_only=True) for p in (old / runs.CHECKPOINT, tmp_path / "again.pt"))
    # the config: the same values, and a field added since (ema_gamma) at its default, which changes nothing
    added = {k: v for k, v in again["config"].items() if k not in before["config"]}
    assert added == {k: TrainConfig.__dataclass_fields__[k].default for k in added}
    _same({**before, "config": {**before["config"], **added}}, again)


@pytest.mark.parametrize("name", ["points", "images"])
def test_an_old_run_stopped_within_an_epoch_resumes_to_its_end(name, tmp_path):
    old = _copy(name, tmp_path)
    assert torch.load(old / runs.CHECKPOINT, weights_only=True)["batch"] > 0  # stopped within an epoch
    said = []
    train(runs.run_config(old), old, progress=False, resume=True, log=said.append)
    assert any(line.startswith(f"resuming {old} after step ") for line in said), said
    fresh = tmp_path / "fresh"
    train(runs.run_config(old), fresh, progress=False)
    assert runs.is_finished(old)
    steps = [{k: r[k] for k in ("epoch", "step", "lr")} for r in metrics_rows(old)]
    assert steps == [{k: r[k] for k in ("epoch", "step", "lr")} for r in metrics_rows(fresh)] != []
    assert np.load(old / runs.FRAMES).shape == np.load(fresh / runs.FRAMES).shape


def test_an_old_distilled_student_samples_what_it_sampled(tmp_path):
    student = OLD / "student"
    assert runs.run_config(student).sample_grid  # a student: its own grid of timesteps
    expected = np.load(student / runs.SAMPLES)  # the final samples, drawn by the old code on its host
    out = tmp_path / "x.npy"
    assert main(["sample", str(student), "--n", str(len(expected)), "--seed", "1234", "--out", str(out)]) == 0
    np.testing.assert_allclose(np.load(out), expected, atol=1e-5)  # (2 network calls: rounding of another CPU)
