"""How good can a deterministic few-step student of a run be? Its teacher's DDIM (the probability-flow ODE that
progressive distillation compresses) against ancestral sampling, on the grids distillation starts from. By hand:

    PYTHONPATH=src python bench/teacher_ode.py --run RUN_DIR        # a default dino run

Each line: 1000 samples (seed 1234) scored against 3 fresh reference draws of 1000 true points (train's scorer).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from distill import host_line  # noqa: E402  (bench/distill.py)

from tiny_diffusion import runs  # noqa: E402
from tiny_diffusion.eval.points import quality, references  # noqa: E402
from tiny_diffusion.sampling import describe_grid, sample  # noqa: E402

GRIDS = [("ddpm", None, None), ("ddim", None, None), ("ddim", 256, "logsnr"), ("ddim", 128, "logsnr"),
         ("ddim", 64, "logsnr"), ("ddim", 64, None), ("ddim", 32, None), ("ddpm", 64, "logsnr"), ("ddpm", 256, "logsnr")]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(host_line())
    _, model, diffusion = runs.load_run(args.run)
    refs = references("dino")
    for sampler, steps, spacing in GRIDS:
        x = sample(model, diffusion, 1000, 1234, sampler=sampler, steps=steps, spacing=spacing).numpy()
        print(f"{describe_grid(sampler, diffusion, steps, spacing):45s} {quality(x, refs)}")


if __name__ == "__main__":
    main()
