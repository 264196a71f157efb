"""Sampling a model: how a run samples for each purpose (`plan`: its config and a purpose in, the sampler's
arguments out, the one place that says it), which timestep grid a sampler runs on when its caller names none
(the grid policy, measured per sampler and kind of data), and `trajectory` / `sample`, which draw n seeded
samples in aligned blocks with optional classifier-free guidance. The samplers themselves (core/samplers.py)
take the grid."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from .choices import kind_of_shape
from .core.diffusion import Diffusion
from .core.guidance import Guided, cycle_labels, interval_steps, split_labels
from .core.noise import SampleNoise
from .core.samplers import DEFAULT_SPACING, SAMPLERS, log_snr, steps_from, timesteps
from .errors import InputError, SamplingStopped

# Where a few-step grid of 2D points starts (its log-SNR lambda_min), per sampler: on the default dino model
# (`bench/default_grid.py`, 10 seeds), the best precision + coverage at 10 and 20 steps among the starts whose
# energy is within seed noise (0.002) of the lowest; tables and reasons in docs/samplers.md.
FEW_STEP_LAMBDA_MIN = {"ddpm": -1.5, "ddim": -2.0, "dpm++": -1.5}
# Images (their cosine schedule reaches lambda -10 at t = T - 1): DPM-Solver++ from lambda -5 at 10 steps scored
# classifier-FID 0.694 where the grid from T - 1 needed 20 steps for 0.680 (10 steps: 0.831), on a tuning run of
# MNIST digits (`python bench/image_grid.py`, docs/images.md); -4 was a little worse at every count
IMAGE_LAMBDA_MIN = -5.0


def default_grid(sampler: str, steps: int | None, T: int, alpha_bar, kind: str) -> tuple[str, float | None]:
    """(spacing, lambda_min): the timesteps a `steps`-step run of `sampler` visits when the caller names none.

    All T steps (steps None or T): every timestep, as ever. Fewer: the `logsnr` spacing, which beat
    diffusers' `trailing` at every K <= 50 for every sampler on the default dino model; for 2D points
    started at lambda_min = FEW_STEP_LAMBDA_MIN[sampler] (the noisiest steps barely move a point cloud),
    or lower where K steps do not fit above it (then at the K-th least noisy step, so the grid is every
    step from there), or not at all where the schedule never gets that noisy (docs/samplers.md). Images
    start at IMAGE_LAMBDA_MIN, by the same rule."""
    if steps is None or steps >= T:
        return DEFAULT_SPACING, None
    lam = log_snr(alpha_bar)
    if kind == "images":
        start = min(IMAGE_LAMBDA_MIN, lam[steps - 1])
        return "logsnr", float(start) if start > lam[T - 1] else None
    start = min(FEW_STEP_LAMBDA_MIN[sampler], lam[steps - 1])  # K steps have lambda >= lam[K - 1]
    return "logsnr", float(start) if start > lam[T - 1] else None


def grid(sampler: str, diffusion: Diffusion, steps: int | None, spacing: str | None = None,
         lambda_min: float | None = None, kind: str = "points") -> tuple[str, float | None]:
    """The (spacing, lambda_min) a sampler runs on: the caller's spacing (with their lambda_min, None =
    from t = T - 1), else `default_grid`'s spacing with the caller's lambda_min or else its own."""
    if spacing is not None:
        return spacing, lambda_min
    ab = diffusion.alpha_bar.double().cpu().numpy()
    spacing, default_lambda = default_grid(sampler, steps, diffusion.T, ab, kind)
    return spacing, default_lambda if lambda_min is None else lambda_min


def own_grid(recorded, steps: int | None, spacing: str | None = None, lambda_min: float | None = None):
    """A distilled student's recorded grid (its model's `grid`, its config's sample_grid) when the caller asks for
    its number of steps (or none) and names no grid of their own; else None (the usual grid policy)."""
    if not recorded or spacing is not None or lambda_min is not None or steps not in (None, len(recorded)):
        return None
    return np.asarray(recorded, dtype=np.int64)


def describe_grid(sampler: str, diffusion: Diffusion, steps: int | None, spacing: str | None = None,
                  lambda_min: float | None = None, kind: str = "points", recorded=None) -> str:
    """Which grid a run used, for printed results: 'dpm++, 10 steps, logsnr from lambda -1.5', 'ddpm, all 1000 steps',
    'ddim, 4 steps, the student's distilled grid' (`recorded`: a student's grid, see `own_grid`)."""
    if own_grid(recorded, steps, spacing, lambda_min) is not None:
        return f"{sampler}, {len(recorded)} steps, the student's distilled grid"
    spacing, lambda_min = grid(sampler, diffusion, steps, spacing, lambda_min, kind)
    start = "" if lambda_min is None else f" from lambda {lambda_min:.3g}"
    usable = diffusion.T if lambda_min is None else steps_from(diffusion.alpha_bar.double().cpu().numpy(), lambda_min)
    if steps is None or steps >= usable:
        return f"{sampler}, all {usable} steps{start}"
    return f"{sampler}, {steps} steps, {spacing}{start}"


POINT_BLOCK = 1024  # rows per network call for points: one call per step for the usual 1000 points
IMAGE_BLOCK = 64  # images per network call: small batches are not padded far, large ones still fill the cores
BLOCKS = {"points": POINT_BLOCK, "images": IMAGE_BLOCK}  # the default: any two draws of a kind agree


def aligned_block(kind: str, n: int) -> int:
    """Rows per network call that fit a draw of n samples, as a training run's snapshots and final samples (and
    `evaluate RUN`, repeating them) ask for: points POINT_BLOCK (as ever); images the smallest power of two >= n,
    at most IMAGE_BLOCK, so a grid of 4 photos costs 4 images' passes per step, not 64 (a 62M-weight network:
    0.3 s, not 4 s). From n = IMAGE_BLOCK on, it is the default block."""
    if kind == "points":
        return POINT_BLOCK
    return min(IMAGE_BLOCK, 1 << max(0, int(n) - 1).bit_length())


FRAME_SEED = 1234  # a run's snapshots (every one from the same noise, so an animation shows learning, not
# resampling) and its final samples; `evaluate RUN` draws them again
PURPOSES = ("snapshot", "final", "evaluate", "sample", "figure")


@dataclass(frozen=True)
class Plan:
    """How one draw samples, worked out once from a run's config (`plan`); the sampler takes it as is:
    `sample(model, diffusion, **plan.kwargs(), device=...)`. options: the sampler's keywords; cond: the labels'
    (y, guidance, guidance_interval) of a class-conditional run, {} of an unconditional one; kind and recorded
    (a distilled student's grid) only say which grid it runs on (`describe`)."""
    n: int
    seed: int
    sampler: str = "ddpm"
    steps: int | None = None  # None: all T
    spacing: str | None = None  # None: the grid policy's (`grid`)
    lambda_min: float | None = None
    eta: float | None = None
    clip: float | None = None
    block: int | None = None  # None: BLOCKS[kind]
    conditional: bool = False  # a class-conditional run: its samples carry labels
    n_classes: int | None = None  # ... of that many classes (None: not told, so no labels can be made)
    labels: tuple[int, ...] | None = None  # the classes asked for, split evenly in order; None: every class in turn
    guidance: float = 1.0
    guidance_interval: tuple[float, float] | None = None
    kind: str = "points"
    recorded: tuple[int, ...] | None = None

    @property
    def options(self) -> dict:
        return {"sampler": self.sampler, "steps": self.steps, "eta": self.eta, "clip": self.clip,
                "spacing": self.spacing, "lambda_min": self.lambda_min, "block": self.block}

    @property
    def y(self) -> torch.Tensor | None:
        """(n,) labels: the asked classes split evenly in order, else every class in turn (sample i asks for
        i % K); None for an unconditional run."""
        if not self.conditional:
            return None
        if self.n_classes is None:
            raise ValueError("a class-conditional run's labels need its classes: plan(cfg, purpose, classes=...)")
        if self.labels is not None:
            return split_labels(list(self.labels), self.n)
        return cycle_labels(self.n, self.n_classes)

    @property
    def cond(self) -> dict:
        if not self.conditional:
            return {}
        return {"y": self.y, "guidance": self.guidance, "guidance_interval": self.guidance_interval}

    def kwargs(self, lo: int = 0, hi: int | None = None) -> dict:
        """sample()'s keywords for samples lo .. hi - 1 of the draw (default all n): a rank's share draws the
        same samples as the whole (`trajectory`: sample i depends only on the seed, i and its label)."""
        hi = self.n if hi is None else hi
        cond = self.cond
        if cond:
            cond["y"] = cond["y"][lo:hi]
        return {"n": hi - lo, "seed": self.seed, "start": lo, **self.options, **cond}

    def describe(self, diffusion: Diffusion) -> str:
        """Its grid for printed results: 'dpm++, 10 steps, logsnr from lambda -5' (`describe_grid`)."""
        return describe_grid(self.sampler, diffusion, self.steps, self.spacing, self.lambda_min, self.kind,
                             self.recorded)


def sampler_of(cfg, sampler: str | None = None, steps: int | None = None) -> tuple[str, int | None]:
    """(sampler, steps) of a draw asked for `sampler` and `steps` (None: not asked): neither asked, as the run's
    final samples (eval_sampler, eval_steps: dpm++ in 10 steps for images); else ddpm and all steps where not asked."""
    if sampler is None and steps is None:
        return cfg.eval_sampler, cfg.eval_steps or None
    return sampler or "ddpm", steps


def final_n(cfg) -> int:
    """How many final samples a run draws: eval_n images, or frame_points points (as the classic study)."""
    return cfg.eval_n if cfg.images else cfg.frame_points


def plan(cfg, purpose: str, *, classes=None, n: int | None = None, seed: int | None = None,
         sampler: str | None = None, steps: int | None = None, spacing: str | None = None,
         lambda_min: float | None = None, eta: float | None = None, clip: float | None = None,
         labels: list[int] | None = None, guidance: float | None = None, interval: str | None = None) -> Plan:
    """How a run (its config `cfg`) samples for `purpose`, the one place that says it:
      "snapshot": train's snapshots, frame_points samples by frame_sampler in frame_steps steps at FRAME_SEED
                  (points on the logsnr grid from t = T - 1: on the default dino model 20 dpm++ steps reached
                  precision 0.28 on the trailing grid, about 0.7 on logsnr already at 10, docs/samplers.md;
                  images and a distilled student's on the default grid, `grid`);
      "final":    train's final samples (`final_n` of them, eval_sampler, eval_steps, FRAME_SEED);
      "evaluate": the final samples again (`evaluate RUN`), or what the arguments change; the final samples'
                  block (`aligned_block`) unless n is given;
      "sample", "figure": n samples (required) at seed (default 0), as the final samples unless told.
    Where told, sampler/steps (`sampler_of`), spacing, lambda_min, eta, clip as sample()'s. classes: the run's
    class names (or their number) where it is class-conditional (cfg.class_cond), whose samples ask for `labels`
    (class indices, split evenly) or every class in turn, at guidance weight `guidance` on the log-SNR `interval`
    ('lo,hi' or 'all'): defaults the run's guidance and guidance_interval. InputError for a request the run cannot
    take (labels of an unconditional run, a class it lacks, a weight below 0)."""
    told = {k: v for k, v in dict(n=n, seed=seed, sampler=sampler, steps=steps, spacing=spacing, lambda_min=lambda_min,
                                  eta=eta, clip=clip, labels=labels, guidance=guidance, interval=interval).items()
            if v is not None}
    if purpose not in PURPOSES or (purpose in ("snapshot", "final") and told):
        raise ValueError(f"plan({purpose!r}, {', '.join(told)}): a purpose is one of {', '.join(PURPOSES)}; a "
                         f"run's snapshots and final samples are its own")
    if purpose in ("sample", "figure") and n is None:
        raise ValueError(f"plan({purpose!r}) needs n")
    if purpose == "snapshot":
        n, sampler, steps = cfg.frame_points, cfg.frame_sampler, min(cfg.frame_steps, cfg.timesteps)
        spacing = None if cfg.images or cfg.sample_grid else "logsnr"
    else:
        sampler, steps = sampler_of(cfg, sampler, steps)
    own = purpose in ("snapshot", "final") or (purpose == "evaluate" and n is None)
    n = final_n(cfg) if n is None else n
    seed = (FRAME_SEED if purpose in ("snapshot", "final", "evaluate") else 0) if seed is None else seed
    recorded = tuple(int(t) for t in cfg.sample_grid.split(",")) if cfg.sample_grid else None
    block = aligned_block(cfg.kind, n) if own else None
    sampling = Plan(n, seed, sampler, steps, spacing, lambda_min, eta, clip, block, kind=cfg.kind, recorded=recorded)
    if not cfg.class_cond:
        if labels is not None or guidance is not None or interval is not None:
            raise InputError("class labels, a guidance weight or a guidance interval were asked of a run trained "
                             "without class labels")
        return sampling
    return _with_labels(sampling, cfg, classes, labels, guidance, interval)


def _with_labels(sampling: Plan, cfg, classes, labels, guidance, interval) -> Plan:
    """`sampling` of a class-conditional run: its classes, the asked ones, the guidance weight and interval."""
    from dataclasses import replace

    from .config import parse_interval

    if guidance is not None and not 0 <= guidance < float("inf"):  # the run's own was checked when it was made
        raise InputError(f"guidance weight {guidance}: must be a finite number >= 0 (1: plain conditional, 0: "
                         f"unconditional, > 1: guided)")
    k = None if classes is None else classes if isinstance(classes, int) else len(classes)
    if labels is not None and k is not None and not all(0 <= c < k for c in labels):
        raise InputError(f"classes {list(labels)}: this run has classes 0..{k - 1}")
    return replace(sampling, conditional=True, n_classes=k, guidance=cfg.guidance if guidance is None else guidance,
                   labels=None if labels is None else tuple(int(c) for c in labels),
                   guidance_interval=parse_interval(cfg.guidance_interval if interval is None else interval,
                                                    "guidance interval"))


def shape_and_kind(model, shape=None, kind=None) -> tuple[tuple[int, ...], str]:
    """One sample's shape and kind ("points"/"images"): as given, else the model's (build_model records both
    from the run's config), else (2,) and the kind of that shape."""
    shape = tuple(shape or getattr(model, "sample_shape", (2,)))
    return shape, kind or getattr(model, "kind", None) or kind_of_shape(shape)


def trajectory(model, diffusion: Diffusion, n: int, seed: int = 0, shape: tuple[int, ...] | None = None, device="cpu",
               sampler: str = "ddpm", steps: int | None = None, eta: float | None = None, start: int = 0,
               y: torch.Tensor | None = None, guidance: float = 1.0, spacing: str | None = None,
               lambda_min: float | None = None, kind: str | None = None, block: int | None = None, stop=None,
               guidance_interval: tuple[float, float] | None = None, bf16: bool | None = None,
               **kwargs) -> Iterator[torch.Tensor]:
    """The seeded trajectory x_T, ..., x_0 of n samples (n, *shape) from `model` (shape (2,) for points,
    (C, H, W) for images; default: the model's `sample_shape`, else (2,)). Sample i (counted from `start`)
    depends only on (seed, i): its x_T and every step's noise come from its own stream
    (`noise.SampleNoise`), and the network sees it at the same place in a same-sized block
    (`AlignedBatches`, `block` rows, default BLOCKS[kind]), so a larger batch reproduces a smaller one's samples
    bit for bit (with the same block: `aligned_block` fits small draws at the cost of that).
    y: (n,) class labels passed to the model, aligned the same way (negative: the "no label" class; None for a
    class-conditional model: every class in turn, sample i asking for class i % K, as `sample RUN` does), and
    `guidance` their classifier-free guidance weight W (`guidance.Guided`: 1 plain conditional, 0 unconditional;
    both predictions in one call per block, each sample at its same rows), applied only at the steps whose log-SNR
    lies in `guidance_interval` (lo, hi) when given (`guidance.interval_steps`). eta is DDIM's (ddim only).
    bf16: the network under bfloat16 autocast (its outputs back in float32; the sampler's arithmetic stays float32);
    None: images on a CPU that computes bf16 natively (`bf16_sampling`), else off.
    steps, spacing, lambda_min: the grid (`grid`: None takes the measured default for the sampler and `kind`,
    "points" or "images"; default: the model's `kind`, recorded by build_model from the run's config); a distilled
    student's model carries its own grid, which it samples on unless they name another (`own_grid`).
    stop: a callable asked before every network call; when it answers True, sampling ends with SamplingStopped
    (a training run's Ctrl-C within one block's pass, not after the whole snapshot)."""
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
    if eta is not None:
        if sampler != "ddim":
            raise ValueError(f"eta applies to the ddim sampler only, not {sampler}")
        kwargs["eta"] = eta
    classes = getattr(model, "classes", None)
    if y is None and classes:
        y = cycle_labels(n, len(classes), start)
    if guidance != 1 and y is None:
        raise ValueError(f"guidance = {guidance} needs class labels y to guide towards")
    shape, kind = shape_and_kind(model, shape, kind)
    ts = grid_of(model, diffusion, sampler, steps, spacing, lambda_min, kind)
    noise = SampleNoise(seed, n, shape, device=device, start=start)
    if bf16_sampling(kind, device) if bf16 is None else bf16:
        model = BF16(model)
    if y is not None:
        steps_guided = interval_steps(guidance_interval, diffusion.alpha_bar.double().cpu().numpy())
        model, y = Guided(model, guidance, steps_guided), y.to(device)
    aligned = AlignedBatches(model, start, block or BLOCKS[kind], y, stop)
    return SAMPLERS[sampler](aligned, diffusion, noise.randn(), noise, ts, **kwargs)


def grid_of(model, diffusion: Diffusion, sampler: str, steps: int | None = None, spacing: str | None = None,
            lambda_min: float | None = None, kind: str = "points") -> np.ndarray:
    """The timesteps `trajectory` samples on, noisiest first: one network call per block each (a student's own
    grid, `own_grid`, else the grid policy's, `grid`)."""
    ts = own_grid(getattr(model, "grid", None), steps, spacing, lambda_min)
    if ts is None:
        spacing, lambda_min = grid(sampler, diffusion, steps, spacing, lambda_min, kind)
        ts = timesteps(diffusion.T, steps, spacing, diffusion.alpha_bar.double().cpu().numpy(), lambda_min)
    return ts


def bf16_sampling(kind: str, device) -> bool:
    """The default of trajectory's bf16: images on a CPU with native bf16 (AVX-512 BF16, AMX), where the U-Net's
    call measured 1.2-1.4x faster at batch 64 and the samples scored alike (docs/images.md). Not on CUDA: that
    path has not been run on a GPU yet."""
    from .runtime.device import native_bf16

    device = torch.device(device)
    return kind == "images" and device.type == "cpu" and native_bf16(device)


class BF16(torch.nn.Module):
    """model(x, t, y) under bfloat16 autocast on x's device, its output returned in x's dtype."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        with torch.autocast(x.device.type, dtype=torch.bfloat16):
            out = self.model(x, t) if y is None else self.model(x, t, y)
        return out.to(x.dtype)


IMAGE_RANGE = 1.0  # images are trained as pixels scaled to [-1, 1] (data/source.py); their samples are clipped to it


def sample(model, diffusion: Diffusion, n: int, seed: int = 0, **kwargs) -> torch.Tensor:
    """The last state x_0 of `trajectory` (same arguments): n seeded samples. Points (n, 2) come as the sampler
    leaves them; images (n, C, H, W) are clipped to the pixel range [-1, 1] (a sampler's last step can
    overshoot it), so the API, `sample --out x.npy` and the PNGs all hold the same images."""
    x = None
    for x in trajectory(model, diffusion, n, seed, **kwargs):
        pass
    _, kind = shape_and_kind(model, kwargs.get("shape"), kwargs.get("kind"))
    return x.clamp(-IMAGE_RANGE, IMAGE_RANGE) if kind == "images" else x


class AlignedBatches(torch.nn.Module):
    """`model` evaluated in fixed blocks of `block` rows aligned to global sample indices (zero-padded).

    A matrix product's rounding can depend on the batch size and on a row's position in it (kernels
    and thread splits change with the shape), so the same noise alone does not make sample i the same
    in a batch of 7 and of 300. Here sample i is always computed as row i % block of a block-sized
    product, whatever the batch: bit-identical results on a given device and thread count."""

    def __init__(self, model, start: int = 0, block: int = POINT_BLOCK, y: torch.Tensor | None = None, stop=None):
        super().__init__()
        self.model, self.start, self.block, self.y, self.stop = model, start, block, y, stop

    def _call(self, *args) -> torch.Tensor:
        if self.stop is not None and self.stop():
            raise SamplingStopped("sampling stopped on request")
        return self.model(*args)

    def _pad(self, x: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
        padded = x.new_zeros((hi - lo, *x.shape[1:]))
        padded[self.start - lo:self.start - lo + len(x)] = x
        return padded

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:  # x: (n, ...), t: a scalar step
        n, b = len(x), self.block
        lo = self.start // b * b  # the block boundary at or before sample `start`
        hi = -(-(self.start + n) // b) * b  # ... and at or after the last sample
        blocks = self._pad(x, lo, hi).split(b)
        if self.y is None:
            out = torch.cat([self._call(block, t) for block in blocks])
        else:
            labels = self._pad(self.y, lo, hi).split(b)
            out = torch.cat([self._call(block, t, yb) for block, yb in zip(blocks, labels)])
        return out[self.start - lo:self.start - lo + n]
