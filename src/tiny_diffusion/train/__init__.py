"""Training: a TrainConfig in, a run folder out.

    loop.py    the optimisation loop: steps, EMA, LR schedule, non-finite guard, stop signals
    state.py   what a checkpoint holds, RNG capture/restore, exact resume, clean stops
    hooks.py   what depends on the data's kind: snapshots, their metrics, the final samples and files
    step.py    one optimisation step (the same function eager, under DDP, or captured) and how it runs here
(CUDA graphs and torchrun live in tiny_diffusion.runtime.)
"""

from ..runs import frame_epochs
from .loop import FRAME_SEED, TrainResult, lr_factor, train

__all__ = ["FRAME_SEED", "TrainResult", "frame_epochs", "lr_factor", "train"]
