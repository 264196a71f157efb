"""Progressive distillation's target (Salimans & Ho 2022, "Progressive Distillation for Fast Sampling of
Diffusion Models", Algorithm 2): a student that takes ONE deterministic DDIM step where its teacher takes two.

The teacher samples with DDIM (eta = 0) on a grid of 2K timesteps t_0 > t_1 > ... > t_{2K-1} (then alpha_bar = 1).
The student's grid is every other one, t_0, t_2, ..., t_{2K-2}. For a training point z_t = alpha_t x + sigma_t eps
at a student step t = t_{2i}, the teacher takes its two steps t -> t' = t_{2i+1} -> t'' = t_{2i+2} and lands on
z''; the student's target x~ is the x0 whose single DDIM step t -> t'' lands on the same z'' (the paper's eq. 8):

    x~ = (z'' - (sigma''/sigma) z_t) / (alpha'' - (sigma''/sigma) alpha_t)

(alpha = sqrt(alpha_bar), sigma = sqrt(1 - alpha_bar); on the last step t'' is clean data, sigma'' = 0, x~ = z'').
The student is trained on the mean squared error of its own output against x~ written in its own prediction
target (Diffusion.target with eps~ = (z_t - alpha_t x~) / sigma_t): for v that is the (1 + SNR)-weighted error on
x0, the paper's recommended weighting; for eps it blows up where sigma_t is small, for x0 it ignores low noise.

`HalvingTarget` has Diffusion's training interface (sample_t, loss), so the training step runs it unchanged.
"""

from __future__ import annotations

import numpy as np
import torch

from .diffusion import LOSS_FNS, Diffusion


def halve(grid) -> np.ndarray:
    """The student's grid of a 2K-step teacher grid: every other timestep, from the noisiest."""
    return np.asarray(grid, dtype=np.int64)[0::2].copy()


class HalvingTarget:
    """Draws student steps and scores a student against the teacher's two DDIM steps per student step.

    teacher: the teacher network (called as teacher(x, t) or teacher(x, t, y), e.g. a `guidance.Guided` for a
    class-conditional one: its guidance is then folded into the student); teacher_diffusion: its diffusion (its
    prediction target); student_diffusion: the student's (same schedule, perhaps another target); grid: the
    teacher's 2K decreasing timesteps."""

    def __init__(self, teacher, teacher_diffusion: Diffusion, student_diffusion: Diffusion, grid):
        grid = np.asarray(grid, dtype=np.int64)
        if len(grid) < 2 or len(grid) % 2:
            raise ValueError(f"a teacher grid of {len(grid)} steps cannot be halved; it needs an even number")
        if np.any(np.diff(grid) >= 0) or grid[0] >= teacher_diffusion.T or grid[-1] < 0:
            raise ValueError("the teacher grid must be decreasing timesteps within the schedule")
        self.teacher, self.teacher_diffusion, self.student_diffusion = teacher, teacher_diffusion, student_diffusion
        self.grid = grid
        device = teacher_diffusion.alpha_bar.device
        ab = torch.cat([teacher_diffusion.alpha_bar.double().cpu(), torch.ones(1, dtype=torch.float64)])  # [-1]: 1
        nxt = np.append(grid[2::2], -1)  # t'' of each student step (-1: clean data, alpha_bar = 1)
        self.t_student = torch.as_tensor(grid[0::2], device=device)
        # per student step i: alpha and sigma at t, t' and t'' (float64 coefficients, stored in the model's dtype)
        self.coef = {name: torch.stack([ab[torch.as_tensor(ts)].sqrt(), (1 - ab[torch.as_tensor(ts)]).sqrt()]).to(
            device=device, dtype=teacher_diffusion.alpha_bar.dtype) for name, ts in
            (("t", grid[0::2]), ("mid", grid[1::2]), ("next", nxt))}
        index = torch.full((teacher_diffusion.T,), -1, dtype=torch.long)
        index[torch.as_tensor(grid[0::2])] = torch.arange(len(grid) // 2)
        self.index = index.to(device)  # timestep -> student step i (-1: not one of the student's steps)

    @property
    def steps(self) -> int:
        return len(self.t_student)

    def sample_t(self, n: int, device, generator: torch.Generator | None = None) -> torch.Tensor:
        """n student timesteps, each of the K steps equally often (the paper's uniform choice of i)."""
        i = torch.randint(0, self.steps, (n,), device=device, generator=generator)
        return self.t_student.to(device)[i]

    def _at(self, name: str, i: torch.Tensor, x: torch.Tensor):
        a, s = self.coef[name][:, i]
        shape = (-1,) + (1,) * (x.dim() - 1)
        return a.reshape(shape), s.reshape(shape)

    def _ddim(self, z, t_model, i, frm: str, to: str, y):
        """One teacher DDIM (eta = 0) step of z from `frm` to `to` (coefficient names), the network at t_model."""
        out = self.teacher(z, t_model) if y is None else self.teacher(z, t_model, y)
        x0, eps = self.teacher_diffusion.to_x0_eps(out, z, t_model)
        a_to, s_to = self._at(to, i, z)
        return a_to * x0 + s_to * eps

    @torch.no_grad()
    def target_x0(self, z: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """x~: the x0 whose one DDIM step from (z, t) lands where the teacher's two steps do."""
        i = self.index[t]
        if bool((i < 0).any()):
            raise ValueError("a timestep that is not one of the student's steps")
        t_mid = torch.as_tensor(self.grid[1::2], device=t.device)[i]
        z_mid = self._ddim(z, t, i, "t", "mid", y)
        z_next = self._ddim(z_mid, t_mid, i, "mid", "next", y)
        a, s = self._at("t", i, z)
        a2, s2 = self._at("next", i, z)
        ratio = s2 / s
        return (z_next - ratio * z) / (a2 - ratio * a)

    def loss(self, model, x0: torch.Tensor, generator: torch.Generator | None = None, y: torch.Tensor | None = None,
             kind: str = "l2", t: torch.Tensor | None = None, eps: torch.Tensor | None = None) -> torch.Tensor:
        """Diffusion.loss's interface: the student's error against the distilled target at (x0, t, eps)."""
        t = self.sample_t(x0.shape[0], x0.device, generator) if t is None else t
        eps = torch.randn(x0.shape, device=x0.device, dtype=x0.dtype, generator=generator) if eps is None else eps
        z = self.teacher_diffusion.q_sample(x0, t, eps)
        x_t = self.target_x0(z, t, y)
        a, s = self._at("t", self.index[t], z)
        eps_t = (z - a * x_t) / s
        err = (model(z, t) if y is None else model(z, t, y)) - self.student_diffusion.target(x_t, eps_t, t)
        return LOSS_FNS[kind](err)
