"""`tiny-diffusion export`: a run's weights as safetensors."""

from __future__ import annotations

from pathlib import Path

from .common import output_path


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="write a run's weights as safetensors (config in the metadata)")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--format", choices=("safetensors",), default="safetensors")
    p.add_argument("--out", help="FILE.safetensors (default RUN_DIR/model.safetensors)")
    p.add_argument("--no-ema", action="store_true", help="export the raw weights, not the EMA ones")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..export import export_run

    out = output_path(args.out, (".safetensors",)) if args.out else Path(args.run_dir) / "model.safetensors"
    export_run(args.run_dir, out, use_ema=not args.no_ema)
    print(f"wrote {out}")
    return 0
