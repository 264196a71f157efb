"""`distill`: a few-step student of a finished run, by progressive distillation (core/distill.py).

A distillation is a series of training runs with a teacher's target: round r trains a student that takes one
DDIM step where the round's teacher (the run, then the previous round's student) takes two, starting from the
teacher's weights. Each round is an ordinary run folder written by `train` (checkpoints, metrics.csv, frames,
quality.json, exact resume); the earlier rounds live in OUT/rounds/, the last one is OUT itself, so OUT is a
run every command reads, sampling by default on its own recorded grid (config sample_grid) with DDIM.

OUT/distill.json records the plan before the first step (the teacher's path and checkpoint hash, the method,
every round's grid, length and folder) and each round's seconds when it ends; `resume` rebuilds every round
from it: finished rounds are skipped, the interrupted one continues from its checkpoint, bit for bit.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np

from .. import fileio, runs
from ..core.samplers import timesteps
from ..errors import InputError, TrainingStopped

RECORD = "distill.json"
METHOD = "progressive distillation (Salimans & Ho 2022): each round halves the DDIM steps"
# The teacher's DDIM grid the halving starts from, when not given: the smallest K * 2^r at or above this, on DDIM's
# default grid for that many steps (sampling.grid: for points logsnr from lambda -2). On the default dino run
# (docs/distill.md) DDIM on those 64 steps scores 0.804 / 0.946 (precision / coverage), as good as its 1000-step
# ODE (0.801 / 0.911); the same 64 steps from t = T - 1 only 0.758 / 0.896, and its 32-step student 0.612 / 0.771.
TEACHER_STEPS = 64
# The student's target: v beat eps at 1 step (precision 0.222 vs 0.162) and x0 everywhere (0.09 at 4 steps) on
# the dino (docs/distill.md); Salimans & Ho recommend v or x0 because eps is ill-conditioned at t = T - 1.
PREDICTION = "v"
# Each round's length and peak learning rate. Points: 4 steps from 64 are 4 rounds; a distillation step costs
# about 1.7 training steps (two teacher calls more), so 4 x 80 epochs take about the teacher's 600. lr 5e-3 with
# 80 epochs beat 2e-3 with 100 on the dino (4 steps: precision 0.587 vs 0.566). Images: 8 steps from 64 are 3
# rounds of 12 kimg: 36 kimg against the default MNIST teacher's 90 (not measured beyond that: docs/distill.md).
ROUND_LENGTH = {"points": {"epochs": 80}, "images": {"kimg": 12.0}}
ROUND_LR = {"points": 5e-3, "images": 5e-4}  # fine-tuning from the teacher: below the teachers' 1e-2 and 2e-3
ROUND_EVAL_N = 100  # an image round's own final samples (the last round: the teacher's eval_n)


def checkpoint_hash(run_dir) -> str:
    """sha256 of a run's checkpoint.pt: which teacher a student learned from."""
    h = hashlib.sha256()
    with open(Path(run_dir) / runs.CHECKPOINT, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def reachable(n: int) -> list[int]:
    """The step counts halving an n-step grid reaches: n/2, n/4, ... while whole."""
    out = []
    while n % 2 == 0:
        n //= 2
        out.append(n)
    return out


def teacher_grid(teacher_dir: Path, steps: int, teacher_steps: int | None) -> tuple[list[int], str]:
    """(the teacher's DDIM grid the rounds halve, what it is); InputError where `steps` cannot be reached."""
    cfg = runs.run_config(teacher_dir)
    if cfg.sample_grid:  # a student: its own grid, nothing finer
        grid = [int(t) for t in cfg.sample_grid.split(",")]
        n = len(grid)
        if teacher_steps is not None and teacher_steps != n:
            raise InputError(f"--teacher-steps {teacher_steps}: {teacher_dir} is a {n}-step student; it samples on "
                             f"its own grid only (drop --teacher-steps)")
        if steps not in reachable(n):
            raise InputError(f"--steps {steps}: {teacher_dir} is a {n}-step student; halving its grid reaches "
                             f"{_list(reachable(n))}" + ("" if steps < n else " (a student of it takes fewer steps)"))
        return grid, f"its student grid of {n} steps"
    T = cfg.timesteps
    if not 1 <= steps <= T // 2:
        raise InputError(f"--steps {steps}: a student of a {T}-timestep run takes 1 to {T // 2} steps")
    if teacher_steps is None:
        teacher_steps = steps * 2
        while teacher_steps < TEACHER_STEPS and teacher_steps * 2 <= T:
            teacher_steps *= 2
    elif teacher_steps > T or steps not in reachable(teacher_steps):
        hint = [steps * 2 ** r for r in range(1, 12) if steps * 2 ** r <= T][:3]
        raise InputError(f"--steps {steps}: not reachable by halving a {teacher_steps}-step grid"
                         + (f" (the run has {T} timesteps)" if teacher_steps > T else
                            f"; it reaches {_list(reachable(teacher_steps))}")
                         + (f"; for {steps} use --teacher-steps {_list(hint, 'or')}" if hint else ""))
    from ..core.diffusion import Diffusion
    from ..sampling import describe_grid, grid as grid_policy

    diffusion = Diffusion.from_config(cfg)
    spacing, lambda_min = grid_policy("ddim", diffusion, teacher_steps, kind=cfg.kind)  # DDIM's measured default
    grid = timesteps(T, teacher_steps, spacing, diffusion.alpha_bar.double().numpy(), lambda_min)
    return [int(t) for t in grid], describe_grid("ddim", diffusion, teacher_steps, kind=cfg.kind)


def _list(values, last: str = "or") -> str:
    values = [str(v) for v in values] or ["none"]
    return values[0] if len(values) == 1 else f"{', '.join(values[:-1])} {last} {values[-1]}"


def plan(teacher_dir, out, steps: int, teacher_steps: int | None = None, prediction: str = PREDICTION,
         length: dict | None = None, lr: float | None = None, guidance: float | None = None) -> dict:
    """The record of a distillation (distill.json): checked, before anything is written."""
    teacher_dir, out = Path(teacher_dir), Path(out)
    if not runs.is_finished(teacher_dir):
        raise InputError(f"{teacher_dir}: not a finished run (no {runs.QUALITY}); distil a run `train` finished")
    if out.resolve() == teacher_dir.resolve():
        raise InputError(f"--out {out}: that is the teacher's own folder; a student goes to a new folder")
    if (out / RECORD).exists():
        raise InputError(f"{out}: already holds a distillation; continue it with `tiny-diffusion distill --resume "
                         f"{out}` or choose another --out")
    cfg = runs.run_config(teacher_dir)
    grid, what = teacher_grid(teacher_dir, steps, teacher_steps)
    if guidance is not None and not cfg.class_cond:
        raise InputError(f"--guidance: {teacher_dir} was trained without class labels; drop --guidance")
    if guidance is not None and cfg.sample_grid:
        raise InputError(f"--guidance: {teacher_dir} is a student with guidance already folded in; drop --guidance")
    length = length or ROUND_LENGTH[cfg.kind]
    rounds, g = [], np.asarray(grid)
    n_rounds = len(reachable(len(grid))[:reachable(len(grid)).index(steps) + 1])
    for r in range(1, n_rounds + 1):
        g = g[0::2]
        folder = "." if r == n_rounds else f"rounds/{r:02d}-{len(g)}steps"
        rounds.append({"round": r, "steps": len(g), "grid": [int(t) for t in g], "folder": folder, **length})
    return {"method": METHOD, "steps": steps, "prediction": prediction, "lr": lr or ROUND_LR[cfg.kind],
            "guidance": (cfg.guidance if guidance is None else guidance) if cfg.class_cond and not cfg.sample_grid
            else None,  # folded into the student: it samples at W = 1
            "teacher": {"path": str(teacher_dir.resolve()), "sha256": checkpoint_hash(teacher_dir),
                        "grid": grid, "sampler": "ddim", "what": what}, "rounds": rounds}


def round_config(teacher_cfg, record: dict, r: dict):
    """Round r's training config: the teacher's, with the student's target, grid, length and sampling."""
    k, last = r["steps"], r["folder"] == "."
    changes = {"prediction": record["prediction"], "lr": record["lr"], "seed": teacher_cfg.seed + r["round"],
               "eval_sampler": "ddim", "eval_steps": k, "frame_sampler": "ddim", "frame_steps": k,
               "sample_grid": ",".join(map(str, r["grid"])),
               **{name: r[name] for name in ("epochs", "kimg") if name in r}}
    if teacher_cfg.class_cond:
        changes["guidance"] = 1.0  # the teacher's guidance is folded in (record["guidance"])
    if teacher_cfg.images and not last:
        changes["eval_n"] = min(teacher_cfg.eval_n, ROUND_EVAL_N)
    return teacher_cfg.replace(**changes)


def read_record(out) -> dict:
    path = Path(out) / RECORD
    if not path.is_file():
        raise InputError(f"{out}: no {RECORD}; --resume continues a distillation `tiny-diffusion distill` started")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: not valid JSON ({e})") from None


def run_rounds(out, record: dict, progress=None, log=None, threads=None):
    """Train every round of `record` not finished yet (the interrupted one resumes exactly); the last round's
    TrainResult (None when all were finished)."""
    out, log = Path(out), log or (lambda msg: print(msg, file=sys.stderr))
    runs.lock_run_dir(out)  # one distillation writes OUT at a time (its last round's train() takes it again)
    try:
        return _run_rounds(out, record, progress, log, threads)
    finally:
        runs.unlock_run_dir(out)


def _run_rounds(out: Path, record: dict, progress, log, threads):
    from ..core.distill import HalvingTarget
    from ..core.guidance import Guided
    from .loop import train

    teacher_dir = Path(record["teacher"]["path"])
    if checkpoint_hash(teacher_dir) != record["teacher"]["sha256"]:
        raise InputError(f"{teacher_dir}: its checkpoint changed since this distillation began (sha256 differs); "
                         f"start a new distillation")
    result, source = None, teacher_dir
    for r in record["rounds"]:
        folder = out / r["folder"]
        if runs.is_finished(folder):
            source = folder
            continue
        teacher_cfg, teacher, diffusion = runs.load_run(source)
        cfg = round_config(runs.run_config(teacher_dir), record, r)
        if record["guidance"] is not None and source == teacher_dir:
            teacher = Guided(teacher, record["guidance"])
        student_diffusion = type(diffusion).from_config(cfg)
        grid = record["teacher"]["grid"] if r["round"] == 1 else record["rounds"][r["round"] - 2]["grid"]
        objective = HalvingTarget(teacher.requires_grad_(False), diffusion, student_diffusion, grid)
        log(f"round {r['round']}/{len(record['rounds'])}: {len(grid)} -> {r['steps']} steps, into {folder}")
        init = {k: v.clone() for k, v in teacher.state_dict().items()} if not isinstance(teacher, Guided) else \
            {k: v.clone() for k, v in teacher.model.state_dict().items()}
        try:
            result = train(cfg, folder, progress=progress, log=log, resume=True, threads=threads, objective=objective,
                           init=init, desc=f"round {r['round']}/{len(record['rounds'])}")
        except TrainingStopped as e:
            raise TrainingStopped(str(e).replace(f"train --resume {folder}", f"distill --resume {out}"),
                                  exit_code=e.exit_code) from None
        r["seconds"] = round(result.train_seconds, 3)
        fileio.write_json(out / RECORD, record)
        source = folder
    return result


def distill(teacher_dir, out, steps: int, progress=None, log=None, threads=None, **options):
    """A `steps`-step student of the finished run `teacher_dir`, written to the new folder `out` (see `plan`
    for the options); returns (record, the last round's TrainResult)."""
    record = plan(teacher_dir, out, steps, **options)
    runs.new_run_dir(out)  # takes OUT's lock: a second distillation into OUT is refused from here on
    try:
        if (Path(out) / RECORD).exists():  # written by another process before we locked
            raise InputError(f"{out}: already holds a distillation; choose another --out")
        fileio.write_json(Path(out) / RECORD, record)
        return record, run_rounds(out, record, progress, log, threads)
    finally:
        runs.unlock_run_dir(out)
