"""Quality against training minutes of an image run: the classifier-FID of each snapshot grid (metrics.csv, n =
the grid's images, beside its own floor at that n) and of the final samples (quality.json), as a figure and a log.

    python bench/mnist_curve.py --run bench/results/mnist/default --out docs/images_quality_minutes.png
        [--log bench/results/mnist_curve_cpu.log] [--label "new default"] [--run OLD --label "old default"]

Several --run (each with its --label) share the figure. The snapshot figures are noisy (64 images); the final
point is the run's 1000 samples.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from tiny_diffusion.runtime.host import log_header  # noqa: E402


def curve(run: Path) -> tuple[list[tuple[float, float, float]], dict]:
    """([(minutes, cfid, cfid_floor) per snapshot], quality.json)."""
    with open(run / "metrics.csv") as f:
        rows = [(float(r["seconds"]) / 60, float(r["cfid"]), float(r["cfid_floor"] or "nan"))
                for r in csv.DictReader(f) if r.get("cfid")]
    return rows, json.loads((run / "quality.json").read_text())


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", action="append", required=True)
    p.add_argument("--label", action="append", default=[])
    p.add_argument("--out", required=True)
    p.add_argument("--log")
    args = p.parse_args()
    labels = args.label + [Path(r).name for r in args.run[len(args.label):]]
    lines = [log_header()]
    fig, ax = plt.subplots(figsize=(6.4, 4), dpi=120)
    for run, label in zip(args.run, labels):
        rows, q = curve(Path(run))
        minutes = q["train_seconds"] / 60
        final, floor = q["quality"]["fid_features"], q["data_floor"]["fid_features"]
        lines.append(f"{label} ({run}): " + ", ".join(f"{m:.1f} min: {c:.2f} (floor {fl:.2f})" for m, c, fl in rows)
                     + f"; final {q['n_eval']} samples after {minutes:.1f} min: {final:.3f} (floor {floor:.3f}, "
                       f"{final / floor:.2f}x)")
        line, = ax.plot([m for m, _, _ in rows], [c for _, c, _ in rows], "o-", label=f"{label}: snapshots (64)")
        ax.plot([minutes], [final], "*", ms=14, color=line.get_color(), label=f"{label}: final ({q['n_eval']})")
        ax.axhline(floor, ls=":", color=line.get_color(), lw=1)
    ax.set_yscale("log")
    ax.set_xlabel("training minutes (2 CPU cores)")
    ax.set_ylabel("classifier-FID (dotted: floor at n = 1000)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out)
    lines.append(f"wrote {args.out}")
    print("\n".join(lines))
    if args.log:
        Path(args.log).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
