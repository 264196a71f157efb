"""sampling.plan, the one translator from a run's config and a purpose to the sampler's arguments: what it answers
for each purpose (known answers from the config's fields), and its refusals."""

import pytest
import torch

from tiny_diffusion.config import TrainConfig
from tiny_diffusion.errors import InputError
from tiny_diffusion.sampling import FRAME_SEED, POINT_BLOCK, plan

POINTS = TrainConfig(dataset="moons", frame_points=300, frame_sampler="ddim", frame_steps=15, eval_sampler="dpm++",
                     eval_steps=12, timesteps=100)
IMAGES = TrainConfig(dataset="mnist", frame_points=6, eval_n=20, eval_steps=4, frame_steps=8, timesteps=50)
COND = TrainConfig(dataset="datasaurus", class_cond=True, guidance=2.5, guidance_interval="-2,1", frame_points=30)
SHAPES = [f"shape{k}" for k in range(13)]


def test_snapshots_and_final_samples_follow_the_config():
    snap = plan(POINTS, "snapshot")
    assert (snap.n, snap.seed, snap.sampler, snap.steps, snap.spacing, snap.block) == (300, FRAME_SEED, "ddim", 15,
                                                                                       "logsnr", POINT_BLOCK)
    final = plan(POINTS, "final")
    assert (final.n, final.seed, final.sampler, final.steps, final.spacing, final.block) == (300, FRAME_SEED, "dpm++",
                                                                                             12, None, POINT_BLOCK)
    # images: eval_n final samples, the snapshots on the default grid, blocks fitted to the draw (aligned_block)
    snap, final = plan(IMAGES, "snapshot"), plan(IMAGES, "final")
    assert (snap.n, snap.steps, snap.spacing, snap.block) == (6, 8, None, 8)
    assert (final.n, final.sampler, final.steps, final.block) == (20, "dpm++", 4, 32)
    assert plan(IMAGES.replace(frame_steps=500), "snapshot").steps == 50  # at most the run's timesteps
    assert plan(POINTS.replace(eval_steps=0), "final").steps is None  # 0: all steps
    # a distilled student samples its snapshots on its own recorded grid (spacing None lets own_grid take it)
    student = plan(POINTS.replace(sample_grid="99,50,10"), "snapshot")
    assert student.spacing is None and student.recorded == (99, 50, 10)


def test_evaluate_repeats_the_final_samples_unless_told_otherwise():
    assert plan(IMAGES, "evaluate") == plan(IMAGES, "final")
    told = plan(IMAGES, "evaluate", n=20, seed=3)
    assert (told.n, told.seed, told.block) == (20, 3, None)  # an n of one's own: the default block, as `sample`
    assert plan(POINTS, "evaluate", steps=5).sampler == "ddpm"  # told steps alone: ddpm ...
    assert plan(POINTS, "evaluate", sampler="ddim").steps is None  # ... told a sampler alone: all steps


def test_sample_and_figures_draw_as_the_final_samples_unless_told():
    drawn = plan(POINTS, "sample", n=40)
    assert (drawn.n, drawn.seed, drawn.sampler, drawn.steps, drawn.block) == (40, 0, "dpm++", 12, None)
    drawn = plan(POINTS, "figure", n=7, seed=5, sampler="ddim", steps=4, eta=0.5, spacing="trailing", lambda_min=-3,
                 clip=2.0)
    assert drawn.kwargs() == {"n": 7, "seed": 5, "start": 0, "sampler": "ddim", "steps": 4, "eta": 0.5, "clip": 2.0,
                              "spacing": "trailing", "lambda_min": -3, "block": None}


def test_a_conditional_runs_labels_guidance_and_interval():
    drawn = plan(COND, "sample", classes=SHAPES, n=5)
    assert drawn.y.tolist() == [0, 1, 2, 3, 4]  # every class in turn
    assert (drawn.guidance, drawn.guidance_interval) == (2.5, (-2.0, 1.0))  # the run's
    asked = plan(COND, "sample", classes=SHAPES, n=5, labels=[3, 7], guidance=0, interval="all")
    assert asked.y.tolist() == [3, 3, 3, 7, 7] and (asked.guidance, asked.guidance_interval) == (0, None)
    part = asked.kwargs(2, 4)  # a rank's share: its labels, and where its samples start
    assert part["y"].tolist() == [3, 7] and (part["n"], part["start"]) == (2, 2)
    assert torch.equal(plan(COND, "final", classes=13).y, torch.arange(30) % 13)  # a number of classes will do
    assert plan(POINTS, "sample", n=5).cond == {} and plan(POINTS, "sample", n=5).y is None


def test_refusals():
    with pytest.raises(InputError, match="without class labels"):
        plan(POINTS, "sample", n=5, labels=[0])
    with pytest.raises(InputError, match="0..12"):
        plan(COND, "sample", classes=SHAPES, n=5, labels=[13])
    with pytest.raises(InputError, match="finite number >= 0"):
        plan(COND, "sample", classes=SHAPES, n=5, guidance=-1)
    with pytest.raises(ValueError, match="classes="):  # a conditional run's labels need its classes
        plan(COND, "final").y
    with pytest.raises(ValueError, match="its own"):  # the run's snapshots and final samples take no overrides
        plan(POINTS, "final", steps=3)
    with pytest.raises(ValueError):
        plan(POINTS, "sample")  # n
    with pytest.raises(ValueError):
        plan(POINTS, "posterior", n=3)
