import numpy as np
import pytest

from tiny_diffusion.data import DATASAURUS_SHAPES, dataset_names, load_dataset, read_points
from tiny_diffusion.data.points import _datasaurus
from tiny_diffusion.errors import InputError


@pytest.mark.parametrize("name", dataset_names())
def test_every_dataset_shape_dtype_and_seed(name):
    a, b, c = load_dataset(name, 500, seed=1), load_dataset(name, 500, seed=1), load_dataset(name, 500, seed=2)
    assert a.shape == (500, 2) and a.dtype == np.float32
    assert np.isfinite(a).all() and np.abs(a).max() < 10
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_datasaurus_dozen_is_complete():
    shapes = _datasaurus()
    assert sorted(shapes) == sorted(DATASAURUS_SHAPES)
    assert all(len(p) == 142 for p in shapes.values())
    # the Dozen share their summary statistics (Matejka & Fitzmaurice 2017): mean x 54.26, mean y 47.83
    for pts in shapes.values():
        assert pts[:, 0].mean() == pytest.approx(54.26, abs=0.01)
        assert pts[:, 1].mean() == pytest.approx(47.83, abs=0.01)


def test_dino_matches_classic_definition():
    """Jitter 0.15 in original units, then x -> (x/54 - 1)*4, y -> (y/48 - 1)*4: vertical spread about 2.2."""
    x = load_dataset("dino", 100_000, seed=0)
    centres = _datasaurus()["dino"]
    assert x[:, 1].std() == pytest.approx(((centres[:, 1] / 48 - 1) * 4).std(), rel=0.02)
    assert x[:, 1].std() == pytest.approx(2.2, abs=0.1)
    # every point lies within a few jitter widths of a dino centre
    scaled = np.stack([(centres[:, 0] / 54 - 1) * 4, (centres[:, 1] / 48 - 1) * 4], axis=1)
    nearest = np.sqrt(((x[:2000, None, :] - scaled[None]) ** 2).sum(-1)).min(1)
    assert nearest.max() < 6 * 0.15 * 4 / 48


def test_line_and_circle_ranges():
    line = load_dataset("line", 10_000, 0)
    assert line[:, 0].min() >= -2 and line[:, 0].max() <= 2 and line[:, 1].min() >= -4 and line[:, 1].max() <= 4
    r = np.linalg.norm(load_dataset("circle", 10_000, 0), axis=1)
    assert ((r > 2.9) & (r < 3.1)).mean() > 0.9  # 4% sit at the centre, as in the classic study


def test_unknown_dataset_and_bad_size():
    with pytest.raises(InputError, match="unknown dataset 'dinosaur'"):
        load_dataset("dinosaur", 10)
    with pytest.raises(InputError, match="positive"):
        load_dataset("dino", 0)


def test_user_files_round_trip(tmp_path):
    pts = np.random.default_rng(0).normal(size=(50, 2)).astype(np.float32)
    np.save(tmp_path / "p.npy", pts)
    (tmp_path / "p.csv").write_text("x,y\n" + "".join(f"{a},{b}\n" for a, b in pts))
    assert np.allclose(read_points(tmp_path / "p.npy"), pts)
    assert np.allclose(read_points(tmp_path / "p.csv"), pts, atol=1e-6)
    assert load_dataset(str(tmp_path / "p.csv"), 200, seed=0).shape == (200, 2)


@pytest.mark.parametrize("content, message", [
    ("", "empty"),
    ("a,b\n1,2\n", "no 'x' and 'y'"),
    ("x,y\n", "no points"),
    ("x,y\n1,2\n3,oops\n", "line 3"),
    ("x,y\n1,2,3\n", "fields"),
    ("x,y\n1,nan\n", "NaN or infinite"),
    ("x,y\n1e300,0\n", "rescale"),
])
def test_bad_csv_names_the_problem(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(InputError, match=message):
        read_points(path)


def test_bad_npy(tmp_path):
    np.save(tmp_path / "wrong.npy", np.zeros((4, 3)))
    (tmp_path / "garbage.npy").write_bytes(b"\x00\x01 not numpy")
    with pytest.raises(InputError, match=r"expected \(n, 2\)"):
        read_points(tmp_path / "wrong.npy")
    with pytest.raises(InputError, match="not a readable .npy"):
        read_points(tmp_path / "garbage.npy")
    with pytest.raises(InputError, match="no such file"):
        read_points(tmp_path / "missing.csv")


def test_a_point_file_is_used_as_given(tmp_path):
    """Never resampled with replacement: n = rows is a permutation of every row, more is whole passes, fewer a
    subset (which training says)."""
    pts = np.random.default_rng(0).normal(size=(100, 2)).astype(np.float32)
    path = tmp_path / "p.npy"
    np.save(path, pts)
    key = lambda a: sorted(map(tuple, a.tolist()))  # noqa: E731
    assert key(load_dataset(str(path), 100)) == key(pts)
    rows = load_dataset(str(path), 250)
    counts = {}
    for r in map(tuple, rows.tolist()):
        counts[r] = counts.get(r, 0) + 1
    assert len(counts) == 100 and sorted(set(counts.values())) == [2, 3] and sum(counts.values()) == 250
    assert len({tuple(r) for r in load_dataset(str(path), 60).tolist()}) == 60
    with pytest.warns(UserWarning, match="100 rows; training on a seeded subset of 60"):
        load_dataset(str(path), 60, training=True)


@pytest.mark.parametrize("content, message", [
    ("x y\n1 2\n", "use commas"),
    ("x;y\n1;2\n", "use commas"),
    ("x,y\n\n1,2\n3,nan\n", "line 4: '3,nan' is NaN or infinite"),
])
def test_csv_messages_name_the_fix_and_the_line(tmp_path, content, message):
    path = tmp_path / "p.csv"
    path.write_text(content)
    with pytest.raises(InputError, match=message):
        read_points(path)
