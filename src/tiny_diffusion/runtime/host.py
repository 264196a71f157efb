"""The one line that names the machine a timed figure came from: CPU model (as lscpu prints it), cores, AVX-512.

Published timings differ more between hosts than between commits (the default dino trained in about 13 s on an
AVX-512 EPYC and about 21 s on an AVX2 one, same code), so every bench log and the study report print it, and
bench/claims.py refuses a timed figure whose log lacks it.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

CPUINFO = "/proc/cpuinfo"


def cpu_model(cpuinfo: str | None = None) -> str:
    """The CPU's model name ("AMD EPYC"): /proc/cpuinfo's `model name`, the field lscpu prints; else the platform's."""
    text = cpuinfo if cpuinfo is not None else _read(CPUINFO)
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
            return value.strip()
    return platform.processor() or platform.machine()


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The CPU's feature flags as /proc/cpuinfo lists them (empty where there is no such file: other systems)."""
    text = cpuinfo if cpuinfo is not None else _read(CPUINFO)
    return set(next((l.partition(":")[2].split() for l in text.splitlines() if l.split(":")[0].strip() == "flags"),
                    []))


def avx512(cpuinfo: str | None = None) -> str:
    """"yes (avx512_bf16)", "yes" or "no": whether the CPU flags list AVX-512 (and its bf16 extension)."""
    flags = cpu_flags(cpuinfo)
    if "avx512f" not in flags:
        return "no"
    return "yes (avx512_bf16)" if "avx512_bf16" in flags else "yes"


def host_line() -> str:
    """`host: AMD EPYC, 2 cores, AVX-512 yes (avx512_bf16), torch 2.13.0` (cores: those this process may use)."""
    import torch  # here, so that reading the CPU stays torch-free

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"host: {cpu_model()}, {cores} cores, AVX-512 {avx512()}, torch {torch.__version__}"


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def log_header(argv: list[str] | None = None) -> str:
    """The first two lines of a bench log: the command that wrote it, then host_line()."""
    import sys

    argv = sys.argv if argv is None else argv
    return f"command: python {' '.join(argv)}\n{host_line()}"
