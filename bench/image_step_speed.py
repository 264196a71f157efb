"""Images per second of the default image network's training step and sampling pass, fp32 against bf16
autocast, on this host: the figures behind `--autocast auto` on a CPU and the default run's length.

    python bench/image_step_speed.py --repeats 3 [--threads 2] [--batch 64] [--sample-batch 64,128,256]
    python bench/image_step_speed.py --smoke   # every part at toy sizes (a check that it runs; no figures)
    python bench/image_step_speed.py --set attn_resolutions=none --set channel_mult=1-2-2   # another shape

Each repeat times `--steps` optimisation steps of the default U-Net (MNIST size, 28x28, class labels on) at
batch `--batch` after 3 warm-up steps, then `--calls` sampling calls (inference mode) per sampling batch size,
in float32 and, where the CPU computes it natively (runtime/device.py native_bf16: avx512_bf16 or amx_bf16), bf16
autocast; elsewhere a line says why the bf16 rows are skipped (emulated bf16 took over 400 s on an AVX2 host).
Prints the command and host lines (runtime/host.py), each repeat and the medians; one to three minutes on 2 cores
with the defaults. Run it alone: it is a timing.

The limit beside it: the step's floating-point work per image (torch's FLOP counter: forward and backward of
the network, 2 FLOP per multiply-add) times its images/s is its GFLOP/s, printed beside a dense square matmul's
measured rate on the same threads (`--matmul N`), fp32, and bf16 where the CPU computes it natively
(avx512_bf16 or amx_bf16 in its flags): the step's share of that peak is how close training runs to the machine.
"""

from __future__ import annotations

import argparse
import statistics
import time
import torch

from tiny_diffusion.runtime.device import native_bf16
from tiny_diffusion.runtime.host import log_header


CHANGES: dict = {}  # --set KEY=VALUE: the network's shape (or any config field) instead of the default's


def network(label_dim: int):
    from tiny_diffusion.config import TrainConfig
    from tiny_diffusion.models import build_model

    cfg = TrainConfig.from_dict({"dataset": "mnist", **CHANGES}, "--set")
    return cfg, build_model(cfg, (1, 28, 28), label_dim=label_dim)


def time_steps(bf16: bool, batch: int, steps: int) -> float:
    """Images per second of `steps` training steps (loss, backward, AdamW, EMA-free) at `batch`."""
    from tiny_diffusion.core.diffusion import Diffusion

    torch.manual_seed(0)
    cfg, net = network(10)
    diffusion = Diffusion.from_config(cfg)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr)
    x0 = torch.rand(batch, 1, 28, 28) * 2 - 1
    y = torch.randint(0, 10, (batch,))

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16, cache_enabled=False):
            loss = diffusion.loss(net, x0, y=y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - start)


def step_flops(batch: int) -> float:
    """FLOP of one training step's forward and backward at `batch` (torch's counter; the optimizer excluded)."""
    from torch.utils.flop_counter import FlopCounterMode

    from tiny_diffusion.core.diffusion import Diffusion

    torch.manual_seed(0)
    cfg, net = network(10)
    x0, y = torch.rand(batch, 1, 28, 28) * 2 - 1, torch.randint(0, 10, (batch,))
    with FlopCounterMode(display=False) as counter:
        Diffusion.from_config(cfg).loss(net, x0, y=y).backward()
    return float(counter.get_total_flops())


def matmul_rate(n: int, dtype: torch.dtype, seconds: float) -> float:
    """GFLOP/s of repeated n x n @ n x n products (2 n^3 FLOP each) for about `seconds`."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    for _ in range(3):
        a @ b
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        calls += 1
    return calls * 2 * n ** 3 / (time.perf_counter() - start) / 1e9


@torch.inference_mode()
def time_calls(bf16: bool, batch: int, calls: int) -> float:
    """Images per second of `calls` network evaluations at `batch`, as a sampler makes them."""
    torch.manual_seed(0)
    _, net = network(10)
    net.eval()
    x = torch.randn(batch, 1, 28, 28)
    y = torch.randint(0, 10, (batch,))
    t = torch.tensor(500)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16, cache_enabled=False):
        for _ in range(3):
            net(x, t, y)
        start = time.perf_counter()
        for _ in range(calls):
            net(x, t, y).float()
    return calls * batch / (time.perf_counter() - start)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--calls", type=int, default=30)
    p.add_argument("--sample-batch", default="64,128,256")
    p.add_argument("--matmul", type=int, default=1024, help="the peak's square matmul size (default 1024)")
    p.add_argument("--matmul-seconds", type=float, default=2.0, help="each repeat's matmul timing (default 2)")
    p.add_argument("--smoke", action="store_true", help="toy sizes, one repeat: checks every part runs")
    p.add_argument("--set", action="append", default=[], help="KEY=VALUE of the network's config, e.g. "
                   "attn_resolutions=none or channel_mult=1-2-2 (as bench/mnist_recipes.py's variants)")
    args = p.parse_args()
    from mnist_recipes import parse_variant  # bench/ is the script's folder, on sys.path

    CHANGES.update(parse_variant("set:" + ",".join(args.set))[1])
    if args.smoke:
        args.repeats, args.batch, args.steps, args.calls, args.sample_batch = 1, 4, 1, 1, "4"
        args.matmul, args.matmul_seconds = 64, 0.05
    torch.set_num_threads(args.threads)
    print(log_header(), flush=True)
    print(f"threads: {args.threads}", flush=True)
    args.precisions = (False, True) if native_bf16(torch.device("cpu")) else (False,)
    if len(args.precisions) == 1:
        print("bf16: skipped (training, sampling and matmul): this CPU lists neither avx512_bf16 nor amx_bf16, "
              "so bf16 is emulated (over 400 s for this bench on an AVX2 host) and never the default here", flush=True)
    rows = {}
    for r in range(args.repeats):
        for bf16 in args.precisions:
            name = "bf16" if bf16 else "fp32"
            v = time_steps(bf16, args.batch, args.steps)
            rows.setdefault(f"train {name} batch {args.batch}", []).append(v)
            print(f"repeat {r}: train {name} batch {args.batch}: {v:.0f} images/s", flush=True)
            for b in (int(s) for s in args.sample_batch.split(",")):
                v = time_calls(bf16, b, max(3, args.calls * 64 // b))
                rows.setdefault(f"sample {name} batch {b}", []).append(v)
                print(f"repeat {r}: sample {name} batch {b}: {v:.0f} images/s ({1000 / v:.2f} ms/image)", flush=True)
    print("medians:")
    for k, v in rows.items():
        print(f"  {k}: {statistics.median(v):.0f} images/s ({1000 / statistics.median(v):.2f} ms/image)")
    print_limit(args, rows)


def print_limit(args, rows: dict) -> None:
    """The training step's GFLOP/s beside the host's matmul peak, fp32 and (where native) bf16."""
    per_image = step_flops(args.batch) / args.batch
    print(f"training step: {per_image / 1e9:.3f} GFLOP per image (forward and backward)")
    for bf16 in args.precisions:
        name, dtype = ("bf16", torch.bfloat16) if bf16 else ("fp32", torch.float32)
        peak = statistics.median(matmul_rate(args.matmul, dtype, args.matmul_seconds) for _ in range(args.repeats))
        step = statistics.median(rows[f"train {name} batch {args.batch}"]) * per_image / 1e9
        print(f"{name}: step {step:.1f} GFLOP/s; matmul {args.matmul} peak {peak:.1f} GFLOP/s; "
              f"share {100 * step / peak:.0f}%")


if __name__ == "__main__":
    main()
