import csv
import json

import numpy as np
import pytest
import torch

from tiny_diffusion.runs import load_run
from tiny_diffusion.train import frame_epochs, lr_factor
from tiny_diffusion.train import train as _train


def train(cfg, *args, **kwargs):
    """train() of these short schedules (20 or 100 linear steps end far from noise), with the warning a user
    gets for them."""
    with pytest.warns(UserWarning, match=r"alpha_bar_T = 0\.\d+ \(> 0\.01\).*shrunk"):
        return _train(cfg, *args, **kwargs)


def test_run_folder_contents(tiny_config, tmp_path):
    out = tmp_path / "run"
    result = train(tiny_config, out, progress=False)
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "checkpoint.pt", "metrics.csv", "frames.npy", "samples.png", "loss.png",
            "quality.json"} <= names
    recorded = json.loads((out / "config.json").read_text())
    assert recorded == tiny_config.replace(sample_shape="2").to_dict() == result.config.to_dict()
    assert (recorded["kind"], recorded["sample_shape"]) == ("points", "2")
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["step"] == tiny_config.epochs * (512 // 128)
    with open(out / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert all(np.isfinite(float(r["loss"])) for r in rows)
    frames = np.load(out / "frames.npy")
    assert frames.shape == (2, 200, 2)
    assert np.array_equal(np.load(out / "samples.npy"), result.samples)  # full ancestral sampling
    assert np.abs(frames[-1] - result.samples).mean() < 1.0  # snapshots: the same model, a 20-step solver
    q = json.loads((out / "quality.json").read_text())
    assert q["quality"]["energy"] == pytest.approx(result.quality.energy)


def test_same_seed_same_samples_and_weights(tiny_config):
    a, b = train(tiny_config, progress=False), train(tiny_config, progress=False)
    c = train(tiny_config.replace(seed=1), progress=False)
    assert np.array_equal(a.samples, b.samples)
    assert all(torch.equal(p, q) for p, q in zip(a.model.parameters(), b.model.parameters()))
    assert not np.array_equal(a.samples, c.samples)


def test_loaded_run_samples_like_the_trained_model(tiny_config, tmp_path):
    result = train(tiny_config, tmp_path / "run", progress=False)
    cfg, model, diffusion = load_run(tmp_path / "run")
    assert cfg == tiny_config.replace(sample_shape="2") == result.config
    x = torch.randn(7, 2)
    t = torch.tensor(5)
    assert torch.equal(model(x, t), result.model(x, t))


def test_training_learns_the_distribution(tiny_config):
    """A short run on a Gaussian blob must beat pure noise by a wide margin on energy distance."""
    cfg = tiny_config.replace(dataset="8gaussians", epochs=30, n_points=2048, batch_size=256, timesteps=100,
                              hidden_size=64, lr=3e-3, frames=1, frame_points=500)
    result = train(cfg, progress=False)
    from tiny_diffusion.eval.points import quality, references

    noise = quality(np.random.default_rng(0).normal(size=(500, 2)), references("8gaussians"))
    assert result.quality.energy < 0.3 * noise.energy
    assert result.quality.precision > noise.precision + 0.3


def test_lr_schedule_and_frame_epochs():
    assert lr_factor(0, 100, 0.1, "cosine") == pytest.approx(0.1)
    assert lr_factor(9, 100, 0.1, "cosine") == pytest.approx(1.0)
    assert lr_factor(99, 100, 0.1, "cosine") < 0.01
    assert lr_factor(50, 100, 0.0, "constant") == 1.0
    assert frame_epochs(100, 5) == [0, 25, 50, 74, 99]
    assert frame_epochs(3, 10) == [0, 1, 2]
    assert frame_epochs(10, 0) == []
