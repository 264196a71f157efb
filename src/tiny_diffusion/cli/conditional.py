"""The flags of class-conditional runs, shared by sample, evaluate, plot reverse and animate: --class and --guidance,
and what they ask of sampling.plan (`class_request`)."""

from __future__ import annotations

import argparse

from ..errors import InputError


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


def parse_classes(text: str, classes: list[str]) -> list[int]:
    """'7', 'dino', '3,7' -> label indices: each item a class's name or its index; InputError naming the choices."""
    out = []
    for item in (i.strip() for i in text.split(",")):
        if item in classes:
            out.append(classes.index(item))
        elif item.isdigit() and int(item) < len(classes):
            out.append(int(item))
        else:
            raise InputError(f"--class {item!r}: not a class of this run; give an index 0..{len(classes) - 1} or a "
                             f"name: {', '.join(classes)}")
    return out


def class_request(args, classes: list[str] | None) -> dict:
    """sampling.plan's label arguments (labels, guidance, interval) from --class, --guidance (the first of a
    list) and --guidance-interval, for a run of these `classes` (None: unconditional, which refuses the flags)."""
    from ..config import parse_interval

    guidance = args.guidance[0] if isinstance(args.guidance, list) else args.guidance
    if classes is None:
        given = ("--class" if args.classes is not None else "--guidance" if guidance is not None else
                 "--guidance-interval" if args.guidance_interval is not None else None)
        if given:
            raise InputError(f"{given}: this run was trained without class labels; drop {given}, or train a "
                             f"conditional run with --class-cond")
        return {}
    labels = parse_classes(args.classes, classes) if args.classes is not None else None
    parse_interval(args.guidance_interval)  # its one-line error names --guidance-interval
    return {"labels": labels, "guidance": guidance, "interval": args.guidance_interval}
