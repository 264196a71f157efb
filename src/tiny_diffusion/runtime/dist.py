"""Many processes on PyTorch's own engine: `torchrun --nproc_per_node N -m tiny_diffusion train ...`.

torchrun starts N copies of the command with RANK, WORLD_SIZE, LOCAL_RANK and MASTER_ADDR/PORT set;
`session` joins them into one process group (NCCL on GPUs, gloo on the CPU) and every helper here is a
no-op in a single process, so the one-process path is the code it always was. The training loop wraps
the model in DistributedDataParallel, every rank draws the global batch's randomness and keeps its own
rows (train/step.py), rank 0 alone writes; sampling splits the seeds across ranks and gathers on rank 0.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import re
import time

import torch
import torch.distributed as dist

from ..errors import InputError, TrainingStopped

# the longest one rank may wait for another at a collective: rank 0 alone samples the snapshots (and, before
# the first step, may train the image metrics' classifier once); a crashed rank is noticed long before (torchrun)
TIMEOUT_S = float(os.environ.get("TINY_DIFFUSION_DIST_TIMEOUT", 1800))
# the longest a collective waits for the backend's thread to let go of its tensor (all_reduce): it does so
# microseconds after the collective completes; a second covers a descheduled thread on a loaded machine
LET_GO_S = 1.0
SETTLE_S = 0.05  # the GIL-free pause before the process group is destroyed (session): once per command


def launched() -> bool:
    """Whether torchrun (or another launcher) started this process as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def active() -> bool:
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def is_main() -> bool:
    return rank() == 0


@contextlib.contextmanager
def session():
    """Join torchrun's process group for the duration (nothing in a single process): gloo for CPU tensors,
    NCCL for CUDA ones, each process on its own GPU. A lost peer (a rank that crashed or was killed) becomes
    one clear line instead of a backend traceback."""
    if not launched() or active():
        yield
        return
    cuda = torch.cuda.is_available()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if cuda and local < torch.cuda.device_count():
        torch.cuda.set_device(local)
    dist.init_process_group("cpu:gloo,cuda:nccl" if cuda else "gloo", timeout=datetime.timedelta(seconds=TIMEOUT_S))
    try:
        yield
    except RuntimeError as e:  # gloo raises RuntimeError, NCCL DistBackendError (a RuntimeError) on a lost peer
        if not _lost_peer(e):
            raise
        text = re.sub(r"^\[[^\]]*\]\s*", "", str(e).strip())  # gloo prefixes its source file and line
        first = text.split(". ")[0][:160] if text else type(e).__name__
        raise TrainingStopped(f"rank {rank()} of {world_size()}: lost contact with another process of this run "
                              f"({first}); torchrun's summary names the one that failed first", exit_code=1) from None
    finally:
        # torch's object collectives (on_main, gather_rows) free their tensors before gloo's thread may: released
        # from the GIL a moment, that thread finishes before the group's destructor joins it (see all_reduce)
        time.sleep(SETTLE_S)
        dist.destroy_process_group()


def _lost_peer(e: BaseException) -> bool:
    text = str(e)
    return isinstance(e, getattr(dist, "DistError", ())) or any(
        s in text for s in ("gloo", "NCCL", "Connection closed", "Connection reset", "timed out", "Timeout"))


# -- the few collectives the loop and the sampler need ------------------------------------------

def rows(batch: int) -> slice:
    """This rank's rows of a global batch of `batch` samples (the whole batch in a single process)."""
    n = world_size()
    if batch % n:
        raise InputError(f"batch_size = {batch} cannot be split evenly across {n} processes; use a multiple of {n}")
    per = batch // n
    return slice(rank() * per, (rank() + 1) * per)


def shard(n: int) -> tuple[int, int]:
    """[lo, hi): this rank's share of n samples, as even as can be (rank 0 first)."""
    size, r = world_size(), rank()
    return r * n // size, (r + 1) * n // size


def all_reduce(x: torch.Tensor, op=dist.ReduceOp.SUM) -> torch.Tensor:
    """A copy of x reduced over the ranks, returned only once the backend's worker thread has let go of it.

    Why wait: gloo's worker thread drops its reference to the tensors just after it completes a collective.
    If Python has already freed the tensor, that drop must take the GIL to free the Python object; and a
    process group destroyed meanwhile with the GIL held (the DDP model freed as a stop unwinds, or
    destroy_process_group) joins that worker thread: each waits for the other, for ever (issue 27: rank 1
    of the stop-signal test, which raises right after its last collective while rank 0 writes the
    checkpoint). While the tensor is alive here the worker's drop is a plain count, so nothing waits."""
    x = x.clone()
    dist.all_reduce(x, op=op)
    deadline = time.monotonic() + LET_GO_S
    # gloo (CPU tensors) only: NCCL's watchdog keeps a CUDA tensor until the GPU is done, which the caller's .item()
    # waits for anyway
    while x.device.type == "cpu" and x._use_count() > 1 and time.monotonic() < deadline:  # held still: microseconds
        time.sleep(1e-4)  # the GIL released meanwhile
    return x


def mean(x: torch.Tensor) -> torch.Tensor:
    """x averaged over the ranks (x itself in a single process)."""
    if world_size() == 1:
        return x
    return all_reduce(x) / world_size()


def maximum(x: torch.Tensor) -> torch.Tensor:
    """The largest x over the ranks (x itself in a single process)."""
    if world_size() == 1:
        return x
    return all_reduce(x, dist.ReduceOp.MAX)


def any_rank(flag: bool, device) -> bool:
    """Whether `flag` is true on any rank: a host sync, so the loop asks only now and then."""
    if world_size() == 1:
        return flag
    return bool(maximum(torch.tensor(int(flag), device=device)).item())


class RankZeroError(InputError):
    """Rank 0's InputError, raised again on the other ranks: the CLI prints it once (quiet here)."""

    quiet = True


def on_main(fn):
    """fn() computed on rank 0 and handed to every rank (its InputError raised on every rank): what only
    rank 0 may do (create the run folder, read the checkpoint) without leaving the others waiting."""
    if world_size() == 1:
        return fn()
    box = [None]
    if is_main():
        try:
            box[0] = ("ok", fn())
        except InputError as e:
            box[0] = ("error", str(e))
    dist.broadcast_object_list(box, src=0)
    status, value = box[0]
    if status == "error":
        raise (InputError if is_main() else RankZeroError)(value)
    return value


def gather_rows(x: torch.Tensor) -> torch.Tensor | None:
    """Every rank's rows concatenated in rank order, on rank 0 (None elsewhere); x itself in a single process."""
    if world_size() == 1:
        return x
    parts = [None] * world_size()
    dist.all_gather_object(parts, x.cpu())
    return torch.cat(parts) if is_main() else None


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """DistributedDataParallel around `model` when several processes train, else the model itself. On GPUs
    BatchNorm layers (the tutorial's SimpleUnet) become SyncBatchNorm, in place, so their statistics are the
    global batch's; torch has no SyncBatchNorm on the CPU, where each rank normalises its own rows."""
    if world_size() == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    if device.type == "cuda":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
