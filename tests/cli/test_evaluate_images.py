"""`evaluate` of image files (17.6): images need --dataset, images of another shape than the data set's are
refused, and a --data-dir holding another data set's files is told apart by the published checksums."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from PIL import Image

from tiny_diffusion.cli import main
from tiny_diffusion.data import images as data_images
from tiny_diffusion.data.images.idx import write_idx


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TINY_DIFFUSION_DATA", str(tmp_path / "cache"))
    monkeypatch.delenv("TINY_DIFFUSION_MIRROR", raising=False)


def _npy(path, shape):
    np.save(path, np.random.default_rng(0).uniform(-1, 1, shape).astype(np.float32))  # as `sample --out x.npy`
    return path


def _one_line_error(capsys, needles):
    text = capsys.readouterr().err
    errors = [line for line in text.splitlines() if line.startswith("tiny-diffusion: error:")]
    assert len(errors) == 1 and "Traceback" not in text, text  # log lines (decoding a folder) may come before
    assert all(n in errors[0] for n in needles), errors[0]
    return errors[0]


def test_an_image_npy_without_dataset_asks_for_it(tmp_path, capsys):
    assert main(["evaluate", str(_npy(tmp_path / "x.npy", (4, 1, 8, 8)))]) == 2
    err = _one_line_error(capsys, ["--dataset", "images"])
    assert "(n, 2)" not in err  # not read as points
    assert main(["evaluate", str(_npy(tmp_path / "p.npy", (4, 3)))]) == 2  # points still get the points message
    _one_line_error(capsys, ["(n, 2)"])


def test_images_of_another_shape_than_the_data_set_are_refused(tmp_path, capsys):
    for cls in ("a", "b"):  # 12x12 RGB, two classes
        (tmp_path / "data" / cls).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (12, 12), (40 * i, 200 if cls == "a" else 0, 0)).save(tmp_path / "data" / cls / f"{i}.png")
    x = _npy(tmp_path / "x.npy", (4, 1, 8, 8))
    assert main(["evaluate", str(x), "--dataset", str(tmp_path / "data")]) == 2
    _one_line_error(capsys, ["(1, 8, 8)", "(3, 12, 12)"])


def test_mnist_files_given_as_fashion_mnist_are_refused(tmp_path, capsys, monkeypatch):
    rng = np.random.default_rng(0)
    (tmp_path / "d").mkdir()
    write_idx(tmp_path / "d" / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (5, 28, 28), dtype=np.uint8))
    write_idx(tmp_path / "d" / "train-labels-idx1-ubyte.gz", rng.integers(0, 10, 5).astype(np.uint8))
    sums = {f.name: hashlib.md5(f.read_bytes()).hexdigest() for f in (tmp_path / "d").iterdir()}
    monkeypatch.setitem(data_images.CHECKSUMS, "mnist", sums)  # these files play MNIST's published ones
    x = _npy(tmp_path / "x.npy", (4, 1, 28, 28))
    assert main(["evaluate", str(x), "--dataset", "fashion-mnist", "--data-dir", str(tmp_path / "d")]) == 2
    said = _one_line_error(capsys, ["mnist's file", "not fashion-mnist's", "--dataset mnist"])
    # train on the same folder: the same check (data/images/published.check_local), the same line, no run folder
    assert main(["train", "--dataset", "fashion-mnist", "--data-dir", str(tmp_path / "d"), "--out",
                 str(tmp_path / "run")]) == 2
    assert _one_line_error(capsys, []) == said and not (tmp_path / "run").exists()
