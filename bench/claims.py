"""Every number published in README.md and docs/ comes from a committed log: list them, fail on one that does not.

    python bench/claims.py                 # check README.md and docs/**/*.md; exit 1 on a problem
    python bench/claims.py --list          # also print each checked number with the log it comes from
    python bench/claims.py docs/gpu.md     # check some files only

The convention (an HTML comment names the log; /work/notes/CLAIMS.md and docs/measured.md):
a `<!-- claim: bench/results/x.log [more files] -->` comment covers the block it is in (a paragraph, a list item,
or a whole table when it sits on the line right after it); one inside a table row covers that row only. Every
number in the block that is not exempt (code, targets after <= / >=, the EXEMPT patterns below) must appear in
one of the named files, as written or rounded from it (12.7 matches 12.71). A timed figure (a number followed by
s, ms or min) needs a `host:` line in its log (src/tiny_diffusion/runtime/host.py: lscpu model, cores, AVX-512).

A default quoted in the text is checked against the code, not a log: `<!-- default: SCOPE.NAME -->` right after
the number it tags (on the same line) says "this number is that default", and the number must equal it.
SCOPE is `points` (TrainConfig() of the dino), `images` (an MNIST run as `train --dataset mnist` makes it: labels
on, its evaluation fitted to the default length), `class-cond` (the same with --class-cond), or a module whose
constant NAME is meant (`config`, `sampling`: e.g. `sampling.IMAGE_LAMBDA_MIN`). E.g.
`final samples take 10 <!-- default: images.eval_steps --> DPM-Solver++ steps`: change the default and this fails.
"""

import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Numbers that are not measurements, each with its reason. Add narrow patterns only; never one that hides a result.
EXEMPT = [
    (r"\b(?:torch|Python|python|PyTorch|CUDA|diffusers|version)\s+\d+(?:\.\d+)+", "a software version"),
    (r"\b\d+\.\d+\.\d+\b", "a version number"),
    (r"\b20\d\d-\d\d-\d\d\b|\b\d\d-\d\d\b(?= )", "a date"),
    (r"(?:et al\.|&\s*\w+|\b[A-Z][a-z]+)\s*,?\s*(?:19|20)\d\d\b", "a citation's year"),
    (r"\b(?:eq|Eq|Alg|Table|Fig|Figure|section|issue|Issue|item|part|step)\.?\s+\d+", "a reference to a text"),
    (r"#\d+", "an issue or item number"),
    (r"\b(?:T|K|W|N|n|eta|rho|t|lambda_min|lambda|eval_n|kimg|alpha_bar_T|w|k|p|R|L|E|i|seed)\s*=\s*-?[\d.e-]+"
     r"(?:\s*(?:,|and|or|to|\.\.\.)\s*-?[\d.e-]+)*", "a setting or symbol written NAME = value"),
    (r"\b\d+(?:\.\d+)?\s*(?:x|×)\s*\d+(?:\s*(?:x|×)\s*\d+)?\b(?!\.\d)", "a size written AxB"),
    (r"\b\d+(?:[.,]\d+)?[kKM]?\s*-?(?:epochs?|steps?|points?|samples?|digits?|images?|kimg|px|pixels?|threads?|"
     r"cores?|CPUs?|GPUs?|processes|ranks?|repeats?|runs?|seeds?|shapes?|classes|labels?|frames?|panels?|"
     r"weights?|parameters|layers?|features?|channels|wide|-wide|batch|bits?|bytes?|GiB|MiB|GB|MB|KB|"
     r"clusters|timesteps|calls|evaluations|NFE|columns|rows|files|workers|fps|jobs|numbers|dims?|"
     r"dimensions|blocks|held out|held-out|per class|to \d+|of \d+|per step|lines?|characters)\b", "a count or size (a setting), not a result"),
    (r"\b(?:batch|lr|EMA|width|depth|hidden|embedding|size|T|every|up to|at most|at least|one of)\s+-?\d+"
     r"(?:\.\d+)?(?:e-?\d+)?\b(?!\s*(?:s|ms|min|x|%)\b)", "a setting named before its value"),
    (r"\b\d+(?:\.\d+)?e-\d+\b", "a setting written in scientific notation (lr 1e-2)"),
    (r"(?<![\w.\-/])\d(?![\d.]|\s*(?:s|ms|min|minutes?|seconds?|hours?|h|x|×|%|of)(?!\w))", "a single digit with no unit: a word (rank 0, 2 threads)"),
    (r"\b\d+(?:\.\d+)? by default|\bdefault,? -?\d+(?:\.\d+)?|(?:log-SNR|lambda|seed|spacing from)\s+-?\d+(?:\.\d+)?",
     "a default or a grid setting"),
    (r"\b(?:rule|rules) of \d+|\b\d+-(?:step|layer|block|point|bit|dim|px|epoch|D|d)\b", "a size in a compound"),
]
# Logs written before logs named their host; each entry is a debt with its reason, printed on every check.
NO_HOST_YET = {
    "bench/results/mnist_default_cpu.log": "the MNIST default (issue 24: the lead re-measures it)",
    "bench/results/mnist_side_by_side_cpu.log": "the MNIST side-by-side (issue 24: the lead re-measures it)",
    "docs/ablations/README.md": "written by reproduce before reports named their host; rerun `tiny-diffusion "
                                "reproduce --preset quick --jobs 2 --out study` and copy it (docs/ablations/README.md)",
}
GENERATED = re.compile(r"<!--\s*generated:\s*(.*?)\s*-->")  # a report a command wrote whole: it is its own log
TARGET = r"(?:<=|>=|≤|≥|<|>|within|of at most|at most|at least)\s*[-+]?\d+(?:\.\d+)?"
NUMBER = re.compile(r"(?<![\w.\-/])(?:(?<=[\s(\[|:=,;])-)?\d+(?:\.\d+)?(?![\w.]*\d)(?=[x×%]|[^\w]|$)")
LOG_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?")
TIMED = re.compile(r"\d\s*(?:s|ms|min|minutes?|seconds?|h|hours?)\b")
CLAIM = re.compile(r"<!--\s*claim:\s*([^>]*?)\s*-->")
DEFAULT = re.compile(r"<!--\s*default:\s*([\w-]+)\.(\w+)\s*-->")  # a quoted config default (see the docstring)
QUOTED = re.compile(r"-?\d+(?:\.\d+)?(?:e-?\d+)?")
CITED = re.compile(r"<!--\s*cited:\s*([^>]*?)\s*-->")  # numbers quoted from a paper, named there
STRIP = [r"-?\d+(?:\.\d+)?(?:e-?\d+)?\s*<!--\s*default:[^>]*-->",  # a tagged default: checked against the code
         r"<img\b[^>]*>",  # an HTML image's width is layout, not a number
         r"<!--.*?-->", r"`[^`]*`", r"!\[[^\]]*\]\([^)]*\)", r"\]\([^)]*\)", r"https?://\S+", r"\[[^\]]*\.(?:md|py|toml|csv|png|log)\]"]


def blocks(text: str):
    """(line number, block lines) of prose: blank lines and code (fenced, or indented after a blank) split blocks."""
    out, cur, fenced, prev_blank = [], [], False, True
    for i, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            cur and out.append(cur); cur = []
            continue
        code = fenced or ((line.startswith("    ") or line.startswith("\t")) and prev_blank)
        if code or not line.strip():
            cur and out.append(cur); cur = []
            prev_blank = not line.strip() or code
            continue
        prev_blank = False
        cur.append((i, line))
    cur and out.append(cur)
    return out


def units(block):
    """(line, text, logs) per unit of a block: a table row, a list item or the paragraph; logs from the unit's own
    comment, else from the block's comment-only lines."""
    def comment(line):
        return CLAIM.fullmatch(line.strip()) or CITED.fullmatch(line.strip())

    def sources(text):
        return [f for m in CLAIM.finditer(text) for f in m.group(1).split()] + \
               [f"cited: {m.group(1)}" for m in CITED.finditer(text)]

    shared = [f for i, l in block if comment(l) for f in sources(l)]
    parts = []
    for i, line in block:
        if comment(line):
            continue
        starts = line.lstrip().startswith("|") or re.match(r"\s*(?:[-*]|\d+\.)\s", line) or not parts
        if starts or parts[-1][1].lstrip().startswith("|"):
            parts.append([i, line])
        else:
            parts[-1][1] += " " + line
    for i, text in parts:
        if re.fullmatch(r"[|\s:-]+", text):
            continue  # a table's separator row
        yield i, text, sources(text) or shared


# Outside tables, a whole number with no unit is a count or a setting in prose ("the dino's 142 clusters", "77
# each"); results carry a decimal point or a unit (s, ms, min, x, %), or sit in a table, where every number counts.
BARE_INTEGER = re.compile(r"^-?\d+$")
UNIT_AFTER = re.compile(r"\s*(?:s|ms|min|minutes?|seconds?|hours?|h|x|×|%)(?!\w)|\s+of\s+\d")


def numbers(text: str) -> list[str]:
    """The checked numbers of a unit's text: code, links, comments, targets and EXEMPT patterns masked out."""
    for pattern in STRIP:
        text = re.sub(pattern, " ", text)
    for pattern in [TARGET] + [p for p, _ in EXEMPT]:
        text = re.sub(pattern, lambda m: " " * len(m.group(0)), text)
    table = text.lstrip().startswith("|")
    return [m.group(0) for m in NUMBER.finditer(text)
            if table or not BARE_INTEGER.match(m.group(0)) or UNIT_AFTER.match(text, m.end())]


def in_log(value: str, log_numbers: list[float]) -> bool:
    """True when the log holds the value as written or a number that rounds to it at its decimals."""
    decimals = len(value.split(".")[1]) if "." in value else 0
    v, tol = float(value), 0.5 * 10 ** -decimals * (1 + 1e-9)
    return any(abs(w - v) <= tol for w in log_numbers)


def default_values(scope: str) -> dict:
    """The defaults a `<!-- default: SCOPE.NAME -->` tag may name: the resolved TrainConfig of SCOPE, or a module's
    constants (`config`, `sampling`). Imported here only: the log checks need no torch."""
    from dataclasses import asdict
    from tiny_diffusion import config, sampling
    from tiny_diffusion.train.setup import resolve
    if scope in ("config", "sampling"):
        return vars(config if scope == "config" else sampling)
    if scope == "points":
        return asdict(config.TrainConfig())
    if scope in ("images", "class-cond"):
        cfg = config.TrainConfig(dataset="mnist", class_cond=True if scope == "class-cond" else None)
        return asdict(resolve(cfg, (1, 28, 28), True, 60000)[0])  # MNIST's 60000 labelled digits
    return {}


def check_defaults(rel: str, text: str, cache: dict) -> list[str]:
    """Problems with the defaults the text quotes: each tagged number must equal the default its tag names."""
    problems = []
    for i, line in enumerate(text.splitlines(), 1):
        for m in DEFAULT.finditer(line):
            scope, name = m.groups()
            values = cache.setdefault(scope, default_values(scope))
            before = QUOTED.findall(CLAIM.sub(" ", DEFAULT.sub(" ", line[:m.start()])))
            where = f"{rel}:{i}: default {scope}.{name}"
            if name not in values or isinstance(values[name], bool) or not isinstance(values[name], (int, float)):
                problems.append(f"{where}: no numeric default of that name (scopes: points, images, class-cond, "
                                f"config, sampling)")
            elif not before:
                problems.append(f"{where}: no number before the tag on its line")
            elif float(before[-1]) != float(values[name]):
                problems.append(f"{where} is {values[name]:g} in the code, the text says {before[-1]}")
    return problems


def tracked() -> set[str]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return set(out.split())


def check(paths: list[Path], listing: bool = False) -> list[str]:
    """Problems found in the given Markdown files (empty: every number has its log); prints the list if asked."""
    files, cache, problems, defaults = tracked(), {}, [], {}
    for path in paths:
        rel, text = path.resolve().relative_to(ROOT).as_posix(), path.read_text()
        problems += check_defaults(rel, text, defaults)
        made = GENERATED.search(text)
        if made:  # every number is the command's output; it must say where it ran
            if not re.search(r"AVX-512 (?:yes|no)", text) and rel not in NO_HOST_YET:
                problems.append(f"{rel}: generated by `{made.group(1)}` without its host (runtime/host.py)")
            if listing:
                print(f"{rel}: every number <- itself, generated by `{made.group(1)}`")
            continue
        for block in blocks(text):
            for line, text, logs in units(block):
                values = numbers(text)
                if not values:
                    continue
                where = f"{rel}:{line}"
                if any(f.startswith("cited: ") for f in logs):  # quoted from the papers it names, not measured
                    listing and print(f"{where}: {', '.join(values)} <- {logs[0]}")
                    continue
                missing = [f for f in logs if f not in files]
                if missing:
                    problems.append(f"{where}: claim names {', '.join(missing)}, not a file git tracks")
                    continue
                if not logs:
                    problems.append(f"{where}: {', '.join(values)} with no claim (no log named)")
                    continue
                texts = [cache.setdefault(f, (ROOT / f).read_text(errors="replace")) for f in logs]
                found = [float(m) for t in texts for m in LOG_NUMBER.findall(t)]
                bad = [v for v in values if not in_log(v, found)]
                if bad:
                    problems.append(f"{where}: {', '.join(bad)} not in {' '.join(logs)}")
                if TIMED.search(re.sub(TARGET, " ", text)) and not any(
                        re.search(r"^host: ", t, re.M) or f in NO_HOST_YET for f, t in zip(logs, texts)):
                    problems.append(f"{where}: a timed figure whose log has no host: line ({' '.join(logs)})")
                if listing:
                    print(f"{where}: {', '.join(values)} <- {' '.join(logs)}")
    return problems


def published() -> list[Path]:
    return [ROOT / "README.md"] + sorted((ROOT / "docs").rglob("*.md"))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="*", type=Path, help="Markdown files (default: README.md and docs/**/*.md)")
    p.add_argument("--list", action="store_true", help="print every checked number with its log")
    args = p.parse_args(argv)
    problems = check([f.resolve() for f in args.files] or published(), args.list)
    for log, why in NO_HOST_YET.items():
        print(f"note: {log} has no host line yet: {why}")
    for line in problems:
        print(line)
    print(f"{len(problems)} problem(s)" if problems else "every published number has its log")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
