"""Atomic file writes: a reader, or a crash, sees the old file or the new one, never half of one.

A leaf module (standard library only) so that data/, eval/, runs and train all write the same way
without importing each other.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def atomic_write(path: Path, write) -> None:
    """Call write(file) on a temporary file beside `path`, fsync it, then rename it over `path`:
    a reader (or a crash) sees the old file or the new one, never half of one."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:  # name the file the caller asked for, not the temporary one
        raise OSError(e.errno, e.strerror, str(path)) from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fchmod(f.fileno(), 0o666 & ~_umask())  # mkstemp makes it private; the file is not: honour the umask
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _umask() -> int:
    """The process's umask (read by setting it and setting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_csv(path: Path, rows: list[dict], fieldnames=None) -> None:
    """Rows of dicts as a CSV with a header (columns: `fieldnames`, or every key in order of first use),
    written atomically."""
    import csv
    import io

    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(fieldnames or dict.fromkeys(k for row in rows for k in row)))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(path, lambda f: f.write(text.getvalue().encode()))


def write_json(path: Path, obj) -> None:
    atomic_write(path, lambda f: f.write((json.dumps(obj, indent=2) + "\n").encode()))


# -- lock files: one writer per run folder (train, distill) or per sweep run -------------------------------------

STALE_UNREADABLE = 10.0  # seconds: an empty lock file this old was left by a process killed while writing it
_held: dict[str, int] = {}  # lock path -> how many times this process took it (train inside distill, a sweep in-process)


def take_lock(path: Path, reentrant: bool = False) -> str | None:
    """Create the lock file `path` atomically (O_CREAT | O_EXCL, holding 'host pid'): None when this process holds
    it now (taken, or with `reentrant` already its own: a distillation's last round trains in its folder), else its
    holder ('pid 123 on host'). A lock whose process died on this host
    is taken over; one from another host is taken for live (its process cannot be asked). O_EXCL works on network
    file systems too, where the shards of a sweep may meet."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = str(path.resolve())
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _holder(path)
            if reentrant and holder == (_host(), os.getpid()) and _held.get(key):
                _held[key] += 1
                return None
            if holder is None or _alive(*holder):
                return f"pid {holder[1]} on {holder[0]}" if holder else "another process"
            _break_stale(path, holder)
            continue
        with os.fdopen(fd, "w") as f:
            f.write(f"{_host()} {os.getpid()}\n")
        _held[key] = 1
        return None
    return "another process"


def release_lock(path: Path) -> None:
    """Give back a lock `take_lock` took (the file goes when the last of this process's holds is given back)."""
    key = str(Path(path).resolve())
    _held[key] = _held.get(key, 1) - 1
    if _held[key] <= 0:
        _held.pop(key)
        Path(path).unlink(missing_ok=True)


def _host() -> str:
    import socket

    return socket.gethostname()


def _holder(path: Path) -> tuple[str, int] | None:
    """(host, pid) in a lock file; None while it is being written (or gone). An empty file older than
    STALE_UNREADABLE seconds was left by a process killed between creating and writing it: (host, 0), dead."""
    import time

    try:
        host, pid = path.read_text().split()
        return host, int(pid)
    except (OSError, ValueError):
        try:
            old = time.time() - path.stat().st_mtime > STALE_UNREADABLE
        except OSError:
            old = False
        return (_host(), 0) if old else None


def _alive(host: str, pid: int) -> bool:
    if host != _host():
        return True  # cannot tell for another machine: assume it is still working
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _break_stale(path: Path, holder: tuple[str, int]) -> None:
    """Remove the stale lock of a dead `holder`, one process at a time: under a second lock (path.break), and
    only if the file still names that holder (another process may have taken it over meanwhile)."""
    import time

    breaker = path.with_name(path.name + ".break")
    try:
        fd = os.open(breaker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:  # another process is breaking it; one left by a killed breaker goes after a while
        try:
            if time.time() - breaker.stat().st_mtime > STALE_UNREADABLE:
                breaker.unlink(missing_ok=True)
        except OSError:
            pass
        time.sleep(0.05)
        return
    os.close(fd)
    try:
        if _holder(path) == holder:
            path.unlink(missing_ok=True)
    finally:
        breaker.unlink(missing_ok=True)
