"""What the training loop does differently for points and for pictures: the snapshots (frames.npy),
their metrics, the final samples, their quality beside the data floor, and the run's final files.

`hooks_for(cfg, data, device)` picks PointHooks or ImageHooks; the loop only calls their methods.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import numpy as np

from .. import fileio, runs
from ..sampling import plan, sample

SAMPLES_DIR = "samples"  # the final images, one PNG each (pytorch-fid / clean-fid read such folders)


def _plan(hooks, purpose: str):
    """How the run's snapshots or final samples are drawn ("snapshot" or "final": sampling.plan), with the data's
    classes (the labels of a class-conditional run's samples: every class in turn, at the run's guidance)."""
    return plan(hooks.cfg, purpose, classes=hooks.data.classes)


class PointHooks:
    """2D points: snapshots of frame_points points; energy / precision / coverage of the final ones (and, for
    a class-conditional run, of each class's samples against that class's own points)."""

    def __init__(self, cfg, data, device):
        self.cfg, self.data, self.device = cfg, data, device
        self.per_class = None
        self.stop = None  # the loop's "stop now?" (sampling.trajectory's stop), asked before every network call

    def snapshot(self, model, diffusion) -> np.ndarray:  # (frame_points, 2)
        return sample(model, diffusion, **_plan(self, "snapshot").kwargs(), device=self.device,
                      stop=self.stop).cpu().numpy()

    def snapshot_metrics(self, frame) -> dict:
        return {}  # the points' numbers come from sweeps' evaluation.json, at every snapshot

    def final(self, model, diffusion):
        """(samples, quality, floor): the final samples (Ho et al. Alg. 2 by default) and their scores."""
        from ..eval.points import data_floor, per_class, quality, references

        cfg, final = self.cfg, _plan(self, "final")
        samples = sample(model, diffusion, **final.kwargs(), device=self.device, stop=self.stop).cpu().numpy()
        if final.conditional:
            self.per_class = per_class(samples, final.y.numpy(), cfg.dataset)
        return samples, quality(samples, references(cfg.dataset)), data_floor(cfg.dataset)

    def write(self, out: Path, samples, q, floor, extra: dict) -> None:
        from ..viz import points as plots

        fileio.atomic_write(out / runs.SAMPLES, lambda f: np.save(f, samples))
        result = {"quality": q.as_dict(), "data_floor": floor.as_dict(), "n_eval": len(samples)}
        if self.cfg.class_cond:  # one panel per class, the labels beside the samples, the numbers per class
            labels, classes = _plan(self, "final").y.numpy(), self.data.classes
            runs.write_labels(runs.labels_path(out / runs.SAMPLES), labels, classes)
            plots.samples_figure(samples, out / "samples.png", "", labels, classes)
            result["guidance"] = self.cfg.guidance
            result["per_class"] = {c: {"n": v["n"], "quality": v["quality"].as_dict(),
                                       "data_floor": v["data_floor"].as_dict()} for c, v in self.per_class.items()}
        else:
            plots.samples_figure(samples, out / "samples.png", f"{self.cfg.dataset}: {q}")
        fileio.write_json(out / runs.QUALITY, {**result, **extra})


class ImageHooks:
    """Images: snapshots are a fixed grid of frame_points images (uint8); the final eval_n images are
    scored by the classifier metrics (eval/images.py) beside the real-data floor and a noise baseline."""

    def __init__(self, cfg, data, device, log=None):
        from ..eval.report import image_metric, unscorable

        self.cfg, self.data, self.device = cfg, data, device
        reason = unscorable(data)  # no labels, images too small, too few: no metric, and the reason in quality.json
        self.metric, self.accuracy = (None, None) if reason else image_metric(data, device, log)
        self.notes = [reason] if reason else self._size_notes()  # said now, and written to quality.json
        for note in self.notes:
            (log or print)(f"{cfg.dataset}: {note}")
        self.as_requested = None  # a class-conditional run: the share of final samples labelled as their class
        self.stop = None  # the loop's "stop now?" (sampling.trajectory's stop), asked before every network call

    def _size_notes(self) -> list[str]:
        """What the metric cannot measure at this data set's size and the run's sample counts, and which flag helps."""
        from ..eval.report import floor_note

        cfg, limit = self.cfg, self.metric.floor_limit
        snapshots = floor_note(cfg.frame_points, limit, "--frame-points") if cfg.frames > 0 else None
        final = floor_note(plan(cfg, "final").n, limit, "--eval-n")
        return [note for note in (self.metric.held_out_note, snapshots and f"snapshots (cfid_floor): {snapshots}",
                                  final and f"final samples: {final}") if note]

    @cached_property
    def _snapshot_floor(self):
        """The real-data floor at the snapshot grid's n, drawn once; None where it cannot be (a note says why)."""
        from ..eval.report import floor_or_note

        return floor_or_note(self.metric, self.cfg.frame_points, "--frame-points")[0]

    def _sample(self, model, diffusion, sampling) -> np.ndarray:  # (n, C, H, W) uint8
        from ..viz.image_files import to_uint8  # NaN -> 0: a diverged sample never loses the run

        return to_uint8(sample(model, diffusion, **sampling.kwargs(), device=self.device, stop=self.stop))

    def snapshot(self, model, diffusion) -> np.ndarray:
        return self._sample(model, diffusion, _plan(self, "snapshot"))

    def snapshot_metrics(self, frame) -> dict:
        """Classifier numbers of the snapshot grid itself (n = frame_points, so noisy, with its own floor):
        a classifier pass over a few dozen images costs nothing next to training."""
        if self.metric is None or len(frame) < 2:
            return {}
        q = self.metric.score(frame)
        floor = {"cfid_floor": self._snapshot_floor.fid_features} if self._snapshot_floor else {}
        return {"cfid": q.fid_features, "cfid_logits": q.fid_logits, **floor, "confidence": q.confidence}

    def final(self, model, diffusion):
        from ..eval.report import floor_or_note

        final = _plan(self, "final")
        samples = self._sample(model, diffusion, final)
        if self.metric is None or len(samples) < 2:  # 1 sample: _size_notes said --eval-n 2 or more
            return samples, None, None
        if self.cfg.class_cond:
            from ..eval.classifier import accuracy

            requested = final.y
            self.as_requested = accuracy(self.metric.classifier, samples, requested)
        return samples, self.metric.score(samples), floor_or_note(self.metric, len(samples), "--eval-n")[0]

    def write(self, out: Path, samples, q, floor, extra: dict) -> None:
        from ..viz.images import save_class_grid, save_grid, save_png_folder

        save_png_folder(samples, out / SAMPLES_DIR)
        result = {"n_eval": len(samples), "shape": list(self.data.shape), "notes": self.notes}
        if self.cfg.class_cond:  # one row per class, and each PNG's class in samples/labels.csv
            labels = _plan(self, "final").y.numpy()
            runs.write_labels(runs.labels_path(out / SAMPLES_DIR), labels, self.data.classes)
            save_class_grid(samples[:100], labels[:100], self.data.classes, out / "samples.png")
            result.update(guidance=self.cfg.guidance, labelled_as_requested=self.as_requested)
        else:
            save_grid(samples[:100], out / "samples.png")
        if q is not None:
            n, metric = len(samples), self.metric
            seen = metric.floor(n, seen=True) if floor and metric.unseen is not None and \
                n <= len(metric.train) - len(metric.unseen) else None
            result.update(metric="classifier-FID (docs/images.md)", quality=q.as_dict(),
                          data_floor=floor.as_dict() if floor else None,
                          data_floor_unseen=bool(floor) and metric.floor_is_unseen(n),
                          data_floor_seen=seen.as_dict() if seen else None, noise=metric.noise(n).as_dict(),
                          classifier_accuracy=self.accuracy)
        fileio.write_json(out / runs.QUALITY, {**result, **extra})


def hooks_for(cfg, data, device, log=None):
    return ImageHooks(cfg, data, device, log) if data.images else PointHooks(cfg, data, device)
