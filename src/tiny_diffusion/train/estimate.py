"""How long an image run will take, said at its start: the network timed once on a few images (a forward without
gradients, as sampling runs it; a forward and backward, as training does), times the passes the run will make
(length.py: training's images, the snapshots' and the final samples' passes). The timed passes leave the model
as they found it: eval mode (BatchNorm's statistics stay), zero inputs (no random numbers drawn), and the
gradients set back to None, as the training step leaves them."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from ..config import TRAIN_PASSES
from ..sampling import plan
from .length import eval_calls

PROBE_IMAGES = 8  # images of the timed training pass: ~2 s of a 62M-weight SimpleUnet at 64 px, ~0.05 s of the U-Net


@dataclass
class Speed:
    forward: dict  # block size -> seconds of one forward pass of that many images without gradients (sampling)
    train: float  # seconds per image of a forward and backward pass (a training step, less the optimizer)

    @classmethod
    def from_training(cls, step_seconds: float, batch: int, blocks=()) -> "Speed":
        """From a measured training step (a point run's): TRAIN_PASSES forward passes per image."""
        return cls({b: b * step_seconds / (TRAIN_PASSES * batch) for b in blocks}, step_seconds / batch)


def measure(model, shape, device, blocks, class_cond: bool = False, images: int = PROBE_IMAGES) -> Speed:
    """The network's speed on zero images of `shape`: a forward of each block size in `blocks` (as sampling
    calls it: small blocks cost more per image), a forward and backward of `images`; each once untimed first
    (kernel set-up)."""
    was_training = model.training
    model.eval()
    try:
        forward = {}
        with torch.no_grad():
            for b in sorted(set(blocks)):
                x, t, y = _inputs(b, shape, device, class_cond)
                model(x, t, y)
                t0 = time.perf_counter()
                model(x, t, y)
                forward[b] = synced_seconds(t0, device)
        x, t, y = _inputs(images, shape, device, class_cond)
        for _ in range(2):
            t0 = time.perf_counter()
            model(x, t, y).float().square().mean().backward()
            train = synced_seconds(t0, device) / images
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return Speed(forward, train)


def _inputs(n: int, shape, device, class_cond: bool):
    y = torch.zeros(n, dtype=torch.long, device=device) if class_cond else None
    return torch.zeros(n, *shape, device=device), torch.zeros(n, dtype=torch.long, device=device), y


def run_estimate(cfg, speed: Speed, images_left: int, snapshots_left: int) -> dict:
    """Seconds of what is left of a run: training `images_left` images, `snapshots_left` snapshots, final samples."""
    (b1, shots), (b2, final) = eval_calls(cfg, snapshots_left)
    parts = {"training": images_left * speed.train, "snapshots": shots * speed.forward[b1],
             "final samples": final * speed.forward[b2]}
    return {"total": sum(parts.values()), **parts}


def describe_estimate(cfg, seconds: dict, steps_left: int, snapshots_left: int) -> str:
    """'about 40 s in all: training 30 s (3 steps), snapshots 6 s (3 grids of 1 x 20 steps), final samples 4 s
    (1 x 20 dpm++ steps)'."""
    final = plan(cfg, "final")
    return (f"about {duration(seconds['total'])} in all: training {duration(seconds['training'])} ({steps_left} "
            f"steps), snapshots {duration(seconds['snapshots'])} ({snapshots_left} grids of {cfg.frame_points} x "
            f"{min(cfg.frame_steps, cfg.timesteps)} steps), final samples {duration(seconds['final samples'])} "
            f"({final.n} x {final.steps or cfg.timesteps} {final.sampler} steps); from timed passes of "
            f"the network")


def final_line(cfg, speed: Speed) -> str:
    """The line before the final samples: what they are and about how long they take."""
    final = plan(cfg, "final")
    block, calls = eval_calls(cfg, 0)[1]
    return (f"final samples: {final.n} x {final.steps or cfg.timesteps} {final.sampler} steps, about "
            f"{duration(calls * speed.forward[block])} (from measured passes of the network)")


def duration(seconds: float) -> str:
    """12 s, 4.5 min, 2.1 h."""
    if seconds < 100:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 6000 else f"{seconds / 3600:.1f} h"


def synced_seconds(t0: float, device: torch.device) -> float:
    """Seconds since t0 once the device has finished its queued work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0
