"""`tiny-diffusion distill` on the command line: bad input is one line and exit 2 with nothing written, and a
student's steps curve puts its rounds beside its teacher's samplers."""

from __future__ import annotations

import csv
import json

import pytest

from tests.helpers import TINY_POINTS
from tiny_diffusion import cli, runs
from tiny_diffusion.config import TrainConfig
from tiny_diffusion.train import train
from tiny_diffusion.train.distill import RECORD


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher") / "run"
    train(TrainConfig.from_dict({**TINY_POINTS, "frames": 0}), out, progress=False)
    return out


@pytest.fixture(scope="module")
def student(teacher, tmp_path_factory):
    out = tmp_path_factory.mktemp("student") / "s4"
    assert cli.main(["distill", str(teacher), "--steps", "4", "--teacher-steps", "16", "--epochs", "2",
                     "--out", str(out), "--quiet", "--threads", "1"]) == 0
    return out


def _one_line_error(capsys, argv, match: str) -> None:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert match in err, err


def test_a_student_records_its_teacher_and_rounds(teacher, student, capsys):
    record = json.loads((student / RECORD).read_text())
    assert record["teacher"]["path"] == str(teacher.resolve()) and len(record["teacher"]["sha256"]) == 64
    assert [(r["steps"], r["folder"]) for r in record["rounds"]] == [(8, "rounds/01-8steps"), (4, ".")]
    assert record["rounds"][1]["grid"] == record["teacher"]["grid"][0::4]
    cfg = runs.run_config(student)
    assert cfg.sample_grid == ",".join(map(str, record["rounds"][1]["grid"])) and cfg.eval_steps == 4
    assert runs.is_finished(student) and runs.is_finished(student / "rounds" / "01-8steps")


@pytest.mark.parametrize("argv, match", [
    (["--steps", "3", "--teacher-steps", "16"], "--steps 3: not reachable by halving a 16-step grid; it reaches 8, "
                                                "4, 2 or 1; for 3 use --teacher-steps 6 or 12"),
    (["--steps", "11"], "--steps 11: a student of a 20-timestep run takes 1 to 10 steps"),
    (["--steps", "2", "--teacher-steps", "40"], "(the run has 20 timesteps)"),
    (["--steps", "2", "--guidance", "2"], "--guidance: "),
    (["--steps", "2", "--kimg", "3"], "--kimg: a round of a points run is set by --epochs"),
])
def test_bad_distillations_exit_2_and_write_nothing(teacher, tmp_path, capsys, argv, match):
    _one_line_error(capsys, ["distill", str(teacher), "--out", str(tmp_path / "s"), *argv], match)
    assert not (tmp_path / "s").exists()


def test_a_student_of_a_student_has_fewer_steps(student, tmp_path, capsys):
    _one_line_error(capsys, ["distill", str(student), "--steps", "8", "--out", str(tmp_path / "s")],
                    f"--steps 8: {student} is a 4-step student; halving its grid reaches 2 or 1 (a student of it "
                    f"takes fewer steps)")
    _one_line_error(capsys, ["distill", str(student), "--steps", "3", "--out", str(tmp_path / "s")], "reaches 2 or 1")


def test_the_teacher_must_be_a_finished_run_and_not_the_out(teacher, tmp_path, capsys):
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / runs.CONFIG).write_text((teacher / runs.CONFIG).read_text())
    _one_line_error(capsys, ["distill", str(tmp_path / "half"), "--steps", "2", "--out", str(tmp_path / "s")],
                    "not a finished run")
    _one_line_error(capsys, ["distill", str(teacher), "--steps", "2", "--out", str(teacher)], "the teacher's own folder")
    _one_line_error(capsys, ["distill", "--resume", str(tmp_path / "half")], "no distill.json")
    _one_line_error(capsys, ["distill", "--resume", str(tmp_path), "--steps", "2"], "drop --steps")
    _one_line_error(capsys, ["distill", str(teacher)], "distill needs RUN_DIR, --steps K and --out OUT")


def test_a_changed_teacher_is_refused_on_resume(teacher, student, tmp_path, capsys):
    import shutil

    copy = tmp_path / "teacher"
    shutil.copytree(teacher, copy)
    record = json.loads((student / RECORD).read_text())
    record["teacher"]["path"] = str(copy)
    shutil.copytree(student, tmp_path / "s")
    (tmp_path / "s" / RECORD).write_text(json.dumps({**record, "rounds": record["rounds"]}))
    with open(copy / runs.CHECKPOINT, "ab") as f:
        f.write(b"x")
    _one_line_error(capsys, ["distill", "--resume", str(tmp_path / "s")], "its checkpoint changed")


def test_the_steps_curve_of_a_student_puts_its_rounds_beside_the_teachers_samplers(student, tmp_path, capsys):
    csv_path = tmp_path / "curve.csv"
    assert cli.main(["evaluate", str(student), "--steps", "2,4,8", "--sampler", "ddim", "--n", "50",
                     "--csv", str(csv_path), "--figure", str(tmp_path / "curve.png")]) == 0
    rows = list(csv.DictReader(open(csv_path)))
    assert [(r["sampler"], r["steps"]) for r in rows] == [("ddim", "2"), ("ddim", "4"), ("ddim", "8"),
                                                          ("distilled", "8"), ("distilled", "4")]
    assert (tmp_path / "curve.png").stat().st_size > 0
    _one_line_error(capsys, ["evaluate", str(student), "--steps", "1,2", "--n", "50", "--csv", str(csv_path)],
                    "a student of 8, 4 steps (its rounds)")
