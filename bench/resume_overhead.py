"""What never losing a run costs: one checkpoint write, and the training loop with checkpoints every
epoch, at the end only, and with --skip-nonfinite (a host sync per step). Run by hand:

    OMP_NUM_THREADS=1 PYTHONPATH=src python bench/resume_overhead.py [--epochs 20] [--repeats 5]

Prints medians over the repeats. Uses the default TrainConfig apart from the epochs (and frames=0, so
snapshot sampling does not blur the numbers).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from tiny_diffusion import runs
from tiny_diffusion.config import TrainConfig
from tiny_diffusion.train import train


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    base = TrainConfig(epochs=args.epochs, frames=0, device="cpu")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, default config, {args.epochs} epochs")
    variants = {"checkpoint only at the end": base.replace(checkpoint_every=0),
                "checkpoint every epoch": base.replace(checkpoint_every=1),
                "end only + skip_nonfinite=1": base.replace(checkpoint_every=0, skip_nonfinite=1)}
    with tempfile.TemporaryDirectory() as tmp:
        times = {name: [] for name in variants}
        for r in range(args.repeats):  # interleaved, so machine noise hits every variant alike
            for name, cfg in variants.items():
                times[name].append(train(cfg, Path(tmp) / f"{r}-{len(times[name])}-{hash(name)}",
                                         progress=False).train_seconds)
        for name, t in times.items():
            print(f"{name:32s} train loop median {statistics.median(t):.3f} s  ({args.epochs} epochs)")
        run = next(Path(tmp).iterdir())
        state = torch.load(run / runs.CHECKPOINT, weights_only=True)
        saves = []
        for _ in range(args.repeats * 4):
            t0 = time.perf_counter()
            runs.save_checkpoint(Path(tmp) / "probe.pt", state)
            saves.append(time.perf_counter() - t0)
        size = (Path(tmp) / "probe.pt").stat().st_size
        print(f"one checkpoint write (atomic, fsync): median {statistics.median(saves) * 1000:.1f} ms, "
              f"{size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
