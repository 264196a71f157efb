"""How many CPU threads torch should use (`--threads auto`, the default): the cores this process may run on
less those other processes keep busy, re-checked while a run trains.

Why: torch's own default, one thread per core, oversubscribes a shared machine. Beside one busy process the
default dino run trained ~45x slower (issue 17): a thread that waits for a descheduled sibling at every
parallel region stalls the whole step. One thread per *free* core avoids that, and an idle machine keeps
every core. Pure Python (no torch): the readings are injectable, so tests drive the choice with made-up loads.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass

RECHECK_SECONDS = 2.0  # a reading every 2 s costs microseconds; a busy process that starts is seen within ~2 s
MIN_WINDOW = 0.2  # seconds between two readings at least: /proc/stat counts in 10 ms ticks, so +-5% of a core
# the 64-wide MLP's matmuls (a batch of 1024 x 64) are too small to split over many cores: 2 threads were 11%
# faster than 1 on an idle 2-core machine (README); more were never measured to help, so points stop at 2
POINT_MAX_THREADS = 2


@dataclass(frozen=True)
class Reading:
    """CPU time counters at one moment: seconds of busy CPU on the whole machine (`busy`, None where
    /proc/stat is missing), this process's own CPU seconds (`own`), and the wall clock (`wall`)."""
    busy: float | None
    own: float
    wall: float


def read_cpu() -> Reading:
    """Now's counters: /proc/stat's busy ticks over all cores (user, nice, system, irq, softirq, steal)."""
    own = sum(os.times()[:2])  # user + system seconds of every thread of this process
    try:
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:9]]
        busy = (sum(ticks[:3]) + sum(ticks[5:8])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        busy = None
    return Reading(busy, own, time.monotonic())


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity: a container's or taskset's share)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def env_limit() -> int | None:
    """OMP_NUM_THREADS when the user set it to a positive count: torch's own default honours it, and so does
    auto, as an upper bound (it also keeps a process that forks workers on one OpenMP thread, which a forked
    child needs: a parent's larger thread pool does not survive fork)."""
    try:
        n = int(os.environ.get("OMP_NUM_THREADS", ""))
    except ValueError:
        return None
    return n if n > 0 else None


def others_busy(before: Reading, after: Reading, machine_cores: int, usable: int) -> float:
    """Cores kept busy by other processes between two readings, counted on the cores we may use (the
    machine's busy share scaled to them). Without /proc/stat: the 1-minute load average less our own use."""
    wall = max(after.wall - before.wall, 1e-9)
    own = (after.own - before.own) / wall
    if after.busy is None or before.busy is None:
        try:
            return max(0.0, os.getloadavg()[0] - own) * usable / machine_cores
        except (AttributeError, OSError):
            return 0.0
    return max(0.0, (after.busy - before.busy) / wall - own) * usable / machine_cores


def choose(usable: int, busy: float, images: bool | None) -> int:
    """The thread count for `usable` cores of which others keep `busy` busy: one per core that is at least half
    free (never fewer than 1), and at most POINT_MAX_THREADS for point models (images=False)."""
    free = math.floor(usable - busy + 0.5 - 1e-9)  # a core more than half busy is not free
    cap = POINT_MAX_THREADS if images is False else usable
    return max(1, min(free, cap, usable))


class AutoThreads:
    """The `auto` thread count for a run: `start()` sets the first choice (from a reading taken at creation),
    `update()` (call it between steps) re-reads the load every RECHECK_SECONDS and sets the new count when it
    changed. Injectable `read`, `set_threads`, `usable`, `machine_cores`, `sleep` and `clock` (the clock of
`read`'s wall) for tests."""

    def __init__(self, images: bool | None, set_threads=None, read=None, usable: int | None = None,
                 machine_cores: int | None = None, sleep=time.sleep, clock=time.monotonic):
        self.images, self.read, self.sleep, self.clock = images, read or read_cpu, sleep, clock
        self.set_threads = set_threads or _torch_set_threads
        self.usable = usable or min(usable_cores(), env_limit() or math.inf)  # OMP_NUM_THREADS: an upper bound
        self.machine_cores = max(machine_cores or os.cpu_count() or 1, self.usable)
        self.last = self.read()
        self.threads = None
        self.choices: list[int] = []  # every count set, in order (quality.json records them)

    def start(self) -> int:
        wait = MIN_WINDOW - (self.read().wall - self.last.wall)
        if wait > 0:
            self.sleep(wait)
        self._apply(self.read())
        return self.threads

    def update(self) -> None:
        if self.clock() - self.last.wall >= RECHECK_SECONDS:  # the clock alone between readings: ~50 ns a step
            self._apply(self.read())

    def _apply(self, now: Reading) -> None:
        n = choose(self.usable, others_busy(self.last, now, self.machine_cores, self.usable), self.images)
        self.last = now
        if n != self.threads:
            self.set_threads(n)
            self.threads = n
            self.choices.append(n)


def _torch_set_threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)
