"""bench/claims.py: every number in README/docs names a committed log that holds it (issue 27 part 3)."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def load_claims():
    spec = importlib.util.spec_from_file_location("claims", ROOT / "bench" / "claims.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


claims = load_claims()


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A scratch git repository with one committed log; claims.ROOT points at it."""
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "bench" / "results").mkdir(parents=True)
    (tmp_path / "bench" / "results" / "speed.log").write_text(
        "command: python bench/x.py\nhost: AMD EPYC, 2 cores, AVX-512 yes (avx512_bf16), torch 2.13.0\n"
        "median of 3: train 12.71 s, energy 0.00573, precision 0.874\n")
    (tmp_path / "bench" / "results" / "nohost.log").write_text("train 12.71 s\n")
    subprocess.run(["git", "-C", str(tmp_path), "add", "bench"], check=True)
    monkeypatch.setattr(claims, "ROOT", tmp_path)
    return tmp_path


def check(repo, text):
    (repo / "doc.md").write_text(text)
    return claims.check([repo / "doc.md"])


def test_a_number_with_no_claim_fails(repo):
    problems = check(repo, "The dino trains in 12.7 s.\n")
    assert len(problems) == 1 and "12.7 with no claim" in problems[0] and problems[0].startswith("doc.md:1")


def test_numbers_rounded_from_the_log_pass(repo):
    text = "Trains in 12.7 s; energy 0.0057, precision 0.874.\n<!-- claim: bench/results/speed.log -->\n"
    assert check(repo, text) == []


def test_a_number_the_log_does_not_hold_fails(repo):
    problems = check(repo, "Trains in 12.6 s, precision 0.874. <!-- claim: bench/results/speed.log -->\n")
    assert len(problems) == 1 and "12.6 not in bench/results/speed.log" in problems[0]


def test_rounding_is_to_the_written_decimals_only(repo):
    # 0.874 is in the log; 0.87 rounds from it, 0.88 does not, and 0.8740 claims a digit the log lacks
    assert check(repo, "precision 0.87 <!-- claim: bench/results/speed.log -->\n") == []
    assert check(repo, "precision 0.88 <!-- claim: bench/results/speed.log -->\n") != []
    assert check(repo, "precision 0.8741 <!-- claim: bench/results/speed.log -->\n") != []


def test_a_claim_must_name_a_tracked_file(repo):
    (repo / "bench" / "results" / "untracked.log").write_text("host: x\n12.7\n")
    problems = check(repo, "12.7 s <!-- claim: bench/results/untracked.log -->\n")
    assert problems and "not a file git tracks" in problems[0]


def test_a_timed_figure_needs_a_host_line(repo):
    problems = check(repo, "Trains in 12.7 s. <!-- claim: bench/results/nohost.log -->\n")
    assert problems == ["doc.md:1: a timed figure whose log has no host: line (bench/results/nohost.log)"]


def test_a_table_comment_covers_every_row_and_a_row_comment_only_its_row(repo):
    table = ("| run | s |\n|---|---|\n| a | 12.71 |\n| b | 0.874 |\n| c | 99.5 <!-- claim: bench/results/nohost.log --> |\n"
             "<!-- claim: bench/results/speed.log -->\n")
    problems = check(repo, table)
    assert problems == ["doc.md:5: 99.5 not in bench/results/nohost.log"]


def test_a_paragraph_comment_does_not_reach_the_next_paragraph(repo):
    problems = check(repo, "12.7 s <!-- claim: bench/results/speed.log -->\n\nprecision 0.874\n")
    assert problems == ["doc.md:3: 0.874 with no claim (no log named)"]


def test_code_targets_and_settings_are_not_checked(repo):
    text = ("    tiny-diffusion train --epochs 600 --lr 0.01\n\n"
            "Run `sample --n 1000 --seed 3.5` with T = 1000 and W = 1.75: <= 30 s, >= 0.85; torch 2.13.0, "
            "Ho et al. 2020, issue 27, 600 epochs of 1000 points on 2 cores, 2026-12-03, [x](a1.5.md).\n")
    assert check(repo, text) == []


def test_the_published_files_name_their_logs():
    """The committed README.md and docs/: every measured number comes from a committed log."""
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "claims.py")], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:]


def test_numbers_quoted_from_a_paper_name_it_instead_of_a_log(repo):
    text = "DDIM reaches FID 4.7 at 50 steps (Song et al. 2021).\n<!-- cited: Song et al. 2021 -->\n"
    assert check(repo, text) == []
    assert check(repo, text.replace("cited", "cites")) != []  # a mistyped comment is no excuse


def test_a_quoted_default_must_match_the_config(repo):
    """`<!-- default: SCOPE.NAME -->` ties the number before it to config.py: a stale default fails, naming both."""
    stale = "The final samples take 50 <!-- default: images.eval_steps --> DPM-Solver++ steps.\n"
    assert check(repo, stale) == ["doc.md:1: default images.eval_steps is 10 in the code, the text says 50"]
    right = ("The final samples take 10 <!-- default: images.eval_steps --> steps from log-SNR -5 "
             "<!-- default: sampling.IMAGE_LAMBDA_MIN -->, after 100 <!-- default: images.kimg --> kimg at lr 2e-3 "
             "<!-- default: images.lr -->; the dino: 600 <!-- default: points.epochs --> epochs, guidance 1.5 "
             "<!-- default: class-cond.guidance --> with --class-cond.\n")
    assert check(repo, right) == []
    assert check(repo, "lr 1e-2 <!-- default: points.learning_rate -->\n")[0].endswith("no numeric default of that "
                                                                                      "name (scopes: points, images, "
                                                                                      "class-cond, config, sampling)")
    assert check(repo, "the default <!-- default: points.epochs -->\n") == [
        "doc.md:1: default points.epochs: no number before the tag on its line"]
