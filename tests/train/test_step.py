"""train/step.py's EMA decay: the constant decay with its warm-up, and EDM2's power-function profile
(`ema_gamma`), checked against its closed form and through a training run."""

from __future__ import annotations

import pytest
import torch

from tiny_diffusion import runs
from tiny_diffusion.config import TrainConfig
from tiny_diffusion.errors import InputError
from tiny_diffusion.train import train
from tiny_diffusion.train.step import ema_decay, ema_update


def test_the_power_function_ema_is_the_closed_form_average():
    """With decay (1 - 1/k)^(gamma + 1) at step k, the product of the later decays telescopes: after N steps the
    EMA is sum_k (k^(g+1) - (k-1)^(g+1)) / N^(g+1) x_k, weights ~ k^gamma (Karras et al. 2024, eq. 2's profile)."""
    gamma, n = 6.94, 300
    xs = torch.randn(n, 5, dtype=torch.float64)
    ema = [torch.full((5,), 123.0, dtype=torch.float64)]  # the initial value gets weight 0 (step 1's decay is 0)
    for k in range(1, n + 1):
        ema_update(ema, [xs[k - 1]], ema_decay(0.999, k, gamma))
    k = torch.arange(1, n + 1, dtype=torch.float64)
    weights = (k ** (gamma + 1) - (k - 1) ** (gamma + 1)) / n ** (gamma + 1)
    assert torch.allclose(ema[0], weights @ xs, atol=1e-10)
    # the constant decay's warm-up is another average: the check tells them apart
    assert ema_decay(0.999, 100) == pytest.approx(101 / 110) and ema_decay(0.999, 100, gamma) != ema_decay(0.999, 100)
    assert ema_decay(0.99, 5000) == 0.99


def test_a_run_honours_ema_gamma_and_refuses_it_without_an_ema(tmp_path):
    """A huge gamma makes every decay after step 1 zero: the EMA weights are the final weights. The default
    (constant 0.999 with warm-up) keeps them apart, so the loop must have used the profile."""
    tiny = dict(dataset="moons", n_points=256, batch_size=64, epochs=2, timesteps=20, terminal_alpha_bar=1e-4, hidden_size=16,
                hidden_layers=1, emb_size=8, frames=0, eval_n=64, device="cpu", ema=0.999)
    for gamma, same in ((1e5, True), (0.0, False)):
        train(TrainConfig.from_dict({**tiny, "ema_gamma": gamma}), tmp_path / f"g{gamma:g}", progress=False)
        state = torch.load(tmp_path / f"g{gamma:g}" / runs.CHECKPOINT, weights_only=True)
        assert all(torch.equal(state["ema"][k], state["model"][k]) for k in state["model"]) == same
    with pytest.raises(InputError, match="ema_gamma = 16.97 shapes an EMA that ema = 0 turns off"):
        TrainConfig.from_dict({**tiny, "ema": 0.0, "ema_gamma": 16.97})
