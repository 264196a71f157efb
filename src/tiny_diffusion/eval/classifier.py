"""A small CNN classifier for a labelled image data set: the feature extractor behind classifier-FID
(eval/images.py) and, through `accuracy`, the ceiling for conditional sampling.

It is trained once per data set on its training split (seeded: the same bytes give the same weights) and
cached as cache_dir/classifier-<key>-<digest>.pt, where the digest covers the images, the labels and
ARCH_VERSION, so a changed data set or network never reuses an old file. It is not Inception: its numbers
compare runs scored by the same cached classifier, never papers.
"""

from __future__ import annotations

import hashlib
import math
import re
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..errors import InputError

ARCH_VERSION = 1  # bump whenever the network or the recipe below changes: old cache files stop matching
STAGES = ((32, 2), (64, 2), (64, 1))  # (channels, stride) of each 3x3 convolution: ~90k parameters in all;
# striding first keeps it cheap (a 28x28 batch of 64 trains in ~40 ms on one CPU core)
FEATURES = 128  # penultimate width: the space in which classifier-FID compares feature statistics
GROUPS = 8  # GroupNorm groups: no batch statistics, so an image's features never depend on its batch
MIN_SIDE = 8  # two stride-2 convolutions leave 2x2 at 8x8, the smallest grid the 2x2 pooling keeps intact

EPOCHS = 3  # passes over a large training set (60000 MNIST digits: 2813 steps, minutes on a CPU)
MIN_STEPS = 800  # and never fewer Adam steps: on 4000 MNIST digits 188 steps (3 epochs) gave 92.5%, 800 ~98%
BATCH = 64  # small batches: more updates per epoch, which matters more than throughput at this size
LR = 3e-3  # Adam's peak learning rate, decayed to 0 on a cosine: high enough to converge in 800 steps
SHIFT = 1 / 14  # random shifts by up to this fraction of the side, per image (+-2 px at 28x28, +-1 at 8x8)
EVAL_BATCH = 500  # images per forward pass when embedding


def _conv(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    """3x3 convolution, GroupNorm, GELU."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.GroupNorm(GROUPS, c_out), nn.GELU()
    )


class Classifier(nn.Module):
    """A small CNN for (B, C, H, W) images in [-1, 1], any C and H, W >= MIN_SIDE: the 3x3 convolutions of
    STAGES, average pooling to 2x2, a FEATURES-wide hidden layer (the penultimate features) and a linear
    layer to the logits."""

    def __init__(self, in_channels: int = 1, n_classes: int = 10):
        super().__init__()
        self.in_channels, self.n_classes = in_channels, n_classes
        widths = [in_channels] + [c for c, _ in STAGES]
        convs = [_conv(c_in, c_out, stride) for c_in, (c_out, stride) in zip(widths, STAGES)]  # (B, 64, H/4, W/4)
        pool = [nn.AdaptiveAvgPool2d(2), nn.Flatten()]  # (B, 4 * 64): a coarse where as well as what
        self.body = nn.Sequential(*convs, *pool)
        self.hidden = nn.Sequential(nn.Linear(4 * widths[-1], FEATURES), nn.GELU())
        self.head = nn.Linear(FEATURES, n_classes)

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(penultimate features (B, FEATURES), logits (B, n_classes)) of images x (B, C, H, W)."""
        h = self.hidden(self.body(x))  # (B, FEATURES)
        return h, self.head(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)[1]  # (B, n_classes)


def _device(net: nn.Module) -> torch.device:
    return next(net.parameters()).device


def _to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1], the scale of the diffusion models' samples."""
    return images.float().div_(127.5).sub_(1.0)


def check_images(name: str, images, channels: int | None = None) -> None:
    """InputError unless `images` is a uint8 array (n, C, H, W) with n >= 1 and H, W >= MIN_SIDE
    (and C == channels when given)."""
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4:
        got = f"{images.dtype} {images.shape}" if isinstance(images, np.ndarray) else type(images).__name__
        raise InputError(f"{name}: expected a uint8 array (n, C, H, W), got {got}; convert with viz.image_files.to_uint8")
    n, c, h, w = images.shape
    if n < 1 or min(h, w) < MIN_SIDE:
        raise InputError(f"{name}: shape {images.shape}; need at least one image of at least {MIN_SIDE}x{MIN_SIDE}")
    if channels is not None and c != channels:
        raise InputError(f"{name}: {c} channels, the classifier takes {channels}; use images of the same data set")


def _check_labelled(images, labels, n_classes: int) -> np.ndarray:
    """Validate a labelled set; the labels as int64."""
    check_images("images", images)
    labels = np.asarray(labels)
    if labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer):
        raise InputError(f"labels: expected {len(images)} integers, got {labels.dtype} {labels.shape}; one per image")
    if n_classes < 2 or labels.min() < 0 or labels.max() >= n_classes:
        raise InputError(
            f"labels: range [{labels.min()}, {labels.max()}] with n_classes={n_classes}; "
            "need 2+ classes and 0 <= label < n_classes"
        )
    return labels.astype(np.int64)


def _shift(x: torch.Tensor, max_shift: int, gen: torch.Generator) -> torch.Tensor:
    """Each image (B, C, H, W) moved by its own random (dy, dx) in [-max_shift, max_shift], edges replicated."""
    if max_shift == 0:
        return x
    b, _, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4, mode="replicate")  # (B, C, H + 2s, W + 2s)
    dy, dx = torch.randint(0, 2 * max_shift + 1, (2, b, 1), generator=gen)  # (B, 1) each
    rows, cols = dy + torch.arange(h), dx + torch.arange(w)  # (B, H), (B, W)
    out = padded[torch.arange(b)[:, None, None], :, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    return out.permute(0, 3, 1, 2)  # (B, C, H, W)


def train_classifier(
    images: np.ndarray, labels, n_classes: int, seed: int = 0, device="cpu", log: Callable[[str], None] | None = None
) -> Classifier:
    """A Classifier trained on uint8 images (n, C, H, W) with integer labels (n,): Adam on cross-entropy, a
    cosine learning-rate decay, random shifts; deterministic given the seed (on a CPU). Returned in eval mode."""
    y_all = torch.from_numpy(_check_labelled(images, labels, n_classes))
    x_all = torch.from_numpy(np.ascontiguousarray(images))  # uint8 on the CPU; batches go to the device
    n, c, h, w = images.shape
    with torch.random.fork_rng(devices=[]):  # seeded initialisation without touching the caller's RNG
        torch.manual_seed(seed)
        net = Classifier(c, n_classes)
    net.to(device).train()
    gen = torch.Generator().manual_seed(seed)  # batch order and shifts
    steps = max(EPOCHS * math.ceil(n / BATCH), MIN_STEPS)
    max_shift = round(SHIFT * min(h, w))
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps)))
    order = torch.empty(0, dtype=torch.long)
    for step in range(steps):
        if len(order) < BATCH:  # a fresh permutation appended: every image once per epoch
            order = torch.cat((order, torch.randperm(n, generator=gen)))
        idx, order = order[:BATCH], order[BATCH:]
        x = _shift(_to_float(x_all[idx]), max_shift, gen).to(device)  # (BATCH, C, H, W)
        loss = F.cross_entropy(net(x), y_all[idx].to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if log is not None and (step % 100 == 0 or step == steps - 1):
            log(f"classifier step {step + 1}/{steps}  loss {loss.item():.4f}")
    return net.eval()


@torch.no_grad()
def embed(classifier: Classifier, images: np.ndarray, batch_size: int = EVAL_BATCH) -> tuple[np.ndarray, np.ndarray]:
    """(features (n, FEATURES), logits (n, n_classes)) of uint8 images (n, C, H, W), as float64 numpy arrays."""
    check_images("images", images, classifier.in_channels)
    classifier.eval()
    device = _device(classifier)
    feats, logits = [], []
    for i in range(0, len(images), batch_size):
        x = _to_float(torch.from_numpy(np.ascontiguousarray(images[i : i + batch_size])).to(device))
        f, z = classifier.features(x)
        feats.append(f.double().cpu().numpy())
        logits.append(z.double().cpu().numpy())
    return np.concatenate(feats), np.concatenate(logits)


def accuracy(classifier: Classifier, images: np.ndarray, labels) -> float:
    """Share of images whose predicted class is their label. On held-out real images this is the
    ceiling for a class-conditional model's samples scored by the same classifier."""
    labels = _check_labelled(images, labels, classifier.n_classes)
    return float((embed(classifier, images)[1].argmax(1) == labels).mean())


def _digest(images: np.ndarray, labels: np.ndarray, n_classes: int) -> str:
    """16 hex digits of SHA-256 over the architecture version, the shapes and the bytes of images and labels."""
    h = hashlib.sha256(f"classifier v{ARCH_VERSION} {images.shape} {labels.shape} {n_classes}\n".encode())
    h.update(np.ascontiguousarray(images).data)
    h.update(np.ascontiguousarray(labels, dtype="<i8").data)  # int32 or int64 labels: the same digest
    return h.hexdigest()[:16]


def _load(path: Path, in_channels: int, n_classes: int, device, log) -> Classifier | None:
    """The cached classifier, or None (after a log line) if the file is damaged, unsafe or not ours."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)  # plain tensors only: no code runs
        if (state["arch_version"], state["in_channels"], state["n_classes"]) != (ARCH_VERSION, in_channels, n_classes):
            raise ValueError("made for another network or data set")
        net = Classifier(in_channels, n_classes)
        net.load_state_dict(state["model"])
    except Exception as e:  # torch.load and load_state_dict raise many types for a damaged or foreign file
        if log is not None:
            log(f"{path}: unusable classifier cache ({type(e).__name__}); training a new one over it")
        return None
    return net.to(device).eval()


def _save(net: Classifier, path: Path) -> None:
    """Weights and the shape of the network, written to a temporary file beside `path` and renamed over
    it: a reader (or a crash) sees the old file or the new one, never half of one."""
    state = {
        "arch_version": ARCH_VERSION, "in_channels": net.in_channels, "n_classes": net.n_classes,
        "model": {k: v.detach().cpu() for k, v in net.state_dict().items()},
    }
    from ..fileio import atomic_write

    atomic_write(path, lambda f: torch.save(state, f))


def classifier_for(
    key: str, images: np.ndarray, labels, n_classes: int, cache_dir: Path, device="cpu",
    log: Callable[[str], None] | None = None,
) -> Classifier:
    """The classifier for this labelled training set: loaded from cache_dir/classifier-<key>-<digest>.pt if
    a usable file is there, else trained (seed 0) and saved there atomically. `key` names the data set."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", key):
        raise InputError(f"classifier key {key!r}: it names the cache file; use only letters, digits, '_', '-', '.'")
    labels = _check_labelled(images, labels, n_classes)
    cache_dir = Path(cache_dir)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"{cache_dir}: cannot create the classifier cache folder ({e.strerror}); pass a writable one")
    path = cache_dir / f"classifier-{key}-{_digest(images, labels, n_classes)}.pt"
    if path.exists():
        net = _load(path, images.shape[1], n_classes, device, log)
        if net is not None:
            return net
    net = train_classifier(images, labels, n_classes, seed=0, device=device, log=log)
    _save(net, path)
    return net
