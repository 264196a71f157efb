"""Image data sets as uint8 arrays of shape (n, C, H, W): MNIST, Fashion-MNIST, CIFAR-10 and folders of images.

A built-in set is read from `data_dir` when its files are there (raw or .gz, as they are), else downloaded
once into cache_root()/<name>/ and checked against the published checksums. A folder of images is decoded
once (resized on the shorter side, center-cropped) into cache_root()/folders/<hash>.npz, so that the next
run with the same files and settings starts at once. Everything stays uint8 on the CPU: the training loop
moves it to the device once and scales it there.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
import struct
import sys
import tarfile
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, ImageOps

from ...errors import InputError
from ..download import fetch, file_digest
from ..image_names import IMAGE_DATASETS

CACHE_ENV = "TINY_DIFFUSION_DATA"  # where downloads and decoded folders are cached
MAX_IMAGE_SIZE = 2048  # pixels per side; beyond this a DDPM on one machine is out of reach anyway
MAX_PIXELS = 1 << 26  # 67 megapixels (8192 x 8192): a bigger header is a decompression bomb or no training image
DEFAULT_FOLDER_SIZE = 64  # pixels, for a folder whose images differ in size
FOLDER_CACHE_VERSION = 1  # bump whenever decoding changes, so that older caches are not reused
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif")
MAX_SCAN_ENTRIES = 5_000_000  # ImageNet's train set has 1.3M files; more suggests --dataset / or a home folder
MAX_IDX_BYTES = 1 << 33  # 8 GiB: no IDX data set comes near; a header claiming more is corrupt

# Base URLs tried in order (or $TINY_DIFFUSION_MIRROR alone); tests patch these tables.
MIRRORS = {
    "mnist": ["https://ossci-datasets.s3.amazonaws.com/mnist/",
              "https://storage.googleapis.com/cvdf-datasets/mnist/"],
    "fashion-mnist": ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                      "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"],
    "cifar10": ["https://www.cs.toronto.edu/~kriz/"],
}
# The published MD5s of the files as downloaded (the .gz files; CIFAR-10's binary archive).
CHECKSUMS = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
    "cifar10": {"cifar-10-binary.tar.gz": "c32a1d4ab5d03f1284b67883e8d87530"},
}
CLASSES = {
    "mnist": [str(d) for d in range(10)],
    "fashion-mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
    "cifar10": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
}
FLIP = {"mnist": False, "fashion-mnist": False, "cifar10": True}  # mirrored digits/letters are other symbols
IDX_SPLITS = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
              "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
TORCHVISION_DIRS = {"mnist": "MNIST/raw", "fashion-mnist": "FashionMNIST/raw"}  # reuse an existing download
CIFAR_ARCHIVE = "cifar-10-binary.tar.gz"
CIFAR_TRAIN = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
CIFAR_TEST = "test_batch.bin"
CIFAR_RECORD = 1 + 3 * 32 * 32  # bytes: the label, then the red, green and blue 32x32 planes, rows in order
VERIFIED = "VERIFIED.md5"  # written beside batch files extracted from a checksum-true archive


def print_to_stderr(message: str) -> None:
    print(message, file=sys.stderr)


@dataclass
class ImageSet:
    """An image data set in memory, uint8 throughout."""

    train: np.ndarray  # (n, C, H, W) uint8
    train_labels: np.ndarray | None  # (n,) int64, or None for a folder without >= 2 class subfolders
    test: np.ndarray | None  # (m, C, H, W) uint8 held-out split, or None
    test_labels: np.ndarray | None  # (m,) int64 or None
    classes: list[str] | None  # class names, index = label
    flip: bool  # the default of --flip: True for photos and CIFAR, False for digits and Fashion-MNIST
    name: str  # a short key for caches: "mnist", "cifar10-c1-s16", "folder-<hash>"


def cache_root() -> Path:
    """$TINY_DIFFUSION_DATA, else ~/.cache/tiny-diffusion."""
    env = os.environ.get(CACHE_ENV, "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "tiny-diffusion"


def load_images(name: str, data_dir: str | Path | None = None, image_size: int | None = None,
                channels: int | None = None, log=print_to_stderr) -> ImageSet:
    """The image set `name` (a built-in name or a folder path), at `image_size` pixels square and `channels`.

    image_size None keeps a built-in set's own size (28 or 32) and, for a folder, the images' common size
    (min(h, w)) or 64 when they differ; channels None keeps grayscale as 1 channel and colour as 3.
    """
    _check_size_and_channels(image_size, channels)
    if name in IMAGE_DATASETS:
        return _load_builtin(name, Path(data_dir) if data_dir else None, image_size, channels, log)
    if os.path.isdir(name):
        return _load_folder(Path(name), image_size, channels, log)
    raise InputError(f"--dataset {name}: neither a built-in image set nor a folder; "
                     f"use one of {', '.join(IMAGE_DATASETS)} or the path of a folder of images")


def _check_size_and_channels(image_size, channels) -> None:
    if image_size is not None and (isinstance(image_size, bool) or not isinstance(image_size, int)
                                   or not 1 <= image_size <= MAX_IMAGE_SIZE):
        raise InputError(f"--image-size: {image_size!r}; use a whole number of pixels from 1 to {MAX_IMAGE_SIZE}, "
                         f"e.g. 32")
    if channels not in (None, 1, 3):
        raise InputError(f"--channels: {channels!r}; use 1 (grayscale) or 3 (RGB)")


# ---------------------------------------------------------------------------------------------------------------
# IDX files (MNIST, Fashion-MNIST)


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


# ---------------------------------------------------------------------------------------------------------------
# CIFAR-10, binary version


def read_cifar_binary(paths) -> tuple[np.ndarray, np.ndarray]:
    """Images (n, 3, 32, 32) uint8 and labels (n,) int64 from CIFAR-10 binary batch files (one path or many).

    Each record is 3073 bytes: the label 0..9, then 1024 red, 1024 green and 1024 blue bytes, each plane
    row by row.
    """
    paths = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
    records = []
    for path in paths:
        try:
            raw = np.fromfile(path, dtype=np.uint8)
        except OSError as e:
            raise InputError(f"{path}: cannot read ({e.strerror}); check the CIFAR-10 binary files") from None
        if raw.size == 0 or raw.size % CIFAR_RECORD:
            raise InputError(f"{path}: {raw.size} bytes is not a whole number of {CIFAR_RECORD}-byte CIFAR-10 records; "
                             f"use the binary version's data_batch_*.bin / test_batch.bin, complete")
        rec = raw.reshape(-1, CIFAR_RECORD)
        if rec[:, 0].max() > 9:
            raise InputError(f"{path}: label {rec[:, 0].max()} is outside 0..9; only CIFAR-10's binary version "
                             f"(not CIFAR-100) is supported")
        records.append(rec)
    rec = np.concatenate(records)
    images = np.ascontiguousarray(rec[:, 1:]).reshape(-1, 3, 32, 32)  # (n, 3, 32, 32)
    return images, rec[:, 0].astype(np.int64)


# ---------------------------------------------------------------------------------------------------------------
# Built-in sets: find local files, else download into the cache


def _load_builtin(name: str, data_dir: Path | None, image_size, channels, log) -> ImageSet:
    if name == "cifar10":
        train, train_labels, test, test_labels = _cifar_arrays(data_dir, log)
    else:
        train, train_labels, test, test_labels = _idx_arrays(name, data_dir, log)
    native = (train.shape[1], train.shape[2])
    train = _fit_builtin(train, image_size, channels)
    test = None if test is None else _fit_builtin(test, image_size, channels)
    key = name if (train.shape[1], train.shape[2]) == native else f"{name}-c{train.shape[1]}-s{train.shape[2]}"
    return ImageSet(train, train_labels, test, test_labels, list(CLASSES[name]), FLIP[name], key)


def _idx_arrays(name: str, data_dir: Path | None, log):
    """(train, train_labels, test, test_labels) of an IDX set; the test parts None when absent."""
    train_stem = IDX_SPLITS["train"][0]
    if data_dir is not None and _find_idx(data_dir, name, train_stem):
        paths = {stem: _find_idx(data_dir, name, stem) for stems in IDX_SPLITS.values() for stem in stems}
        for path in paths.values():
            if path is not None:
                _check_local(name, path, log)
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


def data_dir_needs(name: str) -> str:
    """The files a --data-dir folder must hold for the built-in set `name`, in words (for error messages)."""
    if name == "cifar10":
        return f"{CIFAR_ARCHIVE} (or the {', '.join(CIFAR_TRAIN)} and {CIFAR_TEST} inside it)"
    train, test = (", ".join(f"{stem}.gz" for stem in stems) for stems in IDX_SPLITS.values())
    return f"{name}'s {train} (and {test} for the test split; .gz or unpacked)"


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
                raise
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


def _cifar_arrays(data_dir: Path | None, log):
    """(train, train_labels, test, test_labels) of CIFAR-10; the test parts None when test_batch.bin is absent."""
    folder = _find_cifar(data_dir) if data_dir is not None else None
    if folder is None:
        if data_dir is not None:
            log(f"cifar10: no data_batch_*.bin or {CIFAR_ARCHIVE} in {data_dir}; using the download cache")
        folder = _fetch_cifar(log)
    train_files = [folder / f for f in CIFAR_TRAIN if (folder / f).is_file()]
    if len(train_files) < len(CIFAR_TRAIN):
        log(f"cifar10: training on {len(train_files)} of the {len(CIFAR_TRAIN)} data_batch files in {folder}")
    train, train_labels = read_cifar_binary(train_files)
    test, test_labels = read_cifar_binary(folder / CIFAR_TEST) if (folder / CIFAR_TEST).is_file() else (None, None)
    return train, train_labels, test, test_labels


def _find_cifar(data_dir: Path) -> Path | None:
    """The folder under data_dir holding data_batch_1.bin, extracting a cifar-10-binary.tar.gz found there."""
    for folder in (data_dir, data_dir / "cifar10", data_dir / "cifar-10-batches-bin",
                   data_dir / "cifar10" / "cifar-10-batches-bin"):
        if (folder / CIFAR_TRAIN[0]).is_file():
            return folder
    for archive in (data_dir / CIFAR_ARCHIVE, data_dir / "cifar10" / CIFAR_ARCHIVE):
        if archive.is_file():
            dest = cache_root() / "cifar10"
            if not _has_cifar_batches(dest):  # extracted once, like a download, and only if it is the published one
                _check_local("cifar10", archive)
                _extract_cifar(archive, dest)
            return dest
    return None


def _fetch_cifar(log) -> Path:
    """cache_root()/cifar10 with the six batch files, downloading and extracting the archive the first time."""
    dest = cache_root() / "cifar10"
    if _has_cifar_batches(dest):
        return dest
    archive = fetch(CIFAR_ARCHIVE, MIRRORS["cifar10"], CHECKSUMS["cifar10"][CIFAR_ARCHIVE], dest, log,
                    needs=data_dir_needs("cifar10"))
    _extract_cifar(archive, dest)
    archive.unlink()  # the extracted .bin files (written only from a checksum-true archive) are all we read again
    return dest


def _has_cifar_batches(folder: Path) -> bool:
    """The cache holds batch files extracted from a checksum-true archive (the marker says so: an older version
    extracted --data-dir archives unchecked, and those are downloaded again rather than trusted)."""
    return (folder / VERIFIED).is_file() and all((folder / f).is_file() for f in CIFAR_TRAIN + (CIFAR_TEST,))


def _extract_cifar(archive: Path, dest: Path) -> None:
    """Copy the batch files out of the archive into dest, by base name only (no paths from the archive are used)."""
    wanted = set(CIFAR_TRAIN + (CIFAR_TEST,))
    dest.mkdir(parents=True, exist_ok=True)
    found = set()
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                base = PurePosixPath(member.name).name
                if base in wanted and member.isfile():
                    _write_atomic(dest / base, tar.extractfile(member).read())
                    found.add(base)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise InputError(f"{archive}: cannot read the archive ({type(e).__name__}: {e}); get it again") from None
    if CIFAR_TRAIN[0] not in found:
        raise InputError(f"{archive}: no {CIFAR_TRAIN[0]} inside; use CIFAR-10's binary version {CIFAR_ARCHIVE}")
    _write_atomic(dest / VERIFIED, f"{CHECKSUMS['cifar10'][CIFAR_ARCHIVE]}  {CIFAR_ARCHIVE}\n".encode())


def _check_local(name: str, path: Path, log=None) -> None:
    """A file of `name` found in --data-dir, checked against the published MD5 of its file name (the .gz and
    archive names have one; unpacked files are used unchecked). Another data set's file (MNIST's given as
    Fashion-MNIST's) is refused; CIFAR-10's archive must match, as it is extracted into the shared cache; any
    other IDX .gz that matches nothing (a file of one's own) is used after a log line."""
    canonical = path.name.replace(".idx", "-idx")  # train-images.idx3-ubyte.gz, as some unpackers name it
    published = CHECKSUMS[name].get(canonical)
    if published is None:
        return
    digest = file_digest(path, "md5")
    if digest == published:
        return
    other = next((n for n, sums in CHECKSUMS.items() if n != name and digest in sums.values()), None)
    if other is not None:
        raise InputError(f"{path}: this is {other}'s file (its published MD5), not {name}'s; use --dataset {other}, "
                         f"or point --data-dir at {name}'s files")
    if name == "cifar10":
        raise InputError(f"{path}: MD5 {digest} is not the published {published} (incomplete or another file); get "
                         f"it again, or unpack its {CIFAR_TRAIN[0]}... into --data-dir yourself")
    if log is not None:
        log(f"{path}: not the published {name} file (MD5 {digest}, published {published}); used as it is")


def _fit_builtin(images: np.ndarray, image_size: int | None, channels: int | None) -> np.ndarray:
    """images (n, C, H, W) cropped to their central square, converted to `channels` and resized to image_size."""
    h, w = images.shape[2:]
    if h != w:  # an IDX file of the user's own may not be square
        m = min(h, w)
        images = images[:, :, (h - m) // 2:(h - m) // 2 + m, (w - m) // 2:(w - m) // 2 + m]
    if channels == 1 and images.shape[1] == 3:
        images = _luminance(images)
    elif channels == 3 and images.shape[1] == 1:
        images = np.repeat(images, 3, axis=1)
    if image_size is None or images.shape[2:] == (image_size, image_size):
        return images
    return _resize_batch(images, image_size)


def _resize_batch(images: np.ndarray, size: int, batch: int = 4096) -> np.ndarray:
    """Square images (n, C, H, H) -> (n, C, size, size), as Pillow's LANCZOS resize does each (within 1 level).

    Separable: rows then columns by the same (size, H) weight matrix, rounded to uint8 after each pass like
    Pillow; vectorised, so a 60000-image set takes about a second instead of several of per-image calls.
    """
    w = _lanczos_matrix(images.shape[2], size)
    out = np.empty(images.shape[:2] + (size, size), dtype=np.uint8)  # (n, C, size, size)
    for i in range(0, len(images), batch):
        rows = np.clip(np.rint(images[i:i + batch].astype(np.float32) @ w.T), 0, 255)  # (b, C, H, size)
        out[i:i + batch] = np.clip(np.rint(w @ rows), 0, 255)
    return out


def _lanczos_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) Lanczos-3 weights; when shrinking the kernel is widened by n_in / n_out (antialiasing).

    Output pixel i is centred at (i + 1/2) n_in / n_out in input coordinates, input pixel j at j + 1/2;
    w_ij = L((j + 1/2 - centre_i) / s) with s = max(n_in / n_out, 1), L(t) = sinc(t) sinc(t / 3) on |t| < 3,
    each row normalised to sum 1 (which also renormalises at the borders).
    """
    scale = n_in / n_out
    centres = (np.arange(n_out) + 0.5) * scale
    t = ((np.arange(n_in) + 0.5)[None, :] - centres[:, None]) / max(scale, 1.0)  # (n_out, n_in)
    w = np.sinc(t) * np.sinc(t / 3) * (np.abs(t) < 3)
    return (w / w.sum(axis=1, keepdims=True)).astype(np.float32)


def _luminance(images: np.ndarray) -> np.ndarray:
    """(n, 3, H, W) RGB -> (n, 1, H, W) gray by ITU-R 601 luma L = 0.299 R + 0.587 G + 0.114 B (as Pillow)."""
    r, g, b = (images[:, i:i + 1].astype(np.uint32) for i in range(3))
    return ((r * 299 + g * 587 + b * 114 + 500) // 1000).astype(np.uint8)


def _square(im: Image.Image, size: int) -> np.ndarray:
    """The central min(w, h) square of `im`, resized to size x size; (C, size, size) uint8.

    When the shorter side already is `size` the pixels are cropped unchanged; otherwise the square is resampled
    with Lanczos (antialiased when shrinking).
    """
    w, h = im.size
    m = min(w, h)
    if m == size:
        left, top = (w - size) // 2, (h - size) // 2
        im = im.crop((left, top, left + size, top + size))
    else:
        box = ((w - m) / 2, (h - m) / 2, (w + m) / 2, (h + m) / 2)
        im = im.resize((size, size), Image.Resampling.LANCZOS, box=box)
    arr = np.asarray(im, dtype=np.uint8)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)  # (C, size, size)


# ---------------------------------------------------------------------------------------------------------------
# Folders of images


class _Unreadable(Exception):
    """A file that is not a usable image; the message is the reason, in a few words."""


def _load_folder(root: Path, image_size: int | None, channels: int | None, log) -> ImageSet:
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
            return _square(_to_mode(im, "L" if channels == 1 else "RGB"), size)
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


def _write_atomic(path: Path, data: bytes) -> None:
    from ...fileio import atomic_write

    atomic_write(path, lambda f: f.write(data))
