"""Sweeps: many training runs from one spec, in parallel worker processes, resumable and shardable.

A spec is a base config plus axes. `grid` axes multiply (every combination); `runs` is an explicit
list of config changes. Each run is an ordinary run folder under OUT/runs/NAME, NAME spelled from
its changes (so the same run keeps its folder across restarts). A run is finished when its
quality.json exists; a worker claims a run with a lock file (O_CREAT|O_EXCL, holding host and pid),
so two workers never write the same run, and a lock whose process died is taken over.
After training, each run gets evaluation.json: quality at every snapshot epoch, NLL and ELBO.
`collect` turns the finished runs into OUT/sweep.csv (one row per run and epoch) and OUT/grid.png.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from .. import fileio, runs
from ..config import TrainConfig
from ..config import parse_value
from ..config_values import check_length, merge_values, read_config_file
from ..errors import InputError, TrainingStopped
from .evaluation import evaluate_run, snapshot_epochs

SPEC = "sweep.json"  # the sweep's own record: its spec, what `--collect` and a resumption read
DONE = ("trained", "resumed", "skipped")


@dataclass
class Run:
    name: str
    changes: dict  # the values that differ from the sweep's base
    config: TrainConfig


@dataclass
class Spec:
    base: dict = field(default_factory=dict)
    grid: dict = field(default_factory=dict)  # name -> list of values, all combinations
    runs: list = field(default_factory=list)  # explicit list of change dicts (each times the grid)

    def to_dict(self) -> dict:
        return {"base": self.base, "grid": self.grid, "runs": self.runs}


def run_name(changes: dict) -> str:
    """A folder name for a run's changes, e.g. lr-0.001_hidden_size-64 ('base' when none)."""
    if not changes:
        return "base"
    parts = [f"{k}-{v}" for k, v in sorted(changes.items())]  # sorted: one name per configuration
    return "_".join(parts).replace("/", "-").replace(":", "-").replace(" ", "")


def make_run(base: dict, changes: dict) -> Run:
    """The run of `changes` on `base`; named by what differs from the base config, so a change that
    repeats a base value (e.g. lr = the base lr) names the same run as the base itself."""
    check_length(base, "sweep base")
    check_length(changes, f"sweep run {run_name(changes)}")  # a grid over both epochs and kimg would be ambiguous
    cfg = TrainConfig.from_dict(merge_values(base, changes), source=f"sweep run {run_name(changes)}")
    base_cfg = TrainConfig.from_dict(base, source="sweep base")
    diff = {k: v for k, v in changes.items() if getattr(base_cfg, k) != getattr(cfg, k)}
    return Run(run_name(diff), changes, cfg)


def expand(spec: Spec) -> list[Run]:
    """Every distinct run of a spec, in a fixed order; InputError for a bad key or value."""
    for name, values in spec.grid.items():
        if not isinstance(values, list) or not values:
            raise InputError(f"sweep grid: {name} should be a non-empty list of values, e.g. {name} = [1, 2]")
    combos = [dict(zip(spec.grid, vals)) for vals in itertools.product(*spec.grid.values())]
    out, seen = [], set()
    for extra in spec.runs or [{}]:
        if not isinstance(extra, dict):
            raise InputError(f"sweep runs: each entry should be a table of config values, got {extra!r}")
        for combo in combos:
            run = make_run(spec.base, {**extra, **combo})
            if run.name not in seen:
                seen.add(run.name)
                out.append(run)
    return out


def parse_values(text: str, name: str) -> list:
    """'1e-3,1e-4' for field `name` -> [0.001, 0.0001] (the field's type)."""
    if name not in {f.name for f in TrainConfig.fields()}:
        raise InputError(f"--vary {name}: unknown config key; see `tiny-diffusion train --help`")
    return [parse_value(TrainConfig._field(name), v.strip()) for v in text.split(",") if v.strip()]


def load_spec(path: str | Path) -> Spec:
    """A spec from TOML: [base] (or [train]) config values, [grid] lists, and [[runs]] tables; or from the
    sweep.json a sweep wrote (the same three, as JSON)."""
    path = Path(path)
    values = read_config_file(path, "sweep")  # TOML, or a sweep's own sweep.json
    unknown = set(values) - {"base", "train", "grid", "runs"}
    if unknown:
        raise InputError(f"{path}: unknown table {sorted(unknown)[0]!r}; use [base], [grid] and [[runs]]")
    return Spec(values.get("base", values.get("train", {})), values.get("grid", {}), values.get("runs", []))


def parse_shard(text: str) -> tuple[int, int]:
    """'2/4' -> (2, 4): the second of four shares (1-based)."""
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise InputError(f"--shard {text}: expected I/N, e.g. --shard 1/4") from None
    if not 1 <= i <= n:
        raise InputError(f"--shard {text}: I must be between 1 and N, e.g. --shard 1/{max(n, 1)}")
    return i, n


def shard(items: list, i: int, n: int) -> list:
    """Share i of n (1-based) of `items`: every n-th from the (i-1)-th, so the shares partition them."""
    return items[i - 1::n]


# -- claiming and finishing runs -----------------------------------------------------------------

def _lock_path(run_dir: Path) -> Path:
    return run_dir.parent / f"{run_dir.name}.lock"


def claim(run_dir: Path) -> bool:
    """Take the run's lock file atomically (fileio.take_lock); False if a live process holds it. A stale lock
    (its process died) is taken over."""
    return fileio.take_lock(_lock_path(run_dir)) is None


def release(run_dir: Path) -> None:
    fileio.release_lock(_lock_path(run_dir))


# -- running --------------------------------------------------------------------------------

def _work(job) -> str:
    """One run in a worker process: claim, train unless finished, evaluate, release; its status (trained, resumed,
    skipped, busy, or stopped by a signal)."""
    run_dir, cfg_dict, threads, tensorboard = job
    import torch

    from ..train import train

    threads_before = torch.get_num_threads()  # --jobs 1 runs in the caller's process: leave it as found
    torch.set_num_threads(threads)
    warnings.filterwarnings("ignore", message="alpha_bar_T")  # a sweep of short schedules would repeat it
    run_dir = Path(run_dir)
    if not claim(run_dir):
        torch.set_num_threads(threads_before)
        return run_dir.name, "busy"
    try:
        status = "skipped"
        if not runs.is_finished(run_dir):
            # start, or continue an interrupted run from its last checkpoint (train's resume is exact)
            resumed = (run_dir / runs.CHECKPOINT).exists()
            try:
                train(TrainConfig.from_dict(cfg_dict), run_dir, progress=False, log=lambda msg: None, resume=True,
                      tensorboard=tensorboard or None)
            except TrainingStopped as e:  # a stop signal: checkpointed; the sweep says how to go on
                if e.exit_code < 128:  # not a signal (a non-finite loss): an error
                    raise
                return run_dir.name, "stopped"
            status = "resumed" if resumed else "trained"
        evaluate_run(run_dir)
        return run_dir.name, status
    finally:
        release(run_dir)
        torch.set_num_threads(threads_before)


def check_same_config(run_dir: Path, cfg: TrainConfig) -> None:
    """InputError when `run_dir` already holds a run of another config (the keys that change only how a
    run is kept safe, like checkpoint_every, aside): reusing or resuming it would answer another question."""
    if not (run_dir / runs.CONFIG).is_file():
        return
    from ..train.state import RESUMABLE_CHANGES

    saved, wanted = runs.run_config(run_dir).to_dict(), cfg.to_dict()
    diff = cfg.differences(saved, RESUMABLE_CHANGES)
    if diff:
        shown = ", ".join(f"{k} = {saved.get(k)!r} there, {wanted[k]!r} now" for k in diff[:3])
        more = f" and {len(diff) - 3} more" if len(diff) > 3 else ""
        raise InputError(f"{run_dir}: holds a run of another config ({shown}{more}); use another --out for this "
                         f"sweep, or delete that folder")


def run_sweep(spec: Spec, out: str | Path, jobs: int = 1, shard_of: tuple[int, int] = (1, 1),
              log=print, threads: int | None = None, tensorboard: bool = False, before=None) -> dict:
    """Train this shard's unfinished runs with `jobs` worker processes; {status: count} of its runs
    (trained, skipped = already finished, busy = another worker holds it). tensorboard: each run writes its
    event files into its folder (train/board.py), so `tensorboard --logdir OUT` shows them side by side.
    before(pending, jobs): called with the runs still to train before any is started (the CLI's estimate and
    question; it raises to stop)."""
    if tensorboard:
        from ..train.board import check_available

        check_available()  # before any folder
    out = Path(out)
    all_runs = expand(spec)
    out.mkdir(parents=True, exist_ok=True)
    fileio.write_json(out / SPEC, spec.to_dict())
    mine = shard(all_runs, *shard_of)
    for r in mine:  # a folder left by another question must not answer this one
        check_same_config(out / "runs" / r.name, r.config)
    if before is not None:
        before([r for r in mine if not runs.is_finished(out / "runs" / r.name)], jobs)
    threads = threads or max(1, (os.cpu_count() or 1) // jobs)
    todo = [(str(out / "runs" / r.name), r.config.to_dict(), threads, tensorboard) for r in mine]
    start = time.perf_counter()
    if jobs == 1:
        results = map(_work, todo)
    else:
        import multiprocessing as mp

        # spawn: no forked torch thread pools; each worker in its own session, so a Ctrl-C reaches this process
        # alone, which then stops every worker at once, whatever stage it is in
        pool = mp.get_context("spawn").Pool(jobs, initializer=_worker_start)
        results = pool.imap_unordered(_work, todo)
    counts: dict = {}
    try:
        with _term_as_interrupt():
            for k, (name, status) in enumerate(results, 1):
                counts[status] = counts.get(status, 0) + 1
                log(f"[{k}/{len(todo)}] {name}: {status} ({time.perf_counter() - start:.0f} s)")
                if status == "stopped":  # a worker was signalled on its own: stop them all
                    raise KeyboardInterrupt
    except KeyboardInterrupt:
        if jobs > 1:
            _stop_workers(pool, results, jobs)
        raise TrainingStopped(f"sweep stopped by Ctrl-C ({sum(counts.get(s, 0) for s in DONE)} of {len(todo)} runs "
                              f"done; an interrupted run keeps its last checkpoint); continue with `tiny-diffusion "
                              f"sweep --out {out} --config {out / SPEC}`", exit_code=130) from None
    if jobs > 1:
        pool.close()
        pool.join()
    return counts


def _worker_start() -> None:
    """A worker process: its own session (the terminal's Ctrl-C reaches the sweep, which stops it); tqdm's lock a
    thread lock, not a semaphore the resource tracker would report as leaked when a stopped worker is killed."""
    from tqdm.auto import tqdm

    os.setsid()
    tqdm.set_lock(threading.RLock())


def _stop_workers(pool, results, jobs: int, wait: float = 10.0) -> None:
    """SIGTERM to every worker: a training run checkpoints within a step and answers 'stopped' (train's
    StopSignals), a run being scored ends at once (its claim, stale, is taken over next time). After the answers
    (or `wait` seconds) the workers left, idle or stuck, are killed, and the pool ended."""
    import multiprocessing as mp

    workers = mp.active_children()
    for p in workers:
        p.terminate()
    deadline, answered = time.perf_counter() + wait, 0
    while answered + sum(not p.is_alive() for p in workers) < jobs and time.perf_counter() < deadline:
        try:
            results.next(timeout=0.1)
            answered += 1
        except mp.TimeoutError:
            pass
        except StopIteration:
            break
        except Exception:  # a worker's error: it answered too
            answered += 1
    for p in mp.active_children():  # a stopped worker waits for work it will not get (Pool.terminate would too)
        p.kill()
    pool.terminate()


@contextlib.contextmanager
def _term_as_interrupt():
    """SIGINT and SIGTERM (a scheduler's, `kill`) stop the sweep as Ctrl-C does, even where the shell started it
    with SIGINT ignored (in the background): the workers, in their own session, would outlive it otherwise. (Only
    the main thread can catch signals.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    old = {s: signal.signal(s, interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


# -- collecting -----------------------------------------------------------------------------

def collect(spec: Spec, out: str | Path, figure: bool = True) -> list[dict]:
    """sweep.csv (one row per finished run and snapshot epoch) and grid.png (of the runs of points) from the run
    folders; the rows. Nothing is written without rows, and a sweep.csv
    with runs this spec no longer finds (deleted folders) is refused rather than shrunk."""
    out = Path(out)
    all_runs = expand(spec)
    rows = []
    for r in all_runs:
        run_dir = out / "runs" / r.name
        if not runs.is_finished(run_dir):
            continue
        ev = evaluate_run(run_dir)
        for q in ev["epochs"]:
            rows.append({"run": r.name, **{k: r.changes[k] for k in r.changes}, **q,
                         "nll": ev["nll"], "elbo": ev["elbo"], "train_seconds": ev["train_seconds"]})
    if not rows:
        return rows
    _check_not_shrinking(out / "sweep.csv", rows)
    fileio.write_csv(out / "sweep.csv", rows)
    if figure:
        grid_figure(all_runs, out, out / "grid.png")
    return rows


def _check_not_shrinking(path: Path, rows: list[dict]) -> None:
    """InputError when the table at `path` has runs `rows` lack: collecting would drop finished work from it."""
    import csv

    if not path.is_file():
        return
    with open(path, newline="") as f:
        before = {r.get("run") for r in csv.DictReader(f)}
    lost = sorted(before - {r["run"] for r in rows} - {None})
    if lost:
        raise InputError(f"{path}: holds {len(lost)} run(s) this sweep does not find finished ({lost[0]}...); "
                         f"collect with the sweep's own record (--out {path.parent} --collect alone) or move the table")


def grid_figure(all_runs: list[Run], out: Path, path: Path, title: str | None = None,
                labels: list[str] | None = None) -> tuple[int, int] | None:
    """The classic figure of finished runs: a row per run, a column per snapshot epoch; its shape."""
    import numpy as np

    from ..viz import points as plots

    rows = []
    for i, r in enumerate(all_runs):
        run_dir = out / "runs" / r.name
        if not runs.is_finished(run_dir) or r.config.images:  # the scatter grid is for points
            continue
        frames = np.load(run_dir / runs.FRAMES, allow_pickle=False)
        ev = evaluate_run(run_dir)
        label = labels[i] if labels else ", ".join(f"{k}={v}" for k, v in r.changes.items()) or "base"
        rows.append((label, [(e, q, x) for e, q, x in zip(snapshot_epochs(run_dir), ev["epochs"], frames)]))
    if not rows:
        return None
    return plots.sweep_grid(rows, path, title=title)
