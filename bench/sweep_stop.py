"""How long Ctrl-C takes to end `tiny-diffusion sweep --jobs 2`, during training and while runs are scored.

    python bench/sweep_stop.py >> bench/results/reliability_cpu.log

Starts a sweep of six tiny point runs in its own process group, waits for the stage (a run's first checkpoint:
training; a run's quality.json with one epoch per run: scoring, the NLL and quality of evaluation.json), sends
SIGINT to the whole group as a terminal's Ctrl-C does, and times until the sweep exits; prints its exit code and
stderr lines.
"""

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[1] / "src")
TINY = ("--dataset moons --n-points 256 --batch-size 128 --timesteps 10 --hidden-size 16 --hidden-layers 1 "
        "--emb-size 8 --frames 2 --frame-points 100 --device cpu --terminal-alpha-bar 0.0001").split()


def stop_seconds(stage: str, out: Path) -> tuple[float, int, str]:
    epochs = "400" if stage == "training" else "1"
    cmd = [sys.executable, "-m", "tiny_diffusion", "sweep", "--out", str(out), "--jobs", "2", "--vary",
           "lr=2e-3,3e-3,4e-3,5e-3,6e-3,7e-3", "--epochs", epochs, *TINY]
    p = subprocess.Popen(cmd, env={**os.environ, "PYTHONPATH": SRC}, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
    marker = "checkpoint.pt" if stage == "training" else "quality.json"
    while not list(out.glob(f"runs/*/{marker}")) and p.poll() is None:
        time.sleep(0.02)
    os.killpg(p.pid, signal.SIGINT)
    t0 = time.perf_counter()
    _, err = p.communicate(timeout=600)
    return time.perf_counter() - t0, p.returncode, err.strip()


def main() -> None:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    sys.path.insert(0, SRC)
    from tiny_diffusion.runtime.host import log_header

    print(log_header())
    for stage in ("training", "scoring"):
        with tempfile.TemporaryDirectory() as tmp:
            seconds, rc, err = stop_seconds(stage, Path(tmp) / "s")
        lines = err.splitlines()
        print(f"sweep --jobs 2, Ctrl-C during {stage}: ended in {seconds:.1f} s, exit {rc}, {len(lines)} line(s) "
              f"on stderr: {lines[0] if lines else ''}")


if __name__ == "__main__":
    main()
