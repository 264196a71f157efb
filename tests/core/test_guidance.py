"""Class-conditional training and classifier-free guidance: the guidance formula at its ends, one batched call
per step, the label dropout rate, a known answer on two Gaussian classes, per-sample seeding with labels, the
labelled Datasaurus set, the CLI's flags, label files and errors, and exact resume of a conditional run."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch

from tests.helpers import assert_data_drawn
from tiny_diffusion import runs
from tiny_diffusion.cli import main
from tiny_diffusion.config import TrainConfig
from tiny_diffusion.data import points
from tests.helpers import CENTRES, register_two
from tiny_diffusion.core.diffusion import Diffusion
from tiny_diffusion.core.guidance import NULL, Guided, cycle_labels, drop_labels, guide, split_labels
from tiny_diffusion.models import build_model
from tiny_diffusion.sampling import POINT_BLOCK, sample
from tiny_diffusion.core.samplers import SAMPLERS
from tiny_diffusion.core.schedules import make_betas
from tiny_diffusion.train import train

TWO = dict(dataset="two", class_cond=True, n_points=2000, batch_size=250, epochs=100, hidden_size=32,
           hidden_layers=2, emb_size=16, frames=0, frame_points=200, eval_sampler="ddpm", eval_steps=100, device="cpu")
FAST = ["--sampler", "ddpm", "--steps", "100"]


@pytest.fixture
def two_classes(monkeypatch):
    register_two(monkeypatch)


@pytest.fixture(scope="module")
def two_run(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        register_two(mp)
        out = tmp_path_factory.mktemp("two") / "run"
        train(TrainConfig.from_dict(TWO), out, progress=False)
    return out


def _model(label_dim=3, seed=0):
    torch.manual_seed(seed)
    cfg = TrainConfig(hidden_size=16, hidden_layers=1, emb_size=8)
    return build_model(cfg, (2,), classes=[str(k) for k in range(label_dim)]).eval()


# -- the guidance formula ----------------------------------------------------------------------

def test_guide_is_exact_at_both_ends_and_linear_between():
    g = torch.Generator().manual_seed(0)
    cond, uncond = torch.randn(100, 2, generator=g), torch.randn(100, 2, generator=g)
    assert torch.equal(guide(cond, uncond, 1.0), cond)
    assert torch.equal(guide(cond, uncond, 0.0), uncond)
    for w in (0.3, 2.0, 7.5):
        torch.testing.assert_close(guide(cond, uncond, w), uncond + w * (cond - uncond))


def test_w1_is_the_conditional_prediction_and_w0_the_unconditional_one():
    model, x, t, y = _model(), torch.randn(50, 2), torch.tensor(7), torch.arange(50) % 3
    with torch.no_grad():
        cond, uncond = model(x, t, y), model(x, t, None)
        assert not torch.allclose(cond, uncond)  # the labels matter, so the checks below can fail
        assert torch.equal(Guided(model, 1.0)(x, t, y), cond)
        assert torch.equal(Guided(model, 0.0)(x, t, y), uncond)
        torch.testing.assert_close(Guided(model, 3.0)(x, t, y), uncond + 3.0 * (cond - uncond))
        assert torch.equal(model(x, t, torch.full_like(y, NULL)), uncond)  # NULL is the "no label" class


class Counting(torch.nn.Module):
    """A model that records the batch size of every call."""

    def __init__(self, model):
        super().__init__()
        self.model, self.sample_shape, self.classes, self.calls = model, model.sample_shape, model.classes, []

    def forward(self, x, t, y=None):
        self.calls.append(len(x))
        return self.model(x, t, y)


@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_guidance_costs_one_call_of_a_doubled_batch_per_step(sampler):
    diffusion = Diffusion(make_betas("cosine", 50))
    for w, width in ((2.0, 2 * POINT_BLOCK), (1.0, POINT_BLOCK), (0.0, POINT_BLOCK)):
        model = Counting(_model())
        sample(model, diffusion, 300, 0, sampler=sampler, steps=10, y=cycle_labels(300, 3), guidance=w)
        assert model.calls == [width] * 10, (w, model.calls[:3])


def test_guidance_without_labels_is_refused():
    torch.manual_seed(0)
    unconditional = build_model(TrainConfig(hidden_size=16, hidden_layers=1, emb_size=8), (2,)).eval()
    with pytest.raises(ValueError, match="needs class labels"):
        sample(unconditional, Diffusion(make_betas("cosine", 20)), 5, guidance=2.0)
    with pytest.raises(ValueError, match=">= 0"):
        Guided(_model(), -1.0)
    for w in (float("inf"), float("nan")):  # inf - inf: every sample NaN
        with pytest.raises(ValueError, match="must be a finite number >= 0"):
            Guided(_model(), w)


def test_a_conditional_model_without_labels_draws_every_class_in_turn():
    """sample() of a class-conditional model with no y asks for the classes in turn (as `sample RUN` does), sample
    i for class i % K, counted from `start`; the guidance applies to them."""
    model, diffusion = _model(), Diffusion(make_betas("cosine", 20))
    kw = dict(sampler="ddim", steps=5, guidance=2.0)
    assert torch.equal(sample(model, diffusion, 7, 1, **kw), sample(model, diffusion, 7, 1, y=cycle_labels(7, 3), **kw))
    assert torch.equal(sample(model, diffusion, 4, 1, start=5, **kw),
                       sample(model, diffusion, 4, 1, start=5, y=cycle_labels(4, 3, start=5), **kw))
    null = sample(model, diffusion, 7, 1, y=torch.full((7,), NULL), sampler="ddim", steps=5)
    assert not torch.equal(sample(model, diffusion, 7, 1, sampler="ddim", steps=5), null)


@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_a_guided_sample_depends_only_on_seed_index_and_label(sampler):
    """Per-sample seeding holds with labels and guidance: sample i is the same in a batch of 7 and of 300, and
    at an offset start."""
    model, diffusion = _model(), Diffusion(make_betas("cosine", 30))
    kw = dict(sampler=sampler, steps=8, guidance=2.5)
    big = sample(model, diffusion, 300, 4, y=cycle_labels(300, 3), **kw)
    assert torch.equal(sample(model, diffusion, 7, 4, y=cycle_labels(7, 3), **kw), big[:7])
    part = sample(model, diffusion, 5, 4, start=100, y=cycle_labels(5, 3, start=100), **kw)
    assert torch.equal(part, big[100:105])


# -- training ----------------------------------------------------------------------------------

@pytest.mark.parametrize("p", [0.1, 0.35])
def test_drop_labels_replaces_the_configured_share(p):
    n = 200_000
    y = torch.arange(n) % 7
    out = drop_labels(y, p, torch.Generator().manual_seed(1))
    dropped = out == NULL
    assert abs(dropped.float().mean().item() - p) < 5 * math.sqrt(p * (1 - p) / n)  # 5 sigma
    assert torch.equal(out[~dropped], y[~dropped])  # the others keep their label


def test_training_shows_the_network_the_null_class_at_cond_drop(monkeypatch):
    """The labels the network sees in training: a share cond_drop of them the 'no label' class."""
    from tiny_diffusion.train import setup

    seen = []

    def build(*args, **kwargs):
        model = build_model(*args, **kwargs)
        model.register_forward_pre_hook(lambda m, a: seen.append(a[2].clone()) if m.training else None)
        return model

    monkeypatch.setattr(setup, "build_model", build)
    cfg = TrainConfig(dataset="datasaurus", class_cond=True, cond_drop=0.25, n_points=4000, batch_size=1000, epochs=5,
                      timesteps=20, schedule="cosine", hidden_size=16, hidden_layers=1, emb_size=8, frames=0, frame_points=100,
                      eval_sampler="ddim", eval_steps=2, device="cpu")
    train(cfg, None, progress=False)
    y = torch.cat(seen)
    assert len(y) == 20_000 and y.max() < 13
    assert abs((y == NULL).float().mean().item() - 0.25) < 5 * math.sqrt(0.25 * 0.75 / len(y))


def test_unconditional_models_have_no_label_weights():
    """The default runs are unchanged: no label embedding, so the same weights from the same seed."""
    cfg = TrainConfig()
    assert not any("label" in k for k in build_model(cfg).state_dict())
    cond = build_model(cfg, classes=["a", "b", "c"])
    assert cond.state_dict()["label_emb.weight"].shape == (4, cfg.hidden_size)  # 3 classes + "no label"
    torch.manual_seed(0)
    a = build_model(cfg).state_dict()
    torch.manual_seed(0)
    b = build_model(cfg, classes=["a", "b"]).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)  # the label embedding is drawn last


def test_a_conditional_model_of_two_gaussians_draws_the_requested_class(two_run, two_classes):
    """Known answer: class k's samples are N(CENTRES[k], 0.3^2 I) (W = 1); guided ones stay on their side."""
    cfg, model, diffusion = runs.load_run(two_run)
    assert model.classes == ["left", "right"]
    for k in (0, 1):
        for w in (1.0, 3.0):
            x = sample(model, diffusion, 400, 0, sampler="ddpm", steps=100, y=torch.full((400,), k), guidance=w).numpy()
            assert np.mean(np.sign(x[:, 0]) == np.sign(CENTRES[k, 0])) >= 0.99
            assert abs(x[:, 0].mean() - CENTRES[k, 0]) < 0.3
            if w == 1:  # the conditional law itself
                assert np.abs(x.mean(0) - CENTRES[k]).max() < 0.15 and np.all(np.abs(x.std(0) - 0.3) < 0.1)
    x = sample(model, diffusion, 1000, 0, sampler="ddpm", steps=100).numpy()  # unconditional: both classes
    assert 0.3 < np.mean(x[:, 0] < 0) < 0.7


# -- data --------------------------------------------------------------------------------------

def test_the_labelled_datasaurus_set_labels_each_point_with_its_shape():
    x, y, classes = points.load_labelled("datasaurus", 5000, seed=3)
    assert classes == list(points.DATASAURUS_SHAPES) and y.dtype == np.int64
    assert np.array_equal(x, points.load_dataset("datasaurus", 5000, seed=3))
    assert np.bincount(y, minlength=13).min() > 300  # every shape, about equally often
    for k, shape in enumerate(classes):
        means, std = points.datasaurus_mixture(shape)
        d = np.sqrt((((x[y == k, None, :] - means[None]) / std) ** 2).sum(-1)).min(1)  # in jitter units
        assert np.quantile(d, 0.99) < 4  # each point is jitter away from one of its own shape's points
    assert points.class_dataset("datasaurus", 3) == "datasaurus:dino"
    assert points.load_labelled("dino", 10)[1] is None


def test_label_choices():
    assert split_labels([3, 7], 5).tolist() == [3, 3, 3, 7, 7]
    assert split_labels([1], 3).tolist() == [1, 1, 1]
    assert cycle_labels(5, 2, start=3).tolist() == [1, 0, 1, 0, 1]


# -- the command line ----------------------------------------------------------------------------

def _labels(path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def test_sample_writes_the_requested_classes_beside_the_samples(two_run, two_classes, tmp_path, capsys):
    out = tmp_path / "x.csv"
    assert main(["sample", str(two_run), "--n", "5", *FAST, "--out", str(out)]) == 0
    rows = _labels(tmp_path / "x.labels.csv")  # without --class: the classes in turn
    assert [(r["index"], r["label"], r["class"]) for r in rows] == [
        ("0", "0", "left"), ("1", "1", "right"), ("2", "0", "left"), ("3", "1", "right"), ("4", "0", "left")]
    x = np.loadtxt(out, delimiter=",", skiprows=1)
    assert np.array_equal(np.sign(x[:, 0]), [-1, 1, -1, 1, -1])
    assert main(["sample", str(two_run), "--n", "5", *FAST, "--class", "right,0", "--guidance", "2", "--out",
                 str(tmp_path / "y.npy")]) == 0
    assert [r["class"] for r in _labels(tmp_path / "y.labels.csv")] == ["right"] * 3 + ["left"] * 2
    assert np.array_equal(np.sign(np.load(tmp_path / "y.npy")[:, 0]), [1, 1, 1, -1, -1])


def test_evaluate_writes_the_guidance_curve_per_class(two_run, two_classes, tmp_path, capsys):
    csv_path = tmp_path / "g.csv"
    assert main(["evaluate", str(two_run), "--guidance", "0,1,3", "--n", "60", *FAST, "--csv", str(csv_path),
                 "--figure", str(tmp_path / "g.png")]) == 0
    rows = _labels(csv_path)
    assert [(r["guidance"], r["class"]) for r in rows] == [(w, c) for w in ("0.0", "1.0", "3.0") for c in ("left", "right")]
    assert all(float(r["precision"]) > 0.9 for r in rows if r["guidance"] != "0.0")  # both classes are easy
    assert_data_drawn(tmp_path / "g.png")  # the classes' curves (coloured; the legend's entries are black)
    capsys.readouterr()
    assert main(["evaluate", str(two_run), "--class", "left", "--n", "60", *FAST]) == 0
    scored = [line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("W = ")]
    scored = [words for words in scored if words[3] != "mean"]  # the rows per class, not their mean
    assert [words[:4] for words in scored] == [["W", "=", "1.75", "left"]]  # the requested class alone, at the run's W
    assert float(scored[0][5]) > 0.9  # its precision: drawn on the left


@pytest.mark.parametrize("args, message", [
    (["--class", "up"], "--class 'up': not a class of this run; give an index 0..1 or a name: left, right"),
    (["--class", "2"], "--class '2': not a class"),
    (["--guidance", "-1"], "--guidance: -1 must be a finite number >= 0"),
    (["--guidance", "inf"], "--guidance: inf must be a finite number >= 0"),
    (["--guidance", "nan"], "--guidance: nan must be a finite number >= 0"),
])
def test_bad_classes_and_weights_exit_2_with_one_line(two_run, two_classes, args, message, tmp_path, capsys):
    for command in (["sample", str(two_run), "--out", str(tmp_path / "x.csv")], ["evaluate", str(two_run)],
                    ["plot", "reverse", str(two_run), "--out", str(tmp_path / "r.png")]):
        assert main([*command, *args]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err
    assert not any(tmp_path.iterdir())


def test_evaluate_with_too_few_samples_per_class_exits_2_naming_the_n_it_needs(two_run, two_classes, capsys):
    """Per-class precision and coverage need more than COVERAGE_K (5) samples of a class: 10 samples over the two
    classes are refused before any sampling with the --n that works (it was an IndexError traceback)."""
    assert main(["evaluate", str(two_run), "--n", "10"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.endswith("use --n 12 or more"), err
    assert main(["evaluate", str(two_run), "--n", "12"]) == 0


def test_class_flags_on_an_unconditional_run_and_class_cond_without_labels_exit_2(tmp_path, capsys):
    run = tmp_path / "run"
    cfg = TrainConfig(n_points=256, epochs=1, batch_size=128, timesteps=10, terminal_alpha_bar=1e-4, hidden_size=8,
                      hidden_layers=1, emb_size=4, frames=0, frame_points=20, device="cpu")
    train(cfg, run, progress=False)
    capsys.readouterr()  # train's own lines (its length, the final samples' estimate)
    for flags in (["--class", "0"], ["--guidance", "2"]):
        assert main(["sample", str(run), *flags, "--out", str(tmp_path / "x.csv")]) == 2
        err = capsys.readouterr().err
        assert f"{flags[0]}: this run was trained without class labels" in err and len(err.strip().splitlines()) == 1
    assert main(["train", "--dataset", "dino", "--class-cond", "--out", str(tmp_path / "new")]) == 2
    err = capsys.readouterr().err
    assert "--class-cond: dino has no class labels" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "new").exists()


def test_class_cond_is_a_switch_in_flags_and_toml(tmp_path):
    from tiny_diffusion.cli import build_parser
    from tiny_diffusion.cli.common import config_overrides

    parse = build_parser().parse_args
    assert config_overrides(parse(["train", "--class-cond"]))["class_cond"] is True
    assert config_overrides(parse(["train", "--class-cond", "off"]))["class_cond"] is False
    (tmp_path / "c.toml").write_text("class_cond = true\ncond_drop = 0.2\n")
    assert TrainConfig.from_toml(tmp_path / "c.toml").class_cond is True
    with pytest.raises(Exception, match="true or false"):
        TrainConfig.from_dict({"class_cond": "yes"})
    with pytest.raises(Exception, match="cond_drop = 1.0 must be < 1"):
        TrainConfig.from_dict({"cond_drop": 1.0})


# -- resume ------------------------------------------------------------------------------------

def test_a_conditional_run_resumes_exactly(tmp_path, monkeypatch):
    """Stopped by SIGTERM mid-run and resumed: the weights, metrics and frames of the uninterrupted run."""
    import signal

    from tests.helpers import TINY_POINTS, assert_same_run, stop_at_frame
    from tiny_diffusion.errors import TrainingStopped

    cfg = TrainConfig.from_dict({**TINY_POINTS, "dataset": "datasaurus", "class_cond": True, "guidance": 2.0})
    train(cfg, tmp_path / "ref", progress=False)
    stop_at_frame(monkeypatch, 2, lambda: signal.raise_signal(signal.SIGTERM))
    with pytest.raises(TrainingStopped):
        train(cfg, tmp_path / "run", progress=False)
    monkeypatch.undo()
    train(cfg, tmp_path / "run", progress=False, resume=True)
    assert_same_run(tmp_path / "ref", tmp_path / "run")


# -- guidance on an interval of noise levels, and labels on by default for images ------------------------------

def test_guidance_on_an_interval_guides_inside_it_and_is_plainly_conditional_outside():
    from tiny_diffusion.core.guidance import interval_steps

    model, x, y = _model(), torch.randn(50, 2), torch.arange(50) % 3
    guided = Guided(model, 3.0, steps=(10, 20))
    with torch.no_grad():
        for t in (9, 10, 15, 20, 21):
            tt = torch.tensor(t)
            cond, uncond = model(x, tt, y), model(x, tt, None)
            expect = guide(cond, uncond, 3.0) if 10 <= t <= 20 else cond
            torch.testing.assert_close(guided(x, tt, y), expect, rtol=0, atol=1e-6)
        ts = torch.tensor([5, 12, 25] * 16 + [12, 12])  # per-row timesteps: the same rule row by row
        cond, uncond = model(x, ts, y), model(x, ts, None)
        inside = ((ts >= 10) & (ts <= 20))[:, None]
        torch.testing.assert_close(guided(x, ts, y), torch.where(inside, guide(cond, uncond, 3.0), cond),
                                   rtol=0, atol=1e-6)
    ab = Diffusion(make_betas("cosine", 100)).alpha_bar.double().numpy()
    lam = 0.5 * np.log(ab / (1 - ab))
    lo, hi = interval_steps((-2.0, 1.0), ab)
    assert lam[lo] <= 1.0 < lam[lo - 1] and lam[hi + 1] < -2.0 <= lam[hi]  # the widest t range inside [-2, 1]
    assert interval_steps(None, ab) is None and interval_steps((50.0, 60.0), ab) == (1, 0)  # (1, 0): none guided


def test_an_interval_run_costs_doubled_calls_only_inside_the_interval():
    diffusion = Diffusion(make_betas("cosine", 50))
    model = Counting(_model())
    ab = diffusion.alpha_bar.double().numpy()
    lam = 0.5 * np.log(ab / (1 - ab))
    sample(model, diffusion, 300, 0, sampler="ddim", steps=10, spacing="trailing", y=cycle_labels(300, 3),
           guidance=2.0, guidance_interval=(-1.0, 1.0))
    from tiny_diffusion.core.samplers import timesteps

    ts = timesteps(50, 10, "trailing")
    want = [2 * POINT_BLOCK if -1 <= lam[t] <= 1 else POINT_BLOCK for t in ts]
    assert model.calls == want and 2 * POINT_BLOCK in want and POINT_BLOCK in want


@pytest.mark.parametrize("text", ["1,0", "a,b", "inf,1", "1", "0,0"])
def test_a_bad_guidance_interval_exits_2_with_one_line(two_run, two_classes, text, tmp_path, capsys):
    assert main(["sample", str(two_run), "--guidance-interval", text, "--out", str(tmp_path / "x.csv")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"--guidance-interval {text!r}: give 'lo,hi'" in err, err
    with pytest.raises(Exception, match="guidance_interval"):
        TrainConfig.from_dict({"guidance_interval": text})


def test_labels_are_on_by_default_for_labelled_images_only():
    """train.settle decides class_cond auto from the data: on (at W = 1) for images with two classes or more."""
    from tiny_diffusion.config import IMAGE_DEFAULTS, LABELS_GUIDANCE
    from tiny_diffusion.train.setup import settle

    class Data:  # what settle reads of a DataSource: 64 samples, labelled with two classes or not
        def __init__(self, labelled: bool, images: bool):
            self.labels, self.classes = (np.zeros(64), ["a", "b"]) if labelled else (None, None)
            self.shape, self.images = ((1, 8, 8) if images else (2,)), images

        def __len__(self):
            return 64

    def settled(cfg, labelled: bool, images: bool = True):
        return settle(cfg, Data(labelled, images))[0]

    auto = TrainConfig(dataset="mnist")
    assert auto.class_cond is None and auto.guidance is None  # decided by the data
    on, off = settled(auto, True), settled(auto, False)
    assert (on.class_cond, on.guidance) == (True, LABELS_GUIDANCE)
    assert (off.class_cond, off.guidance) == (False, IMAGE_DEFAULTS["guidance"])
    asked = TrainConfig(dataset="mnist", class_cond=True)  # --class-cond: the guided default
    assert settled(asked, True).guidance == IMAGE_DEFAULTS["guidance"] != LABELS_GUIDANCE
    assert settled(TrainConfig(dataset="mnist", guidance=3.0), True).guidance == 3.0  # a given W is kept
    assert settled(TrainConfig(dataset="mnist", class_cond=False), True).class_cond is False
    dino = TrainConfig()  # points: off, as every point run always was
    assert dino.class_cond is False and settled(dino, True, images=False).class_cond is False
