"""Which device a run uses: --device auto|cpu|cuda|mps, and under torchrun this process's own GPU."""

import os

import torch

from ..errors import InputError
from . import dist


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA, then Apple's MPS, then the CPU. Under torchrun, CUDA means this process's own GPU
    (cuda:LOCAL_RANK)."""
    if name in ("auto", "cuda") and torch.cuda.is_available() and dist.launched():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA GPU is visible to torch; use --device cpu or auto")
    if name == "mps" and not torch.backends.mps.is_available():
        raise InputError("--device mps: Apple's MPS backend is not available; use --device cpu or auto")
    return torch.device(name)


# CPU flags of native bfloat16 arithmetic (AVX-512 BF16, AMX): without them oneDNN emulates bf16 and an AVX2
# host may run it slower than float32, so `--autocast auto` turns bf16 on for a CPU only where one is present
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 autocast is native on `device`: CUDA always (its default before this), a CPU with one of
    NATIVE_BF16_FLAGS (runtime/host.py reads them)."""
    from .host import cpu_flags

    if device.type == "cuda":
        return True
    return device.type == "cpu" and bool(cpu_flags() & set(NATIVE_BF16_FLAGS))
