"""The flags of class-conditional runs, shared by sample, evaluate, plot reverse and animate: --class and --guidance."""

from __future__ import annotations

import argparse


def guidance_weight(text: str) -> float:
    """argparse type: a guidance weight W, a finite number >= 0 (inf and nan would make every sample NaN)."""
    try:
        w = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= w < float("inf"):
        raise argparse.ArgumentTypeError(f"{w:g} must be a finite number >= 0 (1: plain conditional, 0: unconditional, "
                                         f"> 1: guided)")
    return w


def guidance_weights(text: str) -> list[float]:
    """argparse type: comma-separated guidance weights, e.g. 0,1,2,3,5."""
    items = [i.strip() for i in text.split(",") if i.strip()]
    if not items:
        raise argparse.ArgumentTypeError(f"{text!r} is empty")
    return [guidance_weight(i) for i in items]


def add_class_flags(parser: argparse.ArgumentParser, lists: bool = False) -> None:
    """--class K[,K...] and --guidance W (lists=True: a comma list of W, the trade-off curve)."""
    parser.add_argument("--class", dest="classes", metavar="K[,K...]", default=None,
                        help="class-conditional runs: the class to draw, by index or name (7, dino, sedan); several "
                             "comma-separated split the samples evenly in order (default: all classes in turn)")
    curve = "; several (0,1,2,3,5) write the trade-off curve" if lists else ""
    parser.add_argument("--guidance", type=guidance_weights if lists else guidance_weight, default=None,
                        metavar="W" + (",W..." if lists else ""),
                        help=f"class-conditional runs: classifier-free guidance weight, eps_uncond + W (eps_cond - "
                             f"eps_uncond): 1 plain conditional, 0 unconditional, > 1 guided (default: the run's "
                             f"guidance){curve}")
    parser.add_argument("--guidance-interval", default=None, metavar="LO,HI",
                        help="class-conditional runs: guide only the steps whose log-SNR lambda lies in LO,HI (e.g. "
                             "-2,1; Kynkaenniemi et al. 2024), plainly conditional elsewhere; 'all': every step "
                             "(default: the run's guidance_interval)")
