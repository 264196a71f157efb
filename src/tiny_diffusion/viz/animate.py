"""Animations from Pillow images of one size: a GIF (Pillow, looping forever) or an MP4 through ffmpeg. Used by
the image grids (viz.images.animate_grids) and the point figures (viz.points)."""

from __future__ import annotations

import math
import shutil
import subprocess
import tempfile
from pathlib import Path

from PIL import Image

from ..errors import InputError
from .image_files import output_path, whole, write_atomic

def check_animation(path, fps, hold_last) -> Path:
    """InputError unless path is a .gif (or a .mp4 with ffmpeg on PATH), fps a whole number >= 1 and
    hold_last seconds >= 0: checked before any frame is drawn. Returns path as a Path."""
    path = Path(path)
    if path.suffix.lower() not in (".gif", ".mp4"):
        raise InputError(f"{path}: cannot write animations of type {path.suffix or '(no suffix)'!r}; use .gif or .mp4")
    whole(fps, 1, "fps")
    if isinstance(hold_last, bool) or not isinstance(hold_last, (int, float)) or not 0 <= hold_last < math.inf:
        raise InputError(f"hold_last = {hold_last!r}: must be a number of seconds >= 0")
    if path.suffix.lower() == ".mp4" and shutil.which("ffmpeg") is None:
        raise InputError(f"{path}: MP4 needs ffmpeg on PATH; install it or write a .gif")
    return path


def save_animation(images: list[Image.Image], path, fps: int = 10, hold_last: float = 1.0) -> Path:
    """Pillow images of one size as an animation, written atomically: a GIF looping forever, or an MP4
    through ffmpeg when path ends in .mp4. Each frame lasts 1 / fps seconds, the last one
    max(1 / fps, hold_last). Returns path."""
    path = output_path(check_animation(path, fps, hold_last))
    if path.suffix.lower() == ".gif":
        ms = [round(1000 / fps)] * (len(images) - 1) + [round(1000 * max(1 / fps, hold_last))]
        return write_atomic(path, lambda tmp: images[0].save(tmp, format="GIF", save_all=True,
                                                        append_images=images[1:], duration=ms, loop=0))
    repeats = max(1, round(hold_last * fps))  # frames showing the last image
    try:
        return write_atomic(path, lambda tmp: _write_mp4(images + images[-1:] * (repeats - 1), tmp, fps,
                                                    shutil.which("ffmpeg")))
    except subprocess.CalledProcessError as e:
        why = (e.stderr or "").strip().splitlines()
        raise InputError(f"{path}: ffmpeg failed ({why[-1] if why else f'exit code {e.returncode}'}); "
                         f"write a .gif instead") from None


def _write_mp4(images: list[Image.Image], out: Path, fps: int, ffmpeg: str) -> None:
    """H.264-compatible MP4 (yuv420p, sides padded to even sizes) of images at fps, through ffmpeg."""
    with tempfile.TemporaryDirectory() as tmp:
        for i, im in enumerate(images):
            im.save(Path(tmp) / f"{i:05d}.png")
        subprocess.run([ffmpeg, "-y", "-loglevel", "error", "-framerate", str(fps), "-i", str(Path(tmp) / "%05d.png"),
                        "-pix_fmt", "yuv420p", "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-f", "mp4", str(out)],
                       check=True, capture_output=True, text=True)
