"""The study's Markdown report: one table per ablation and conclusions, each sentence computed from the numbers."""

from __future__ import annotations

from ..config import TrainConfig
from .ablations import NEAR_ZERO, Ablation, base_config

def _fmt(v, digits=3):
    return "—" if v is None else f"{v:.{digits}g}" if isinstance(v, float) else str(v)


def _table(rows: list[dict]) -> str:
    cols = ["energy", "precision", "coverage", "nll", "elbo", "alpha_bar_T", "train_seconds"]
    extra = ["outside"] if any("outside" in r for r in rows) else []
    head = "| run | energy ↓ | precision ↑ | coverage ↑ | NLL ↓ (nats) | -ELBO ↓ (nats) | alpha_bar_T | train s |"
    head += " outside ↓ |" * bool(extra)
    lines = [head, "|" + "---|" * (len(cols) + 1 + len(extra))]
    for r in rows:
        lines.append(f"| {r['label']} | " + " | ".join(_fmt(r.get(c)) for c in cols + extra) + " |")
    return "\n".join(lines)


def _best(rows, key="energy"):
    return min(rows, key=lambda r: r[key])


def conclusions(tables: dict) -> list[str]:
    """Answers to the classic open questions, each sentence computed from the table numbers."""
    out = [_spread(key, rows) for key, rows in tables.items()]
    if "line" in tables:
        out.append(_line_corners(tables["line"]))
    if "timesteps" in tables and "terminal" in tables:
        out.append(_few_timesteps(tables["timesteps"], tables["terminal"]))
    if "schedule" in tables:
        out.append(_cosine_and_sigmoid(tables["schedule"]))
    if "lr_default_batch" in tables:
        out.append(_lr_at_default_batch(tables["lr_default_batch"]))
    for key, what in (("time_emb_right", "time"), ("input_emb_right", "input")):
        if key in tables:
            out.append(_embedding(tables[key], what))
    return out


def _spread(key: str, rows) -> str:
    b = _best(rows)
    spread = max(r["energy"] for r in rows) / max(b["energy"], 1e-9)
    return (f"- **{key}**: best energy {b['energy']:.3g} with {b['label']}; the worst is {spread:.1f}x "
            f"that ({'the choice matters' if spread > 2 else 'the choice matters little'} by this measure).")


def _line_corners(rows) -> str:
    classic, best = rows[0], min(rows, key=lambda r: r["outside"])
    return (f"- **Line corners.** With the classic schedule (alpha_bar_T = {classic['alpha_bar_T']:.2f}) "
            f"{100 * classic['outside']:.1f}% of samples land outside the rectangle "
            f"(precision {classic['precision']:.3f}, energy {classic['energy']:.3g}); the fewest outside: "
            f"{best['label']} with {100 * best['outside']:.1f}% (precision {best['precision']:.3f}, energy "
            f"{best['energy']:.3g}). With alpha_bar_T = {NEAR_ZERO:g} alone: {100 * rows[1]['outside']:.1f}% "
            f"outside, energy {rows[1]['energy']:.3g}; "
            + ("so the leftover signal in x_T is what blurs them."
               if rows[1]["outside"] < classic["outside"] else
               "so alpha_bar_T alone does not explain the blur at this budget."))


def _few_timesteps(timesteps, terminal) -> str:
    pairs = list(zip(timesteps, terminal))
    classic, rescaled = pairs[0]
    best = _best([r for pair in pairs for r in pair])
    lost = classic["y_spread"] < 0.9
    return (f"- **Few timesteps.** At {classic['label']} the classic linear schedule ends at alpha_bar_T = "
            f"{classic['alpha_bar_T']:.2f}, and samples keep {100 * classic['y_spread']:.0f}% of the data's "
            f"vertical spread (energy {classic['energy']:.3g})"
            + (": the top and bottom are pulled in, as sampling starts from N(0, I) while training's x_T "
               "still held the data. " if lost else ". ")
            + f"Rescaling to alpha_bar_T = {NEAR_ZERO:g} gives {100 * rescaled['y_spread']:.0f}% (energy "
            f"{rescaled['energy']:.3g}), "
            + ("which fixes it. " if rescaled["energy"] < classic["energy"] else
               "which does not fix it at this T (too few steps to denoise from pure noise). ")
            + f"Best over both rows: {best['label']} (energy {best['energy']:.3g}). Energy per T, classic -> "
            "near-0 alpha_bar_T: "
            + "; ".join(f"{a['label'].split(',')[0]}: {a['energy']:.3g} -> {c['energy']:.3g}" for a, c in pairs)
            + ".")


def _cosine_and_sigmoid(rows) -> str:
    lin = rows[0]
    lin0 = next((r for r in rows if r["label"].startswith("schedule=linear,")), lin)
    new = [r for r in rows if "cosine" in r["label"] or "sigmoid" in r["label"]]
    verdict = [f"{r['label']} (alpha_bar_T {r['alpha_bar_T']:.2g}): energy {r['energy']:.3g}, NLL {r['nll']:.3g}, "
               f"{'beats' if r['energy'] < lin['energy'] else 'does not beat'} classic linear "
               f"({lin['energy']:.3g}) and {'beats' if r['energy'] < lin0['energy'] else 'does not beat'} linear "
               f"rescaled to alpha_bar_T = {NEAR_ZERO:g} ({lin0['energy']:.3g})" for r in new]
    return "- **Cosine and sigmoid.** " + "; ".join(verdict) + f". Best schedule: {_best(rows)['label']}."


def _lr_at_default_batch(rows) -> str:
    b = _best(rows)
    ok = [r["label"].split(",")[0] for r in rows if r["energy"] <= 2 * b["energy"]]
    return (f"- **Learning rate at our default batch size.** Within 2x of the best energy ({b['energy']:.3g}, "
            f"{b['label'].split(',')[0]}): {', '.join(ok)}.")


def _embedding(rows, what: str) -> str:
    b, w = _best(rows), max(rows, key=lambda r: r["energy"])
    return (f"- **{what.capitalize()} embedding with the schedule right.** Energy from {b['energy']:.3g} "
            f"({b['label'].split(',')[0]}) to {w['energy']:.3g} ({w['label'].split(',')[0]}): "
            f"{'it matters' if w['energy'] > 2 * b['energy'] else 'it matters little'} "
            f"(ratio {w['energy'] / max(b['energy'], 1e-9):.1f}x).")


def render(preset: str, study: list[Ablation], tables: dict, seconds: float, jobs: int, statuses: dict) -> str:
    base = base_config(preset)
    n_runs = len({r["run"] for rows in tables.values() for r in rows})
    from ..runtime.host import host_line

    lines = [
        f"# The tiny-diffusion ablation study, reproduced (`--preset {preset}`)",
        "",
        f"<!-- generated: tiny-diffusion reproduce --preset {preset} --jobs {jobs} -->",  # bench/claims.py: a log
        "",
        f"Measured on {host_line()[len('host: '):]}.",
        "",
        f"Generated by `tiny-diffusion reproduce --preset {preset} --jobs {jobs}`: {n_runs} distinct runs; this "
        f"invocation trained {statuses.get('trained', 0)}, resumed {statuses.get('resumed', 0)} and found "
        f"{statuses.get('skipped', 0)} already finished, "
        f"in {seconds:.0f} s wall time. Every number below is measured by that command; the "
        "conclusions are computed from the tables.",
        "",
        f"Base (the classic configuration{'' if preset == 'full' else ', with this preset budget'}): "
        + ", ".join(f"{k} {v}" for k, v in base.items() if k not in ("device", "seed")) + ".",
        "",
        f"Numbers are of the final snapshot ({base['frame_points'] if 'frame_points' in base else TrainConfig().frame_points} samples) against fresh data: energy distance (0 is perfect), "
        "precision and coverage (k-NN, 1 is perfect), and on 1000 held-out points the probability-flow ODE's exact NLL "
        "and the DDPM -ELBO, an upper bound on the ancestral sampler's NLL (both nats per point, lower is better; "
        "they are NLLs of two different models, so the -ELBO may lie below the ODE's NLL). Grid figures: rows are "
        "runs, columns snapshot epochs.",
        "",
        "## Conclusions",
        "",
        *conclusions(tables),
        "",
        "## Processes",
        "",
        "![forward process](figures/forward.png)",
        "",
        "![reverse process](figures/reverse.png)",
        "",
        "![training animation](figures/training.gif)",
        "",
    ]
    for a in study:
        lines += [f"## {a.title}{' (new)' if a.new else ''}", "", _table(tables[a.key]), "",
                  f"![{a.key}](figures/{a.key}.png)", ""]
    return "\n".join(lines)
