"""Hostile input, generated: malformed point files, configs and command lines must give a clean result
or InputError (exit code 2 and one line), never a traceback, and never damage files already on disk.
Six generated tests of 250 examples each: 1500 malformed inputs per run."""

from __future__ import annotations

import io
import math
import string
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tiny_diffusion import cli
from tiny_diffusion.config import TrainConfig
from tiny_diffusion.data import read_points
from tiny_diffusion.errors import InputError

FAST = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
FIELDS = [f.name for f in TrainConfig.fields()]

numbers = st.one_of(st.integers(-2**70, 2**70), st.integers(10**300, 10**500), st.floats(),
                    st.sampled_from([0, -1, 1e308, -1e-308, 10**400, float("nan"), float("inf")]))
values = st.one_of(numbers, st.text(max_size=20), st.booleans(), st.none(),
                   st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))
cells = st.one_of(numbers.map(repr), st.text(string.printable, max_size=12),
                  st.sampled_from(["", "nan", "inf", "-inf", "1e999", "0x10", "1,5", " 3 ", "\x00", "é"]))


def _check_points(pts):
    assert pts.dtype == np.float32 and pts.ndim == 2 and pts.shape[1] == 2 and len(pts) > 0
    assert np.isfinite(pts).all()


def _read(path: Path):
    try:
        _check_points(read_points(path))
    except InputError as e:
        assert str(path) in str(e) and "\n" not in str(e)


@FAST
@given(header=st.one_of(st.just("x,y"), st.lists(cells, max_size=4).map(",".join)),
       rows=st.lists(st.lists(cells, min_size=0, max_size=4), max_size=6))
def test_csv_files(tmp_path_factory, header, rows):
    path = tmp_path_factory.mktemp("csv") / "points.csv"
    path.write_text("\n".join([header] + [",".join(r) for r in rows]), encoding="utf-8", errors="surrogatepass")
    _read(path)


@FAST
@given(data=st.one_of(
    hnp.arrays(st.sampled_from([np.float64, np.float32, np.float16, np.int64, np.int8, np.uint64, np.bool_,
                                np.complex64, "U3", np.dtype([("x", "<f4"), ("y", "<f4")]), "datetime64[s]"]),
               hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)),
    st.sampled_from([np.array([[{"pickled": 1}, None]], dtype=object), np.zeros((3, 2))]),
    st.binary(max_size=200)))
def test_npy_files(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("npy") / "points.npy"
    if isinstance(data, bytes):
        path.write_bytes(data)  # binary garbage
    else:
        buf = io.BytesIO()
        np.save(buf, data)
        path.write_bytes(buf.getvalue())
    _read(path)


@FAST
@given(values=st.dictionaries(st.one_of(st.sampled_from(FIELDS), st.text(max_size=10)), values, max_size=4))
def test_config_dicts(values):
    try:
        cfg = TrainConfig.from_dict(values, source="test.toml")
    except InputError as e:
        assert "test.toml" in str(e) and "\n" not in str(e)
    else:  # accepted: every number finite and in range
        for f in TrainConfig.fields():
            v = getattr(cfg, f.name)
            assert v is None or isinstance(v, str) or (math.isfinite(v) and v >= 0)


toml_values = st.one_of(numbers.map(str),
                        st.text(string.printable, max_size=10), st.sampled_from(["true", "[1, 2]", "{a = 1}",
                                                                                 "1979-05-27", "nan", "-inf", '"x"']))


@FAST
@given(lines=st.lists(st.tuples(st.sampled_from(FIELDS + ["bogus", "[train]", ""]), toml_values), max_size=4))
def test_toml_configs(tmp_path_factory, lines):
    path = tmp_path_factory.mktemp("toml") / "cfg.toml"
    path.write_text("\n".join(f"{k} = {v}" if not k.startswith("[") else k for k, v in lines), encoding="utf-8")
    try:
        TrainConfig.from_toml(path)
    except InputError as e:
        assert str(path) in str(e) and "\n" not in str(e)


class _Accepted(Exception):
    """Raised by the stand-in for train(): the command line got through validation."""


flag_values = st.one_of(numbers.map(str), st.text(max_size=8), st.sampled_from(["-1", "0", "1e9", "nan", "", "--"]))
commands = st.sampled_from([["train"], ["sample", "/nonexistent/run"], ["export", "/nonexistent"],
                            ["animate", "/nonexistent"], ["plot", "reverse"], ["train", "--resume", "/nonexistent"],
                            ["frobnicate"], []])


def _main(argv) -> int:
    try:
        return cli.main(argv)
    except _Accepted:
        return 0
    except SystemExit as e:  # --help/--version print and exit 0
        return e.code


def _one_error_line(rc, capsys, argv):
    assert rc in (0, 2)
    err = capsys.readouterr().err
    if rc == 2 and argv:  # no command at all prints the help instead
        assert len([ln for ln in err.splitlines() if "error" in ln]) == 1, err


@FAST
@given(command=commands, flags=st.lists(st.tuples(st.sampled_from(FIELDS + ["n", "seed", "out", "config", "x"]),
                                                  flag_values), max_size=3))
def test_command_lines(tmp_path_factory, monkeypatch, capsys, command, flags):
    import tiny_diffusion.train as train_module

    def accepted(cfg, *args, **kwargs):
        raise _Accepted

    monkeypatch.setattr(train_module, "train", accepted)  # validation is the subject here, not training
    monkeypatch.chdir(tmp_path_factory.mktemp("cli"))  # whatever --out paths it invents land here
    argv = list(command) + [a for k, v in flags for a in (f"--{k.replace('_', '-')}", v)]
    _one_error_line(_main(argv), capsys, argv)


@FAST
@given(points=st.one_of(st.just("x,y\n1,2\n3,4\n"), st.text(max_size=30), st.lists(
           st.lists(cells, max_size=3), max_size=8).map(lambda rows: "x,y\n" + "\n".join(",".join(r) for r in rows))),
       n=st.sampled_from(["-2", "0", "1", "5", "6", "40", "1e3", "x", "20001", "9" * 30]),
       dataset=st.sampled_from([[], ["--dataset", "moons"], ["--dataset", "nope"], ["--dataset", "p.csv"]]))
def test_evaluate_command(tmp_path_factory, monkeypatch, capsys, points, n, dataset):
    """A generated point file through the CLI; --n from a small set (a huge valid one is only slow)."""
    monkeypatch.chdir(tmp_path_factory.mktemp("eval"))
    Path("p.csv").write_text(points, encoding="utf-8", errors="surrogatepass")
    argv = ["evaluate", "p.csv", "--n", n, *dataset]
    _one_error_line(_main(argv), capsys, argv)


def test_an_existing_run_is_never_damaged(tmp_path):
    (tmp_path / "config.json").write_text('{"epochs": 1}')
    before = (tmp_path / "config.json").read_bytes()
    assert cli.main(["train", "--out", str(tmp_path), "--epochs", "1"]) == 2
    assert (tmp_path / "config.json").read_bytes() == before


@pytest.mark.parametrize("values, field", [
    ({"hidden_size": 65536, "hidden_layers": 1000}, "hidden_layers"),  # each in bounds, together 4e12 weights
    ({"frames": 100_000, "frame_points": 10_000_000}, "frame_points"),
    ({"lr": 10**400}, "lr"), ({"n_points": 0}, "n_points"), ({"epochs": -3}, "epochs"),
    ({"timesteps": "1000"}, "timesteps"), ({"checkpoint_every": -1}, "checkpoint_every"),
    ({"skip_nonfinite": 1.5}, "skip_nonfinite"), ({"wings": 2}, "wings"),
])
def test_absurd_configs_name_the_field(values, field):
    with pytest.raises(InputError, match=field):
        TrainConfig.from_dict(values, source="c.toml")
