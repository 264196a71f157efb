import os

import pytest

# Two cores are shared by the tests and whatever else runs; one thread each keeps runs predictable.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture
def tiny_config():
    """A config that trains in well under a second: few points, steps and units."""
    from tiny_diffusion.config import TrainConfig

    return TrainConfig(n_points=512, epochs=3, batch_size=128, timesteps=20, hidden_size=32, hidden_layers=2,
                       emb_size=16, frames=2, frame_points=200, device="cpu")
