"""`train --help` and `sweep --help` group the config flags by what they apply to, with the defaults a run uses."""

import re

import pytest

from tiny_diffusion.cli import main
from tiny_diffusion.cli.common import FLAG_GROUPS, flag_name
from tiny_diffusion.config import TrainConfig


def test_every_config_flag_has_exactly_one_group():
    flags = [f.name for f in TrainConfig.fields() if not f.metadata["resolved"]]
    grouped = [name for members in FLAG_GROUPS.values() for name in members]
    assert sorted(grouped) == sorted(flags)  # none forgotten, none twice, no name that is not a field


def _sections(text: str) -> dict[str, str]:
    """argparse's help: 'title:' lines at the left margin start a section."""
    parts = re.split(r"^(\S[^\n]*):\n", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


@pytest.mark.parametrize("command", ["train", "sweep"])
def test_help_shows_the_groups_with_their_flags(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    sections = _sections(capsys.readouterr().out)
    assert list(FLAG_GROUPS) == [t for t in sections if t in FLAG_GROUPS]  # every group, in the table's order
    for title, members in FLAG_GROUPS.items():
        shown = re.findall(r"^  (--[a-z-]+)", sections[title], flags=re.M)
        assert sorted(shown) == sorted(flag_name(n) for n in members)  # each flag under its own group


def test_image_eval_steps_help_says_what_runs_use(capsys):
    from tiny_diffusion.config import FULL_EVAL_STEPS, TrainConfig
    from tiny_diffusion.train.setup import fit_evaluation

    cfg = TrainConfig.from_dict({"dataset": "mnist"})
    assert fit_evaluation(cfg, 1000, 1)['eval_steps'] == FULL_EVAL_STEPS == fit_evaluation(cfg, 10**6, 10)['eval_steps']
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"default 0 for points, {FULL_EVAL_STEPS} for images" in text.split("--eval-steps EVAL_STEPS")[-1]
