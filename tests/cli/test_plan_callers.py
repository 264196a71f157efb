"""Every caller draws what sampling.plan answers, as it answers it: train's snapshots and final samples, `sample`,
`evaluate`, `plot reverse`, `animate --reverse`. sampling.plan is replaced by one that moves each answer
(another seed, another guidance weight); a caller that worked out any of its sampler's arguments itself would
draw with the old ones, and the recorded draws would not match the moved answers."""

import argparse
import dataclasses

import numpy as np
import pytest
import torch

from tests.helpers import register_two
from tiny_diffusion import runs, sampling
from tiny_diffusion.cli import main
from tiny_diffusion.cli.conditional import class_request, parse_classes
from tiny_diffusion.data import points
from tiny_diffusion.errors import InputError
from tiny_diffusion.train import hooks
from tiny_diffusion.viz import figures

TWO = ["--dataset", "two", "--class-cond", "--n-points", "400", "--batch-size", "100", "--epochs", "2",
       "--hidden-size", "8", "--hidden-layers", "1", "--emb-size", "4", "--timesteps", "20", "--terminal-alpha-bar",
       "1e-4", "--frames", "2",
       "--frame-points", "30", "--eval-steps", "5", "--device", "cpu"]


@pytest.fixture
def moved(monkeypatch):
    """(plans, draws): every Plan that sampling.plan answered (moved: seed + 100, guidance + 0.5) and the keywords
    of every draw (sample() and the figures' trajectory), without device and stop."""
    register_two(monkeypatch)
    real_plan, real_sample, real_trajectory = sampling.plan, sampling.sample, figures.sampling_trajectory
    plans, draws = [], []

    def plan(*args, **kwargs):
        p = real_plan(*args, **kwargs)
        p = dataclasses.replace(p, seed=p.seed + 100, guidance=p.guidance + 0.5 if p.conditional else p.guidance)
        plans.append(p)
        return p

    def sample(model, diffusion, n, seed=0, **kwargs):
        draws.append({"n": n, "seed": seed, "start": 0, **{k: v for k, v in kwargs.items() if k not in
                                                            ("device", "stop")}})
        return real_sample(model, diffusion, n, seed, **kwargs)

    def trajectory(model, diffusion, n, seed, device, keep=None, cond=None, options=None, progress=False):
        draws.append({"n": n, "seed": seed, "start": 0, **options, **cond})
        return real_trajectory(model, diffusion, n, seed, device, keep, cond, options, progress)

    for module in (sampling, hooks):
        monkeypatch.setattr(module, "plan", plan)
        monkeypatch.setattr(module, "sample", sample)
    monkeypatch.setattr(figures, "sampling_trajectory", trajectory)
    return plans, draws


def _same(draw: dict, plan) -> bool:
    want = plan.kwargs()
    return draw.keys() == want.keys() and all(
        torch.equal(v, want[k]) if isinstance(v, torch.Tensor) else v == want[k] for k, v in draw.items())


def test_every_caller_draws_the_plans_answer(moved, tmp_path):
    plans, draws = moved
    run = tmp_path / "run"
    commands = [["train", *TWO, "--out", str(run), "--quiet"],
                ["sample", str(run), "--n", "7", "--seed", "2", "--class", "right", "--out", str(tmp_path / "s.npy")],
                ["evaluate", str(run)],
                ["evaluate", str(run), "--n", "20", "--steps", "3"],
                ["plot", "reverse", str(run), "--n", "4", "--panels", "3", "--out", str(tmp_path / "r.png")],
                ["animate", str(run), "--reverse", "--n", "4", "--out", str(tmp_path / "r.gif")]]
    counts = []
    for argv in commands:
        assert main(argv) == 0, argv
        counts.append(len(draws))
    assert counts == [3, 4, 5, 6, 7, 8]  # two snapshots and the final samples, then one draw per command
    for draw in draws:
        assert any(_same(draw, p) for p in plans), draw
    assert {d["seed"] for d in draws} == {1334, 102, 100}  # FRAME_SEED + 100 (train, evaluate), 2 + 100, 0 + 100
    # what the run wrote is the moved answer's draw: its final samples at seed FRAME_SEED + 100, guidance + 0.5
    final = [p for p in plans if p.n == 30 and p.steps == 5][0]
    assert final.seed == sampling.FRAME_SEED + 100 and final.guidance == 1.75 + 0.5
    _, model, diffusion = runs.load_run(run)
    again = sampling.sample(model, diffusion, **final.kwargs())
    assert np.array_equal(np.load(run / "samples.npy"), again.numpy())


def test_the_class_flags_become_the_plans_labels():
    shapes = list(points.DATASAURUS_SHAPES)
    assert parse_classes("dino,0, star", shapes) == [3, 0, 9]
    flags = argparse.Namespace(classes="dino,star", guidance=[2.0, 3.0], guidance_interval="-2,1")
    assert class_request(flags, shapes) == {"labels": [3, 9], "guidance": 2.0, "interval": "-2,1"}  # evaluate's list
    with pytest.raises(InputError, match="^--guidance-interval: this run was trained without class labels"):
        class_request(argparse.Namespace(classes=None, guidance=None, guidance_interval="all"), None)
    assert class_request(argparse.Namespace(classes=None, guidance=None, guidance_interval=None), None) == {}
    with pytest.raises(InputError, match="^--guidance-interval '1,-1': give 'lo,hi'"):
        class_request(argparse.Namespace(classes=None, guidance=None, guidance_interval="1,-1"), shapes)
    with pytest.raises(InputError, match="^--class 'x': not a class of this run; give an index 0..12"):
        class_request(argparse.Namespace(classes="dino,x", guidance=None, guidance_interval=None), shapes)
