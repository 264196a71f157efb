"""viz.images: grid geometry and pixel placement, the [-1, 1] -> uint8 map, PNG folder and .npy round trips,
hostile inputs to read_images, and the files written by process_strip and animate_grids."""

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tiny_diffusion.errors import InputError
from tiny_diffusion.viz import animate
from tiny_diffusion.viz import images as vi


def constant_images(values, c=1, h=4, w=3):
    """(N, C, H, W) uint8, image k filled with values[k]."""
    return np.array(values, np.uint8)[:, None, None, None] * np.ones((1, c, h, w), np.uint8)


def one_line(err):
    msg = str(err.value)
    assert "\n" not in msg and "Traceback" not in msg
    return msg


# ----------------------------------------------------------------------------- to_uint8

def test_to_uint8_known_values_and_clipping():
    x = np.array([-1.0, 1.0, 0.0, -3.0, 7.5, -np.inf, np.inf, np.nan, 1 / 127.5 - 1, 0.5 / 127.5 - 1])
    assert vi.to_uint8(x).tolist() == [0, 255, 128, 0, 255, 0, 255, 0, 1, 1]  # last: a half rounds up


def test_to_uint8_inverts_the_pixel_scaling_exactly():
    u = np.arange(256, dtype=np.uint8)
    for dtype in (np.float16, np.float32, np.float64):
        assert np.array_equal(vi.to_uint8((u / 127.5 - 1).astype(dtype)), u), dtype


def test_to_uint8_passes_uint8_through_and_refuses_other_integers():
    u = np.arange(256, dtype=np.uint8).reshape(4, 1, 8, 8)
    assert vi.to_uint8(u) is u
    with pytest.raises(InputError):
        vi.to_uint8(np.arange(10))


def test_to_uint8_on_torch_tensors_matches_numpy():
    torch = pytest.importorskip("torch")
    x = torch.linspace(-1.2, 1.2, 1001)
    assert np.array_equal(vi.to_uint8(x), vi.to_uint8(x.numpy()))
    assert np.array_equal(vi.to_uint8(x.to(torch.bfloat16)), vi.to_uint8(x.to(torch.bfloat16).float().numpy()))
    u = torch.arange(256, dtype=torch.uint8)
    assert np.array_equal(vi.to_uint8(u), np.arange(256))
    assert np.array_equal(vi.to_uint8(x.requires_grad_()), vi.to_uint8(x.detach().numpy()))


# ----------------------------------------------------------------------------- make_grid

@pytest.mark.parametrize("n, nrow, pad, scale, cols, rows", [
    (5, 3, 2, 2, 3, 2), (6, 2, 0, 1, 2, 3), (1, None, 3, 4, 1, 1), (10, None, 1, 1, 4, 3), (16, None, 2, 1, 4, 4),
    (3, 8, 2, 1, 3, 1),  # nrow beyond N: one row of N
])
def test_make_grid_size(n, nrow, pad, scale, cols, rows):
    h, w = 4, 3  # not square: catches a swap of height and width
    g = vi.make_grid(constant_images(range(n), h=h, w=w), nrow=nrow, pad=pad, scale=scale)
    assert g.shape == (rows * (h * scale + pad) + pad, cols * (w * scale + pad) + pad)


def test_make_grid_places_image_k_at_row_k_div_cols_column_k_mod_cols():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 200, (5, 1, 4, 3), dtype=np.uint8)  # pixel values < 200: never the pad value
    pad, s, cols = 2, 3, 3
    g = vi.make_grid(x, nrow=cols, pad=pad, scale=s, pad_value=255)
    h, w = 4 * s, 3 * s
    covered = np.zeros(g.shape, bool)
    for k in range(5):
        top, left = pad + (k // cols) * (h + pad), pad + (k % cols) * (w + pad)
        block = g[top:top + h, left:left + w]
        assert np.array_equal(block, np.kron(x[k, 0], np.ones((s, s), np.uint8))), k  # nearest neighbour
        covered[top:top + h, left:left + w] = True
    assert (g[~covered] == 255).all()  # padding, border and the empty sixth cell


def test_make_grid_rgb_keeps_channels_and_gray_is_2d():
    x = np.zeros((2, 3, 5, 5), np.uint8)
    x[:, 0], x[:, 1], x[:, 2] = 10, 20, 30
    g = vi.make_grid(x, nrow=2, pad=1, pad_value=7)
    assert g.shape == (7, 13, 3)
    assert g[1, 1].tolist() == [10, 20, 30] and g[0, 0].tolist() == [7, 7, 7]
    assert Image.fromarray(g).mode == "RGB"
    assert Image.fromarray(vi.make_grid(x[:, :1])).mode == "L"


@pytest.mark.parametrize("bad", [np.zeros((4, 28, 28), np.uint8), np.zeros((2, 2, 8, 8), np.uint8),
                                 np.zeros((0, 1, 8, 8), np.uint8), np.zeros((2, 8, 8, 3), np.uint8)])
def test_make_grid_refuses_wrong_shapes(bad):
    with pytest.raises(InputError):
        vi.make_grid(bad)


@pytest.mark.parametrize("kw", [{"scale": 0}, {"pad": -1}, {"nrow": 0}, {"scale": 1.5}, {"pad_value": 300}])
def test_make_grid_refuses_bad_numbers(kw):
    with pytest.raises(InputError):
        vi.make_grid(constant_images([1, 2]), **kw)


# ----------------------------------------------------------------------------- save_grid

def test_save_grid_default_scale_is_the_smallest_reaching_min_width(tmp_path):
    x = constant_images([0, 50, 100, 150], h=8, w=8)
    out = vi.save_grid(x, tmp_path / "new" / "deeper" / "grid.png")  # missing folders are made
    im = Image.open(out)
    cols, pad = 2, vi.PAD
    width = lambda s: cols * (8 * s + pad) + pad  # noqa: E731
    assert im.width >= vi.MIN_WIDTH > width((im.width - pad) // cols // 8 - 1)  # one step smaller falls short
    assert im.size == (width(16), width(16)) and im.mode == "L"
    assert sorted(p.name for p in out.parent.iterdir()) == ["grid.png"]  # no temporary file left behind


def test_save_grid_labels_add_a_left_margin_with_text(tmp_path):
    x = constant_images(range(0, 240, 40), c=3, h=8, w=8)
    plain = Image.open(vi.save_grid(x, tmp_path / "a.png", nrow=3, scale=2))
    labelled = np.asarray(Image.open(vi.save_grid(x, tmp_path / "b.png", nrow=3, scale=2, labels=["cat", "dog"])))
    margin = labelled.shape[1] - plain.width
    assert margin > 0 and labelled.shape[0] == plain.height
    assert np.array_equal(labelled[:, margin:], np.asarray(plain))  # the grid itself, unchanged, at the right
    assert (labelled[:, :margin] < 128).any()  # dark text in the margin
    with pytest.raises(InputError):
        vi.save_grid(x, tmp_path / "c.png", nrow=3, labels=["only one"])


def test_save_grid_other_pillow_formats_and_unknown_suffix(tmp_path):
    x = constant_images([0, 255], c=3, h=8, w=8)
    assert Image.open(vi.save_grid(x, tmp_path / "g.jpg")).format == "JPEG"
    with pytest.raises(InputError) as err:
        vi.save_grid(x, tmp_path / "g.xyz")
    assert "g.xyz" in one_line(err)


# ----------------------------------------------------------------------------- PNG folders and read_images

@pytest.mark.parametrize("c, mode", [(1, "L"), (3, "RGB")])
def test_png_folder_round_trip_is_bit_exact(tmp_path, c, mode):
    x = np.random.default_rng(c).integers(0, 256, (7, c, 9, 6), dtype=np.uint8)
    paths = vi.save_png_folder(x, tmp_path / "pngs", start=95)
    assert [p.name for p in paths] == [f"{i:06d}.png" for i in range(95, 102)]
    assert Image.open(paths[0]).mode == mode and Image.open(paths[0]).size == (6, 9)
    back = vi.read_images(tmp_path / "pngs")
    assert back.dtype == np.uint8 and np.array_equal(back, x)


def test_read_images_folder_is_sorted_by_name_and_promotes_gray_to_rgb(tmp_path):
    Image.fromarray(np.full((4, 4, 3), (1, 2, 3), np.uint8)).save(tmp_path / "b.png")
    Image.fromarray(np.full((4, 4), 9, np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(np.full((4, 4, 4), 200, np.uint8)).save(tmp_path / "c.png")  # RGBA: alpha dropped
    (tmp_path / "notes.txt").write_text("ignored")
    x = vi.read_images(tmp_path)
    assert x.shape == (3, 3, 4, 4)
    assert x[:, :, 0, 0].tolist() == [[9, 9, 9], [1, 2, 3], [200, 200, 200]]


def test_npy_float_round_trip_within_quantisation(tmp_path):
    x = np.random.default_rng(1).uniform(-1, 1, (5, 3, 8, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    u = vi.read_images(tmp_path / "x.npy")
    assert u.dtype == np.uint8 and u.shape == x.shape
    assert np.abs(u / 127.5 - 1 - x).max() <= 1 / 255 + 1e-6  # half a quantisation step


def test_npy_uint8_passes_through(tmp_path):
    x = np.random.default_rng(2).integers(0, 256, (3, 1, 5, 5), dtype=np.uint8)
    np.save(tmp_path / "x.npy", x)
    assert np.array_equal(vi.read_images(tmp_path / "x.npy"), x)


def _write_hostile(tmp_path: Path, kind: str) -> Path:
    if kind == "empty dir":
        (tmp_path / "empty").mkdir()
        return tmp_path / "empty"
    if kind == "mixed sizes":
        (tmp_path / "m").mkdir()
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "m" / "a.png")
        Image.fromarray(np.zeros((8, 9), np.uint8)).save(tmp_path / "m" / "b.png")
        return tmp_path / "m"
    if kind == "text named png":
        (tmp_path / "t").mkdir()
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "t" / "a.png")
        (tmp_path / "t" / "x.png").write_text("not an image")
        return tmp_path / "t"
    if kind == "truncated png":
        (tmp_path / "tr").mkdir()
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)).save(tmp_path / "x.png")
        (tmp_path / "tr" / "x.png").write_bytes((tmp_path / "x.png").read_bytes()[:200])
        return tmp_path / "tr"
    if kind == "16-bit png":
        (tmp_path / "d").mkdir()
        Image.fromarray(np.full((8, 8), 4000, np.uint16)).save(tmp_path / "d" / "a.png")
        return tmp_path / "d"
    arrays = {
        "nan": np.where(np.arange(64).reshape(1, 1, 8, 8) == 5, np.nan, 0.0) * np.ones((2, 1, 1, 1)),
        "2d array": np.zeros((100, 2), np.float32),
        "out of range floats": np.full((2, 1, 8, 8), 200.0, np.float32),
        "channels last": np.zeros((2, 8, 8, 3), np.float32),
        "int64": np.zeros((2, 1, 8, 8), np.int64),
        "no images": np.zeros((0, 1, 8, 8), np.float32),
    }
    if kind in arrays:
        np.save(tmp_path / "x.npy", arrays[kind])
        return tmp_path / "x.npy"
    if kind == "garbage npy":
        (tmp_path / "x.npy").write_bytes(b"\x93NUMPY garbage")
        return tmp_path / "x.npy"
    if kind == "missing":
        return tmp_path / "nope"
    if kind == "csv file":
        (tmp_path / "x.csv").write_text("x,y\n1,2\n")
        return tmp_path / "x.csv"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["empty dir", "mixed sizes", "text named png", "truncated png", "16-bit png", "nan",
                                  "2d array", "out of range floats", "channels last", "int64", "no images",
                                  "garbage npy", "missing", "csv file"])
def test_read_images_hostile_inputs_raise_one_line_input_error(tmp_path, kind):
    path = _write_hostile(tmp_path, kind)
    with pytest.raises(InputError) as err:
        vi.read_images(path)
    assert str(tmp_path) in one_line(err)  # names the folder or the file at fault


def test_read_images_names_the_bad_file_and_image(tmp_path):
    with pytest.raises(InputError, match=r"x\.png"):
        vi.read_images(_write_hostile(tmp_path, "text named png"))
    with pytest.raises(InputError, match="image 0 "):
        vi.read_images(_write_hostile(tmp_path, "nan"))


def test_read_images_takes_a_slight_overshoot_of_samples(tmp_path):
    np.save(tmp_path / "x.npy", np.array([-1.05, 1.05, 0.0], np.float32).reshape(1, 1, 1, 3))
    assert vi.read_images(tmp_path / "x.npy").ravel().tolist() == [0, 255, 128]


# ----------------------------------------------------------------------------- process_strip

def test_process_strip_rows_are_samples_and_columns_are_steps(tmp_path):
    steps, n, s, h, w = 4, 3, 2, 6, 5
    value = lambda j, i: 10 * j + 50 * i  # noqa: E731  step j, sample i
    traj = np.stack([constant_images([value(j, i) for i in range(n)], c=3, h=h, w=w) for j in range(steps)])
    out = vi.process_strip(traj, tmp_path / "strip.png", [f"t = {t}" for t in (999, 666, 333, 0)], scale=s)
    im = np.asarray(Image.open(out))
    grid_h, grid_w = n * (h * s + vi.PAD) + vi.PAD, steps * (w * s + vi.PAD) + vi.PAD
    band = im.shape[0] - grid_h
    assert im.shape[1] == grid_w and band > 0
    for i in range(n):
        for j in range(steps):
            cy = band + vi.PAD + i * (h * s + vi.PAD) + h * s // 2
            cx = vi.PAD + j * (w * s + vi.PAD) + w * s // 2
            assert im[cy, cx].tolist() == [value(j, i)] * 3, (i, j)
    assert (im[:band] < 128).any()  # the step labels


def test_process_strip_default_scale_fits_labels_and_min_width(tmp_path):
    traj = np.random.default_rng(0).uniform(-1, 1, (3, 2, 1, 8, 8))
    labels = ["t = 999", "t = 500", "t = 0"]
    im = Image.open(vi.process_strip(traj, tmp_path / "s.png", labels))
    scale = (im.width - vi.PAD) // 3 // 8
    assert im.width == 3 * (8 * scale + vi.PAD) + vi.PAD >= vi.MIN_WIDTH
    assert 8 * scale + vi.PAD >= max(vi._text_width(t) for t in labels)
    with pytest.raises(InputError):
        vi.process_strip(traj, tmp_path / "s.png", labels[:2])


# ----------------------------------------------------------------------------- animate_grids

def gif_frames(path):
    im = Image.open(path)
    durations, sizes = [], set()
    for i in range(im.n_frames):
        im.seek(i)
        durations.append(im.info["duration"])
        sizes.add(im.size)
    return im, durations, sizes


def test_animate_grids_gif_frames_durations_and_hold(tmp_path):
    frames = np.stack([constant_images([v] * 4, h=8, w=8) for v in (0, 60, 120, 180, 240)])  # distinct frames
    out = vi.animate_grids(frames, tmp_path / "a" / "anim.gif", titles=[f"t = {t}" for t in range(5)],
                           fps=10, hold_last=1.5)
    im, durations, sizes = gif_frames(out)
    assert im.n_frames == 5 and durations == [100, 100, 100, 100, 1500]
    assert im.info["loop"] == 0 and len(sizes) == 1
    grid_w = 2 * (8 * vi._auto_scale(8, 2) + vi.PAD) + vi.PAD
    assert im.width == grid_w and im.height > grid_w  # the title band on top


def test_animate_grids_without_titles_is_the_bare_grid_and_short_hold_keeps_frame_time(tmp_path):
    frames = np.stack([constant_images([v] * 9, c=3, h=4, w=4) for v in (10, 90, 170)])
    im, durations, sizes = gif_frames(vi.animate_grids(frames, tmp_path / "b.gif", fps=5, hold_last=0))
    side = 3 * (4 * vi._auto_scale(4, 3) + vi.PAD) + vi.PAD
    assert durations == [200, 200, 200] and sizes == {(side, side)}


def test_animate_grids_refuses_bad_arguments(tmp_path, monkeypatch):
    frames = np.zeros((2, 1, 1, 4, 4), np.uint8)
    for kw in ({"titles": ["one"]}, {"fps": 0}, {"hold_last": -1.0}, {"hold_last": float("nan")}):
        with pytest.raises(InputError):
            vi.animate_grids(frames, tmp_path / "a.gif", **kw)
    with pytest.raises(InputError):
        vi.animate_grids(frames, tmp_path / "a.avi")
    monkeypatch.setattr(animate.shutil, "which", lambda name: None)
    with pytest.raises(InputError, match="ffmpeg") as err:
        vi.animate_grids(frames, tmp_path / "a.mp4")
    one_line(err)


FAKE_FFMPEG = """#!{python}
import glob, os, sys
args = sys.argv[1:]
if {fail}:
    sys.exit("Unknown encoder 'libx264'")
pattern = args[args.index("-i") + 1]
frames = sorted(glob.glob(os.path.join(os.path.dirname(pattern), "*.png")))
open(args[-1], "w").write(f"{{len(frames)}} {{args[args.index('-framerate') + 1]}}")
"""


@pytest.mark.parametrize("fail", [False, True])
def test_animate_grids_mp4_through_a_stand_in_ffmpeg(tmp_path, monkeypatch, fail):
    """The frames ffmpeg gets (the last one repeated for the hold), the atomic rename, and ffmpeg's failure."""
    fake = tmp_path / "bin" / "ffmpeg"
    fake.parent.mkdir()
    fake.write_text(FAKE_FFMPEG.format(python=sys.executable, fail=fail))
    fake.chmod(0o755)
    monkeypatch.setattr(animate.shutil, "which", lambda name: str(fake))
    frames = np.stack([constant_images([v] * 4, h=7, w=7) for v in (0, 100, 200)])
    out = tmp_path / "out" / "a.mp4"
    if fail:
        with pytest.raises(InputError, match="ffmpeg failed .*libx264") as err:
            vi.animate_grids(frames, out, fps=8, hold_last=0.5)
        one_line(err)
        assert list(out.parent.iterdir()) == []  # no half-written file
        return
    assert vi.animate_grids(frames, out, fps=8, hold_last=0.5) == out
    assert out.read_text() == "6 8"  # 2 frames, then the last one 0.5 s * 8 fps = 4 times
    assert sorted(p.name for p in out.parent.iterdir()) == ["a.mp4"]


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")
def test_animate_grids_mp4(tmp_path):
    frames = np.stack([constant_images([v] * 4, h=7, w=7) for v in (0, 100, 200)])
    out = vi.animate_grids(frames, tmp_path / "a.mp4", titles=["a", "b", "c"], fps=10, hold_last=0.5)
    assert out.stat().st_size > 0 and out.read_bytes()[4:8] == b"ftyp"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4"]


# ----------------------------------------------------------------------------- unwritable outputs

WRITERS = {
    "save_grid": lambda x, p: vi.save_grid(x, p.with_suffix(".png")),
    "process_strip": lambda x, p: vi.process_strip(x[None], p.with_suffix(".png"), ["t = 0"]),
    "animate_grids": lambda x, p: vi.animate_grids(x[None], p.with_suffix(".gif")),
    "save_png_folder": lambda x, p: vi.save_png_folder(x, p),
}


@pytest.mark.parametrize("where", ["under a regular file", "a folder", "/proc"])
@pytest.mark.parametrize("writer", list(WRITERS))
def test_unwritable_output_paths_raise_one_line_input_error_naming_them(tmp_path, writer, where):
    (tmp_path / "file.txt").write_text("a regular file")
    for suffix in (".png", ".gif"):
        (tmp_path / f"out{suffix}").mkdir()
    if where == "/proc" and not Path("/proc/self").is_dir():
        pytest.skip("no /proc here")
    path = {"under a regular file": tmp_path / "file.txt" / "out", "a folder": tmp_path / "out",
            "/proc": Path("/proc/tiny-diffusion-out")}[where]
    if writer == "save_png_folder" and where == "a folder":
        path = tmp_path / "file.txt"  # the folder's name is taken by a regular file
    with pytest.raises(InputError) as err:
        WRITERS[writer](constant_images([0, 100], h=4, w=4), path)
    assert str(path) in one_line(err)
