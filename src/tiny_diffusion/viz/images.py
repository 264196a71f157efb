"""Image figures and image files: sample grids, the step strip of the reverse process, one PNG per sample
(what pytorch-fid and clean-fid read), reading images back, and grid animations (GIF or MP4).

Images are numpy uint8 arrays (N, C, H, W) with C = 1 (grayscale) or 3 (RGB). A model's images are floats
x in [-1, 1], shown as pixels u = round((x + 1) * 127.5) clipped to [0, 255] (to_uint8). Pillow and numpy
only: torch and matplotlib are not imported here, so the module loads fast.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..errors import InputError

PAD = 2  # pixels between the images of a grid and around it: enough to tell neighbours apart
MIN_WIDTH = 256  # default scale: small images (28x28 digits) are upscaled until a figure is this wide
GAP = 4  # pixels between a label and the edge of its band
FLOAT_SLACK = 0.1  # read_images takes floats in [-1.1, 1.1]: an unclipped last sampling step overshoots a little
READ_SUFFIXES = (".png", ".jpg", ".jpeg")  # the files read_images takes from a folder
GRAY_MODES = ("1", "L", "LA", "La")  # Pillow modes read as one channel; any other 8-bit mode is read as RGB
DEEP_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")  # 16-bit and float pixels: refused, not clipped
SHAPES = {4: "(N, C, H, W)", 5: "(S, N, C, H, W)"}  # the layouts the functions here take


# ----------------------------------------------------------------------------- pixels and grids

def to_uint8(x) -> np.ndarray:
    """Pixels u = round((x + 1) * 127.5) clipped to [0, 255] for floats x in [-1, 1] (numpy or torch, on any
    device; halves round up, so 0 -> 128). uint8 input comes back unchanged. NaN -> 0: a diverged sample
    shows as black instead of stopping the figure."""
    if hasattr(x, "detach"):  # a torch tensor; torch itself is not imported here
        x = x.detach().cpu()
        x = x.numpy() if str(x.dtype) == "torch.uint8" else x.float().numpy()
    x = np.asarray(x)
    if x.dtype == np.uint8:
        return x
    if not np.issubdtype(x.dtype, np.floating):
        raise InputError(f"images of dtype {x.dtype}: expected floats in [-1, 1] or uint8 pixels; convert them first")
    u = np.floor((x.astype(np.float32) + 1.0) * 127.5 + 0.5)
    return np.clip(np.nan_to_num(u, nan=0.0), 0, 255).astype(np.uint8)


def make_grid(images, nrow: int | None = None, pad: int = PAD, scale: int = 1, pad_value: int = 255) -> np.ndarray:
    """Images (N, C, H, W) tiled row by row, nrow to a row (default ceil(sqrt(N)): near square), each upscaled
    `scale` times by nearest neighbour, with `pad` pixels of pad_value between them and around the border.
    Image k sits at row k // cols, column k % cols. Returns uint8 (H', W') for gray, (H', W', 3) for RGB, with
    H' = rows * (H * scale + pad) + pad and W' = cols * (W * scale + pad) + pad."""
    x = _images(images)
    n, c, h, w = x.shape
    cols, rows = _layout(n, nrow)
    pad, scale = _whole(pad, 0, "pad"), _whole(scale, 1, "scale")
    pad_value = _whole(pad_value, 0, "pad_value")
    if pad_value > 255:
        raise InputError(f"pad_value = {pad_value}: must be a pixel value 0..255")
    if scale > 1:
        x = x.repeat(scale, axis=2).repeat(scale, axis=3)  # (N, C, H * scale, W * scale)
        h, w = h * scale, w * scale
    grid = np.full((c, rows * (h + pad) + pad, cols * (w + pad) + pad), pad_value, np.uint8)  # (C, H', W')
    for k in range(n):
        top, left = pad + (k // cols) * (h + pad), pad + (k % cols) * (w + pad)
        grid[:, top:top + h, left:left + w] = x[k]
    return grid[0] if c == 1 else np.ascontiguousarray(grid.transpose(1, 2, 0))


def _images(x, what: str = "images", ndim: int = 4) -> np.ndarray:
    """x as uint8 of layout SHAPES[ndim] with C = 1 or 3 and no empty axis; InputError otherwise."""
    u = to_uint8(x)
    _check_shape(u.shape, what, ndim)
    return u


def _check_shape(shape: tuple, what: str, ndim: int = 4) -> None:
    if len(shape) != ndim or shape[-3] not in (1, 3) or 0 in shape:
        hint = "; for channels-last data use x.transpose(0, 3, 1, 2)" if len(shape) == 4 and shape[-1] in (1, 3) else ""
        raise InputError(f"{what}: shape {tuple(shape)}; expected {SHAPES[ndim]} with C = 1 (gray) or 3 (RGB){hint}")


def _layout(n: int, nrow: int | None) -> tuple[int, int]:
    """(columns, rows) of a grid of n images with nrow to a row (default ceil(sqrt(n)))."""
    cols = math.isqrt(n - 1) + 1 if nrow is None else min(_whole(nrow, 1, "nrow"), n)
    return cols, -(-n // cols)


def _auto_scale(w: int, cols: int, pad: int = PAD) -> int:
    """The smallest whole s >= 1 with cols * (w * s + pad) + pad >= MIN_WIDTH: small images become readable."""
    return max(1, math.ceil((MIN_WIDTH - pad - cols * pad) / (cols * w)))


def _whole(value, low: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise InputError(f"{name} = {value!r}: must be a whole number >= {low}")
    return int(value)


def _pil(chw: np.ndarray) -> Image.Image:
    """One uint8 image (C, H, W) as a Pillow image: mode L for C = 1, RGB for C = 3."""
    return Image.fromarray(np.ascontiguousarray(chw[0] if chw.shape[0] == 1 else chw.transpose(1, 2, 0)))


# ----------------------------------------------------------------------------- text

@functools.lru_cache(maxsize=1)
def _font():
    return ImageFont.load_default()  # built into Pillow: no font file needed


def _text_box(text: str) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of text drawn at (0, 0)."""
    return ImageDraw.Draw(Image.new("L", (1, 1))).textbbox((0, 0), text, font=_font())


def _text_width(text: str) -> int:
    left, _, right, _ = _text_box(text)
    return right - left


def _top_band(img: Image.Image, texts: list[str], centers: list[float], sizing: list[str] = ()) -> Image.Image:
    """img below a white band holding texts[i] centred at x = centers[i], on one baseline. The band fits
    `sizing` too, so frames with different titles get bands of one height."""
    boxes = [_text_box(t) for t in [*texts, *sizing, "Ag"]]
    top = min(b[1] for b in boxes)
    band = max(b[3] for b in boxes) - top + 2 * GAP
    out = Image.new(img.mode, (img.width, img.height + band), "white")
    out.paste(img, (0, band))
    draw = ImageDraw.Draw(out)
    for text, cx, (left, _, right, _) in zip(texts, centers, boxes):
        draw.text((round(cx - (left + right) / 2), GAP - top), text, fill="black", font=_font())
    return out


def _left_margin(img: Image.Image, texts: list[str], centers: list[float]) -> Image.Image:
    """img right of a white margin holding texts[i] right-aligned and centred at y = centers[i]."""
    boxes = [_text_box(t) for t in texts]
    margin = max(right - left for left, _, right, _ in boxes) + 2 * GAP
    out = Image.new(img.mode, (img.width + margin, img.height), "white")
    out.paste(img, (margin, 0))
    draw = ImageDraw.Draw(out)
    for text, cy, (_, top, right, bottom) in zip(texts, centers, boxes):
        draw.text((margin - GAP - right, round(cy - (top + bottom) / 2)), text, fill="black", font=_font())
    return out


def _widen(img: Image.Image, width: int) -> Image.Image:
    """img centred on a white canvas `width` wide (at least its own width)."""
    if width <= img.width:
        return img
    out = Image.new(img.mode, (width, img.height), "white")
    out.paste(img, ((width - img.width) // 2, 0))
    return out


# ----------------------------------------------------------------------------- writing files

def _output(path) -> Path:
    """path with its parent folders made; InputError naming it when it is a folder or cannot be made."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a folder; give a file name inside it, e.g. {path / 'grid.png'}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # a regular file on the way, no permission, a read-only disk...
        raise InputError(f"{path}: cannot create its folder ({e.strerror or type(e).__name__}); "
                         f"choose a path in a writable folder") from None
    return path


def _atomic(path: Path, write) -> Path:
    """write(tmp) to a temporary file beside path, then rename it over path: a reader (or a crash) sees the
    old file or the new one, never half of one. InputError naming path when the folder is not writable."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise InputError(f"{path}: cannot write it ({e.strerror or type(e).__name__}); "
                             f"choose a path in a writable folder") from None
        raise
    return path


def _pillow_format(path: Path) -> str:
    """The Pillow format that writes path's suffix (.png -> PNG); InputError for one Pillow cannot write."""
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None or fmt not in Image.SAVE:
        raise InputError(f"{path}: cannot write images of type {path.suffix or '(no suffix)'!r}; use .png")
    return fmt


def save_grid(images, path, nrow: int | None = None, scale: int | None = None,
              labels: list[str] | None = None) -> Path:
    """The grid of images (make_grid) saved as PNG, or any format Pillow writes by suffix, with labels[r]
    (e.g. a class name) left of row r when given. scale defaults to the smallest whole number that makes
    the grid at least MIN_WIDTH pixels wide."""
    x = _images(images)
    path = Path(path)
    fmt = _pillow_format(path)
    cols, rows = _layout(len(x), nrow)
    if labels is not None and len(labels) != rows:
        raise InputError(f"labels: {len(labels)} given for a grid of {rows} rows; give one label per row")
    scale = _auto_scale(x.shape[3], cols) if scale is None else _whole(scale, 1, "scale")
    img = Image.fromarray(make_grid(x, cols, PAD, scale))
    if labels is not None:
        h = x.shape[2] * scale
        img = _left_margin(img, [str(t) for t in labels], [PAD + r * (h + PAD) + h / 2 for r in range(rows)])
    return _atomic(_output(path), lambda tmp: img.save(tmp, format=fmt))


def save_class_grid(images, labels, classes: list[str], path, per_row: int | None = None) -> Path:
    """A grid with one row per requested class (in order of first appearance), named on the left: row r holds
    that class's images in order, at most per_row of them (default all); shorter rows end in blank cells."""
    x, labels = _images(images), np.asarray(labels)
    if len(labels) != len(x):
        raise InputError(f"labels: {len(labels)} for {len(x)} images; give one label per image")
    order = list(dict.fromkeys(labels.tolist()))
    rows = [x[labels == k][:per_row] for k in order]
    cols = max(len(r) for r in rows)
    blank = np.full((cols, *x.shape[1:]), 255, np.uint8)
    tiles = np.concatenate([np.concatenate([r, blank[:cols - len(r)]]) for r in rows])
    return save_grid(tiles, path, nrow=cols, labels=[classes[k] for k in order])


def save_png_folder(images, dir: Path, start: int = 0) -> list[Path]:
    """One PNG per image in folder `dir`, named {start:06d}.png, {start + 1:06d}.png, ...: grayscale as
    mode L, RGB as RGB, which pytorch-fid and clean-fid read. Existing files of those names are replaced.
    Returns the paths in image order."""
    x = _images(images)
    start = _whole(start, 0, "start")
    folder = Path(dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # a regular file of that name, no permission...
        raise InputError(f"{folder}: cannot create this folder ({e.strerror or type(e).__name__}); "
                         f"choose a writable folder") from None
    paths = []
    for i, chw in enumerate(x):
        path = folder / f"{start + i:06d}.png"
        try:
            _pil(chw).save(path, format="PNG")
        except OSError as e:
            raise InputError(f"{path}: cannot write it ({e.strerror or type(e).__name__}); "
                             f"choose a writable folder") from None
        paths.append(path)
    return paths


# ----------------------------------------------------------------------------- reading images

def read_images(path) -> np.ndarray:
    """uint8 images (N, C, H, W) from a folder of PNG/JPG files (sorted by name; if some are RGB, gray ones
    join them as RGB) or from a .npy of uint8 or of floats in [-1, 1] (what `sample --out x.npy` writes).
    InputError naming the file and the fix for anything else."""
    path = Path(path)
    if path.is_dir():
        return _read_folder(path)
    if path.is_file() and path.suffix.lower() == ".npy":
        return _read_npy(path)
    what = "no such file or folder" if not path.exists() else "not a folder or a .npy file"
    raise InputError(f"{path}: {what}; pass a folder of PNG/JPG images or a .npy array (N, C, H, W)")


def _read_folder(folder: Path) -> np.ndarray:
    try:
        files = sorted(p for p in folder.iterdir()
                       if p.suffix.lower() in READ_SUFFIXES and not p.name.startswith(".") and p.is_file())
    except OSError as e:
        raise InputError(f"{folder}: cannot list this folder ({e.strerror or type(e).__name__}); "
                         f"check its permissions") from None
    if not files:
        raise InputError(f"{folder}: no .png or .jpg files; put the images in this folder (sub-folders are not read)")
    images = []  # (C, H, W) each
    for path in files:
        chw = _read_image(path)
        if images and chw.shape[1:] != images[0].shape[1:]:
            (h0, w0), (h, w) = images[0].shape[1:], chw.shape[1:]
            raise InputError(f"{path}: {w}x{h} pixels but {files[0].name} is {w0}x{h0}; "
                             f"resize the images to one size")
        images.append(chw)
    c = max(chw.shape[0] for chw in images)
    return np.stack([np.repeat(chw, c // chw.shape[0], axis=0) for chw in images])  # (N, C, H, W)


def _read_image(path: Path) -> np.ndarray:
    """The pixels (C, H, W) of one image file, C = 1 for gray modes and 3 otherwise (alpha dropped)."""
    try:
        with Image.open(path) as im:
            im.load()  # decode now: a truncated file fails here, not later
            if im.mode in DEEP_MODES:
                raise InputError(f"{path}: {im.mode} pixels (16-bit or float); save the images as 8-bit PNG or JPG")
            im = im.convert("L" if im.mode in GRAY_MODES else "RGB")
    except InputError:
        raise
    except Exception as e:  # Pillow raises OSError, ValueError, SyntaxError, DecompressionBombError...
        raise InputError(f"{path}: not a readable image ({type(e).__name__}); replace or remove this file") from None
    a = np.asarray(im)
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


def _read_npy(path: Path) -> np.ndarray:
    try:
        x = np.load(path, allow_pickle=False)
    except Exception as e:  # numpy raises ValueError, OSError, EOFError, UnicodeDecodeError...
        raise InputError(f"{path}: not a readable .npy array ({type(e).__name__}); save one with numpy.save") from None
    if not isinstance(x, np.ndarray):
        x.close()
        raise InputError(f"{path}: holds several arrays (an .npz archive); save one array with numpy.save")
    _check_shape(x.shape, str(path))
    if x.dtype != np.uint8 and not np.issubdtype(x.dtype, np.floating):
        raise InputError(f"{path}: array of dtype {x.dtype}; expected floats in [-1, 1] or uint8 pixels")
    if x.dtype != np.uint8:
        bad = ~np.isfinite(x).reshape(len(x), -1).all(axis=1)  # (N,): images with a NaN or Inf
        if bad.any():
            raise InputError(f"{path}: image {int(np.flatnonzero(bad)[0])} has NaN or infinite values; "
                             f"drop it or sample it again")
        if x.min() < -1 - FLOAT_SLACK or x.max() > 1 + FLOAT_SLACK:
            raise InputError(f"{path}: values from {x.min():.4g} to {x.max():.4g}; expected floats in [-1, 1] "
                             f"(e.g. x / 127.5 - 1 for 0..255 pixels) or uint8")
    return to_uint8(x)


# ----------------------------------------------------------------------------- figures over steps

def process_strip(trajectory, path, labels: list[str], scale: int | None = None) -> Path:
    """The reverse-process figure: trajectory (S, N, C, H, W) of N samples at S steps, one row per sample and
    one column per step, labels[s] (e.g. "t = 999") above column s; saved as PNG (or Pillow's format for the
    suffix). scale defaults to the smallest whole number that makes the figure MIN_WIDTH wide and every
    column as wide as its label."""
    traj = _images(trajectory, "trajectory", ndim=5)
    steps, n, c, h, w = traj.shape
    if len(labels) != steps:
        raise InputError(f"labels: {len(labels)} given for {steps} steps; give one label per step")
    path = Path(path)
    fmt = _pillow_format(path)
    labels = [str(t) for t in labels]
    if scale is None:
        widest = max(_text_width(t) for t in labels)
        scale = max(_auto_scale(w, steps), math.ceil((widest + GAP - PAD) / w))
    scale = _whole(scale, 1, "scale")
    by_sample = traj.transpose(1, 0, 2, 3, 4).reshape(n * steps, c, h, w)  # (N * S, C, H, W): row = sample
    grid = Image.fromarray(make_grid(by_sample, steps, PAD, scale))
    cw = w * scale
    img = _top_band(grid, labels, [PAD + j * (cw + PAD) + cw / 2 for j in range(steps)])
    return _atomic(_output(path), lambda tmp: img.save(tmp, format=fmt))


def animate_grids(frames, path, titles: list[str] | None = None, fps: int = 10, hold_last: float = 1.0) -> Path:
    """An animation of frames (F, N, C, H, W): frame f is the grid of its N images with titles[f] above it.
    A GIF (Pillow, looping forever), or an MP4 through ffmpeg when path ends in .mp4. Each frame lasts 1 / fps
    seconds, the last one max(1 / fps, hold_last) so the result can be seen. Returns path."""
    x = _images(frames, "frames", ndim=5)
    n_frames, n, c, h, w = x.shape
    if titles is not None and len(titles) != n_frames:
        raise InputError(f"titles: {len(titles)} given for {n_frames} frames; give one title per frame")
    path = check_animation(path, fps, hold_last)
    cols, _ = _layout(n, None)
    scale = _auto_scale(w, cols)
    images = [Image.fromarray(make_grid(frame, cols, PAD, scale)) for frame in x]
    if titles is not None:
        titles = [str(t) for t in titles]
        width = max(images[0].width, max(_text_width(t) for t in titles) + 2 * GAP)
        images = [_top_band(_widen(im, width), [t], [width / 2], titles) for im, t in zip(images, titles)]
    return save_animation(images, path, fps, hold_last)


def check_animation(path, fps, hold_last) -> Path:
    """InputError unless path is a .gif (or a .mp4 with ffmpeg on PATH), fps a whole number >= 1 and
    hold_last seconds >= 0: checked before any frame is drawn. Returns path as a Path."""
    path = Path(path)
    if path.suffix.lower() not in (".gif", ".mp4"):
        raise InputError(f"{path}: cannot write animations of type {path.suffix or '(no suffix)'!r}; use .gif or .mp4")
    _whole(fps, 1, "fps")
    if isinstance(hold_last, bool) or not isinstance(hold_last, (int, float)) or not 0 <= hold_last < math.inf:
        raise InputError(f"hold_last = {hold_last!r}: must be a number of seconds >= 0")
    if path.suffix.lower() == ".mp4" and shutil.which("ffmpeg") is None:
        raise InputError(f"{path}: MP4 needs ffmpeg on PATH; install it or write a .gif")
    return path


def save_animation(images: list[Image.Image], path, fps: int = 10, hold_last: float = 1.0) -> Path:
    """Pillow images of one size as an animation, written atomically: a GIF looping forever, or an MP4
    through ffmpeg when path ends in .mp4. Each frame lasts 1 / fps seconds, the last one
    max(1 / fps, hold_last). Returns path."""
    path = _output(check_animation(path, fps, hold_last))
    if path.suffix.lower() == ".gif":
        ms = [round(1000 / fps)] * (len(images) - 1) + [round(1000 * max(1 / fps, hold_last))]
        return _atomic(path, lambda tmp: images[0].save(tmp, format="GIF", save_all=True,
                                                        append_images=images[1:], duration=ms, loop=0))
    repeats = max(1, round(hold_last * fps))  # frames showing the last image
    try:
        return _atomic(path, lambda tmp: _write_mp4(images + images[-1:] * (repeats - 1), tmp, fps,
                                                    shutil.which("ffmpeg")))
    except subprocess.CalledProcessError as e:
        why = (e.stderr or "").strip().splitlines()
        raise InputError(f"{path}: ffmpeg failed ({why[-1] if why else f'exit code {e.returncode}'}); "
                         f"write a .gif instead") from None


def _write_mp4(images: list[Image.Image], out: Path, fps: int, ffmpeg: str) -> None:
    """H.264-compatible MP4 (yuv420p, sides padded to even sizes) of images at fps, through ffmpeg."""
    with tempfile.TemporaryDirectory() as tmp:
        for i, im in enumerate(images):
            im.save(Path(tmp) / f"{i:05d}.png")
        subprocess.run([ffmpeg, "-y", "-loglevel", "error", "-framerate", str(fps), "-i", str(Path(tmp) / "%05d.png"),
                        "-pix_fmt", "yuv420p", "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-f", "mp4", str(out)],
                       check=True, capture_output=True, text=True)
