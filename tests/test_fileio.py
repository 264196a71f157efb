"""fileio's lock files: exclusive, stale ones (a dead process's, or an empty one left by a kill) taken over."""

import os
import socket
import subprocess
import sys
import time

from tiny_diffusion import fileio


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_a_lock_is_exclusive_and_names_its_live_holder(tmp_path):
    lock = tmp_path / "lock"
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock.write_text(f"{socket.gethostname()} {live.pid}\n")
        assert fileio.take_lock(lock) == f"pid {live.pid} on {socket.gethostname()}"
        assert fileio.take_lock(lock, reentrant=True) is not None  # another process's: never re-entered
    finally:
        live.kill()
        live.wait()
    assert fileio.take_lock(lock) is None  # its holder died: taken over
    assert lock.read_text().split() == [socket.gethostname(), str(os.getpid())]
    assert fileio.take_lock(lock) is not None  # held by this process: not twice, unless re-entrant
    assert fileio.take_lock(lock, reentrant=True) is None
    fileio.release_lock(lock)
    assert lock.exists()  # one hold is still out
    fileio.release_lock(lock)
    assert not lock.exists()


def test_stale_locks_are_taken_over(tmp_path):
    lock = tmp_path / "lock"
    lock.write_text(f"{socket.gethostname()} {dead_pid()}\n")
    assert fileio.take_lock(lock) is None
    fileio.release_lock(lock)
    lock.write_text("")  # being written right now: live, until it is old
    assert fileio.take_lock(lock) == "another process"
    old = time.time() - 2 * fileio.STALE_UNREADABLE
    os.utime(lock, (old, old))
    assert fileio.take_lock(lock) is None
    assert not lock.with_name("lock.break").exists()
    fileio.release_lock(lock)
