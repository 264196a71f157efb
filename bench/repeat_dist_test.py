"""Run one of tests/runtime/test_dist.py's two-rank tests N times in a row in one process (its `one_process`
fixture trained once), printing each result: the check that the stop-signal test no longer hangs (issue 27).

    python bench/repeat_dist_test.py 20 > bench/results/dist_stop_signal_20.log

The ranks are forked from this process exactly as pytest's are; a hung rank is killed at the test's 120 s
limit and counted as a failure, with the ranks' last output."""

import os
import pathlib
import sys
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")  # as tests/conftest.py sets it
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import tests.runtime.test_dist as t  # noqa: E402
from tiny_diffusion.config import TrainConfig  # noqa: E402
from tiny_diffusion.train import train  # noqa: E402

STOP_TEST = "test_a_stop_signal_under_two_ranks_checkpoints_and_resume_continues"


def main(n: int, name: str = STOP_TEST) -> int:
    one = pathlib.Path(tempfile.mkdtemp()) / "run"
    train(TrainConfig.from_dict(t.TINY), one, progress=False, log=lambda m: None)
    failed = 0
    print(f"{name} x {n}; load average {os.getloadavg()[0]:.2f}", flush=True)
    for i in range(n):
        tmp = pathlib.Path(tempfile.mkdtemp())
        start = time.monotonic()
        try:
            getattr(t, name)(one, tmp)
            print(f"{i + 1:3d} passed {time.monotonic() - start:6.1f} s", flush=True)
        except Exception as e:
            failed += 1
            print(f"{i + 1:3d} FAILED {time.monotonic() - start:6.1f} s {str(e)[:300]!r}", flush=True)
            for f in sorted(tmp.glob("rank*.err")):
                print(f"    {f.name}: {f.read_text()[-300:]!r}", flush=True)
    print(f"{n - failed} of {n} passed; load average {os.getloadavg()[0]:.2f}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20, *sys.argv[2:]))
