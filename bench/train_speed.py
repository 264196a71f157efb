"""Wall time and quality of `tiny-diffusion train`, as a user runs it (fresh process, start-up included).

    python bench/train_speed.py                       # the default config on dino, 3 runs
    python bench/train_speed.py --config configs/fast.toml --repeats 5
    python bench/train_speed.py --config configs/classic.toml --repeats 1

Prints each run and the medians. Targets (issue 2, 2 CPU cores): default <= 30 s wall with energy <= 0.01,
precision >= 0.85, coverage >= 0.90; configs/fast.toml <= 5 s of training with precision >= 0.41 and
coverage >= 0.58 (the classic 200-epoch quality).
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tiny_diffusion.runtime.host import log_header


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="TOML config passed to train")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("extra", nargs="*", help="more train flags, after --")
    args = p.parse_args()
    print(log_header(), flush=True)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}")
    rows = []
    for i in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "run"
            cmd = [sys.executable, "-m", "tiny_diffusion", "train", "--out", str(out), "--quiet", "--seed", str(i)]
            cmd += (["--config", args.config] if args.config else []) + args.extra
            start = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            wall = time.perf_counter() - start
            q = json.loads((out / "quality.json").read_text())
            row = {"wall_s": wall, "train_s": q["train_seconds"], **q["quality"]}
            rows.append(row)
            print(f"run {i}: wall {wall:.1f} s, train {row['train_s']:.1f} s, energy {row['energy']:.4f}, "
                  f"precision {row['precision']:.3f}, coverage {row['coverage']:.3f}", flush=True)
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    print(f"median of {len(rows)}: wall {med['wall_s']:.1f} s, train {med['train_s']:.1f} s, energy "
          f"{med['energy']:.4f}, precision {med['precision']:.3f}, coverage {med['coverage']:.3f}")
    print(f"data floor: {json.dumps(q['data_floor'])}")


if __name__ == "__main__":
    main()
