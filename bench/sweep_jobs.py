"""Speed-up of `tiny-diffusion sweep --jobs 2` over `--jobs 1` on the same 4-run sweep.

    PYTHONPATH=src python bench/sweep_jobs.py [--repeats 3]

Each repeat runs the sweep into a fresh folder (nothing to skip), as a subprocess, and times the
whole command (worker start-up, training, evaluation, CSV and figure). Reports medians.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tiny_diffusion.runtime.host import log_header

SRC = str(Path(__file__).resolve().parents[1] / "src")
SWEEP = ["--vary", "lr=1e-2,3e-3,1e-3,3e-4", "--dataset", "dino", "--timesteps", "50", "--terminal-alpha-bar",
         "1e-4", "--epochs", "20", "--batch-size", "256", "--emb-size", "128", "--frames", "4", "--device", "cpu"]


def run(jobs: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "tiny_diffusion", "sweep", "--out", tmp, "--jobs", str(jobs), *SWEEP],
                       check=True, env={**os.environ, "PYTHONPATH": SRC}, stdout=subprocess.DEVNULL)
        return time.perf_counter() - start


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    print(log_header(), flush=True)
    print(f"machine: {os.cpu_count()} CPUs; sweep of 4 runs: {' '.join(SWEEP)}")
    times = {1: [], 2: []}
    for _ in range(args.repeats):
        for jobs in (1, 2):
            times[jobs].append(run(jobs))
            print(f"--jobs {jobs}: {times[jobs][-1]:.1f} s", flush=True)
    m1, m2 = statistics.median(times[1]), statistics.median(times[2])
    print(f"median --jobs 1 {m1:.1f} s, --jobs 2 {m2:.1f} s: speed-up {m1 / m2:.2f}x")


if __name__ == "__main__":
    main()
