"""`reproduce --preset test` end to end, and the report's conclusions follow its numbers."""

import json
import re


from tests.helpers import assert_data_drawn
from tiny_diffusion.cli import main
from tiny_diffusion.experiments.study_report import conclusions


def test_reproduce_test_preset_end_to_end(tmp_path, capsys):
    assert main(["reproduce", "--preset", "test", "--jobs", "1", "--out", str(tmp_path)]) == 0
    report = (tmp_path / "README.md").read_text()
    # bench/claims.py reads the report as its own log: the command that wrote it and the host it ran on
    assert "<!-- generated: tiny-diffusion reproduce --preset test --jobs 1 -->" in report
    from tiny_diffusion.runtime.host import host_line
    assert f"Measured on {host_line()[len('host: '):]}." in report
    figures = re.findall(r"\(figures/([^)]+)\)", report)
    assert figures
    for fig in figures:  # each shows its data (points or curves), not only axes
        assert_data_drawn(tmp_path / "figures" / fig)
    tables = json.loads((tmp_path / "numbers.json").read_text())
    assert set(tables) == {"lr", "timesteps"}
    for rows in tables.values():
        for row in rows:
            assert f"| {row['label']} | {row['energy']:.3g} |" in report
    # resuming: a second call trains nothing new and writes the same tables
    assert main(["reproduce", "--preset", "test", "--jobs", "1", "--out", str(tmp_path)]) == 0
    assert json.loads((tmp_path / "numbers.json").read_text()) == tables


def _row(label, energy, **kw):
    return {"label": label, "energy": energy, "precision": 0.9, "coverage": 0.9, "nll": 1.0, "elbo": 2.0,
            "alpha_bar_T": 0.6, "y_spread": 0.8, **kw}


def test_conclusions_are_computed_from_the_numbers():
    lines = conclusions({"lr": [_row("lr=0.01", 0.5), _row("lr=0.001", 0.01)]})
    assert "best energy 0.01 with lr=0.001" in lines[0] and "50.0x" in lines[0] and "matters" in lines[0]
    lines = conclusions({"time_emb_right": [_row("time_emb=sinusoidal, t", 0.010), _row("time_emb=zero, t", 0.012)]})
    assert "it matters little" in lines[-1]
    lines = conclusions({"time_emb_right": [_row("time_emb=sinusoidal, t", 0.010), _row("time_emb=zero, t", 0.05)]})
    assert "it matters (ratio 5.0x)" in lines[-1]
