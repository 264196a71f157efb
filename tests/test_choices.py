"""choices.py is the one list of names: config, CLI and every implementation's registry agree with it."""

import subprocess
import sys

import pytest
import torch

from tiny_diffusion import choices, cli
from tiny_diffusion.config import TrainConfig
from tiny_diffusion.core import diffusion, samplers, schedules
from tiny_diffusion.data import points
from tiny_diffusion.models import MODELS, embeddings


def test_registries_are_keyed_by_the_choices():
    assert tuple(schedules.BETAS) == choices.SCHEDULES
    assert tuple(embeddings.EMBEDDING_TYPES) == choices.EMBEDDINGS
    assert tuple(diffusion.LOSS_FNS) == choices.LOSSES
    assert tuple(samplers.SAMPLERS) == choices.SAMPLERS
    assert tuple(MODELS) == choices.MODELS
    assert tuple(points.DATASETS) == choices.POINT_DATASETS  # dataset_kind and the typo message use the names


def test_config_and_cli_offer_the_choices():
    fields = {f.name: f.metadata["choices"] for f in TrainConfig.fields()}
    assert fields["schedule"] == choices.SCHEDULES and fields["prediction"] == choices.PREDICTIONS
    assert fields["t_sampling"] == choices.T_SAMPLINGS and fields["loss"] == choices.LOSSES
    assert fields["time_emb"] == fields["input_emb"] == choices.EMBEDDINGS
    assert fields["model"] == choices.MODELS and fields["device"] == choices.DEVICES
    assert fields["eval_sampler"] == fields["frame_sampler"] == choices.SAMPLERS
    assert cli.SAMPLER_NAMES == choices.SAMPLERS and cli.SPACING_NAMES == choices.SPACINGS


@pytest.mark.parametrize("name", choices.SCHEDULES)
def test_every_schedule_builds(name):
    betas = schedules.make_betas(name, 50, warn=False)
    assert betas.shape == (50,) and (betas > 0).all() and (betas < 1).all()


@pytest.mark.parametrize("spacing", choices.SPACINGS)
def test_every_spacing_gives_a_decreasing_grid(spacing):
    ab = schedules.alpha_bar(schedules.make_betas("linear", 100, warn=False))
    ts = samplers.timesteps(100, 10, spacing, alpha_bar=ab)
    assert len(ts) == 10 and (ts[:-1] > ts[1:]).all()


@pytest.mark.parametrize("prediction", choices.PREDICTIONS)
def test_every_prediction_recovers_x0_from_its_own_target(prediction):
    d = diffusion.Diffusion(schedules.make_betas("linear", 50, warn=False), prediction=prediction)
    x0, eps, t = torch.randn(4, 2), torch.randn(4, 2), torch.tensor([0, 10, 30, 49])
    xt = d.q_sample(x0, t, eps)
    x0_back, eps_back = d.to_x0_eps(d.target(x0, eps, t), xt, t)
    assert torch.allclose(x0_back, x0, atol=1e-3) and torch.allclose(eps_back, eps, atol=1e-3)


def test_choices_imports_nothing_heavy():
    code = "import sys, tiny_diffusion.choices; print(sorted({'numpy', 'torch'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
