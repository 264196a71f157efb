"""The 2D no-change check: train the default dino run and print sha256 over its final weights.

    python bench/dino_hash.py [--out DIR] [--threads N]

Trains `tiny-diffusion train --out DIR` with no other flags (or hashes DIR if it already holds a
finished run), then hashes the checkpoint's model and EMA tensors in key order. Run it at the commit
before a refactor and after it on the same machine: the two hashes must be equal.
"""

import argparse
import hashlib
import subprocess
import sys
import tempfile
from pathlib import Path

import torch


def weights_hash(checkpoint: Path) -> str:
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    h = hashlib.sha256()
    for part in ("model", "ema"):
        for key, tensor in (state.get(part) or {}).items():
            h.update(f"{part}.{key}".encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=None, help="run folder (default: a temporary one)")
    p.add_argument("--threads", type=int, default=None, help="passed to train as --threads, when given")
    args = p.parse_args()
    out = args.out or Path(tempfile.mkdtemp()) / "dino"
    if not (out / "quality.json").exists():
        cmd = [sys.executable, "-m", "tiny_diffusion", "train", "--out", str(out)]
        if args.threads is not None:
            cmd += ["--threads", str(args.threads)]
        subprocess.run(cmd, check=True)
    print(weights_hash(out / "checkpoint.pt"), out)


if __name__ == "__main__":
    main()
