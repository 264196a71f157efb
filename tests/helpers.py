"""What several test files share, importable from any folder of tests/ (`from tests.helpers import ...`)."""

from pathlib import Path

import pytest

# the source tree, for the CLI run in a fresh interpreter (tests/helpers.py sits one below the repository)
SRC = str(Path(__file__).resolve().parents[1] / "src")

# a U-Net of a few thousand weights on 8x8 grayscale images: seconds, not minutes
TINY = dict(base_channels=4, channel_mult="1,2", timesteps=50, batch_size=8, kimg=0.064, frames=2, frame_points=4,
            eval_n=16, eval_steps=4, frame_steps=4, device="cpu")


def flags(values: dict) -> list[str]:
    """The command-line flags that set `values` (config keys): {"eval_n": 4} -> ["--eval-n", "4"]."""
    return [a for k, v in values.items() for a in (f"--{k.replace('_', '-')}", str(v))]


@pytest.fixture(scope="module", autouse=True)
def cache(tmp_path_factory):
    """Decoded folders and the metrics' classifier are cached in a temporary folder, shared by the module that
    imports this fixture (autouse there, module-scoped: one folder per module)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TINY_DIFFUSION_DATA", str(tmp_path_factory.mktemp("cache")))
        yield
