"""Samplers: generators that start from x_T ~ N(0, I) and yield the whole trajectory x_T, ..., x_0,
so figures and animations come free with any sampler. `sample` runs one to the end."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from .diffusion import Diffusion


@torch.inference_mode()
def ddpm(
    model, diffusion: Diffusion, x_T: torch.Tensor, generator: torch.Generator | None = None,
    clip: float | None = None,
) -> Iterator[torch.Tensor]:
    """Ancestral sampling, Ho et al. 2020 Algorithm 2: x_{t-1} = posterior mean at the predicted x0
    plus sqrt(beta_tilde_t) z. Yields x_T first and x_0 last (T + 1 tensors)."""
    x = x_T
    yield x
    for t in reversed(range(diffusion.T)):
        model_out = model(x, torch.tensor(t, device=x.device))
        z = torch.randn(x.shape, device=x.device, dtype=x.dtype, generator=generator) if t > 0 else None
        x = diffusion.p_step(model_out, x, t, z, clip=clip)
        yield x


SAMPLERS = {"ddpm": ddpm}


def sample(model, diffusion: Diffusion, n: int, seed: int = 0, dim: int = 2, device="cpu",
           sampler: str = "ddpm", **kwargs) -> torch.Tensor:
    """n samples (n, dim) from `model`, seeded: x_T and every step's noise come from `seed`."""
    generator = torch.Generator(device=device).manual_seed(seed)
    x_T = torch.randn((n, dim), device=device, generator=generator)
    x = x_T
    for x in SAMPLERS[sampler](model, diffusion, x_T, generator, **kwargs):
        pass
    return x
