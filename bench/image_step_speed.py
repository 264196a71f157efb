"""Images per second of the default image network's training step and sampling pass, fp32 against bf16
autocast, on this host: the figures behind `--autocast auto` on a CPU and the default run's length.

    python bench/image_step_speed.py --repeats 3 [--threads 2] [--batch 64] [--sample-batch 64,128,256]

Each repeat times `--steps` optimisation steps of the default U-Net (MNIST size, 28x28, class labels on) at
batch `--batch` after 3 warm-up steps, then `--calls` sampling calls (inference mode) per sampling batch size.
Prints the command and host lines (runtime/host.py), each repeat and the medians. Run it alone: it is a timing.
"""

from __future__ import annotations

import argparse
import statistics
import time
import torch

from tiny_diffusion.runtime.host import log_header


def network(label_dim: int):
    from tiny_diffusion.config import TrainConfig
    from tiny_diffusion.models import build_model

    cfg = TrainConfig.from_dict({"dataset": "mnist"})
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
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(log_header(), flush=True)
    print(f"threads: {args.threads}", flush=True)
    rows = {}
    for r in range(args.repeats):
        for bf16 in (False, True):
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


if __name__ == "__main__":
    main()
