"""Progressive distillation of the default MNIST run (issue 25): an 8-step student's classifier-FID against the
teacher's 50-step DPM-Solver++ samples, and the seconds for 1000 images of each in the same sitting. By hand:

    PYTHONPATH=src python bench/distill_mnist.py --teacher RUN --out OUT [--steps 8] [--threads 2]
    PYTHONPATH=src python bench/distill_mnist.py --teacher RUN --out OUT --timing-only   # OUT distilled already

Targets: classifier-FID within 1.2x of the teacher's (both 1000 images, seed 1234, held-out digits, the metric of
the image quality work); 1000 images in at most a fifth of the teacher's time; distilling no longer than the
teacher trained (quality.json's train_seconds of both, same host).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from tiny_diffusion import runs
from tiny_diffusion.sampling import sample
from tiny_diffusion.train.distill import distill, read_record


def host_line() -> str:
    import platform
    import subprocess

    model = next((line.split(":", 1)[1].strip() for line in subprocess.run(["lscpu"], capture_output=True, text=True)
                  .stdout.splitlines() if line.startswith("Model name")), platform.processor())
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    avx = "AVX-512 yes (avx512_bf16)" if "avx512_bf16" in flags else "AVX-512 yes" if "avx512f" in flags else "AVX-512 no"
    return f"host: {model}, {torch.get_num_threads()} threads, {avx}"


def seconds_for_1000(run_dir, repeats: int, **kw) -> list[float]:
    _, model, diffusion = runs.load_run(run_dir)
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        sample(model, diffusion, 1000, 1234, **kw)
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--kimg", type=float, default=None, help="per round (default: distill's)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3, help="timed draws of 1000 images each, medians (0: no timing)")
    p.add_argument("--timing-only", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(host_line())
    if not args.timing_only:
        distill(args.teacher, args.out, args.steps, progress=False,
                length=None if args.kimg is None else {"kimg": args.kimg})
    record = read_record(args.out)
    tq, sq = (json.loads((Path(d) / runs.QUALITY).read_text()) for d in (args.teacher, args.out))
    distilled = sum(r["seconds"] for r in record["rounds"])
    print(f"teacher: {tq['n_eval']} images, dpm++ {runs.run_config(args.teacher).eval_steps} steps: classifier-FID "
          f"{tq['quality']['fid_features']:.3f}; trained {tq['train_seconds']:.1f} s")
    for r in record["rounds"]:
        q = json.loads((Path(args.out) / r["folder"] / runs.QUALITY).read_text())
        print(f"round {r['round']}: {r['steps']} steps, {r['kimg']:g} kimg, {r['seconds']:.1f} s; its {q['n_eval']} "
              f"images: classifier-FID {q['quality']['fid_features']:.3f}")
    ratio = sq["quality"]["fid_features"] / tq["quality"]["fid_features"]
    print(f"student: {sq['n_eval']} images, {args.steps} steps: classifier-FID {sq['quality']['fid_features']:.3f} = "
          f"{ratio:.2f}x the teacher's (target <= 1.2x: {'met' if ratio <= 1.2 else 'NOT met'}); distilled in "
          f"{distilled:.1f} s vs the teacher's {tq['train_seconds']:.1f} s of training "
          f"({'met' if distilled <= tq['train_seconds'] else 'NOT met'})")
    if args.repeats == 0:
        return
    teacher_s = seconds_for_1000(args.teacher, args.repeats, sampler="dpm++", steps=50, spacing="logsnr")
    student_s = seconds_for_1000(args.out, args.repeats, sampler="ddim", steps=args.steps)
    t, s = statistics.median(teacher_s), statistics.median(student_s)
    print(f"1000 images: teacher (dpm++ 50 steps) {t:.1f} s (runs {', '.join(f'{v:.1f}' for v in teacher_s)}), "
          f"student ({args.steps} steps) {s:.1f} s (runs {', '.join(f'{v:.1f}' for v in student_s)}): "
          f"{s / t:.3f} of the teacher's time (target <= 0.2: {'met' if s <= 0.2 * t else 'NOT met'})")


if __name__ == "__main__":
    main()
