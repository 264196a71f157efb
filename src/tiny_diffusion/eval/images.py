"""Image quality numbers from a classifier trained on the data set (eval/classifier.py).

  classifier-FID   Frechet distance between Gaussians fitted to the classifier's penultimate features of
                   the scored images and of held-out real images (Heusel et al. 2017, with our classifier in
                   place of Inception); `fid_logits` the same in its logits, which tell bold clean digits
                   from thin broken ones where the features alone did not
  confidence       mean over images of the largest softmax probability
  class_entropy    entropy (nats) of the histogram of predicted classes; ln(n_classes) when all are equally
                   present, 0 when every image is one class (mode collapse)
  memorised        share of images at least as close (L2, pixels) to their nearest training image as the
                   closest 1% of held-out real images are to theirs: ~0.01 for a model that generalises
                   like real data, ~1 for one that copies its training set

Each number means something only beside `floor` (real training images scored the same way: what a perfect
model gets at this n) and `noise` (random images). None of it is comparable to papers' Inception FID.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

from ..errors import InputError
from .classifier import EVAL_BATCH, Classifier, check_images, embed

MEMORISED_PERCENTILE = 1.0  # threshold = this percentile of held-out NN distances: real data scores ~0.01
TRAIN_CHUNK = 4096  # training images per distance block: a (batch, 4096) float32 block, whatever n_train is


def _sqrt_psd(c: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric matrix, tiny negative eigenvalues (round-off) taken as 0."""
    w, v = np.linalg.eigh(c)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(mu1, cov1, mu2, cov2) -> float:
    """||mu1 - mu2||^2 + tr(C1 + C2 - 2 (C1^1/2 C2 C1^1/2)^1/2): the squared 2-Wasserstein distance between
    N(mu1, C1) and N(mu2, C2). In float64 with symmetric eigendecompositions, so slightly non-PSD
    covariances (round-off, fewer images than dimensions) are fine."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    cov1, cov2 = np.asarray(cov1, np.float64), np.asarray(cov2, np.float64)
    d = len(mu1)
    if mu1.shape != (d,) or mu2.shape != (d,) or cov1.shape != (d, d) or cov2.shape != (d, d):
        raise ValueError(f"frechet_distance: means {mu1.shape}, {mu2.shape} and covariances {cov1.shape}, {cov2.shape}")
    cov1, cov2 = (cov1 + cov1.T) / 2, (cov2 + cov2.T) / 2
    s1 = _sqrt_psd(cov1)
    m = s1 @ cov2 @ s1
    tr_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0.0, None)).sum()
    diff = mu1 - mu2
    return float(max(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2 * tr_sqrt, 0.0))


def _stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased covariance (D, D) of rows x (n, D), float64."""
    return x.mean(0), np.cov(x, rowvar=False)


@dataclass
class ImageQuality:
    fid_features: float  # classifier-FID in the penultimate features, against held-out real images
    fid_logits: float  # the same in the logits
    confidence: float  # mean max softmax probability
    class_entropy: float  # entropy of the predicted-class histogram, nats
    memorised: float | None  # share of images closer to a training image than 99% of held-out real images are;
    # None when the held-out images were training images too (no test split): copies cannot be told apart
    n: int  # images scored
    n_classes: int  # the classifier's classes: class_entropy is at most ln(n_classes)

    def as_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return (
            f"classifier-FID {self.fid_features:.2f} (logits {self.fid_logits:.2f})  confidence {self.confidence:.2f}"
            f"  classes {self.class_entropy:.2f}/{math.log(self.n_classes):.2f} nats  memorised "
            + ("n/a" if self.memorised is None else f"{self.memorised:.3f}")
        )


class ImageMetric:
    """Scores uint8 image sets (N, C, H, W) against one data set. Computed once here: the held-out images'
    feature and logit statistics, and the memorisation threshold (the MEMORISED_PERCENTILE-th percentile of
    the held-out images' distances to their nearest training image). Moves `classifier` to `device`.
    held_out_note: why held_out is no true held-out set (the model trained on it: no test split); then
    `memorised` is None in every score, as nearest-neighbour distances cannot tell copies apart.
    unseen: indices of `train` the classifier was not trained on; the floor draws from them (see `floor`)."""

    def __init__(self, classifier: Classifier, train: np.ndarray, held_out: np.ndarray, device="cpu",
                 batch_size: int = EVAL_BATCH, floor_images: np.ndarray | None = None,
                 held_out_note: str | None = None, unseen: np.ndarray | None = None):
        check_images("train", train, classifier.in_channels)
        check_images("held_out", held_out, classifier.in_channels)
        if train.shape[1:] != held_out.shape[1:] or len(held_out) < 2:
            raise InputError(f"held_out: shape {held_out.shape}, train {train.shape}; need 2+ images of train's size")
        if floor_images is not None:
            check_images("floor_images", floor_images, classifier.in_channels)
            if floor_images.shape[1:] != held_out.shape[1:]:
                raise InputError(f"floor_images: shape {floor_images.shape}; need images of shape {held_out.shape[1:]}")
        self.floor_images = floor_images  # real images in neither train nor held_out, if given: the floor's source
        # indices of training images the classifier never saw (eval/report.py reserves them): the floor's source
        self.unseen = None if unseen is None or floor_images is not None else np.asarray(unseen, dtype=np.int64)
        self.held_out_note = held_out_note
        self.classifier = classifier.to(device).eval()
        self.device, self.batch_size = torch.device(device), batch_size
        self.image_shape = held_out.shape[1:]  # (C, H, W)
        self.train = train.reshape(len(train), -1)  # (n_train, D) uint8, for exact distances
        self._train = torch.from_numpy(np.ascontiguousarray(self.train)).to(self.device)  # (n_train, D) uint8
        self._train_sq = torch.cat([t.float().square().sum(1) for t in self._train.split(TRAIN_CHUNK)])  # (n_train,)
        feats, logits = embed(self.classifier, held_out, batch_size)
        self.ref_features, self.ref_logits = _stats(feats), _stats(logits)
        self.threshold = None if held_out_note else float(np.percentile(self.nn_distance(held_out),
                                                                        MEMORISED_PERCENTILE))

    @property
    def floor_limit(self) -> int:
        """The largest n `floor` can draw: the number of real images it draws from."""
        return len(self.train if self.floor_images is None else self.floor_images)

    def floor_is_unseen(self, n: int) -> bool:
        """Whether floor(n) draws real images the classifier never saw (else its own training images, which it
        fits better than unseen ones: a higher floor that flatters every "x floor" figure)."""
        return self.floor_images is not None or (self.unseen is not None and n <= len(self.unseen))

    def nn_distance(self, images: np.ndarray, exclude: np.ndarray | None = None) -> np.ndarray:
        """L2 pixel distance (float64, uint8 units) from each image to its nearest training image, the
        training image exclude[i] (an index) left out for image i when given. The nearest is found with
        float32 matrix products on the device, in blocks; its distance is then recomputed exactly, so an
        exact copy of a training image gets exactly 0."""
        flat = images.reshape(len(images), -1)  # (N, D) uint8
        out = np.empty(len(flat))
        for q0 in range(0, len(flat), self.batch_size):
            q = torch.from_numpy(np.ascontiguousarray(flat[q0 : q0 + self.batch_size])).to(self.device)
            q = q.float()  # (b, D)
            q_sq = q.square().sum(1, keepdim=True)  # (b, 1)
            best = torch.full((len(q),), math.inf, device=self.device)
            best_i = torch.zeros(len(q), dtype=torch.long, device=self.device)
            for t0 in range(0, len(self._train), TRAIN_CHUNK):
                t = self._train[t0 : t0 + TRAIN_CHUNK].float()  # (c, D)
                d2 = q_sq + self._train_sq[t0 : t0 + len(t)] - 2 * q @ t.T  # (b, c) squared distances
                if exclude is not None:
                    own = torch.as_tensor(exclude[q0 : q0 + len(q)], device=self.device) - t0  # (b,)
                    hit = (own >= 0) & (own < len(t))
                    d2[hit.nonzero()[:, 0], own[hit]] = math.inf
                m, i = d2.min(1)
                better = m < best
                best, best_i = torch.where(better, m, best), torch.where(better, i + t0, best_i)
            nearest = self.train[best_i.cpu().numpy()].astype(np.float64)  # (b, D)
            out[q0 : q0 + len(q)] = np.sqrt(((flat[q0 : q0 + len(q)] - nearest) ** 2).sum(1))
        return out

    def _quality(self, images: np.ndarray, nn_dist) -> ImageQuality:
        """The numbers of images; nn_dist: a callable giving their nearest-training-image distances (called only
        when memorisation can be measured)."""
        feats, logits = embed(self.classifier, images, self.batch_size)  # (N, F), (N, K)
        probs = torch.from_numpy(logits).softmax(1).numpy()  # (N, K)
        k = self.classifier.n_classes
        hist = np.bincount(probs.argmax(1), minlength=k) / len(images)  # (K,)
        hist = hist[hist > 0]
        return ImageQuality(
            fid_features=frechet_distance(*_stats(feats), *self.ref_features),
            fid_logits=frechet_distance(*_stats(logits), *self.ref_logits),
            confidence=float(probs.max(1).mean()),
            class_entropy=float((hist * np.log(1 / hist)).sum()),  # not -sum p ln p: no -0.0 for one class
            # <=: exact copies count when threshold is 0
            memorised=None if self.held_out_note else float((nn_dist() <= self.threshold).mean()),
            n=len(images),
            n_classes=k,
        )

    def _check(self, name: str, images) -> None:
        check_images(name, images, self.classifier.in_channels)
        if images.shape[1:] != self.image_shape or len(images) < 2:
            raise InputError(f"{name}: shape {images.shape}; need 2+ images of the data set's shape {self.image_shape}")

    def score(self, images: np.ndarray) -> ImageQuality:
        """The numbers for uint8 images (N, C, H, W), N >= 2, e.g. to_uint8(samples)."""
        self._check("images", images)
        return self._quality(images, lambda: self.nn_distance(images))

    def floor(self, n: int, seed: int = 0, seen: bool = False) -> ImageQuality:
        """n random real images scored the same way: what a perfect model gets at this n. The classifier fits its
        own training images better than unseen ones, which raises a training-image floor (4000 MNIST digits,
        n=500: features 2.5 against 1.2 for unseen digits) so that a model seems nearer it than it is. So the floor
        draws from real images the classifier never saw: `floor_images` if given, else the `unseen` training
        images when there are n of them, else all the training images (small sets); seen=True: from the training
        images the classifier saw (the old floor, kept beside the new one). Training images drawn are each left
        out of the training set for their own `memorised` distance, so the floor reads ~0.01 there too."""
        if self.floor_images is not None and not seen:
            source, idx = self.floor_images.reshape(len(self.floor_images), -1), None
        else:
            pool = np.arange(len(self.train))
            if self.unseen is not None:
                unseen = np.zeros(len(pool), dtype=bool)
                unseen[self.unseen] = True
                pool = pool[~unseen] if seen else self.unseen if n <= len(self.unseen) else pool
            source, idx = self.train, pool
        limit = len(source) if idx is None else len(idx)
        if not 2 <= n <= limit:
            raise InputError(f"floor: n={n}; need 2 <= n <= {limit}, the number of real images to draw from")
        pick = np.random.default_rng(seed).choice(limit, n, replace=False)
        if idx is not None:
            pick = idx[pick]
        images = source[pick].reshape(n, *self.image_shape)
        return self._quality(images, lambda: self.nn_distance(images, exclude=pick if idx is not None else None))

    def noise(self, n: int, seed: int = 0) -> ImageQuality:
        """n images of uniform random pixels scored the same way: a baseline far from the floor."""
        if n < 2:
            raise InputError(f"noise: n={n}; need at least 2 images")
        images = np.random.default_rng(seed).integers(0, 256, (n, *self.image_shape), dtype=np.uint8)
        return self._quality(images, lambda: self.nn_distance(images))
