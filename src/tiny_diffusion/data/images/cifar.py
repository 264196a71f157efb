"""CIFAR-10, binary version: reading its batch files, and finding, checking, downloading and extracting them."""

from __future__ import annotations

import tarfile
import zlib
from pathlib import Path, PurePosixPath

import numpy as np

from ...errors import InputError
from ..download import fetch
from .imageset import cache_root
from .published import CHECKSUMS, CIFAR_ARCHIVE, CIFAR_TEST, CIFAR_TRAIN, MIRRORS, check_local, data_dir_needs

CIFAR_RECORD = 1 + 3 * 32 * 32  # bytes: the label, then the red, green and blue 32x32 planes, rows in order
VERIFIED = "VERIFIED.md5"  # written beside batch files extracted from a checksum-true archive


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


def cifar_arrays(data_dir: Path | None, log):
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
                check_local("cifar10", archive)
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


def _write_atomic(path: Path, data: bytes) -> None:
    from ...fileio import atomic_write

    atomic_write(path, lambda f: f.write(data))
