"""Export a run's weights as safetensors: a JSON header and raw little-endian tensor bytes, no pickle,
so loading it can never run code. The format is simple enough to write here without a run-time
dependency (https://github.com/huggingface/safetensors#format); the tests check our files against
the `safetensors` package itself.

    8 bytes: N, the header length (unsigned little-endian)
    N bytes: JSON {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}
    rest:    the tensors' bytes, back to back
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import torch

from . import fileio, runs
from .errors import InputError

DTYPES = {torch.float32: "F32", torch.float64: "F64", torch.float16: "F16", torch.bfloat16: "BF16",
          torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
          torch.bool: "BOOL"}


def write_safetensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """`tensors` and string `metadata` to a .safetensors file, atomically."""
    header, chunks, offset = {}, [], 0
    for name, t in tensors.items():
        if t.dtype not in DTYPES:
            raise ValueError(f"{name}: dtype {t.dtype} has no safetensors code")
        data = t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()  # the CPU is little-endian
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # pad so the data starts 8-byte aligned, as the reference writer does

    def write(f):
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for c in chunks:
            f.write(c)

    fileio.atomic_write(path, write)


def export_run(run_dir: str | Path, out: Path, use_ema: bool = True) -> None:
    """The run's sampling weights (EMA unless use_ema=False) with its config in the metadata."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError(f"{run_dir}: no such run folder")
    state = runs.load_checkpoint(run_dir / runs.CHECKPOINT)
    runs.warn_unfinished(run_dir, state)
    ema = use_ema and state.get("ema") is not None
    weights = state["ema"] if ema else state["model"]
    write_safetensors(out, dict(weights), {
        "format": "tiny-diffusion", "version": str(runs.FORMAT_VERSION), "weights": "ema" if ema else "model",
        "config": json.dumps(state["config"], sort_keys=True), "step": str(state.get("step"))})
