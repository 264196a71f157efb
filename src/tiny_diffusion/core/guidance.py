"""Class labels and classifier-free guidance (Ho & Salimans 2022): one network trained with and without the
label, and at sampling time its two predictions combined with a guidance weight W:

    eps_guided = eps_uncond + W (eps_cond - eps_uncond)

W = 1 is the plain conditional prediction, W = 0 the unconditional one, W > 1 pushes each sample further
towards what makes it its class (Ho & Salimans write the same as (1 + w) eps_cond - w eps_uncond, w = W - 1).
`Guided` applies it to the network's raw output, which is exact for every prediction target: x0, eps and v
are affine in the output with the same coefficients for both halves, and the weights (1 - W, W) sum to 1.

The "no label" class: label NULL (any negative label) is the network's learned null class (the extra row
label_dim of its label embedding). Training replaces each label by it with probability cond_drop
(`drop_labels`), so the same weights predict eps_cond and eps_uncond.

Which labels, weight and interval a run's samples ask for is `sampling.plan`'s to say; this module keeps the math.
"""

from __future__ import annotations

import numpy as np
import torch

NULL = -1  # the "no label" class, as the networks read it (models.embeddings.add_label)


def guide(cond: torch.Tensor, uncond: torch.Tensor, w: float) -> torch.Tensor:
    """uncond + w (cond - uncond): the guided prediction. torch.lerp is exact at both ends, so w = 1 returns
    cond and w = 0 returns uncond bit for bit."""
    return torch.lerp(uncond, cond, w)


def drop_labels(y: torch.Tensor, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Training labels y with each one replaced by NULL with probability p (one uniform draw per label)."""
    drop = torch.rand(y.shape, device=y.device, generator=generator) < p
    return torch.where(drop, NULL, y)


class Guided(torch.nn.Module):
    """model(x, t, y) guided with weight w. Both predictions come from ONE network call on a doubled batch:
    rows [x; x] with labels [y; NULL], so guidance costs one wider call per step, not two. w = 1 and w = 0
    need only one half, and call the network on it alone. Without labels (y None) the model runs as is.
    steps: (t_lo, t_hi), guide only at timesteps t_lo <= t <= t_hi and take the plain conditional prediction
    elsewhere (guidance on an interval of noise levels, Kynkaenniemi et al. 2024: `interval_steps`)."""

    def __init__(self, model, w: float, steps: tuple[int, int] | None = None):
        super().__init__()
        if not 0 <= w < float("inf"):
            raise ValueError(f"guidance weight w = {w} must be a finite number >= 0 (1: plain conditional, 0: "
                             f"unconditional)")
        self.model, self.w, self.steps = model, float(w), steps

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if y is None:
            return self.model(x, t)
        if self.w == 1 or (self.steps is not None and t.dim() == 0 and not self.steps[0] <= int(t) <= self.steps[1]):
            return self.model(x, t, y)
        null = torch.full_like(y, NULL)
        if self.w == 0:
            return self.model(x, t, null)
        both = self.model(torch.cat([x, x]), t if t.dim() == 0 else torch.cat([t, t]), torch.cat([y, null]))
        cond, uncond = both.chunk(2)
        if self.steps is not None and t.dim() > 0:  # per-row timesteps: rows outside the interval stay conditional
            inside = ((t >= self.steps[0]) & (t <= self.steps[1])).reshape(-1, *[1] * (x.dim() - 1))
            return torch.where(inside, guide(cond, uncond, self.w), cond)
        return guide(cond, uncond, self.w)


def interval_steps(interval: tuple[float, float] | None, alpha_bar) -> tuple[int, int] | None:
    """The timesteps (t_lo, t_hi) whose log-SNR lambda_t = 0.5 log(alpha_bar / (1 - alpha_bar)) lies in the
    interval (lo, hi) of lambdas; None for None. lambda decreases in t, so hi bounds t from below."""
    if interval is None:
        return None
    ab = np.asarray(alpha_bar, dtype=np.float64)
    lam = 0.5 * np.log(ab / (1 - ab))
    inside = np.flatnonzero((lam >= interval[0]) & (lam <= interval[1]))
    return (int(inside[0]), int(inside[-1])) if len(inside) else (1, 0)  # (1, 0): no step is guided


def cycle_labels(n: int, n_classes: int, start: int = 0) -> torch.Tensor:
    """(n,) labels of samples start .. start + n - 1 cycling through the classes: sample i asks for i % n_classes."""
    return torch.arange(start, start + n) % n_classes


def split_labels(classes: list[int], n: int) -> torch.Tensor:
    """(n,) labels for n samples split evenly between `classes`, in order (the first ones one more when n does
    not divide): split_labels([3, 7], 5) -> [3, 3, 3, 7, 7]."""
    counts = [len(part) for part in np.array_split(np.arange(n), len(classes))]
    return torch.repeat_interleave(torch.tensor(classes, dtype=torch.long), torch.tensor(counts))
