"""IDX files (MNIST, Fashion-MNIST): reading and writing them, and finding or downloading a built-in set's four."""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from ...errors import InputError
from ..download import fetch
from .imageset import cache_root
from .published import CHECKSUMS, CLASSES, IDX_SPLITS, MIRRORS, OFFLINE, check_local, data_dir_needs

MAX_IDX_BYTES = 1 << 33  # 8 GiB: no IDX data set comes near; a header claiming more is corrupt
TORCHVISION_DIRS = {"mnist": "MNIST/raw", "fashion-mnist": "FashionMNIST/raw"}  # reuse an existing download


def read_idx(path: str | Path) -> np.ndarray:
    """The uint8 array in an IDX file, raw or gzip-compressed (detected from the content, not the name).

    Layout: two zero bytes, the type byte 0x08 (unsigned byte), the number of dimensions d, then d big-endian
    uint32 sizes, then the data in C order. The data length must match the sizes exactly.
    """
    path = Path(path)
    try:
        with _open_maybe_gzip(path) as f:
            head = f.read(4)
            if len(head) < 4:
                raise InputError(f"{path}: {len(head)} bytes, too short for an IDX header; the file is incomplete")
            if head[:2] != b"\0\0":
                raise InputError(f"{path}: not an IDX file (magic bytes {head[:4].hex()} do not start with 0000); "
                                 f"use the idx3-ubyte / idx1-ubyte files")
            if head[2] != 0x08:
                raise InputError(f"{path}: IDX data type 0x{head[2]:02x}, not 0x08 (unsigned byte); "
                                 f"only ubyte IDX files are supported")
            ndim = head[3]
            if not 1 <= ndim <= 4:
                raise InputError(f"{path}: IDX header says {ndim} dimensions; expected 1 (labels) or 3 (images)")
            raw_dims = f.read(4 * ndim)
            if len(raw_dims) < 4 * ndim:
                raise InputError(f"{path}: truncated IDX header; the file is incomplete, get it again")
            dims = struct.unpack(f">{ndim}I", raw_dims)
            count = math.prod(dims)
            if count > MAX_IDX_BYTES:
                raise InputError(f"{path}: IDX header claims {dims} = {count} bytes; the header is corrupt")
            data = _read_at_most(f, count + 1)
    except (OSError, EOFError, zlib.error) as e:  # unreadable, bad gzip, gzip cut short
        raise InputError(f"{path}: cannot read the IDX file ({type(e).__name__}: {e}); get the file again") from None
    if len(data) < count:
        raise InputError(f"{path}: truncated: {len(data)} of the {count} data bytes its header {dims} promises; "
                         f"the file is incomplete, get it again")
    if len(data) > count:
        raise InputError(f"{path}: more data than its header {dims} says; not a valid IDX file")
    return np.frombuffer(data, dtype=np.uint8).reshape(dims)


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write a uint8 array (images (n, H, W) or labels (n,)) as an IDX file; gzip-compressed if path ends in .gz."""
    array = np.asarray(array)
    if array.dtype != np.uint8 or not 1 <= array.ndim <= 4:
        raise ValueError(f"write_idx: need a uint8 array of 1 to 4 dimensions, got {array.dtype} {array.shape}")
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    path = Path(path)
    opener = (lambda: gzip.GzipFile(path, "wb", mtime=0)) if path.suffix == ".gz" else (lambda: open(path, "wb"))
    with opener() as f:
        f.write(header)
        f.write(np.ascontiguousarray(array).tobytes())


def _open_maybe_gzip(path: Path):
    with open(path, "rb") as f:
        is_gzip = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if is_gzip else open(path, "rb")


def _read_at_most(f, n: int) -> bytearray:
    """Up to n bytes from f, read in chunks so that a lying header cannot make us allocate n bytes at once."""
    data = bytearray()
    while len(data) < n and (chunk := f.read(min(n - len(data), 1 << 24))):
        data += chunk
    return data


def idx_arrays(name: str, data_dir: Path | None, log):
    """(train, train_labels, test, test_labels) of an IDX set; the test parts None when absent."""
    train_stem = IDX_SPLITS["train"][0]
    if data_dir is not None and _find_idx(data_dir, name, train_stem):
        paths = {stem: _find_idx(data_dir, name, stem) for stems in IDX_SPLITS.values() for stem in stems}
        for path in paths.values():
            if path is not None:
                check_local(name, path, log)
    else:
        if data_dir is not None:
            log(f"{name}: no {train_stem}[.gz] in {data_dir}; using the download cache {cache_root() / name}")
        paths = _fetch_idx(name, log)
    arrays = []
    for images_stem, labels_stem in IDX_SPLITS.values():
        images = labels = None
        if paths[images_stem] is not None:
            images = _idx_images(paths[images_stem])
            if paths[labels_stem] is not None:
                labels = _idx_labels(paths[labels_stem], paths[images_stem], len(images), len(CLASSES[name]))
        arrays += [images, labels]
    train, train_labels, test, _ = arrays
    if train_labels is None:
        log(f"{name}: no {IDX_SPLITS['train'][1]} beside {paths[train_stem]}; training without labels")
    if test is not None and test.shape[1:] != train.shape[1:]:
        raise InputError(f"{paths[IDX_SPLITS['test'][0]]}: test images of size {test.shape[2:]}, training images "
                         f"{train.shape[2:]}; use the test file of the same data set")
    return tuple(arrays)


def _find_idx(data_dir: Path, name: str, stem: str) -> Path | None:
    """data_dir's copy of an IDX file: raw or .gz, in data_dir, data_dir/<name>/ or torchvision's layout."""
    folders = [data_dir, data_dir / name] + ([data_dir / TORCHVISION_DIRS[name]] if name in TORCHVISION_DIRS else [])
    dotted = stem.replace("-idx", ".idx")  # train-images.idx3-ubyte, as some unpackers name it
    for folder in folders:
        for filename in (stem, stem + ".gz", dotted, dotted + ".gz"):
            if (folder / filename).is_file():
                return folder / filename
    return None


def _fetch_idx(name: str, log) -> dict[str, Path | None]:
    """The four IDX files in the cache, downloaded if needed; a test file that cannot be had is None."""
    dest, paths = cache_root() / name, dict.fromkeys(stem for stems in IDX_SPLITS.values() for stem in stems)
    for split, stems in IDX_SPLITS.items():
        try:
            for stem in stems:
                paths[stem] = fetch(stem + ".gz", MIRRORS[name], CHECKSUMS[name][stem + ".gz"], dest, log,
                                    needs=data_dir_needs(name))
        except InputError as e:
            if split == "train":
                raise InputError(f"{e}; {OFFLINE[name]}") if name in OFFLINE else e from None
            log(f"{name}: going on without the test split: {e}")
            paths.update(dict.fromkeys(stems))
    return paths


def _idx_images(path: Path) -> np.ndarray:
    images = read_idx(path)
    if images.ndim != 3 or images.shape[0] == 0:
        raise InputError(f"{path}: IDX array of shape {images.shape}; expected images (n, H, W) with n >= 1")
    return images[:, None]  # (n, 1, H, W)


def _idx_labels(path: Path, images_path: Path, n: int, n_classes: int) -> np.ndarray:
    labels = read_idx(path)
    if labels.ndim != 1 or len(labels) != n:
        raise InputError(f"{path}: labels of shape {labels.shape} for the {n} images in {images_path.name}; "
                         f"use the labels file that belongs to those images")
    if labels.max() >= n_classes:
        raise InputError(f"{path}: label {labels.max()} is not below {n_classes}; is this the right data set?")
    return labels.astype(np.int64)
