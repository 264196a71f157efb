"""Issue 5's few-step targets as a user meets them: `sample` then `evaluate` the file, and `evaluate RUN`, for
DPM-Solver++ and DDIM at 10 steps on the default grid (and diffusers' `trailing` grid, for comparison).

    python bench/few_step_targets.py --run runs/dino     # a default dino run (tiny-diffusion train --out runs/dino)

Prints each command and what it printed. Quality only: it does not depend on the machine's load.
"""

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from tiny_diffusion.runtime.host import log_header


def cli(*args: str) -> str:
    r = subprocess.run([sys.executable, "-m", "tiny_diffusion", *args], capture_output=True, text=True, check=True)
    return r.stdout.strip()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="a trained default dino run folder")
    args = p.parse_args()
    print(log_header(), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for sampler in ("dpm++", "ddim"):
            out = str(Path(tmp) / f"{sampler}.csv")
            print(f"$ tiny-diffusion sample {args.run} --sampler {sampler} --steps 10 --out s.csv && "
                  f"tiny-diffusion evaluate s.csv\n{cli('sample', args.run, '--sampler', sampler, '--steps', '10', '--out', out)}"
                  f"\n{cli('evaluate', out, '--dataset', 'dino')}", flush=True)
            print(f"$ tiny-diffusion evaluate {args.run} --sampler {sampler} --steps 10\n"
                  f"{cli('evaluate', args.run, '--sampler', sampler, '--steps', '10')}", flush=True)
    print(f"$ tiny-diffusion evaluate {args.run} --sampler dpm++ --steps 10 --spacing trailing --seed 0\n"
          f"{cli('evaluate', args.run, '--sampler', 'dpm++', '--steps', '10', '--spacing', 'trailing', '--seed', '0')}")


if __name__ == "__main__":
    main()
