"""The `tiny-diffusion` command: a thin layer that parses flags and calls the library, one module per command.

Only argparse and the pure-Python config are imported at start-up, so `--help` is instant;
each command imports torch and matplotlib when it runs. Bad input exits with code 2 and one line.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import warnings

from ..config import TrainConfig
from ..errors import InputError, TrainingStopped
from . import animate, datasets, distill, evaluate, export, plot, reproduce, sample, sweep, train
from .common import PROG, SAMPLER_NAMES, SPACING_NAMES, Parser, flag_name, torch_threads  # noqa: F401  (the names tests and users import from here)

COMMANDS = (train, distill, sample, evaluate, plot, animate, export, sweep, reproduce, datasets)  # in --help's order


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog=PROG, description="Denoising diffusion models (DDPM) on 2D point clouds and images: train, sample, "
                                        "evaluate and plot.")
    from .. import __version__

    p.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    for command in COMMANDS:
        command.add_parser(sub)
    return p


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    print(f"{PROG}: warning: {message}", file=sys.stderr)


NEGATIVE_LIST = re.compile(r"^-\d[\d.eE+-]*(,[-+]?[\d.eE+-]+)+$")  # '-2,1': a value, though it starts with '-'


def _config_spelling(argv: list[str]) -> list[str]:
    """--hidden_size (the config key's spelling, as errors and TOML files write it) -> --hidden-size; and a flag
    followed by a comma list that starts with a negative number (`--guidance-interval -2,1`, as the help writes
    it) joined into one `--flag=-2,1`, which argparse would otherwise read as an unknown flag."""
    keys = {f.name for f in TrainConfig.fields()}
    out = []
    for arg in argv:
        flag, eq, value = arg.partition("=")
        if flag.startswith("--") and flag[2:] in keys:
            arg = flag_name(flag[2:]) + eq + value
        if out and NEGATIVE_LIST.match(arg) and out[-1].startswith("--") and "=" not in out[-1]:
            out[-1] = f"{out[-1]}={arg}"
            continue
        out.append(arg)
    return out


def _rank_prefix() -> str:
    """'rank R: ' on the other ranks of a torchrun run (rank 0 and single processes print plain lines)."""
    rank = os.environ.get("RANK", "0")
    return f"rank {rank}: " if rank != "0" and os.environ.get("WORLD_SIZE", "1") != "1" else ""


def main(argv: list[str] | None = None) -> int:
    warnings.showwarning = _one_line_warning
    parser = build_parser()
    try:
        args, unknown = parser.parse_known_args(_config_spelling(sys.argv[1:] if argv is None else argv))
        if unknown:  # point to the help page of the command that was given, which lists its flags
            command = f"{PROG} {args.command}" if getattr(args, "command", None) else PROG
            raise InputError(f"unrecognized arguments: {' '.join(unknown)} (see `{command} --help`)")
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        with torch_threads(getattr(args, "threads", 0)):  # train, sample and evaluate take --threads
            return args.func(args)
    except InputError as e:
        if not getattr(e, "quiet", False):  # quiet: rank 0's error, raised again on another torchrun rank
            print(f"{_rank_prefix()}{PROG}: error: {e}", file=sys.stderr)
        return 2
    except TrainingStopped as e:
        print(f"{_rank_prefix()}{PROG}: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `tiny-diffusion datasets | head`: the reader left; nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at interpreter exit
        return 0
    except OSError as e:  # a file the user named could not be written or read (a full disk, /proc, no permission)
        if e.filename is None:
            raise
        print(f"{PROG}: error: {e.filename}: {e.strerror or type(e).__name__}; choose a path you can write "
              f"(or read)", file=sys.stderr)
        return 2
