"""`reproduce --preset test` end to end, and the report's conclusions follow its numbers."""

import json
import re


from tests.helpers import assert_data_drawn
from tiny_diffusion.cli import main
from tiny_diffusion.experiments import sweep
from tiny_diffusion.experiments.ablations import spec_of
from tiny_diffusion.experiments.study_report import conclusions


def test_reproduce_test_preset_end_to_end(tmp_path, capsys):
    assert main(["reproduce", "--preset", "test", "--jobs", "1", "--out", str(tmp_path)]) == 0
    n_runs = len(sweep.expand(spec_of("test")[0]))
    assert capsys.readouterr().out.startswith(f"{n_runs} runs to train: about ")  # said before it starts
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
    assert capsys.readouterr().out.startswith("0 runs to train: every run of this sweep (or shard) is finished")


def _row(label, energy, precision=0.9, coverage=0.9, **kw):
    return {"label": label, "energy": energy, "precision": precision, "coverage": coverage, "nll": 1.0,
            "elbo": 2.0, "alpha_bar_T": 0.6, "y_spread": 0.8, **kw}


def test_conclusions_are_computed_from_the_numbers():
    lines = conclusions({"lr": [_row("lr=0.01", 0.5), _row("lr=0.001", 0.01)]})
    assert "energy 0.01 (lr=0.001) to 0.5 (lr=0.01)" in lines[0] and "it matters (energy 50.0x" in lines[0]
    assert "**We agree**" in lines[0]  # the write-up: sensitive to the learning rate
    lines = conclusions({"time_emb_right": [_row("time_emb=sinusoidal, t", 0.010), _row("time_emb=zero, t", 0.012)]})
    assert "it matters little" in lines[-1]
    lines = conclusions({"time_emb_right": [_row("time_emb=sinusoidal, t", 0.010), _row("time_emb=zero, t", 0.05)]})
    assert "it matters (energy 5.0x" in lines[-1]


def test_a_conclusion_reads_precision_and_coverage_not_energy_alone():
    # the quick preset's learning rates: energy within 1.3x, but only lr=0.001 forms the dino (precision 0.20)
    rows = [_row("lr=0.01", 0.142, 0.093, 0.228), _row("lr=0.001", 0.153, 0.202, 0.351),
            _row("lr=0.0001", 0.157, 0.075, 0.188), _row("lr=1e-05", 0.178, 0.058, 0.169)]
    line = conclusions({"lr": rows})[0]
    assert "it matters (precision 3.5x, coverage 2.1x" in line and "**We agree**" in line
    # the same energies with precision and coverage alike: the setting matters little, and we disagree
    flat = [_row(r["label"], r["energy"]) for r in rows]
    line = conclusions({"lr": flat})[0]
    assert "it matters little" in line and "**We disagree**" in line


def test_each_classic_claim_is_tested_in_its_parts():
    short = _row("timesteps=5", 0.34, 0.23, 0.32, y_spread=0.45, alpha_bar_T=0.95)
    long = _row("timesteps=250", 0.006, 0.13, 0.26, y_spread=1.0)
    line = conclusions({"timesteps": [short, long]})[0]
    # the long run is not better on two of three metrics, but the short one misses the top and bottom
    assert "**We agree in part**" in line and "timesteps=250 does not beat timesteps=5" in line
    assert "keeps 45% of the data's vertical spread" in line and "alpha_bar_T = 0.95" in line
    long = _row("timesteps=250", 0.006, 0.3, 0.4, y_spread=1.0)
    assert "**We agree**:" in conclusions({"timesteps": [short, long]})[0]
    quad = {"schedule": [_row("schedule=linear", 0.15, 0.2, 0.35), _row("schedule=quadratic", 0.2, 0.28, 0.44)]}
    assert "**We disagree**: quadratic" in conclusions(quad)[0]  # better precision and coverage: it does beat it
