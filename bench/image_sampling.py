"""Time to sample images from an image run: 1000 images with K network evaluations (DPM-Solver++, logsnr),
as `tiny-diffusion sample RUN --n 1000` does by default.

    python bench/image_sampling.py --run bench/results/mnist/default --repeats 3 [--device cuda] [--steps 20]

Target (issue 9): 1000 MNIST images with 20 network calls in at most 30 s on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch

from tiny_diffusion.runs import load_run
from tiny_diffusion.sampling import sample
from tiny_diffusion.runtime.device import resolve_device

from tiny_diffusion.runtime.host import log_header


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True)
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--sampler", default="dpm++")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    device = resolve_device(args.device)
    _, model, diffusion = load_run(args.run, device)
    print(log_header(), flush=True)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
          f"{torch.__version__} ({torch.get_num_threads()} threads), device {device}")
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        x = sample(model, diffusion, args.n, seed=0, device=device, sampler=args.sampler, steps=args.steps,
                   spacing="logsnr")
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        print(f"{args.n} images {tuple(x.shape[1:])}, {args.sampler} {args.steps} steps: {times[-1]:.2f} s", flush=True)
    print(f"median of {len(times)}: {statistics.median(times):.2f} s")


if __name__ == "__main__":
    main()
