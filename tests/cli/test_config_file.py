"""A run's config.json is a config: `train --config RUN/config.json` trains the same run again; the keys a run fills
in itself (kind, sample_shape, sample_grid) are not settings a TOML file may give."""

import json

import pytest

from tests.helpers import TINY_POINTS, assert_same_run, flags
from tiny_diffusion.cli import main
from tiny_diffusion.config import TrainConfig
from tiny_diffusion.errors import InputError

TINY = {**TINY_POINTS, "epochs": 2, "frames": 2}


def test_config_json_reruns_the_same_run(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["train", "--out", str(a), "--quiet", *flags(TINY)]) == 0
    assert main(["train", "--config", str(a / "config.json"), "--out", str(b), "--quiet"]) == 0
    assert json.loads((b / "config.json").read_text()) == json.loads((a / "config.json").read_text())
    assert_same_run(a, b)


@pytest.mark.parametrize("key, value", [("kind", '"images"'), ("sample_shape", '"2"'), ("sample_grid", '"9,0"')])
def test_internal_keys_are_not_settings(tmp_path, key, value):
    path = tmp_path / "c.toml"
    path.write_text(f'dataset = "moons"\n{key} = {value}\n')
    with pytest.raises(InputError, match=f"'{key}' is not a setting"):
        TrainConfig.from_toml(path)
    (tmp_path / "d.toml").write_text("nope = 1\n")
    with pytest.raises(InputError) as e:
        TrainConfig.from_toml(tmp_path / "d.toml")
    assert "valid keys" in str(e.value) and key not in str(e.value).split("valid keys:")[1].split(", ")
