import pytest
import torch

from tiny_diffusion.core.diffusion import Diffusion
from tiny_diffusion.models import EMBEDDINGS, MLP, build_model
from tiny_diffusion.core.schedules import make_betas


@pytest.mark.parametrize("time_emb", ["sinusoidal", "learnable", "linear", "zero"])
@pytest.mark.parametrize("input_emb", ["sinusoidal", "learnable", "linear", "identity"])
def test_every_embedding_builds_and_trains(time_emb, input_emb):
    torch.manual_seed(0)
    model = MLP(hidden_size=32, hidden_layers=2, emb_size=16, time_emb=time_emb, input_emb=input_emb)
    d = Diffusion(make_betas("linear", 50, warn=False))
    x0 = torch.randn(256, 2) * 0.5 + 1.0
    g = torch.Generator().manual_seed(0)
    assert model(x0, torch.randint(0, 50, (256,))).shape == (256, 2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        g.manual_seed(1)  # the same t and eps every step: the loss must go down
        loss = d.loss(model, x0, g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0]


def test_scalar_t_equals_broadcast_t():
    """The time part is computed once for a scalar t; it must equal the per-point computation."""
    torch.manual_seed(0)
    model = MLP(hidden_size=32, hidden_layers=2, emb_size=16)
    x = torch.randn(10, 2)
    assert torch.allclose(model(x, torch.tensor(7)), model(x, torch.full((10,), 7)), atol=1e-6)


def test_time_matters_only_when_embedded():
    torch.manual_seed(0)
    x = torch.randn(10, 2)
    blind = MLP(hidden_size=32, hidden_layers=1, emb_size=16, time_emb="zero")
    seeing = MLP(hidden_size=32, hidden_layers=1, emb_size=16, time_emb="sinusoidal")
    assert torch.equal(blind(x, torch.tensor(3)), blind(x, torch.tensor(40)))
    assert not torch.allclose(seeing(x, torch.tensor(3)), seeing(x, torch.tensor(40)))


def test_unknown_embedding():
    assert "sinusoidal" in EMBEDDINGS
    with pytest.raises(ValueError, match="unknown embedding"):
        MLP(time_emb="fourier")


@pytest.mark.parametrize("input_emb", ["sinusoidal", "learnable", "identity"])
def test_point_features_are_the_per_coordinate_embeddings(input_emb):
    """The fused sinusoidal path equals concatenating each coordinate's own embedding, bit for bit."""
    torch.manual_seed(0)
    model = MLP(hidden_size=16, hidden_layers=1, emb_size=8, input_emb=input_emb)
    x = torch.randn(50, 2) * 3
    per_coordinate = torch.cat([emb(x[:, i]) for i, emb in enumerate(model.input_embs)], dim=-1)
    assert torch.equal(model.point_features(x), per_coordinate)


def test_constructor_defaults_are_the_configs():
    """td.MLP() and td.UNet() are the networks `train` builds with the config's defaults (points; MNIST-sized images)."""
    import tiny_diffusion as td
    from tiny_diffusion.config import TrainConfig

    for bare, cfg, shape in ((td.MLP(), TrainConfig(), (2,)), (td.UNet(), TrainConfig(dataset="mnist"), (1, 28, 28))):
        built = build_model(cfg, shape)
        assert type(bare) is type(built)
        assert {k: v.shape for k, v in bare.state_dict().items()} == {k: v.shape for k, v in built.state_dict().items()}
