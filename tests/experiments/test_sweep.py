"""Sweeps: grid expansion, sharding, claiming runs, skipping finished ones, the CSV and grid figure."""

import csv
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from tests.helpers import assert_data_drawn
from tiny_diffusion import runs
from tiny_diffusion.experiments import evaluation, sweep
from tiny_diffusion.cli import main
from tiny_diffusion.errors import InputError

TINY = dict(dataset="moons", n_points=256, epochs=2, batch_size=128, timesteps=10, hidden_size=16, hidden_layers=1,
            emb_size=8, frames=3, frame_points=100, device="cpu", terminal_alpha_bar=1e-4, lr=3e-3)  # lr: off the grids below


@pytest.fixture(autouse=True)
def _few_held_out_points(monkeypatch):
    monkeypatch.setattr(evaluation, "N_HELD_OUT", 200)  # in-process runs only; keeps the suite fast


def test_grid_expands_to_every_combination_with_stable_names():
    spec = sweep.Spec(base=TINY, grid={"lr": [1e-2, 1e-3], "hidden_size": [8, 16, 32]})
    runs = sweep.expand(spec)
    assert len(runs) == 6
    assert {(r.config.lr, r.config.hidden_size) for r in runs} == {(a, b) for a in (1e-2, 1e-3) for b in (8, 16, 32)}
    # hidden_size=16 is the base value, so it does not appear in the name
    assert "lr-0.01_hidden_size-8" not in [r.name for r in runs]  # names are sorted by key
    assert {r.name for r in runs} >= {"hidden_size-8_lr-0.01", "lr-0.01", "lr-0.001"}


def test_runs_list_times_grid_and_duplicates_collapse():
    spec = sweep.Spec(base=TINY, grid={"lr": [1e-3]}, runs=[{}, {"dataset": "dino"}, {"lr": 1e-3}])
    names = [r.name for r in sweep.expand(spec)]
    assert names == ["lr-0.001", "dataset-dino_lr-0.001"]


@pytest.mark.parametrize("grid", [{"lr": []}, {"lr": 0.1}, {"no_such_key": [1]}, {"schedule": ["nope"]}])
def test_bad_grids_are_input_errors(grid):
    with pytest.raises(InputError):
        sweep.expand(sweep.Spec(base=TINY, grid=grid))


@pytest.mark.parametrize("n", [1, 2, 3, 7])
def test_shards_partition_the_runs(n):
    items = list(range(10))
    shares = [sweep.shard(items, i, n) for i in range(1, n + 1)]
    assert sorted(x for s in shares for x in s) == items
    assert max(map(len, shares)) - min(map(len, shares)) <= 1


@pytest.mark.parametrize("text", ["0/2", "3/2", "a/b", "2"])
def test_bad_shard_is_an_input_error(text):
    with pytest.raises(InputError):
        sweep.parse_shard(text)


def test_claim_is_exclusive_and_stale_locks_are_taken_over(tmp_path):
    run_dir = tmp_path / "runs" / "a"
    assert sweep.claim(run_dir)
    assert not sweep.claim(run_dir)  # held by this live process
    sweep.release(run_dir)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock = tmp_path / "runs" / "a.lock"
    lock.write_text(f"{os.uname().nodename} {dead.pid}\n")
    assert sweep.claim(run_dir)  # its process is gone
    assert lock.read_text().split()[1] == str(os.getpid())


def test_sweep_runs_skips_finished_resumes_unfinished_and_collects(tmp_path):
    spec = sweep.Spec(base=TINY, grid={"lr": [1e-2, 1e-3]})
    log = []
    sweep.run_sweep(spec, tmp_path, jobs=1, log=log.append, threads=1)
    assert [m.split()[2] for m in log] == ["trained", "trained"]  # "[1/2] NAME: trained (3 s)"
    done = tmp_path / "runs" / "lr-0.01" / "checkpoint.pt"
    stamp = done.stat().st_mtime_ns
    # an interrupted run: a folder without quality.json is resumed from its checkpoint; the finished one skipped
    unfinished = tmp_path / "runs" / "lr-0.001"
    weights = torch.load(unfinished / "checkpoint.pt", weights_only=True)["model"]
    (unfinished / "quality.json").unlink()
    log.clear()
    sweep.run_sweep(spec, tmp_path, jobs=1, log=log.append, threads=1)
    assert sorted(m.split()[2] for m in log) == ["resumed", "skipped"]
    assert done.stat().st_mtime_ns == stamp
    assert runs.is_finished(unfinished)
    resumed = torch.load(unfinished / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(weights[k], resumed[k]) for k in weights)  # nothing retrained
    rows = sweep.collect(spec, tmp_path)
    epochs = [1, 2]  # frame_epochs(2, 3): both epochs
    assert [(r["run"], r["epoch"]) for r in rows] == [(n, e) for n in ("lr-0.01", "lr-0.001") for e in epochs]
    with open(tmp_path / "sweep.csv") as f:
        table = list(csv.DictReader(f))
    assert len(table) == 4 and {"energy", "precision", "coverage", "nll", "elbo", "lr"} <= set(table[0])
    assert all(float(r["nll"]) == float(r["nll"]) for r in table)  # not NaN
    assert sweep.grid_figure(sweep.expand(spec), tmp_path, tmp_path / "g.png") == (2, 2)


def test_shards_then_collect_via_cli(tmp_path, capsys):
    args = ["sweep", "--out", str(tmp_path), "--vary", "lr=1e-2,1e-3"] + \
        [f"--{k.replace('_', '-')}={v}" for k, v in TINY.items()]
    assert main(args + ["--shard", "1/2"]) == 0
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["lr-0.01"]
    assert main(args + ["--shard", "2/2"]) == 0
    assert main(args + ["--collect"]) == 0
    with open(tmp_path / "sweep.csv") as f:
        assert len(list(csv.DictReader(f))) == 2 * 2  # 2 runs x 2 snapshot epochs
    # grid.png draws each run's frames: these 4-step runs' samples lie far outside the panels (energy ~80), so
    # they are replaced by points of the data set, which must then show (not only the panels' axes)
    from tiny_diffusion.data import load_dataset

    for run in (tmp_path / "runs").iterdir():
        np.save(run / runs.FRAMES, np.stack([load_dataset("moons", 100, seed) for seed in (1, 2)]))
    assert main(args + ["--collect"]) == 0
    assert_data_drawn(tmp_path / "grid.png")
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "runs" / "lr-0.01"), "--nll", "--n", "100", "--device", "cpu"]) == 0
    assert "nats/point" in capsys.readouterr().out


def test_sweep_cli_bad_input_is_one_line(tmp_path, capsys):
    assert main(["sweep", "--out", str(tmp_path), "--vary", "nope=1,2"]) == 2
    assert main(["sweep", "--out", str(tmp_path), "--shard", "5/2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("tiny-diffusion: error:") for line in err)


def test_two_worker_processes(tmp_path):
    """--jobs 2 runs in spawned worker processes and finishes every run once."""
    spec = sweep.Spec(base=TINY, grid={"lr": [1e-2, 1e-3]})
    log = []
    sweep.run_sweep(spec, tmp_path, jobs=2, log=log.append, threads=1)
    assert sorted(m.split()[2] for m in log) == ["trained"] * 2
    assert all(runs.is_finished(tmp_path / "runs" / r.name) for r in sweep.expand(spec))
    assert not list((tmp_path / "runs").glob("*.lock"))


def test_toml_spec(tmp_path):
    path = tmp_path / "sweep.toml"
    path.write_text('[base]\ndataset = "moons"\nepochs = 2\n[grid]\nlr = [1e-2, 1e-3]\n'
                    '[[runs]]\nhidden_size = 16\n[[runs]]\nhidden_size = 32\n')
    runs = sweep.expand(sweep.load_spec(path))
    assert {(r.config.lr, r.config.hidden_size, r.config.epochs) for r in runs} == \
        {(a, b, 2) for a in (1e-2, 1e-3) for b in (16, 32)}
    path.write_text("[grids]\nlr = [1]\n")
    with pytest.raises(InputError, match="unknown table"):
        sweep.load_spec(path)


def test_a_rerun_with_other_base_values_never_reuses_the_old_runs(tmp_path, capsys):
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in TINY.items() if k != "epochs"]
    out = str(tmp_path / "s")
    assert main(["sweep", "--out", out, "--vary", "lr=1e-2", "--epochs", "1", *flags]) == 0
    capsys.readouterr()
    assert main(["sweep", "--out", out, "--vary", "lr=1e-2", "--epochs", "2", *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "epochs = 1 there, 2 now" in err
    assert main(["sweep", "--out", out, "--vary", "lr=1e-2", "--epochs", "1", *flags]) == 0  # the same question
