"""What classifier-free guidance costs per sampling step: one network call on a doubled batch (what the samplers
do, `guidance.Guided`) against the plain conditional step (W = 1) and against two sequential calls.

    python bench/guidance_speed.py                       # points (1000, the MLP) and images (64 digits, the U-Net)
    python bench/guidance_speed.py --threads 2 --repeats 7

The networks are freshly initialised (the weights do not change the time): the default point MLP and the default
28x28 U-Net, each with 10 classes. Times are medians over repeats of whole sampling runs, divided by the steps.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch

from tiny_diffusion.config import TrainConfig
from tiny_diffusion.core.diffusion import Diffusion
from tiny_diffusion.core.guidance import NULL, cycle_labels, guide
from tiny_diffusion.models import build_model
from tiny_diffusion.sampling import sample

from tiny_diffusion.runtime.host import log_header


class TwoCalls(torch.nn.Module):
    """Guidance the slow way: the conditional and the unconditional prediction as two sequential calls."""

    def __init__(self, model, w: float):
        super().__init__()
        self.model, self.w, self.sample_shape = model, w, model.sample_shape

    def forward(self, x, t, y):
        return guide(self.model(x, t, y), self.model(x, t, torch.full_like(y, NULL)), self.w)


def per_step(model, diffusion, n: int, steps: int, repeats: int, **kwargs) -> float:
    """Median milliseconds per step of `steps`-step DDIM runs drawing n samples."""
    times = []
    for _ in range(repeats + 1):  # the first run warms up
        start = time.perf_counter()
        sample(model, diffusion, n, 0, sampler="ddim", steps=steps, **kwargs)
        times.append((time.perf_counter() - start) / steps * 1000)
    return statistics.median(times[1:])


def bench(name: str, cfg: TrainConfig, shape, n: int, steps: int, repeats: int) -> None:
    torch.manual_seed(0)
    model = build_model(cfg, shape, classes=[str(k) for k in range(10)]).eval()
    diffusion = Diffusion.from_config(cfg)
    y = cycle_labels(n, 10)
    plain = per_step(model, diffusion, n, steps, repeats, y=y, guidance=1.0)
    batched = per_step(model, diffusion, n, steps, repeats, y=y, guidance=3.0)
    # two calls: TwoCalls guides by itself, so the samplers run it as a plain conditional model (W = 1)
    two = per_step(TwoCalls(model, 3.0), diffusion, n, steps, repeats, y=y, guidance=1.0)
    print(f"{name}: {n} samples, ms per step: no guidance (W = 1) {plain:.2f}; guided, one call of a doubled batch "
          f"{batched:.2f} ({batched / plain:.2f}x); guided, two sequential calls {two:.2f} ({two / plain:.2f}x)",
          flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(log_header(), flush=True)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads", flush=True)
    bench("points (MLP, 1000 steps of T)", TrainConfig(device="cpu"), (2,), 1000, 50, args.repeats)
    bench("digits (U-Net, 28x28)", TrainConfig(dataset="mnist", device="cpu"), (1, 28, 28), 64, 5, args.repeats)


if __name__ == "__main__":
    main()
