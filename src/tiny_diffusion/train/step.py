"""One optimisation step, and how it runs on this device: the same function eager, under
DistributedDataParallel, and captured once as a CUDA graph (runtime/graphs.py).

World-size independence: every rank draws the whole global batch's randomness (flips, t, noise) from the
shared generator, in the order one process draws it, and keeps its own rows (`rows`, runtime/dist.py);
DDP averages the ranks' gradients, which is the gradient of the global batch's mean loss. So a config
trains the same model whatever the number of processes (to float rounding), and one process computes
exactly what it always did.

Graph safety: the step never reads a Python number that changes between steps except through its
arguments, and it keeps its running state (loss sum, first non-finite step) in tensors it updates in
place; the graph wrapper passes the step number and EMA decay as device tensors it refills before each
replay. Only --skip-nonfinite looks at the host every step, and then no graph is captured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..errors import InputError
from ..core.guidance import drop_labels

MIN_TORCH_FOR_GRAPHS = (2, 5)  # tensor learning rates in LR schedulers, graph-safe custom generators


@dataclass(frozen=True)
class Plan:
    """How the step runs here (resolved from the config's auto values and the device)."""
    graphs: bool  # the whole step captured once as a CUDA graph and replayed
    bf16: bool  # the network's forward under bfloat16 autocast (never float16)
    compile: bool  # the network through torch.compile
    channels_last: bool  # images in channels-last memory layout (CUDA only: faster convolutions there)

    def as_dict(self) -> dict:
        return {"cuda_graphs": self.graphs, "autocast": "bf16" if self.bf16 else "off", "compile": self.compile}


def graph_obstacle(cfg, device: torch.device, world: int) -> str | None:
    """Why the step cannot be captured as a CUDA graph here, or None when it can."""
    if device.type != "cuda":
        return f"CUDA graphs need a CUDA GPU, and this run trains on {device.type}"
    if world > 1:
        return "CUDA graphs are for one process; under torchrun each rank runs DDP eagerly"
    if cfg.skip_nonfinite > 0:
        return "--skip-nonfinite looks at every step's loss on the host, which a captured step cannot"
    if tuple(int(v) for v in torch.__version__.split("+")[0].split(".")[:2]) < MIN_TORCH_FOR_GRAPHS:
        return f"CUDA graphs here need torch >= {'.'.join(map(str, MIN_TORCH_FOR_GRAPHS))} (found {torch.__version__})"
    return None


def plan_for(cfg, device: torch.device, world: int, images: bool) -> Plan:
    """The Plan for `cfg` on `device`; InputError for an explicit choice this device cannot honour."""
    why = graph_obstacle(cfg, device, world)
    if cfg.cuda_graphs == "on" and why:
        raise InputError(f"--cuda-graphs on: {why}; use --cuda-graphs auto or off")
    if cfg.autocast == "bf16" and device.type not in ("cuda", "cpu"):
        raise InputError(f"--autocast bf16: bfloat16 autocast runs on cuda or cpu here, not {device.type}; use off")
    # auto: graphs where they can run, unless torch.compile (which has its own CUDA-graph mode) is on
    graphs = cfg.cuda_graphs == "on" or (cfg.cuda_graphs == "auto" and why is None and cfg.compile == "off")
    # auto: bf16 for images on CUDA only. On a CPU with native bf16 (AVX-512 BF16) the step ran 1.2x faster, but 30
    # kimg of MNIST then scored classifier-FID 4.65 against float32's 3.14 (docs/images.md): a loss, not a speed-up
    bf16 = cfg.autocast == "bf16" or (cfg.autocast == "auto" and device.type == "cuda" and images)
    return Plan(graphs=graphs, bf16=bf16, compile=cfg.compile == "on", channels_last=device.type == "cuda" and images)


def ema_decay(ema: float, step: int, gamma: float = 0.0) -> float:
    """The EMA decay after `step` steps (counted from 1), with the usual warm-up: short runs are not dominated by the
    initial weights. gamma > 0: EDM2's power-function profile (1 - 1/step)^(gamma + 1) instead, whose average
    weights the run's steps as step^gamma, a fixed share of the run at any length (its sigma_rel)."""
    if gamma > 0:
        return (1 - 1 / step) ** (gamma + 1)
    return min(ema, (1 + step) / (10 + step))


class TrainStep:
    """step(idx, step_no, decay) -> skipped: one optimisation step on the global batch `idx` (indices into
    the data), this rank's rows of it. `step_no` (counted from 1) marks a non-finite step in `first_bad`;
    `decay` is the EMA decay after it. Python numbers when eager; 0-d device tensors when captured.
    Returns True only when --skip-nonfinite skipped the step (the one mode that syncs every step).
    objective: what draws t and scores the network (sample_t, loss): the diffusion itself (DDPM's loss), or a
    distillation target (core/distill.py) that has the same interface."""

    def __init__(self, cfg, net, model, ema_model, optimizer, diffusion, data, generator, rows: slice, plan: Plan,
                 objective=None):
        self.net, self.optimizer, self.diffusion, self.data, self.generator = net, optimizer, diffusion, data, generator
        self.objective = diffusion if objective is None else objective
        self.rows, self.plan, self.kind = rows, plan, cfg.loss
        # min-SNR weights the diffusion loss (a distillation target has its own weighting)
        self.loss_options = {"min_snr": cfg.min_snr} if objective is None and cfg.min_snr > 0 else {}
        self.cond_drop = cfg.cond_drop if cfg.class_cond else None  # class-conditional: the label dropout rate
        self.params = list(model.parameters())
        self.ema_params = list(ema_model.parameters()) if ema_model is not model else None
        # buffers (BatchNorm's running statistics and step count) are not averaged but copied, as timm's and
        # torch.optim.swa_utils' EMA can do: an average of statistics of weights long gone describes no network
        self.buffers = list(model.buffers())
        self.ema_buffers = list(ema_model.buffers()) if ema_model is not model else None
        self.clip = cfg.grad_clip if cfg.grad_clip > 0 else math.inf  # inf: the norm measured only
        self.skip_nonfinite = cfg.skip_nonfinite > 0
        device = data.x.device
        self.loss_sum = torch.zeros((), device=device)  # this epoch's (this rank's) summed loss
        self.first_bad = torch.full((), -1, device=device, dtype=torch.long)  # the first non-finite step, or -1

    def draw(self, idx: torch.Tensor):
        """(x0, t, eps, y) of this rank's rows; the random numbers are drawn for the whole global batch. y: the
        class labels of a class-conditional run, each replaced by the "no label" class with probability
        cond_drop (guidance.drop_labels), else None (and no draw)."""
        x0 = self.data.batch(idx, self.generator)  # (B, 2) or (B, C, H, W); images: flips drawn here
        y = None if self.cond_drop is None else drop_labels(self.data.labels[idx], self.cond_drop, self.generator)
        t = self.objective.sample_t(len(idx), x0.device, self.generator)
        eps = torch.randn(x0.shape, device=x0.device, dtype=x0.dtype, generator=self.generator)
        x0, t, eps = x0[self.rows], t[self.rows], eps[self.rows]
        if self.plan.channels_last:
            x0, eps = (v.contiguous(memory_format=torch.channels_last) for v in (x0, eps))
        return x0, t, eps, (y[self.rows] if y is not None else None)

    def __call__(self, idx: torch.Tensor, step_no, decay) -> bool:
        x0, t, eps, y = self.draw(idx)
        with torch.autocast(x0.device.type, dtype=torch.bfloat16, enabled=self.plan.bf16, cache_enabled=False):
            loss = self.objective.loss(self.net, x0, y=y, kind=self.kind, t=t, eps=eps, **self.loss_options)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, self.clip)  # the total norm, clipped to grad_clip
        finite = torch.isfinite(loss.detach()) & torch.isfinite(grad_norm)
        skipped = self.skip_nonfinite and not finite  # a host sync per step, only in this mode
        if not skipped:
            self.optimizer.step()
            self.loss_sum += loss.detach()
        self.first_bad.copy_(torch.where((self.first_bad < 0) & ~finite, step_no, self.first_bad))
        if self.ema_params is not None:
            ema_update(self.ema_params, self.params, decay)
            copy_buffers(self.ema_buffers, self.buffers)
        return bool(skipped)


def copy_buffers(ema_buffers, buffers) -> None:
    """ema_buffers <- buffers, in place (graph-safe: the captured copy reads the live buffers at each replay)."""
    for ema, live in zip(ema_buffers, buffers):
        ema.copy_(live)


def ema_update(ema_params, params, decay) -> None:
    """ema <- decay * ema + (1 - decay) * params; `decay` a float, or a 0-d tensor (graph-safe: no host read)."""
    if isinstance(decay, torch.Tensor):
        torch._foreach_mul_(ema_params, decay)
        torch._foreach_add_(ema_params, torch._foreach_mul(params, 1 - decay))
    else:
        torch._foreach_lerp_(ema_params, params, 1 - decay)
