"""Folders of images: the scan (class subfolders become labels), decoding each file once (upright, alpha on
white, centre square resized), and the decoded folder's cache in cache_root()/folders/<hash>.npz."""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, ImageOps

from ...errors import InputError
from .imageset import ImageSet, cache_root
from .resize import square

MAX_PIXELS = 1 << 26  # 67 megapixels (8192 x 8192): a bigger header is a decompression bomb or no training image
DEFAULT_FOLDER_SIZE = 64  # pixels, for a folder whose images differ in size
FOLDER_CACHE_VERSION = 1  # bump whenever decoding changes, so that older caches are not reused
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif")
MAX_SCAN_ENTRIES = 5_000_000  # ImageNet's train set has 1.3M files; more suggests --dataset / or a home folder


class _Unreadable(Exception):
    """A file that is not a usable image; the message is the reason, in a few words."""


def load_folder(root: Path, image_size: int | None, channels: int | None, log) -> ImageSet:
    files = _scan(root)
    if not files:
        raise InputError(f"{root}: no image files ({', '.join(s[1:] for s in IMAGE_SUFFIXES)}) in the folder "
                         f"or its subfolders; point --dataset at a folder of images")
    key = _folder_key(root, files, image_size, channels)
    cache = cache_root() / "folders" / f"{key}.npz"
    cached = _read_folder_cache(cache, f"folder-{key[:12]}")
    if cached is not None:
        imageset, notes = cached
        for note in notes:  # the same warnings as the run that decoded the folder
            log(note)
        return imageset
    notes = []
    classes = sorted({PurePosixPath(f).parts[0] for f in files if len(PurePosixPath(f).parts) > 1})
    classes = classes if len(classes) >= 2 else None
    loose = [f for f in files if len(PurePosixPath(f).parts) == 1]
    if classes is not None and loose:
        notes.append(f"{root}: skipped {len(loose)} image(s) outside the class subfolders ({loose[0]}, ...), "
                     f"which have no class")
        files = [f for f in files if len(PurePosixPath(f).parts) > 1]
    log(f"{root}: decoding {len(files)} images once; cached in {cache}")
    images, labels, skip_note = _decode_folder(root, files, classes, image_size, channels)
    notes += [skip_note] if skip_note else []
    for note in notes:
        log(note)
    _write_folder_cache(cache, images, labels, classes, notes, log)
    return ImageSet(images, labels, None, None, classes, True, f"folder-{key[:12]}")


def _scan(root: Path) -> list[str]:
    """Relative POSIX paths of the image files under root, sorted; hidden names skipped.

    Directory symlinks are followed, but each real directory is entered once, so a symlink loop ends.
    """
    stack, seen, found, visited = [str(root)], {os.path.realpath(root)}, [], 0
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:  # unreadable subfolder: nothing to take from it
            continue
        visited += len(entries)
        if visited > MAX_SCAN_ENTRIES:
            raise InputError(f"{root}: more than {MAX_SCAN_ENTRIES:,} files and folders below it; point --dataset at "
                             f"the folder of images itself")
        for entry in entries:
            if entry.name.startswith("."):  # .git, .ipynb_checkpoints, macOS ._name.jpg resource forks
                continue
            try:
                if entry.is_dir():
                    real = os.path.realpath(entry.path)
                    if real not in seen:
                        seen.add(real)
                        stack.append(entry.path)
                elif entry.is_file() and os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES:
                    found.append(Path(os.path.relpath(entry.path, root)).as_posix())
            except OSError:  # a dangling or looping symlink
                continue
    return sorted(found)


def _folder_key(root: Path, files: list[str], image_size, channels) -> str:
    """sha256 over the files' relative paths, sizes and mtimes and the settings: any change gives a new key."""
    listing = []
    for rel in files:
        try:
            st = os.stat(root / rel)
            listing.append([rel, st.st_size, st.st_mtime_ns])
        except OSError:
            listing.append([rel, -1, -1])
    blob = json.dumps([FOLDER_CACHE_VERSION, image_size, channels, listing])
    return hashlib.sha256(blob.encode()).hexdigest()


def _none_readable(root: Path, n_files: int, skipped: list, verb: str) -> InputError:
    rel, reason = skipped[0]
    return InputError(f"{root}: none of the {n_files} image files could be {verb} (first: {rel}: {reason}); "
                      f"check that they open in an image viewer")


def _decode_folder(root: Path, files: list[str], classes, image_size, channels):
    """(images (n, C, S, S) uint8, labels (n,) int64 or None, a note on skipped files or '')."""
    skipped, probed = [], []
    for rel in files:
        try:
            probed.append((rel, *_probe(root / rel)))
        except _Unreadable as e:
            skipped.append((rel, str(e)))
    if not probed:
        raise _none_readable(root, len(files), skipped, "read")
    sizes = {min(w, h) for _, w, h, _ in probed}
    same = len({(w, h) for _, w, h, _ in probed}) == 1
    size = image_size or (sizes.pop() if same else DEFAULT_FOLDER_SIZE)
    channels = channels or (1 if all(gray for *_, gray in probed) else 3)
    images = np.empty((len(probed), channels, size, size), dtype=np.uint8)  # (n, C, S, S)
    kept = []
    for rel, *_ in probed:
        try:
            images[len(kept)] = _decode(root / rel, size, channels)
            kept.append(rel)
        except _Unreadable as e:
            skipped.append((rel, str(e)))
    if not kept:
        raise _none_readable(root, len(files), skipped, "decoded")
    images = images[:len(kept)] if len(kept) == len(images) else images[:len(kept)].copy()
    labels = None
    if classes is not None:
        index = {c: i for i, c in enumerate(classes)}
        labels = np.array([index[PurePosixPath(rel).parts[0]] for rel in kept], dtype=np.int64)
    note = ""
    if skipped:
        rel, reason = sorted(skipped)[0]
        note = f"{root}: skipped {len(skipped)} unreadable image file(s), the first {rel}: {reason}"
    return images, labels, note


GRAY_MODES = ("1", "L", "LA", "La", "I", "F") + ("I;16", "I;16L", "I;16B", "I;16N")


def _probe(path: Path) -> tuple[int, int, bool]:
    """(width, height, is_gray) from the header alone."""
    with _open(path) as im:
        return im.width, im.height, im.mode in GRAY_MODES


def _decode(path: Path, size: int, channels: int) -> np.ndarray:
    """The image at path as (channels, size, size) uint8: upright, alpha on white, center square resized."""
    try:
        with _open(path) as im:
            im = ImageOps.exif_transpose(im)  # phone photos store their rotation in EXIF
            return square(_to_mode(im, "L" if channels == 1 else "RGB"), size)
    except _Unreadable:
        raise
    except Exception as e:  # Pillow raises OSError, SyntaxError, ValueError, struct.error... on broken data
        raise _Unreadable(f"{type(e).__name__}: {e}") from None


def _open(path: Path) -> Image.Image:
    """The image at path, opened but not decoded; refused if its header claims more than MAX_PIXELS."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise _Unreadable(f"decompression bomb refused ({e})") from None
    except Exception as e:  # UnidentifiedImageError, OSError, SyntaxError... on files that are not images
        raise _Unreadable(f"{type(e).__name__}: {e}") from None
    if im.width * im.height > MAX_PIXELS:
        im.close()
        raise _Unreadable(f"header claims {im.width}x{im.height} pixels, over the {MAX_PIXELS} limit; "
                          f"refused undecoded (decompression bomb?)")
    return im


def _to_mode(im: Image.Image, mode: str) -> Image.Image:
    """im as 'L' or 'RGB': 16-bit gray scaled to 8 bits, palette expanded, transparency composited on white."""
    if im.mode.startswith("I;16"):  # Pillow's convert would clip 16-bit values at 255
        im = Image.fromarray(np.round(np.asarray(im, dtype=np.float64) / 257).astype(np.uint8))
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info:
        rgba = im.convert("RGBA")
        im = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    if im.mode == "P":
        im = im.convert("RGB")
    return im if im.mode == mode else im.convert(mode)


def _read_folder_cache(path: Path, name: str):
    """(ImageSet, notes) from a folder cache file, or None when there is none or it cannot be read."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            images = z["images"]
            labels = z["labels"] if bool(z["has_labels"]) else None
            classes = [str(c) for c in z["classes"]] if bool(z["has_labels"]) else None
            notes = [str(n) for n in z["notes"]]
    except Exception:  # a damaged or older cache is rebuilt, never trusted
        return None
    return ImageSet(images, labels, None, None, classes, True, name), notes


def _write_folder_cache(path: Path, images, labels, classes, notes: list[str], log) -> None:
    """Save the decoded folder atomically (temp file, then rename); a failure only costs the next run time."""
    from ...fileio import atomic_write

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda f: np.savez(f, images=images, has_labels=np.array(labels is not None),
                                              labels=labels if labels is not None else np.zeros(0, np.int64),
                                              classes=np.array(classes or [], dtype=str),
                                              notes=np.array(notes, dtype=str)))
    except OSError as e:
        log(f"{path}: could not write the folder cache ({e.strerror}); the next run decodes again")
