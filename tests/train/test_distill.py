"""Progressive distillation: the target's known answers, a student that learns its teacher (not the data), exact
resume after a crash mid-round, a conditional student that follows its label."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.helpers import CENTRES, TINY_POINTS, assert_same_run, register_two, stop_at_frame
from tiny_diffusion import cli, runs
from tiny_diffusion.config import TrainConfig
from tiny_diffusion.core.diffusion import Diffusion
from tiny_diffusion.core.distill import HalvingTarget, halve
from tiny_diffusion.core.samplers import ddim
from tiny_diffusion.core.schedules import make_betas
from tiny_diffusion.eval.points import quality, references
from tiny_diffusion.sampling import sample
from tiny_diffusion.train import train
from tiny_diffusion.train.distill import distill, read_record, run_rounds

# one blob, learnt in a second: a teacher whose samples are easy to tell apart from another blob's
BLOB = dict(n_points=1000, batch_size=250, epochs=150, timesteps=50, terminal_alpha_bar=1e-4, hidden_size=32,
            hidden_layers=1, emb_size=8, frames=0, frame_points=500, device="cpu")
ROUNDS = dict(teacher_steps=8, length={"epochs": 25}, lr=5e-3)  # 8 -> 4 -> 2 steps


def _diffusion(prediction="eps", T=50):
    return Diffusion(make_betas("linear", T, 1e-4, 0.2), prediction)


class _Net(torch.nn.Module):
    """A fixed nonlinear network of (x, t): a teacher with no training."""

    def forward(self, x, t):
        t = torch.as_tensor(t, dtype=x.dtype).reshape(-1, *([1] * (x.dim() - 1)))
        return torch.tanh(x * (1 + t / 10)) + 0.1 * x.flip(-1)


# -- the target ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_the_target_is_where_two_teacher_ddim_steps_land(prediction):
    """Reference implementation: samplers.ddim on the teacher's grid t, t', t''; one student DDIM step from (z, t)
    with x0 = the target lands on the teacher's z'' (and on its final x0 when t' is the grid's last step)."""
    d = _diffusion(prediction)
    grid = np.array([45, 30, 12, 3])
    target = HalvingTarget(_Net(), d, _diffusion("v"), grid)
    z = torch.randn(6, 2, generator=torch.Generator().manual_seed(0))
    for t, traj_grid in ((45, [45, 30, 12]), (12, [12, 3])):
        x_t = target.target_x0(z, torch.full((6,), t))
        teacher = list(ddim(_Net(), d, z, ts=traj_grid))[2]  # after two steps
        t2 = traj_grid[2] if len(traj_grid) > 2 else -1
        a, s = d.sqrt_alpha_bar[t].double(), d.sqrt_one_minus_alpha_bar[t].double()
        a2, s2 = (d.sqrt_alpha_bar[t2].double(), d.sqrt_one_minus_alpha_bar[t2].double()) if t2 >= 0 else (1.0, 0.0)
        student = a2 * x_t.double() + s2 * (z.double() - a * x_t.double()) / s
        torch.testing.assert_close(student.float(), teacher, atol=2e-5, rtol=1e-4)


def test_a_teacher_that_knows_x0_is_distilled_to_that_x0():
    """Known answer: a teacher whose prediction is always x0 = c makes every target c, whatever z and t."""
    d = _diffusion("x0")
    c = torch.tensor([[0.7, -1.2]])
    target = HalvingTarget(lambda x, t: c.expand_as(x), d, _diffusion("v"), [40, 20, 10, 0])
    z = torch.randn(5, 2)
    for t in (40, 10):
        torch.testing.assert_close(target.target_x0(z, torch.full((5,), t)), c.expand(5, 2), atol=1e-4, rtol=1e-4)
    assert sorted(set(target.sample_t(1000, "cpu", torch.Generator().manual_seed(0)).tolist())) == [10, 40]
    assert halve([40, 20, 10, 0]).tolist() == [40, 10]
    with pytest.raises(ValueError, match="even"):
        HalvingTarget(lambda x, t: x, d, d, [40, 20, 10])


# -- a student learns its teacher --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def blobs(tmp_path_factory):
    """Teachers of the left and the right blob."""
    with pytest.MonkeyPatch.context() as mp:
        register_two(mp)
        root = tmp_path_factory.mktemp("blobs")
        for side in ("left", "right"):
            train(TrainConfig.from_dict({**BLOB, "dataset": f"two:{side}"}), root / side, progress=False)
        yield root


@pytest.fixture(scope="module")
def left_student(blobs):
    """A 2-step student of the left teacher (8 -> 4 -> 2 steps)."""
    with pytest.MonkeyPatch.context() as mp:
        register_two(mp)
        record, _ = distill(blobs / "left", blobs / "student", 2, progress=False, **ROUNDS)
    return blobs / "student", record


def test_a_student_follows_its_teacher_not_the_data(blobs, left_student, monkeypatch):
    """A student of the left teacher scores like it on the left blob; a student trained on the left blob's points
    against the RIGHT teacher's target lands on the right blob (a student that learned the data would not)."""
    register_two(monkeypatch)
    out, record = left_student
    left = references("two:left", n=500)
    student = np.load(out / runs.SAMPLES)
    assert quality(student, left).energy < 0.05 and abs(student[:, 0].mean() - CENTRES[0, 0]) < 0.2
    # the same distillation, its teacher swapped for the right one: the data (two:left) stay
    cfg, right, diffusion = runs.load_run(blobs / "right")
    grid = record["teacher"]["grid"]  # round 1: 8 -> 4 steps
    wrong_cfg = runs.run_config(out).replace(sample_grid=",".join(map(str, halve(grid))), eval_steps=4,
                                                        frame_steps=4)
    assert wrong_cfg.dataset == "two:left"
    target = HalvingTarget(right.requires_grad_(False), diffusion, Diffusion.from_config(wrong_cfg), grid)
    result = train(wrong_cfg, progress=False, objective=target, init=right.state_dict())
    assert abs(result.samples[:, 0].mean() - CENTRES[1, 0]) < 0.3  # the teacher's blob
    assert quality(result.samples, left).energy > 20 * quality(student, left).energy


def test_the_student_samples_on_its_own_grid_by_default(left_student, tmp_path, monkeypatch, capsys):
    register_two(monkeypatch)
    out, record = left_student
    cfg, model, diffusion = runs.load_run(out)
    assert model.grid == tuple(record["rounds"][-1]["grid"]) and cfg.eval_steps == 2 and cfg.eval_sampler == "ddim"
    assert cli.main(["sample", str(out), "--n", "50", "--out", str(tmp_path / "x.npy")]) == 0
    assert "2 steps, the student's distilled grid" in capsys.readouterr().out
    mine = np.load(tmp_path / "x.npy")
    assert np.array_equal(mine, sample(model, diffusion, 50, 0, sampler="ddim", steps=2).numpy())
    default = sample(model, diffusion, 50, 0, sampler="ddim", steps=2, spacing="logsnr").numpy()
    assert not np.allclose(mine, default)  # the recorded grid is not the 2-step logsnr one


# -- exact resume --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def moons_teacher(tmp_path_factory):
    out = tmp_path_factory.mktemp("moons") / "teacher"
    train(TrainConfig.from_dict(TINY_POINTS), out, progress=False)
    return out


TINY_ROUNDS = dict(teacher_steps=8, length={"epochs": 8}, lr=5e-3)  # frames after epochs 1, 3, 6, 8; checkpoints 2,4..


def test_a_crash_mid_round_resumes_exactly(moons_teacher, tmp_path, monkeypatch):
    distill(moons_teacher, tmp_path / "ref", 2, progress=False, **TINY_ROUNDS)

    def crash():
        raise MemoryError("simulated kill")

    # round 1: 4 snapshots and its final samples (calls 1-5); round 2's third snapshot (epoch 6) is call 8
    stop_at_frame(monkeypatch, 8, crash)
    with pytest.raises(MemoryError):
        distill(moons_teacher, tmp_path / "s", 2, progress=False, **TINY_ROUNDS)
    assert runs.is_finished(tmp_path / "s" / "rounds" / "01-4steps") and not runs.is_finished(tmp_path / "s")
    assert torch.load(tmp_path / "s" / runs.CHECKPOINT, weights_only=True)["epoch"] == 4
    monkeypatch.undo()
    assert cli.main(["train", "--resume", str(tmp_path / "s"), "--quiet"]) == 2  # not with the DDPM loss
    assert cli.main(["distill", "--resume", str(tmp_path / "s"), "--quiet"]) == 0
    assert_same_run(tmp_path / "ref" / "rounds" / "01-4steps", tmp_path / "s" / "rounds" / "01-4steps")
    assert_same_run(tmp_path / "ref", tmp_path / "s")
    rec = read_record(tmp_path / "s")
    assert [r["steps"] for r in rec["rounds"]] == [4, 2] and all(r["seconds"] > 0 for r in rec["rounds"])
    assert rec["teacher"]["grid"][0::4] == rec["rounds"][1]["grid"]
    assert run_rounds(tmp_path / "s", rec, progress=False) is None  # finished: nothing is trained again


def test_a_signal_mid_round_says_how_to_resume(moons_teacher, tmp_path, monkeypatch, capsys):
    import signal

    stop_at_frame(monkeypatch, 6, lambda: signal.raise_signal(signal.SIGTERM))
    code = cli.main(["distill", str(moons_teacher), "--steps", "2", "--teacher-steps", "8", "--epochs", "8",
                     "--out", str(tmp_path / "s"), "--quiet"])
    assert code == 128 + signal.SIGTERM
    assert f"distill --resume {tmp_path / 's'}" in capsys.readouterr().err


# -- a conditional student -----------------------------------------------------------------------------------

def test_a_conditional_student_follows_its_label(tmp_path, monkeypatch):
    register_two(monkeypatch)
    teacher = tmp_path / "teacher"
    train(TrainConfig.from_dict({**BLOB, "dataset": "two", "class_cond": True, "epochs": 60}), teacher, progress=False)
    record, _ = distill(teacher, tmp_path / "s", 2, progress=False, **ROUNDS)
    assert record["guidance"] == runs.run_config(teacher).guidance  # folded in: the student samples at W = 1
    assert runs.run_config(tmp_path / "s").guidance == 1.0
    cfg, model, diffusion = runs.load_run(tmp_path / "s")
    for k in (0, 1):
        x = sample(model, diffusion, 300, 0, sampler="ddim", steps=2, y=torch.full((300,), k)).numpy()
        assert np.mean(np.sign(x[:, 0]) == np.sign(CENTRES[k, 0])) > 0.95, f"class {k}"
    q = json.loads((tmp_path / "s" / runs.QUALITY).read_text())
    assert set(q["per_class"]) == {"left", "right"}
