"""Image arrays in and out of files: to_uint8 (the one conversion of samples to pixels), the checks on image
arrays, writing an output file atomically, and the reader (read_images: a folder of PNG/JPG or a .npy).

Images are numpy uint8 arrays (N, C, H, W) with C = 1 (grayscale) or 3 (RGB). Pillow and numpy only.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import InputError

FLOAT_SLACK = 0.1  # read_images takes floats in [-1.1, 1.1]: an unclipped last sampling step overshoots a little
READ_SUFFIXES = (".png", ".jpg", ".jpeg")  # the files read_images takes from a folder
GRAY_MODES = ("1", "L", "LA", "La")  # Pillow modes read as one channel; any other 8-bit mode is read as RGB
DEEP_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")  # 16-bit and float pixels: refused, not clipped
SHAPES = {4: "(N, C, H, W)", 5: "(S, N, C, H, W)"}  # the layouts the functions here take


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


def checked_images(x, what: str = "images", ndim: int = 4) -> np.ndarray:
    """x as uint8 of layout SHAPES[ndim] with C = 1 or 3 and no empty axis; InputError otherwise."""
    u = to_uint8(x)
    check_shape(u.shape, what, ndim)
    return u


def check_shape(shape: tuple, what: str, ndim: int = 4) -> None:
    if len(shape) != ndim or shape[-3] not in (1, 3) or 0 in shape:
        hint = "; for channels-last data use x.transpose(0, 3, 1, 2)" if len(shape) == 4 and shape[-1] in (1, 3) else ""
        raise InputError(f"{what}: shape {tuple(shape)}; expected {SHAPES[ndim]} with C = 1 (gray) or 3 (RGB){hint}")


def whole(value, low: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise InputError(f"{name} = {value!r}: must be a whole number >= {low}")
    return int(value)


def output_path(path) -> Path:
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


def write_atomic(path: Path, write) -> Path:
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


def pillow_format(path: Path) -> str:
    """The Pillow format that writes path's suffix (.png -> PNG); InputError for one Pillow cannot write."""
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None or fmt not in Image.SAVE:
        raise InputError(f"{path}: cannot write images of type {path.suffix or '(no suffix)'!r}; use .png")
    return fmt

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
    check_shape(x.shape, str(path))
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
