"""Training time against torch's thread count, on an idle machine and beside busy processes (issue 12 item 11,
issue 17 item 2).

    python bench/threads.py                                  # threads auto,1,2 x busy 0,1; 60 epochs; 5 repeats
    python bench/threads.py --threads auto,1,2,4 --busy 0,1,2 --repeats 7 --csv bench/results/threads.csv
    python bench/threads.py --epochs 600                     # the default dino run's full length
    python bench/threads.py --threads auto --busy 0,1 --repeats 1 --epochs 2   # a smoke run of the script

Each measurement is a fresh `tiny-diffusion train --epochs E --threads N --quiet` (the default dino config
otherwise), with B busy processes (a pure-Python loop each, as a competing job would be) started before it
and stopped after it. The configurations take turns within each repeat, so a drift of the machine's speed
spreads over all of them. Prints every run, then the medians of the training time (quality.json's
train_seconds: the loop alone) and of the wall time (start-up, final sampling and figures included).
`auto` (also 0) is the default: one thread per core that other processes leave free, at most 2 for point
models, re-checked while training (src/tiny_diffusion/runtime/threads.py); quality.json's `threads` lists the counts it
set, printed beside each run. Run it on an otherwise idle machine: other work on it invalidates the numbers.
"""

import argparse
import csv
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

BUSY_LOOP = "while True:\n    pass\n"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", default="auto,1,2",
                   help="thread counts to time, comma-separated; auto: the default (default auto,1,2)")
    p.add_argument("--busy", default="0,1", help="busy processes beside the run, comma-separated (default 0,1)")
    p.add_argument("--epochs", type=int, default=60, help="epochs per run (default 60, as in the issue)")
    p.add_argument("--repeats", type=int, default=5, help="runs per configuration (default 5)")
    p.add_argument("--csv", help="also write every run to this CSV")
    args = p.parse_args()
    configs = [(t, b) for b in _ints(args.busy) for t in _counts(args.threads)]
    print(log_header(), flush=True)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, python "
          f"{platform.python_version()}; {args.epochs} epochs, {args.repeats} repeats")
    rows = []
    for repeat in range(args.repeats):
        for threads, busy in configs:
            row = {"threads": threads, "busy": busy, "repeat": repeat, **_time_run(threads, busy, args.epochs)}
            rows.append(row)
            chose = f" (auto chose {row['chose']})" if row["chose"] else ""
            print(f"threads {threads}, busy {busy}, run {repeat}: train {row['train_s']:.2f} s, "
                  f"wall {row['wall_s']:.2f} s{chose}", flush=True)
    print("\nmedians (auto = the default)")
    print("| threads | busy processes | train s | wall s |\n|---|---|---|---|")
    for threads, busy in configs:
        mine = [r for r in rows if r["threads"] == threads and r["busy"] == busy]
        print(f"| {threads} | {busy} | {statistics.median(r['train_s'] for r in mine):.2f} | "
              f"{statistics.median(r['wall_s'] for r in mine):.2f} |")
    if args.csv:
        Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
        with open(args.csv, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        print(f"wrote {args.csv}")


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def _counts(text: str) -> list[str]:
    """'auto,1,2' -> ['auto', '1', '2'] (0 is auto too)."""
    return ["auto" if v.strip() in ("auto", "0") else str(int(v)) for v in text.split(",") if v.strip()]


def _time_run(threads: str, busy: int, epochs: int) -> dict:
    """{train_s, wall_s, chose} of one training run in a fresh process, beside `busy` busy processes (chose: the
    thread counts auto set, in order)."""
    hogs = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(busy)]
    try:
        time.sleep(0.5 if hogs else 0)  # the busy loops are running before the run starts
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "run"
            cmd = [sys.executable, "-m", "tiny_diffusion", "train", "--epochs", str(epochs), "--threads", threads,
                   "--quiet", "--out", str(out)]
            start = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            wall = time.perf_counter() - start
            q = json.loads((out / "quality.json").read_text())
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    return {"train_s": q["train_seconds"], "wall_s": wall, "chose": "-".join(map(str, q.get("threads", [])))}


if __name__ == "__main__":
    main()
