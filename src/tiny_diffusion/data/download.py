"""Fetching a published data file once into a cache, checked against its published checksum.

Each mirror is tried in turn; a dead mirror, an HTTP error, a truncated body or a wrong checksum moves on to
the next one. The file is written to a temporary name in the cache folder and renamed only once its checksum
is right, so an interrupted download never leaves a half file under the real name.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from ..errors import InputError

MIRROR_ENV = "TINY_DIFFUSION_MIRROR"  # one base URL used instead of the built-in mirrors (a local copy, tests)
TIMEOUT_S = 20  # seconds per connect and per read: a dead mirror costs at most this, a slow one keeps going
CHUNK = 1 << 20  # bytes read, written and hashed at a time
HASH_BY_LENGTH = {32: "md5", 64: "sha256"}  # a checksum's hex length says which hash it is


def checksum_algorithm(checksum: str) -> str:
    """'md5' or 'sha256', from the length of the hex `checksum`."""
    algorithm = HASH_BY_LENGTH.get(len(checksum))
    if algorithm is None:
        raise ValueError(f"checksum {checksum!r}: expected 32 (md5) or 64 (sha256) hex digits")
    return algorithm


def file_digest(path: str | Path, algorithm: str) -> str:
    """The hex digest of the file at `path`, read in chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def mirror_list(mirrors: list[str]) -> list[str]:
    """The base URLs to try: $TINY_DIFFUSION_MIRROR alone when set, else `mirrors` in order."""
    override = os.environ.get(MIRROR_ENV, "").strip()
    return [override] if override else list(mirrors)


def fetch(filename: str, mirrors: list[str], checksum: str, dest_dir: str | Path, log=None,
          needs: str | None = None) -> Path:
    """dest_dir/filename, downloaded from the first mirror that serves it with the right md5/sha256 `checksum`.

    A file already there with the right checksum is returned without any request. InputError (one line,
    naming the file, each mirror tried and why it failed, and the fix: `needs`, the files a --data-dir
    folder must hold instead, when given) when no mirror serves it.
    """
    dest_dir = Path(dest_dir)
    dest = dest_dir / filename
    checksum = checksum.lower()
    algorithm = checksum_algorithm(checksum)
    if dest.is_file() and file_digest(dest, algorithm) == checksum:
        return dest
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"{dest_dir}: cannot create the download folder ({e.strerror}); "
                         f"set TINY_DIFFUSION_DATA to a writable folder") from None
    failures = []
    for base in mirror_list(mirrors):
        url = base.rstrip("/") + "/" + filename
        if log:
            log(f"downloading {url}")
        try:
            _download(url, dest, algorithm, checksum)
            return dest
        except _MirrorFailed as e:
            failures.append(f"{url}: {e}")
    tried = "; ".join(failures) or f"no mirror given (${MIRROR_ENV} is empty)"
    raise InputError(f"{filename}: download failed ({tried}); download {needs or 'it'} yourself into a folder and "
                     f"pass --data-dir FOLDER, or set ${MIRROR_ENV} to a base URL that serves it")


class _MirrorFailed(Exception):
    """One mirror did not deliver the file; the message says why, in a few words."""


def _download(url: str, dest: Path, algorithm: str, checksum: str) -> None:
    """Stream `url` into a temporary file beside `dest`; rename it to `dest` only if complete and checksum-true."""
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        digest, received, expected = hashlib.new(algorithm), 0, None
        request = urllib.request.Request(url, headers={"User-Agent": "tiny-diffusion"})
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            expected = response.headers.get("Content-Length")
            while chunk := response.read(CHUNK):
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
        if expected is not None and expected.isdigit() and received != int(expected):
            raise _MirrorFailed(f"truncated, {received} of {expected} bytes")
        if digest.hexdigest() != checksum:
            raise _MirrorFailed(f"{algorithm} {digest.hexdigest()} is not the published {checksum} "
                                f"({received} bytes; truncated or a different file)")
        os.replace(tmp, dest)
    except urllib.error.HTTPError as e:
        raise _MirrorFailed(f"HTTP {e.code} {e.reason}") from None
    except urllib.error.URLError as e:  # refused, unknown host, timeout while connecting
        raise _MirrorFailed(f"{e.reason}") from None
    except (OSError, http.client.HTTPException, ValueError) as e:  # reset, read timeout, bad URL, disk full
        raise _MirrorFailed(f"{type(e).__name__}: {e}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
