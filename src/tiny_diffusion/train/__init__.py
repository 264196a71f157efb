"""Training: a TrainConfig in, a run folder out.

    loop.py    train(): the whole loop in one function, read top to bottom
    setup.py   settle (a run's automatic config values, decided once from the data) and what a run builds
               before its first step (Run), in the order that fixes every random stream
    step.py    one optimisation step (batch, loss, backward, clip, optimizer, EMA), eager, under DDP or captured
    upkeep.py  between steps: checkpoints, snapshots, metrics rows, the non-finite guard, the final files
    state.py   what a checkpoint holds (TrainState, save_state / load_state), RNG capture, clean stops
    hooks.py   what depends on the data's kind: snapshots, their metrics, the final samples and files
    length.py  the schedule's length, snapshot steps, and the lines that describe them
(CUDA graphs and torchrun live in tiny_diffusion.runtime.)
"""

from ..runs import frame_epochs
from .loop import FRAME_SEED, TrainResult, lr_factor, train

__all__ = ["FRAME_SEED", "TrainResult", "frame_epochs", "lr_factor", "train"]
