"""The training configuration: every hyperparameter with its default and the reason for it, plus
loading from TOML and validation. Pure Python (no torch), so `--help` stays fast.

Some defaults depend on the data: a field whose default is None ("auto") is filled from POINT_DEFAULTS
or IMAGE_DEFAULTS when the config is made, by the data's `kind` (from `dataset_kind` when not given).
The resolved values, the kind and the sample shape included, are what config.json records."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

from .config_values import (_coerce, _int_list, check_applies, check_length, merge_values, parse_interval,
                            read_config_file, type_of, user_values)
from .choices import DEVICES, EMBEDDINGS, KINDS, LOSSES, MODELS, PREDICTIONS, SAMPLERS, SCHEDULES, T_SAMPLINGS
from .data.image_names import MAX_IMAGE_SIZE, check_image_size, dataset_kind, located
from .errors import InputError

MAX_PARAMS = 1e9  # 16 GB of weights, EMA and AdamW state in float32: far beyond a 2D point model
BOOLEANS = {"on": True, "true": True, "yes": True, "1": True, "off": False, "false": False, "no": False, "0": False}
MAX_FRAME_VALUES = 1e8  # points kept in frames.npy and the checkpoint: 0.8 GB


def _f(default, help: str, choices=None, low=None, high=None, nullable=False, only=None):
    """A config field: its default, one line of help, and the values it accepts. only: "points" or "images" for a
    field that one kind of data alone uses; its help then starts with that word (as `train --help` shows it), and
    configs of the other kind do not record it (`to_dict`)."""
    meta = {"help": f"{only}: {help}" if only else help, "choices": choices, "low": low, "high": high,
            "nullable": nullable, "auto": False, "only": only, "resolved": False}
    return field(default=default, metadata=meta)


def _auto(help: str, choices=None, low=None, high=None):
    """A field whose default depends on the data (POINT_DEFAULTS / IMAGE_DEFAULTS); None means auto."""
    meta = {"help": help, "choices": choices, "low": low, "high": high, "nullable": False, "auto": True, "only": None,
            "resolved": False}
    return field(default=None, metadata=meta)


def _resolved(help: str, choices=None):
    """A field the run fills in and records (None: not known yet); not a flag: it follows from the data."""
    meta = {"help": help, "choices": choices, "low": None, "high": None, "nullable": True, "auto": False,
            "only": None, "resolved": True}
    return field(default=None, metadata=meta)


# The defaults that differ between point clouds and images, each with its reason.
POINT_DEFAULTS = dict(
    model="mlp",  # the classic residual MLP
    schedule="linear",  # T=1000 linear is Ho et al.'s; it ends at alpha_bar_T = 4e-5, so x_T really is N(0, I)
    prediction="eps",
    # logsnr: the dino's detail lives at noise std 0.01-0.2, which uniform t visits 6% of the time, logsnr 30%
    t_sampling="logsnr",
    epochs=600,  # 600 x 7 steps: docs/measured.md times it, with the host
    kimg=0.0,  # off: the length is `epochs`
    batch_size=1024,  # big batches keep 2 CPU cores busy
    lr=1e-2,  # scaled up from the classic 1e-3 at batch 32; 1e-2 measured best at batch 1024, 2e-2 worse
    ema=0.995,
    frames=20,
    frame_points=1000,  # the classic study plotted 1000 samples
    checkpoint_every=10,  # ~1.5% of training time; a crash loses at most 10 epochs (bench/resume_overhead.py)
    eval_n=1000,  # final samples scored against fresh true points
    eval_sampler="ddpm",  # full ancestral sampling (Ho et al. Alg. 2): the points' final samples
    eval_steps=0,  # 0 = all T steps
    # class-cond: on the 13 Datasaurus shapes (configs/datasaurus-cond.toml at 140 epochs, `python bench/datasaurus_cond.py
    # --guidance 1,1.5,1.75,2`), W = 1.75 put 9 of 13 shapes within 0.1 of their floor's precision and coverage;
    # 1: 1, 1.5: 6, 2: 3 (W = 1 blurs each shape; W >= 2 trades coverage for precision; docs/conditional.md)
    guidance=1.75,
    guidance_interval="all",  # W = 1.75 above was measured guiding every step
    class_cond=False,  # the labels of datasaurus are a choice of shape: asked for with --class-cond
)
IMAGE_DEFAULTS = dict(
    # measured on 4000 MNIST digits (bench/mnist_recipes.py, docs/images.md): at the same images seen, v-prediction
    # on the cosine schedule beat eps (cosine: collapsed; linear: 6x worse), uniform t beat logsnr 4x, batch 64
    # beat 128 (more steps), lr 2e-3 beat 1e-3 and 4e-3, EMA 0.995-0.999 all alike
    model="unet",
    schedule="cosine",  # Nichol & Dhariwal 2021: the linear schedule wastes its last steps on pure noise at 28x28
    prediction="v",  # Salimans & Ho 2022: well-conditioned at both ends of the cosine schedule
    t_sampling="uniform",
    epochs=100,  # unused while kimg > 0 (kimg sets the length of image runs); an explicit epochs turns kimg off
    # thousands of images seen: the old default's 90 kimg plus what 10 sampling steps instead of 50 save of the same
    # wall time on 2 CPU cores (docs/images.md: both timed in one sitting)
    kimg=100.0,
    batch_size=64,
    lr=2e-3,
    ema=0.999,
    frames=10,  # each snapshot grid costs ~0.4% of the default run
    frame_points=None,  # fitted to the run's length (fit_evaluation): FRAME_POINTS for a default-length run
    checkpoint_every=1,  # an image epoch is long; a checkpoint costs well under 1% of one
    eval_n=None,  # fitted to the run's length (fit_evaluation): FULL_EVAL_N for a default-length run
    # DPM-Solver++ from lambda -5 (sampling.IMAGE_LAMBDA_MIN): 10 steps score as the old 20 from t = T - 1 did
    # (docs/images.md), not the 25 min of 1000 ancestral steps
    eval_sampler="dpm++",
    eval_steps=None,  # fitted to the run's length (fit_evaluation): FULL_EVAL_STEPS
    # --class-cond: on a 100-kimg tuning run of 3000 digits (`python bench/image_grid.py --guidance ... --interval
    # ...`, 1000 samples, 10 steps; docs/images.md), W = 1.5 guiding lambda in [-2, 1.5] drew 0.980 as asked at
    # classifier-FID 1.29 (all steps: 0.989 at 1.54 and 1.6x the network calls; W = 1.25: 0.971 at 0.95; W = 2:
    # 0.999 at 2.80): the least diverse-costing weight that clears 97% with a margin
    guidance=1.5,
    guidance_interval="-2,1.5",
)

# An image run whose data have class labels trains with them unless told otherwise (class_cond auto), and its
# final samples ask for every class in turn at this guidance weight: the conditional model at W = 1 draws the data's
# own mix of classes, and at equal training it scored far nearer the floor than an unconditional network (docs/images.md)
LABELS_GUIDANCE = 1.0

# An image run's evaluation (snapshot grids and final samples) when frame_points / eval_n / eval_steps are not
# given: it fits the run's length (train/setup.py fit_evaluation). First the full values: FRAME_POINTS per grid,
# and eval_n following the share of the default length (rounded up to 100s, at least MIN_EVAL_N: classifier-FID of
# fewer is mostly noise) at FULL_EVAL_STEPS (QUICK_EVAL_STEPS below half the default length; since the grid starts
# at lambda -5 both are 10). Then, if their network passes exceed EVAL_SHARE of the training's (TRAIN_PASSES per
# image seen), the unset counts shrink together to fit. The default run (100 kimg: 10 grids of 64 x 20 steps and
# 1000 x 10, in blocks of 64) uses 23040 of its 100000 allowed passes; a 3-step photo run draws 1-image grids.
FULL_EVAL_N, MIN_EVAL_N = 1000, 100
# 10 DPM-Solver++ steps from lambda -5 (sampling.IMAGE_LAMBDA_MIN) scored as 20 from t = T - 1 did, at any length
FULL_EVAL_STEPS = QUICK_EVAL_STEPS = 10
FRAME_POINTS = 64  # one 8x8 grid per snapshot: frames stay small
# a training image costs about 3 forward passes (the forward, the backward at twice it); measured 3.4 on the
# default MNIST U-Net (~185 images/s training, ~625 images/s sampling) and 3.8 on the SimpleUnet (issue 26)
TRAIN_PASSES = 3
EVAL_SHARE = 1 / 3  # evaluation's passes at most a third of training's: a quarter of the whole run


@dataclass(frozen=True)
class TrainConfig:
    # data
    dataset: str = _f("dino", "data set name (see `tiny-diffusion datasets`), a .csv/.npy point file, or a folder "
                      "of images")
    kind: str | None = _resolved("points or images: from `dataset` when the config is made (data.image_names."
                                 "dataset_kind), then recorded", choices=KINDS)
    sample_shape: str | None = _resolved("the shape of one sample, comma-separated (2, or C,H,W): recorded by "
                                         "training from the data")
    sample_grid: str | None = _resolved("a distilled student's timesteps, comma-separated, noisiest first: what its "
                                        "samplers visit by default (recorded by `tiny-diffusion distill`; unset "
                                        "for a trained run)")
    n_points: int = _f(8000, "training points drawn once from the data set (the classic study used 8000)", low=1,
                       high=100_000_000, only="points")
    data_dir: str | None = _f(None, "folder holding the data set's files (raw or .gz); unset: download once into "
                              "$TINY_DIFFUSION_DATA or ~/.cache/tiny-diffusion", nullable=True, only="images")
    image_size: int | None = _f(None, "resize the shorter side and center-crop to this (unset: the images' own size if "
                                "they all agree, else 64; at most data.image_names.MAX_IMAGE_SIZE)", nullable=True,
                                only="images")
    channels: int | None = _f(None, "1 (grayscale) or 3 (RGB); unset keeps the data's own", low=1, high=3,
                              nullable=True, only="images")
    flip: str = _f("auto", "random horizontal flips (auto: on for photo folders and CIFAR-10, off for digits)",
                   choices=("auto", "on", "off"), only="images")
    timesteps: int = _f(1000, "number of diffusion steps T", low=1, high=100_000)
    schedule: str = _auto("beta schedule", choices=SCHEDULES)
    beta_start: float = _f(1e-4, "first beta of the linear/quadratic schedules", low=0.0, high=1.0)
    beta_end: float = _f(0.02, "last beta of the linear/quadratic schedules", low=0.0, high=1.0)
    terminal_alpha_bar: float | None = _f(
        None, "rescale the schedule so alpha_bar_T equals this (e.g. 1e-4); unset keeps it as is",
        low=0.0, high=1.0, nullable=True)
    prediction: str = _auto("what the network predicts: eps (noise), x0 (clean data) or v", choices=PREDICTIONS)
    t_sampling: str = _auto("training distribution of t: uniform (Ho et al.), logsnr (uniform in log-SNR, more "
                            "weight on the low-noise steps that resolve fine structure) or stratified (uniform, each "
                            "batch spread evenly over the steps from one draw)", choices=T_SAMPLINGS)
    min_snr: float = _f(0.0, "weight each sample's loss by min(SNR, gamma) in eps terms (min-SNR-gamma, Hang et al. "
                        "2023; 5 is theirs); 0: unweighted", low=0.0, high=1e6)
    loss: str = _f("l2", "training loss between the network's output and its target: l2 (Ho et al.) or l1",
                   choices=LOSSES)
    model: str = _auto("the network: mlp (points), unet or simple-unet (images; simple-unet is the popular "
                       "tutorial's)", choices=MODELS)
    # the MLP (points): the classic one, narrower (64 wide, 32-feature embeddings) so that 1000 sampling steps of 1000
    # points take about 1 s on 2 cores
    hidden_size: int = _f(64, "width of the MLP (64: 1000 steps x 1000 points in about 1 s on 2 cores; 128 is 2x slower "
                          "and no better in 30 s of training)", low=1, high=65_536, only="points")
    hidden_layers: int = _f(3, "number of the MLP's residual hidden blocks", low=0, high=1000, only="points")
    emb_size: int = _f(32, "features per embedded scalar (x, y and t); 32 measured as good as 64 and faster",
                       low=1, high=65_536, only="points")
    time_emb: str = _f("sinusoidal", "the MLP's time embedding", choices=EMBEDDINGS, only="points")
    input_emb: str = _f("sinusoidal", "input (coordinate) embedding", choices=EMBEDDINGS, only="points")
    input_scale: float = _f(25.0, "frequency scale of the sinusoidal input embedding (classic: 25)", low=0.0,
                            high=1e6, only="points")
    # the U-Net (images): lean enough for minutes on a laptop CPU (docs/images.md)
    # base 16 x (1, 2, 4): 0.7M weights, ~185 images/s on 2 cores; at equal CPU minutes it beat base 24 and 32
    # (1, 2, 2), which see fewer images (bench/mnist_recipes.py)
    base_channels: int = _f(16, "the U-Net's channels at its first level", low=1, high=4096, only="images")
    channel_mult: str = _f("1,2,4", "the U-Net's channel multiplier per level, comma-separated (28x28: 28, 14, 7)",
                           only="images")
    num_res_blocks: int = _f(1, "the U-Net's residual blocks per level", low=1, high=16, only="images")
    attn_resolutions: str = _f("auto", "the U-Net's resolutions with self-attention, comma-separated (auto: the lowest "
                               "one; none: no attention)", only="images")
    dropout: float = _f(0.0, "the U-Net's dropout in its residual blocks", low=0.0, high=0.99, only="images")
    # class labels (docs/conditional.md): the label's embedding is added to the time embedding
    class_cond: bool = _auto("train on the data's class labels (a labelled data set: mnist, fashion-mnist, "
                             "cifar10, a folder with class subfolders, datasaurus); sample with --class and --guidance")
    cond_drop: float = _f(0.1, "class-cond: share of training labels replaced by the learned 'no label' class, so "
                          "one network also predicts unconditionally (what guidance needs)", low=0.0, high=1.0)
    guidance: float = _auto("class-cond: guidance weight W of the final samples and the default of sample/evaluate "
                            "(W = 1 plain conditional, 0 unconditional, > 1 guided)", low=0.0, high=1000.0)
    guidance_interval: str = _auto("class-cond: guide only the steps whose log-SNR lambda lies in 'lo,hi' and take "
                                   "the plain conditional prediction elsewhere (Kynkaenniemi et al. 2024); 'all': every "
                                   "step")
    # optimisation
    epochs: int = _auto("passes over the training data (points: 600 x 7 steps; timed in docs/measured.md, per host); set on "
                        "images, it replaces the default kimg", low=1, high=10_000_000)
    kimg: float = _auto("training length in thousands of images seen (0: use epochs); give epochs or kimg, not both",
                        low=0.0, high=1e9)
    batch_size: int = _auto("samples per optimisation step", low=1, high=10_000_000)
    lr: float = _auto("peak learning rate of AdamW", low=0.0, high=10.0)
    weight_decay: float = _f(0.0, "AdamW weight decay", low=0.0, high=10.0)
    warmup: float = _f(0.02, "fraction of steps with a linear LR warm-up", low=0.0, high=1.0)
    lr_decay: str = _f("cosine", "LR after warm-up: constant or cosine decay to 0", choices=("constant", "cosine"))
    grad_clip: float = _f(1.0, "clip the gradient norm to this (0 = off; the classic study used 1)", low=0.0,
                          high=1e9)
    ema: float = _auto("EMA decay of the weights used for sampling (0 = off)", low=0.0, high=1.0)
    ema_gamma: float = _f(0.0, "> 0: EDM2's power-function EMA (Karras et al. 2024) instead of ema's constant decay: "
                          "decay (1 - 1/step)^(gamma + 1), an average over the last ~sigma_rel of the run whatever "
                          "its length (gamma 16.97: sigma_rel 0.05, 6.94: 0.10); 0: off", low=0.0, high=1e6)
    # bookkeeping
    seed: int = _f(0, "seed for data, initialisation, batches and noise", low=0, high=2**63 - 1)
    device: str = _f("auto", "where to train", choices=DEVICES)
    # how the step runs (not what it computes: a run may resume with other values, see train/step.py)
    cuda_graphs: str = _f("auto", "capture the whole training step (and sampling's network call) as a CUDA graph "
                          "(auto: on for one CUDA process without --skip-nonfinite or --compile)",
                          choices=("auto", "on", "off"))
    autocast: str = _f("auto", "the network's forward under bf16 autocast (never fp16) or off (fp32); auto: bf16 "
                       "for images on CUDA, else off", choices=("auto", "off", "bf16"))
    compile: str = _f("off", "run the network through torch.compile (its compile time is logged)",
                      choices=("off", "on"))
    frames: int = _auto("number of sample snapshots saved in frames.npy during training", low=0, high=100_000)
    frame_points: int = _auto("samples per snapshot (points: also the final samples' count; images: fitted to the "
                              "run's length unless given)", low=1,
                              high=10_000_000)
    # snapshots with a 20-step solver cost ~1% of training; the final samples always use full ancestral DDPM
    frame_sampler: str = _f("dpm++", "sampler of the snapshots in frames.npy", choices=SAMPLERS)
    frame_steps: int = _f(20, "network evaluations per snapshot (at most timesteps)", low=1, high=100_000)
    eval_n: int = _auto("images: final samples scored by the classifier metrics (100 is a quick look; unset: fitted "
                        "to the run's length)", low=1,
                        high=10_000_000)
    eval_sampler: str = _auto("sampler of the final samples", choices=SAMPLERS)
    eval_steps: int = _auto("network evaluations of the final samples (0 = all timesteps)", low=0, high=100_000)
    # safety: a checkpoint (model, EMA, optimizer, RNG states) of the default point model is ~1.2 MB and took a
    # median 16 ms to write vs ~110 ms per epoch (bench/resume_overhead.py, 1 thread)
    checkpoint_every: int = _auto("write a resumable checkpoint every N epochs (0 = only at the end)",
                                  low=0, high=10_000_000)
    skip_nonfinite: int = _f(0, "skip up to N steps with a NaN/Inf loss or gradient instead of stopping (0 = stop)",
                             low=0, high=10_000_000)

    def __post_init__(self):
        """Resolve the data's kind from `dataset` unless recorded, then fill the auto fields (None) with the
        defaults of that kind (the config is frozen: these are its only assignments; what depends on the data
        itself, train/setup.py decides)."""
        if self.kind is None:
            object.__setattr__(self, "kind", dataset_kind(self.dataset))
        for name in ("dataset", "data_dir"):  # found again from anywhere
            object.__setattr__(self, name, located(getattr(self, name)))
        defaults = IMAGE_DEFAULTS if self.images else POINT_DEFAULTS
        if self.kimg is None and self.epochs is not None:  # a length the user gives is the length: an explicit
            object.__setattr__(self, "kimg", 0.0)  # epochs replaces the default kimg
        for name, value in defaults.items():
            if getattr(self, name) is None and not (name == "guidance" and self.images and self.class_cond is None):
                object.__setattr__(self, name, value)

    @property
    def images(self) -> bool:
        """Whether the data are images (else points): the recorded `kind`."""
        return self.kind == "images"

    # -- building --------------------------------------------------------------------------
    @classmethod
    def fields(cls):
        return dataclasses.fields(cls)

    @classmethod
    def from_dict(cls, values: dict, source: str = "config") -> "TrainConfig":
        """A validated config from `values` (unknown keys and wrong types are errors naming `source`)."""
        names = {f.name for f in cls.fields()}
        unknown = sorted(set(values) - names)
        if unknown:
            valid = sorted(f.name for f in cls.fields() if not f.metadata["resolved"])
            raise InputError(f"{source}: unknown key {unknown[0]!r}; valid keys: {', '.join(valid)}")
        if not isinstance(values.get("dataset", "dino"), str):
            raise InputError(f"{source}: dataset = {values['dataset']!r} should be a string (str)")
        cfg = cls(**{k: _coerce(cls._field(k), v, source) for k, v in values.items()})
        cfg.validate(source)
        return cfg

    @classmethod
    def _field(cls, name: str):
        return next(f for f in cls.fields() if f.name == name)

    @classmethod
    def from_toml(cls, path: str | Path, overrides: dict | None = None) -> "TrainConfig":
        """The config in a TOML file (flat keys, or a [train] table), or in a run's config.json, with `overrides` on
        top. The keys a run fills in itself (kind, sample_shape, sample_grid) are not taken from a file."""
        path = Path(path)
        values = read_config_file(path, "config")
        values = values.get("train", values) if isinstance(values.get("train"), dict) else values
        values = user_values(values, path, [f.name for f in cls.fields() if f.metadata["resolved"]])
        check_length(values, str(path))
        cfg = cls.from_dict(merge_values(values, overrides or {}), source=str(path))
        if path.suffix.lower() != ".json":  # a point run's config.json records every field, as it always has
            check_applies(cfg, values, str(path))
        return cfg

    def to_dict(self) -> dict:
        """The values config.json records: all of them, less the point-only ones (n_points, the MLP's) in an image
        config, which they would only mislead. Point configs keep every field, as their runs always have."""
        values = dataclasses.asdict(self)
        if self.images:
            values = {k: v for k, v in values.items() if self._field(k).metadata["only"] != "points"}
        return values

    def replace(self, **changes) -> "TrainConfig":
        """A copy with `changes`; another dataset is resolved afresh (its kind and shape are its own)."""
        if "dataset" in changes and changes["dataset"] != self.dataset:
            changes = {"kind": None, "sample_shape": None, **changes}
        return type(self).from_dict(merge_values(self.to_dict(), changes))

    def differences(self, saved: dict, ignore=()) -> list[str]:
        """The fields whose value differs from `saved` (a config's dict), but for `ignore` and a field the run fills
        in itself that this config does not know yet (None): a resolved one (kind, sample_shape), or an auto one left
        unset (an image run's frame_points / eval_n / eval_steps, fitted to its length)."""
        filled = {f.name for f in self.fields() if f.metadata["resolved"] or f.metadata["auto"]}
        return [k for k, v in self.to_dict().items()
                if k not in ignore and saved.get(k) != v and not (k in filled and v is None)]

    def validate(self, source: str = "config") -> None:
        for f in self.fields():
            value, m = getattr(self, f.name), f.metadata
            if value is None and m["nullable"]:
                continue
            if m["choices"] and value not in m["choices"]:
                raise InputError(f"{source}: {f.name} = {value!r} is not one of {', '.join(m['choices'])}")
            if isinstance(value, (int, float)):
                if isinstance(value, float) and not math.isfinite(value):
                    raise InputError(f"{source}: {f.name} = {value} must be a finite number")
                if m["low"] is not None and value < m["low"]:
                    raise InputError(f"{source}: {f.name} = {value} must be >= {m['low']}")
                if m["high"] is not None and value > m["high"]:
                    raise InputError(f"{source}: {f.name} = {value} must be <= {m['high']}")
        if self.terminal_alpha_bar is not None and not 0 < self.terminal_alpha_bar < 1:
            raise InputError(f"{source}: terminal_alpha_bar = {self.terminal_alpha_bar} must be in (0, 1), e.g. 1e-4")
        if self.guidance_interval is not None:
            parse_interval(self.guidance_interval, f"{source}: guidance_interval")
        if self.cond_drop >= 1:
            raise InputError(f"{source}: cond_drop = {self.cond_drop} must be < 1 (1 never shows the network a label)")
        if self.ema >= 1:
            raise InputError(f"{source}: ema = {self.ema} must be < 1 (0 turns EMA off)")
        if self.ema_gamma > 0 and self.ema == 0:
            raise InputError(f"{source}: ema_gamma = {self.ema_gamma} shapes an EMA that ema = 0 turns off; give ema > 0 "
                             "or drop ema_gamma")
        if self.beta_start > self.beta_end:
            raise InputError(f"{source}: beta_start = {self.beta_start} is above beta_end = {self.beta_end}")
        if self.model == "mlp" and self.images:
            raise InputError(f"{source}: model = mlp is for points; {self.dataset} holds images: use unet or simple-unet")
        if self.model != "mlp" and not self.images:
            raise InputError(f"{source}: model = {self.model} is for images; {self.dataset} holds points: use mlp")
        if self.image_size is not None:
            check_image_size(self.image_size, f"{source}: image_size = ")
        _int_list(self.channel_mult, "channel_mult", source, low=1)
        if self.sample_shape is not None:
            _int_list(self.sample_shape, "sample_shape", source, low=1, high=MAX_IMAGE_SIZE)
        if self.sample_grid is not None:
            grid = _int_list(self.sample_grid, "sample_grid", source, low=0, high=self.timesteps - 1)
            if any(a <= b for a, b in zip(grid, grid[1:])):
                raise InputError(f"{source}: sample_grid = {self.sample_grid!r} must be decreasing timesteps")
        if self.attn_resolutions not in ("auto", "none", ""):
            _int_list(self.attn_resolutions, "attn_resolutions", source, low=1)
        # sizes that pass each bound alone can still be absurd together: refuse what cannot fit in memory
        n_params = self.hidden_layers * self.hidden_size ** 2 + 3 * self.emb_size * self.hidden_size
        if n_params > MAX_PARAMS:
            raise InputError(f"{source}: hidden_size = {self.hidden_size}, hidden_layers = {self.hidden_layers} and "
                             f"emb_size = {self.emb_size} make ~{n_params:.2g} weights (limit {MAX_PARAMS:.0g}); "
                             f"use a smaller model")
        if self.frame_points is not None and self.frames * self.frame_points > MAX_FRAME_VALUES:
            raise InputError(f"{source}: frames = {self.frames} snapshots of frame_points = {self.frame_points} "
                             f"is too many points to keep (limit {MAX_FRAME_VALUES:.0g}); lower either")


def parse_value(f, text: str):
    """A command-line string as the field's type (used by the CLI's flags)."""
    t = type_of(f)
    if f.metadata["nullable"] and text.lower() in ("none", "off", ""):
        return None
    if f.metadata["auto"] and text.lower() == "auto":
        return None
    if t is bool:
        if text.lower() not in BOOLEANS:
            raise InputError(f"--{f.name.replace('_', '-')}: {text!r} is not on or off")
        return BOOLEANS[text.lower()]
    try:
        return t(text)
    except ValueError:
        raise InputError(f"--{f.name.replace('_', '-')}: {text!r} is not a valid {t.__name__}") from None
