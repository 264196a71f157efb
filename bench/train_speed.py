"""Wall time and quality of `tiny-diffusion train`, as a user runs it (fresh process, start-up included), and its
training time against torch's thread count, idle and beside busy processes.

    python bench/train_speed.py                       # the default config on dino, 3 runs
    python bench/train_speed.py --config configs/fast.toml --repeats 5
    python bench/train_speed.py --config configs/classic.toml --repeats 1
    python bench/train_speed.py --threads auto,1,2 --busy 0,1 --epochs 60 --repeats 5 --csv bench/results/threads.csv
    python bench/train_speed.py --threads auto --busy 0,1 --repeats 1 --epochs 2     # a smoke run of the script

Prints each run and the medians. Targets (issue 2, 2 CPU cores): default <= 30 s wall with energy <= 0.01,
precision >= 0.85, coverage >= 0.90; configs/fast.toml <= 5 s of training with precision >= 0.41 and
coverage >= 0.58 (the classic 200-epoch quality).

Threads (issue 12 item 11, issue 17 item 2; bench/results/threads_auto_cpu.log was written by this script's
first version, bench/threads.py): with --threads and/or --busy, each run gets `--threads N` and B busy processes (a
pure-Python loop each, as a competing job would be) started before it and stopped after it; the configurations
take turns within each repeat, so a drift of the machine's speed spreads over all of them, and the medians come
per configuration. `auto` (also 0) is the default: one thread per core that other processes leave free, at most 2
for point models, re-checked while training (src/tiny_diffusion/runtime/threads.py); quality.json's `threads` lists
the counts it set, printed beside each run. Run it on an otherwise idle machine: other work invalidates the numbers.
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


def time_run(seed: int, threads: str | None, busy: int, flags: list[str]) -> dict:
    """One training run in a fresh process beside `busy` busy processes: wall and training seconds, quality, and
    the thread counts auto set (`chose`)."""
    hogs = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(busy)]
    try:
        time.sleep(0.5 if hogs else 0)  # the busy loops are running before the run starts
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "run"
            cmd = [sys.executable, "-m", "tiny_diffusion", "train", "--out", str(out), "--quiet", "--seed", str(seed)]
            cmd += (["--threads", threads] if threads else []) + flags
            start = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            wall = time.perf_counter() - start
            q = json.loads((out / "quality.json").read_text())
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    return {"wall_s": wall, "train_s": q["train_seconds"], **q["quality"],
            "chose": "-".join(map(str, q.get("threads", []))), "floor": q["data_floor"]}


def counts(text: str | None) -> list[str | None]:
    """'auto,1,2' -> ['auto', '1', '2'] (0 is auto too); None: the run's own default, no --threads flag."""
    if text is None:
        return [None]
    return ["auto" if v.strip() in ("auto", "0") else str(int(v)) for v in text.split(",") if v.strip()]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="TOML config passed to train")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--epochs", type=int, help="train --epochs (default: the config's)")
    p.add_argument("--threads", help="thread counts to time, comma-separated; auto: the default (e.g. auto,1,2)")
    p.add_argument("--busy", default="0", help="busy processes beside each run, comma-separated (e.g. 0,1)")
    p.add_argument("--csv", help="also write every run to this CSV")
    p.add_argument("extra", nargs="*", help="more train flags, after --")
    args = p.parse_args()
    flags = (["--config", args.config] if args.config else []) + \
            (["--epochs", str(args.epochs)] if args.epochs else []) + args.extra
    configs = [(t, int(b)) for b in args.busy.split(",") if b.strip() for t in counts(args.threads)]
    print(log_header(), flush=True)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, python "
          f"{platform.python_version()}; {args.repeats} repeats")
    rows = []
    for i in range(args.repeats):
        for threads, busy in configs:
            row = {"threads": threads or "", "busy": busy, "repeat": i, **time_run(i, threads, busy, flags)}
            rows.append(row)
            which = f"threads {threads}, busy {busy}, " if args.threads or busy else ""
            chose = f" (auto chose {row['chose']})" if threads == "auto" else ""
            print(f"{which}run {i}: wall {row['wall_s']:.1f} s, train {row['train_s']:.1f} s, energy "
                  f"{row['energy']:.4f}, precision {row['precision']:.3f}, coverage {row['coverage']:.3f}{chose}",
                  flush=True)
    for threads, busy in configs:
        mine = [r for r in rows if r["threads"] == (threads or "") and r["busy"] == busy]
        med = {k: statistics.median(r[k] for r in mine) for k in ("wall_s", "train_s", "energy", "precision",
                                                                    "coverage")}
        which = f" (threads {threads}, busy {busy})" if len(configs) > 1 or args.threads else ""
        print(f"median of {len(mine)}{which}: wall {med['wall_s']:.1f} s, train {med['train_s']:.1f} s, energy "
              f"{med['energy']:.4f}, precision {med['precision']:.3f}, coverage {med['coverage']:.3f}")
    print(f"data floor: {json.dumps(rows[-1]['floor'])}")
    if args.csv:
        Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
        with open(args.csv, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=[k for k in rows[0] if k != "floor"], extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
        print(f"wrote {args.csv}")


if __name__ == "__main__":
    main()
