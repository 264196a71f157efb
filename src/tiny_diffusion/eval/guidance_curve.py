"""Class-conditional quality against the guidance weight W: `tiny-diffusion evaluate RUN` of a class-conditional
run (one W) and `evaluate RUN --guidance 0,1,2,3,5` (the trade-off curve, as CSV and figure).

Every W draws the same n samples (same seed, so the same x_T), asking for the same classes: all of them in turn,
or the --class ones split evenly.
  points  each requested class's samples against fresh points of that class alone (energy, precision, coverage),
          beside that class's data floor at the same n: one row per (W, class)
  images  the share of samples the data set's classifier labels as the class they asked for, beside its accuracy
          on held-out real images of those classes (the ceiling), and classifier-FID against those held-out
          images, beside the floor (real training images of those classes, at the same n): one row per W
"""

from __future__ import annotations

import numpy as np

from .. import fileio

POINT_COLUMNS = ("guidance", "class", "n", "energy", "precision", "coverage", "floor_energy", "floor_precision",
                 "floor_coverage")
IMAGE_COLUMNS = ("guidance", "n", "labelled_as_requested", "ceiling", "cfid", "cfid_logits", "floor", "floor_logits",
                 "confidence")


class Scorer:
    """Scores conditional samples of one run for the requested labels y (set up once: references, classifier)."""

    def __init__(self, cfg, y, device, log=None):
        self.cfg, self.y = cfg, y.numpy()
        if not cfg.images:  # before any sampling: a class is scored only with more than COVERAGE_K samples
            from ..errors import InputError
            from .points import COVERAGE_K

            counts = np.unique(self.y, return_counts=True)[1]
            if counts.max() <= COVERAGE_K:
                raise InputError(f"--n {len(self.y)}: {len(counts)} classes get at most {counts.max()} samples each, "
                                 f"and a class's precision and coverage need more than {COVERAGE_K}; use --n "
                                 f"{len(counts) * (COVERAGE_K + 1)} or more")
        if cfg.images:
            from ..data.source import load_source
            from .report import image_metric

            classes = sorted(set(self.y.tolist()))
            self.metric, self.ceiling = image_metric(load_source(cfg, "cpu"), device, log, classes)
            self.floor = self.metric.floor(min(len(self.y), len(self.metric.train)))

    def rows(self, x, w: float) -> list[dict]:
        """The rows of samples x (a tensor from `sampling.sample`) drawn at guidance w."""
        if not self.cfg.images:
            from .points import per_class

            scores = per_class(x.cpu().numpy(), self.y, self.cfg.dataset)
            return [{"guidance": w, "class": name, "n": s["n"], **s["quality"].as_dict(),
                     **{f"floor_{k}": v for k, v in s["data_floor"].as_dict().items()}} for name, s in scores.items()]
        from .classifier import accuracy
        from ..viz.image_files import to_uint8

        images = to_uint8(x)
        q, fl = self.metric.score(images), self.floor
        return [{"guidance": w, "n": len(images), "labelled_as_requested": accuracy(self.metric.classifier, images, self.y),
                 "ceiling": self.ceiling, "cfid": q.fid_features, "cfid_logits": q.fid_logits, "floor": fl.fid_features,
                 "floor_logits": fl.fid_logits, "confidence": q.confidence}]


def sweep(model, diffusion, cfg, weights: list[float], cond: dict, n: int, seed: int, device, options: dict,
          log=print) -> list[dict]:
    """The rows of every weight in `weights`, for the labels cond["y"] (a sampling.Plan's cond)."""
    from ..sampling import sample

    scorer = Scorer(cfg, cond["y"], device, log)
    rows = []
    for w in weights:
        x = sample(model, diffusion, n, seed, device=device, **options, **{**cond, "guidance": w})
        rows += scorer.rows(x, w)
        log(describe(rows[-1] if cfg.images else summary([r for r in rows if r["guidance"] == w])))
    return rows


def summary(point_rows: list[dict]) -> dict:
    """The mean over classes of one W's point rows, as one row (class 'mean')."""
    keys = POINT_COLUMNS[2:]
    return {"guidance": point_rows[0]["guidance"], "class": "mean",
            **{k: float(np.mean([r[k] for r in point_rows])) for k in keys}}


def describe(row: dict) -> str:
    """One line for a row: a class's (or the mean's) precision and coverage beside its floor, or the image numbers."""
    if "class" in row:
        return (f"W = {row['guidance']:g}  {row['class']:<11} precision {row['precision']:.3f} (floor "
                f"{row['floor_precision']:.3f})  coverage {row['coverage']:.3f} (floor {row['floor_coverage']:.3f})  "
                f"energy {row['energy']:.4f} (floor {row['floor_energy']:.4f})")
    return (f"W = {row['guidance']:g}  labelled as requested {row['labelled_as_requested']:.3f} (classifier's held-out "
            f"accuracy {row['ceiling']:.3f})  classifier-FID {row['cfid']:.2f} (floor {row['floor']:.2f}; logits "
            f"{row['cfid_logits']:.2f} vs {row['floor_logits']:.2f})")


def plot(rows: list[dict], path, images: bool, title: str | None = None) -> None:
    """Images: share labelled as requested (ceiling dashed) and classifier-FID (floor dashed) against W. Points:
    precision and coverage against W, a thin line per class, the mean bold, the mean floor dashed."""
    from ..viz.points import _plt

    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    if images:
        ws = [r["guidance"] for r in rows]
        for ax, key, ref, name in ((axes[0], "labelled_as_requested", "ceiling", "labelled as the requested class"),
                                   (axes[1], "cfid", "floor", "classifier-FID (lower is better)")):
            ax.plot(ws, [r[key] for r in rows], marker="o")
            ax.axhline(rows[0][ref], color="k", ls="--", lw=1, label=f"{ref} (real images)")
            ax.set_ylabel(name)
    else:
        ws = sorted({r["guidance"] for r in rows})
        for ax, key in zip(axes, ("precision", "coverage")):
            for name in dict.fromkeys(r["class"] for r in rows):
                ax.plot(ws, [r[key] for r in rows if r["class"] == name], lw=0.6, alpha=0.5)
            means = [summary([r for r in rows if r["guidance"] == w]) for w in ws]
            ax.plot(ws, [m[key] for m in means], marker="o", color="k", label="mean over classes")
            ax.axhline(np.mean([m[f"floor_{key}"] for m in means]), color="k", ls="--", lw=1, label="data floor (mean)")
            ax.set_ylabel(f"{key} per class (higher is better)")
    for ax in axes:
        ax.set_xlabel("guidance weight W")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run(model, diffusion, cfg, weights: list[float], cond: dict, n: int, seed: int, device, options: dict,
        csv_path, figure_path, log=print, title: str | None = None) -> list[dict]:
    """The sweep over `weights`, written to csv_path and figure_path; returns the rows."""
    rows = sweep(model, diffusion, cfg, weights, cond, n, seed, device, options, log)
    fileio.write_csv(csv_path, rows, IMAGE_COLUMNS if cfg.images else POINT_COLUMNS)
    plot(rows, figure_path, cfg.images, title)
    return rows
