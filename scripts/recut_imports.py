"""One-off: rewrite tiny_diffusion imports written for the layout before the re-cut (issue 16) to the new one.

    python scripts/recut_imports.py [--just-moved] FILE_OR_DIR ...   # rewrites in place; prints what it changed

Imports of moved modules (MOVES) and of names that moved to another module (NAME_MOVES) are rewritten,
absolute ones (`from tiny_diffusion.samplers import sample`, `from tiny_diffusion import plots`) and relative
ones alike. --just-moved: the files under src/ were just `git mv`-ed by MOVES and their relative imports
still mean their old place (run it once, right after the moves); without it they mean where they are.
"""

import ast
import sys
from pathlib import Path

PKG = "tiny_diffusion"
MOVES = {  # old module -> new module (inside the package)
    "schedules": "core.schedules",
    "diffusion": "core.diffusion",
    "noise": "core.noise",
    "samplers": "core.samplers",
    "guidance": "core.guidance",
    "exact": "core.exact",
    "metrics": "eval.points",
    "likelihood": "eval.likelihood",
    "steps_curve": "eval.steps_curve",
    "guidance_curve": "eval.guidance_curve",
    "plots": "viz.points",
    "figures": "viz.figures",
    "sweep": "experiments.sweep",
    "reproduce": "experiments.study",
    "train.dist": "runtime.dist",
    "train.graphs": "runtime.graphs",
    "threads": "runtime.threads",
}
MOVES = {f"{PKG}.{k}": f"{PKG}.{v}" for k, v in MOVES.items()}
NAME_MOVES = {  # (module after MOVES, name) -> the module that now defines it
    **{("core.samplers", n): "sampling" for n in ("sample", "trajectory", "grid", "default_grid", "describe_grid",
                                                 "FEW_STEP_LAMBDA_MIN", "AlignedBatches", "POINT_BLOCK", "IMAGE_BLOCK")},
    ("train", "resolve_device"): "runtime.device",
    ("train.loop", "resolve_device"): "runtime.device",
    ("train.loop", "frame_epochs"): "runs",
    **{("runs", n): "fileio" for n in ("atomic_write", "write_csv", "write_json")},
    **{("experiments.study", n): "experiments.ablations" for n in ("CLASSIC", "NEAR_ZERO", "Ablation", "ablations")},
    **{("experiments.study", n): "experiments.study_report" for n in ("conclusions", "render")},
}
NAME_MOVES = {(f"{PKG}.{m}", n): f"{PKG}.{v}" for (m, n), v in NAME_MOVES.items()}
NEW_TO_OLD = {v: k for k, v in MOVES.items()}


def module_of(path: Path) -> str | None:
    """The dotted name of a file under src/ (its new name), or None outside the package."""
    parts = path.resolve().with_suffix("").parts
    if PKG not in parts:
        return None
    parts = parts[parts.index(PKG):]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(path: Path) -> list[str]:
    mod = module_of(path)
    return mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]


def absolute(node: ast.ImportFrom, pkg: list[str]) -> str:
    if node.level == 0:
        return node.module
    base = pkg[: len(pkg) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def relative(target: str, pkg: list[str]) -> str:
    parts = target.split(".")
    common = 0
    while common < min(len(parts), len(pkg)) and parts[common] == pkg[common]:
        common += 1
    return "." * (len(pkg) - common + 1) + ".".join(parts[common:])


def rewrite_node(node: ast.ImportFrom) -> list[str] | None:
    """New absolute import lines for an absolute import `node`, or None when it is unchanged."""
    target = node.module
    if target is None or not target.startswith(PKG):
        return None
    out = []
    if target in MOVES or any((target, a.name) in NAME_MOVES for a in node.names):
        target = MOVES.get(target, target)
        by_module = {}
        for alias in node.names:
            by_module.setdefault(NAME_MOVES.get((target, alias.name), target), []).append(alias)
        out.extend(by_module.items())
    else:
        kept = []
        for alias in node.names:
            full = f"{target}.{alias.name}"
            if full in MOVES:
                new_pkg, new_name = MOVES[full].rsplit(".", 1)
                out.append((new_pkg, [ast.alias(new_name, alias.asname or (alias.name if new_name != alias.name else None))]))
            else:
                kept.append(alias)
        if not out:
            return None
        if kept:
            out.insert(0, (target, kept))
    lines = []
    for mod, names in out:
        text = ", ".join(a.name + (f" as {a.asname}" if a.asname else "") for a in names)
        lines.append(f"from {mod} import {text}")
    return lines


def rewrite(path: Path, old_pkg: list[str] | None) -> bool:
    src = path.read_text()
    tree = ast.parse(src)
    lines = src.splitlines(keepends=True)
    edits = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.level == 0 or old_pkg is not None):
            new = rewrite_node(node) if node.level == 0 else rewrite_relative(node, path, old_pkg)
            if new is not None:
                edits.append((node, new))
    for node, new in sorted(edits, key=lambda e: -e[0].lineno):
        first, last = lines[node.lineno - 1], lines[node.end_lineno - 1]
        indent = first[: node.col_offset]
        tail = last[node.end_col_offset:]
        block = "".join(indent + ln + ("\n" if i < len(new) - 1 else "") for i, ln in enumerate(new))
        lines[node.lineno - 1: node.end_lineno] = [block + tail]
    if edits:
        path.write_text("".join(lines))
    return bool(edits)


def rewrite_relative(node: ast.ImportFrom, path: Path, old_pkg: list[str]) -> list[str] | None:
    """A relative import: resolved against the file's old package, re-expressed from its new one."""
    new_pkg = package_of(path)
    target = absolute(node, old_pkg)
    mapped = rewrite_node(ast.ImportFrom(module=target, names=node.names, level=0))
    if mapped is None and old_pkg == new_pkg:
        return None
    mapped = mapped or [f"from {target} import " + ", ".join(a.name + (f" as {a.asname}" if a.asname else "")
                                                            for a in node.names)]
    out = []
    for line in mapped:
        _, mod, rest = line.split(" ", 2)
        out.append(f"from {relative(mod, new_pkg)} {rest}")
    return out


def old_package(path: Path) -> list[str] | None:
    mod = module_of(path)
    if mod is None:
        return None
    old = NEW_TO_OLD.get(mod, mod)
    return old.split(".") if path.name == "__init__.py" else old.split(".")[:-1]


if __name__ == "__main__":
    just_moved = "--just-moved" in sys.argv
    for arg in [a for a in sys.argv[1:] if a != "--just-moved"]:
        files = [Path(arg)] if arg.endswith(".py") else sorted(Path(arg).rglob("*.py"))
        for f in files:
            pkg = None if module_of(f) is None else old_package(f) if just_moved else package_of(f)
            if rewrite(f, pkg):
                print(f)
