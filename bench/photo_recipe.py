"""The tutorial's recipe on a small photo folder (issue 26 item 1): how long `train --config configs/cars-tutorial.toml
--dataset PHOTOS --epochs 3` takes on 20 photos, against what the run announced, phase by phase; and how soon a
SIGTERM sent in the middle of it stops the run (and whether `--resume` then finishes it).

    python bench/photo_recipe.py --repeats 3 --out bench/results/photo_recipe_cpu.log
    python bench/photo_recipe.py --sigterm-at 20 --out bench/results/photo_recipe_sigterm_cpu.log
    python bench/photo_recipe.py --src OLD/src --epochs 1 --out bench/results/photo_recipe_before_cpu.log
    python bench/photo_recipe.py --passes [--src OLD/src]     # the evaluation's cost counted, not timed (no training)

`--src` runs another checkout's code (the code before issue 26: `git archive d933c6b | tar -x -C OLD`); the
photos are 64x64 RGB PNGs written with Pillow into a temporary folder (seeded noise: the timing does not
depend on what they show). Each line of the run's stderr is stamped with the seconds since the start, so the
phases show: the start line, the snapshots (metrics.csv's seconds are training alone), the final samples.

`--passes` counts the evaluation of that run (3 epochs) in one-image forward passes, from the config rule of the
code in `--src` (exact numbers, no timing; the code before issue 26 padded to fixed 64-image blocks);
bench/results/photo_recipe_passes.log was written by its first version, bench/photo_recipe_passes.py.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def write_photos(folder: Path, n: int = 20, size: int = 64) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (size, size, 3)).astype(np.uint8), "RGB").save(folder / f"{i:02d}.png")


def run_once(src: str, photos: Path, out: Path, epochs: int, threads: int, sigterm_at: float | None) -> dict:
    """One `train` in a fresh interpreter: its stamped stderr lines, wall time, exit code, and the stop's latency."""
    cmd = [sys.executable, "-m", "tiny_diffusion", "train", "--config", str(ROOT / "configs" / "cars-tutorial.toml"),
           "--dataset", str(photos), "--epochs", str(epochs), "--threads", str(threads), "--quiet", "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": src}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    sent = []
    if sigterm_at is not None:
        def kill():
            time.sleep(sigterm_at)
            if proc.poll() is None:
                sent.append(time.perf_counter() - start)
                proc.send_signal(signal.SIGTERM)
        threading.Thread(target=kill, daemon=True).start()
    lines = [(round(time.perf_counter() - start, 2), line.rstrip()) for line in proc.stderr]
    proc.wait()
    wall = time.perf_counter() - start
    return {"lines": lines, "wall": wall, "rc": proc.returncode, "stdout": proc.stdout.read(),
            "stop_latency": wall - sent[0] if sent else None}


def phases(result: dict, out: Path) -> dict:
    """The announced estimate and the measured phases of a finished run."""
    text = "\n".join(line for _, line in result["lines"])
    announced = re.search(r"about ([\d.]+) (s|min|h) in all", text)
    final_said = re.search(r"final samples: .*about ([\d.]+) (s|min|h)", text)
    unit = {"s": 1, "min": 60, "h": 3600}
    final_at = next((t for t, line in result["lines"] if line.startswith("final samples:")), None)
    with open(out / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    quality = json.loads((out / "quality.json").read_text()) if (out / "quality.json").is_file() else {}
    config = json.loads((out / "config.json").read_text())
    return {"announced_total_s": float(announced[1]) * unit[announced[2]] if announced else None,
            "announced_final_s": float(final_said[1]) * unit[final_said[2]] if final_said else None,
            "final_line_at_s": final_at, "final_samples_s": result["wall"] - final_at if final_at else None,
            "train_seconds": quality.get("train_seconds"), "metrics_seconds": [float(r["seconds"]) for r in rows],
            "frame_points": config.get("frame_points"), "eval_n": config.get("eval_n"),
            "eval_steps": config.get("eval_steps"), "wall_s": result["wall"]}


def passes(src: str) -> str:
    """The one-image forward passes of the recipe's evaluation on 20 photos for 3 epochs, by `src`'s config rule."""
    sys.path.insert(0, src)
    from tiny_diffusion.config import TrainConfig

    photos = tempfile.mkdtemp()  # the rule needs only a folder (dataset_kind): what is in it does not count
    cfg = TrainConfig.from_toml(ROOT / "configs" / "cars-tutorial.toml", {"dataset": photos, "epochs": 3})
    seen, shots = 3 * 20, 3  # 3 steps of 20 photos; snapshot_steps(3, 1, 10) = [1, 2, 3]
    try:
        from tiny_diffusion.train.length import eval_passes
        try:
            from tiny_diffusion.train.setup import fit_evaluation  # since issue 32: the values, settled once
            cfg = cfg.replace(**fit_evaluation(cfg, seen, shots))
        except ImportError:
            from tiny_diffusion.train.length import fit_evaluation
            cfg = fit_evaluation(cfg, seen, shots)
        s, f = eval_passes(cfg, shots)
        code = "after (issues 24 and 26)"
    except ImportError:  # the code before issue 26
        cfg = cfg.scaled_eval(seen)
        pad = lambda n: -(-n // 64) * 64  # sampling's fixed 64-image blocks
        s, f = shots * pad(cfg.frame_points) * min(cfg.frame_steps, cfg.timesteps), pad(cfg.eval_n) * cfg.eval_steps
        code = "before (main d933c6b)"
    return (f"{code}: frame_points {cfg.frame_points}, eval_n {cfg.eval_n}, eval_steps {cfg.eval_steps}; one-image "
            f"forward passes: snapshots {s}, final samples {f}, evaluation {s + f}; training {3 * seen} "
            f"(3 passes per image seen); evaluation / training {(s + f) / (3 * seen):.2f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--src", default=str(ROOT / "src"), help="the package's source folder (default this checkout's)")
    p.add_argument("--passes", action="store_true", help="count the evaluation's forward passes only (no run)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--sigterm-at", type=float, default=None, help="send SIGTERM this many seconds in, then resume")
    p.add_argument("--out", help="the log to write (a .json of the raw results beside it); required but with --passes")
    args = p.parse_args()
    if args.passes:
        text = f"command: python {' '.join(sys.argv)}\n{passes(args.src)}\n"
        print(text, end="")
        args.out and Path(args.out).write_text(text)
        return
    if not args.out:
        p.error("--out LOG is required (except with --passes)")
    log = [f"command: python {' '.join(sys.argv)}", host_line(), f"src: {args.src}"]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        photos = Path(tmp) / "photos"
        write_photos(photos)
        for k in range(args.repeats):
            out = Path(tmp) / f"run{k}"
            r = run_once(args.src, photos, out, args.epochs, args.threads, args.sigterm_at)
            log += [f"-- run {k + 1}: exit {r['rc']}, wall {r['wall']:.1f} s"] + [f"  {t:7.2f} s  {line}"
                                                                             for t, line in r["lines"]]
            if args.sigterm_at is not None:
                log.append(f"  SIGTERM at {args.sigterm_at:g} s: the run exited {r['stop_latency']:.2f} s later "
                           f"(exit {r['rc']})")
                cmd_resume = [sys.executable, "-m", "tiny_diffusion", "train", "--resume", str(out), "--quiet",
                              "--threads", str(args.threads)]
                t0 = time.perf_counter()
                done = subprocess.run(cmd_resume, capture_output=True, text=True, cwd=ROOT,
                                      env={**os.environ, "PYTHONPATH": args.src})
                log.append(f"  --resume: exit {done.returncode} after {time.perf_counter() - t0:.1f} s; finished: "
                           f"{(out / 'quality.json').is_file()}")
                results.append({"stop_latency_s": r["stop_latency"], "rc": r["rc"], "resume_rc": done.returncode})
                continue
            ph = phases(r, out)
            results.append(ph)
            if ph["announced_total_s"]:
                log.append(f"  announced {ph['announced_total_s']:.0f} s in all; ran {ph['wall_s']:.1f} s (wall "
                           f"from launch, setup included): ratio {ph['wall_s'] / ph['announced_total_s']:.2f}")
            log.append(f"  final samples: announced {ph['announced_final_s']} s, took {ph['final_samples_s']:.1f} s; "
                       f"training (metrics.csv) {ph['metrics_seconds']}; evaluation as recorded: frame_points "
                       f"{ph['frame_points']}, eval_n {ph['eval_n']}, eval_steps {ph['eval_steps']}")
    if results and "wall_s" in results[0]:
        walls = [r["wall_s"] for r in results]
        log.append(f"median wall {statistics.median(walls):.1f} s over {len(walls)} runs (min {min(walls):.1f}, "
                   f"max {max(walls):.1f})")
        ratios = [r["wall_s"] / r["announced_total_s"] for r in results if r["announced_total_s"]]
        if ratios:
            log.append(f"wall / announced estimate: median {statistics.median(ratios):.2f} (min {min(ratios):.2f}, "
                       f"max {max(ratios):.2f})")
    text = "\n".join(log) + "\n"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    Path(args.out).with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")
    print(text)


def host_line() -> str:
    """`host: ...` as bench/claims.py wants it (tiny_diffusion.runtime.host once the trust branch is merged)."""
    try:
        from tiny_diffusion.runtime.host import host_line as line

        return line()
    except ImportError:
        import torch

        info = Path("/proc/cpuinfo").read_text()
        model = next((l.split(":", 1)[1].strip() for l in info.splitlines() if l.startswith("model name")), "?")
        flags = next((l.split(":", 1)[1].split() for l in info.splitlines() if l.startswith("flags")), [])
        avx = ("yes (avx512_bf16)" if "avx512_bf16" in flags else "yes") if "avx512f" in flags else "no"
        return f"host: {model}, {len(os.sched_getaffinity(0))} cores, AVX-512 {avx}, torch {torch.__version__}"


if __name__ == "__main__":
    main()
