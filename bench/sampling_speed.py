"""Time to draw 1000 points with 1000 ancestral DDPM steps with the default model (issue 2 target: <= 1 s
on 2 CPU cores). The weights do not change the cost, so a freshly initialised default model is timed.

    python bench/sampling_speed.py [--n 1000] [--timesteps 1000] [--repeats 7]
"""

import argparse
import os
import platform
import statistics
import time

import torch

from tiny_diffusion.config import TrainConfig
from tiny_diffusion.core.diffusion import Diffusion
from tiny_diffusion.models import build_model
from tiny_diffusion.sampling import sample

from tiny_diffusion.runtime.host import log_header


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--timesteps", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args()
    cfg = TrainConfig(timesteps=args.timesteps)
    model = build_model(cfg).eval()
    diffusion = Diffusion.from_config(cfg)
    sample(model, diffusion, args.n, seed=0)  # warm-up
    times = []
    for i in range(args.repeats):
        start = time.perf_counter()
        sample(model, diffusion, args.n, seed=i)
        times.append(time.perf_counter() - start)
    print(log_header(), flush=True)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    print(f"{args.n} points x {args.timesteps} ancestral steps: median {statistics.median(times):.3f} s "
          f"(min {min(times):.3f}, max {max(times):.3f}, {args.repeats} runs)")


if __name__ == "__main__":
    main()
