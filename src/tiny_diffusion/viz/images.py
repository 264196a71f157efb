"""Image figures: sample grids (with class names), the step strip of the reverse process, one PNG per sample
(what pytorch-fid and clean-fid read) and grid animations. Files are read back by image_files.read_images
(re-exported here) and animations written by animate.

Images are numpy uint8 arrays (N, C, H, W) with C = 1 (grayscale) or 3 (RGB). A model's images are floats
x in [-1, 1], shown as pixels u = round((x + 1) * 127.5) clipped to [0, 255] (to_uint8). Pillow and numpy
only: torch and matplotlib are not imported here, so the module loads fast.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..errors import InputError
from .animate import check_animation, save_animation
from .image_files import checked_images, output_path, pillow_format, whole, write_atomic
from .image_files import read_images, to_uint8  # noqa: F401  (re-exported: callers written before the split)

PAD = 2  # pixels between the images of a grid and around it: enough to tell neighbours apart
MIN_WIDTH = 256  # default scale: small images (28x28 digits) are upscaled until a figure is this wide...
CLASS_ROW = 10  # a class's images in one row up to this many (a conditional run's samples.png: 10 per class)
MIN_CELL = 56  # ...and each image this tall: a 28-pixel digit at twice its size, a 32-pixel CIFAR photo too
GAP = 4  # pixels between a label and the edge of its band


# ----------------------------------------------------------------------------- grids


def make_grid(images, nrow: int | None = None, pad: int = PAD, scale: int = 1, pad_value: int = 255) -> np.ndarray:
    """Images (N, C, H, W) tiled row by row, nrow to a row (default ceil(sqrt(N)): near square), each upscaled
    `scale` times by nearest neighbour, with `pad` pixels of pad_value between them and around the border.
    Image k sits at row k // cols, column k % cols. Returns uint8 (H', W') for gray, (H', W', 3) for RGB, with
    H' = rows * (H * scale + pad) + pad and W' = cols * (W * scale + pad) + pad."""
    x = checked_images(images)
    n, c, h, w = x.shape
    cols, rows = _layout(n, nrow)
    pad, scale = whole(pad, 0, "pad"), whole(scale, 1, "scale")
    pad_value = whole(pad_value, 0, "pad_value")
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


def _layout(n: int, nrow: int | None) -> tuple[int, int]:
    """(columns, rows) of a grid of n images with nrow to a row (default ceil(sqrt(n)))."""
    cols = math.isqrt(n - 1) + 1 if nrow is None else min(whole(nrow, 1, "nrow"), n)
    return cols, -(-n // cols)


def _auto_scale(w: int, cols: int, pad: int = PAD) -> int:
    """The smallest whole s >= 1 with cols * (w * s + pad) + pad >= MIN_WIDTH and w * s >= MIN_CELL: small
    images become readable (a 10-column grid of digits: 602 pixels wide, not 302)."""
    return max(1, math.ceil((MIN_WIDTH - pad - cols * pad) / (cols * w)), math.ceil(MIN_CELL / w))


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


def save_grid(images, path, nrow: int | None = None, scale: int | None = None,
              labels: list[str] | None = None) -> Path:
    """The grid of images (make_grid) saved as PNG, or any format Pillow writes by suffix, with labels[r]
    (e.g. a class name) left of row r when given. scale defaults to the smallest whole number that makes
    the grid at least MIN_WIDTH pixels wide."""
    x = checked_images(images)
    path = Path(path)
    fmt = pillow_format(path)
    cols, rows = _layout(len(x), nrow)
    if labels is not None and len(labels) != rows:
        raise InputError(f"labels: {len(labels)} given for a grid of {rows} rows; give one label per row")
    scale = _auto_scale(x.shape[3], cols) if scale is None else whole(scale, 1, "scale")
    img = Image.fromarray(make_grid(x, cols, PAD, scale))
    if labels is not None:
        h = x.shape[2] * scale
        img = _left_margin(img, [str(t) for t in labels], [PAD + r * (h + PAD) + h / 2 for r in range(rows)])
    return write_atomic(output_path(path), lambda tmp: img.save(tmp, format=fmt))


def save_class_grid(images, labels, classes: list[str], path, per_row: int | None = None) -> Path:
    """A grid of the requested classes (in order of first appearance), each named left of its first row: a class's
    images in order, per_row to a row (default: the most any class has, up to CLASS_ROW, so 10 classes of 10 make
    10 rows of 10; beyond, as many as a near-square grid of all the images has columns: 64 of one class make 8 rows
    of 8, not a strip); a class's last row ends in blank cells."""
    x, labels = checked_images(images), np.asarray(labels)
    if len(labels) != len(x):
        raise InputError(f"labels: {len(labels)} for {len(x)} images; give one label per image")
    order = list(dict.fromkeys(labels.tolist()))
    per_class = [x[labels == k] for k in order]
    longest = max(len(c) for c in per_class)
    if per_row is not None:
        cols = min(whole(per_row, 1, "per_row"), longest)
    else:
        cols = longest if longest <= CLASS_ROW else _layout(len(x), None)[0]
    blank = np.full((cols, *x.shape[1:]), 255, np.uint8)
    tiles, names = [], []
    for k, images_k in zip(order, per_class):
        rows = -(-len(images_k) // cols)
        tiles += [images_k, blank[:rows * cols - len(images_k)]]
        names += [classes[k]] + [""] * (rows - 1)
    return save_grid(np.concatenate(tiles), path, nrow=cols, labels=names)


def save_png_folder(images, dir: Path, start: int = 0) -> list[Path]:
    """One PNG per image in folder `dir`, named {start:06d}.png, {start + 1:06d}.png, ...: grayscale as
    mode L, RGB as RGB, which pytorch-fid and clean-fid read. Existing files of those names are replaced.
    Returns the paths in image order."""
    x = checked_images(images)
    start = whole(start, 0, "start")
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


# ----------------------------------------------------------------------------- figures over steps

def process_strip(trajectory, path, labels: list[str], scale: int | None = None) -> Path:
    """The reverse-process figure: trajectory (S, N, C, H, W) of N samples at S steps, one row per sample and
    one column per step, labels[s] (e.g. "t = 999") above column s; saved as PNG (or Pillow's format for the
    suffix). scale defaults to the smallest whole number that makes the figure MIN_WIDTH wide and every
    column as wide as its label."""
    traj = checked_images(trajectory, "trajectory", ndim=5)
    steps, n, c, h, w = traj.shape
    if len(labels) != steps:
        raise InputError(f"labels: {len(labels)} given for {steps} steps; give one label per step")
    path = Path(path)
    fmt = pillow_format(path)
    labels = [str(t) for t in labels]
    if scale is None:
        widest = max(_text_width(t) for t in labels)
        scale = max(_auto_scale(w, steps), math.ceil((widest + GAP - PAD) / w))
    scale = whole(scale, 1, "scale")
    by_sample = traj.transpose(1, 0, 2, 3, 4).reshape(n * steps, c, h, w)  # (N * S, C, H, W): row = sample
    grid = Image.fromarray(make_grid(by_sample, steps, PAD, scale))
    cw = w * scale
    img = _top_band(grid, labels, [PAD + j * (cw + PAD) + cw / 2 for j in range(steps)])
    return write_atomic(output_path(path), lambda tmp: img.save(tmp, format=fmt))


def animate_grids(frames, path, titles: list[str] | None = None, fps: int = 10, hold_last: float = 1.0) -> Path:
    """An animation of frames (F, N, C, H, W): frame f is the grid of its N images with titles[f] above it.
    A GIF (Pillow, looping forever), or an MP4 through ffmpeg when path ends in .mp4. Each frame lasts 1 / fps
    seconds, the last one max(1 / fps, hold_last) so the result can be seen. Returns path."""
    x = checked_images(frames, "frames", ndim=5)
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


