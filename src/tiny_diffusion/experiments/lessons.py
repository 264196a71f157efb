"""The study's conclusions as lessons: for each ablation, one sentence with its numbers in all three sample
metrics (energy distance, precision, coverage), beside what the classic tiny-diffusion write-up (2023)
concluded for that setting, and whether these numbers agree. Every verdict is computed from the tables, so a
conclusion cannot contradict the figure drawn from the same runs.

Two runs are compared on the three metrics at once: one "beats" the other when it is better in at least two
(lower energy, higher precision, higher coverage). A setting "matters" when some metric moves by a clear
margin across its values (MARGIN below), not by energy alone: energy can barely move while only one run
forms the shape (its precision is several times the others')."""

from __future__ import annotations

from .ablations import NEAR_ZERO

# A metric "moves" across an ablation when its worst is this far from its best: energy (a distance, 0 at
# the data) by a factor of 2; precision and coverage (shares in [0, 1]) by 1.5x and at least 0.1 apart.
MARGIN = {"energy": 2.0, "precision": 1.5, "coverage": 1.5}
MIN_GAP = 0.1
METRICS = (("energy", -1), ("precision", 1), ("coverage", 1))  # (name, +1 where higher is better)


def _name(row) -> str:
    """The ablated setting alone ('lr=0.01' of 'lr=0.01, fast default')."""
    return row["label"].split(",")[0]


def beats(a: dict, b: dict) -> bool:
    """a is better than b in at least two of the three metrics."""
    return sum((a[m] - b[m]) * sign > 0 for m, sign in METRICS) >= 2


def moved(rows) -> list[str]:
    """The metrics that move by a clear margin across the rows (empty: the setting matters little)."""
    out = []
    for m, sign in METRICS:
        values = [r[m] for r in rows]
        best, worst = (max(values), min(values)) if sign > 0 else (min(values), max(values))
        ratio = (best / max(worst, 1e-9)) if sign > 0 else (worst / max(best, 1e-9))
        if ratio > MARGIN[m] and (m == "energy" or best - worst >= MIN_GAP):
            out.append(f"{m} {ratio:.1f}x")
    return out


def ranges(rows) -> str:
    """'energy 0.14 (lr=0.01) to 0.18 (lr=1e-05), precision ... , coverage ...': best first."""
    parts = []
    for m, sign in METRICS:
        ordered = sorted(rows, key=lambda r: -sign * r[m])
        parts.append(f"{m} {ordered[0][m]:.3g} ({ordered[0]['label']}) to {ordered[-1][m]:.3g} "
                     f"({ordered[-1]['label']})")
    return ", ".join(parts)


def _verdict(rows) -> str:
    m = moved(rows)
    return f"it matters ({', '.join(m)} between best and worst)" if m else "it matters little (no metric moves 2x)"


def _find(rows, text):
    return next(r for r in rows if _name(r) == text)


# What the classic write-up concluded, in its words, split into the parts a table can test:
# test(rows, tables) -> [(holds, evidence), ...]; we agree when every part holds, in part when some do.
def _lr(rows, tables):
    m = moved(rows)
    return [(bool(m), f"{', '.join(m)} between the best and the worst rate" if m else
             "no metric moves by a clear margin across the rates at this budget")]


def _dataset(rows, tables):
    line = _find(rows, "dataset=line")
    best = min(tables.get("line", [line]), key=lambda r: r["outside"])
    beaten = [_name(r) for r in rows if r is not line and beats(r, line)]
    return [(line["outside"] > 2 * best["outside"],
             f"{100 * line['outside']:.1f}% of the line's samples land outside its rectangle, against "
             f"{100 * best['outside']:.1f}% for {best['label']} (the line's corners, below)"),
            (not beaten, f"otherwise the line ({_metrics(line)}) is learnt "
             + (f"worse than {', '.join(beaten)}" if beaten else "as well as the other shapes"))]


def _timesteps(rows, tables):
    short, long = rows[0], rows[-1]
    return [(beats(long, short), f"{_name(long)} {'beats' if beats(long, short) else 'does not beat'} "
             f"{_name(short)} ({_metrics(long)} against {_metrics(short)})"),
            (short["y_spread"] < 0.9, f"{_name(short)} keeps {100 * short['y_spread']:.0f}% of the data's vertical "
             f"spread: the classic linear betas end there at alpha_bar_T = {short['alpha_bar_T']:.2f}, so training's "
             "x_T still holds the data while sampling starts from N(0, I)")]


def _schedule(rows, tables):
    lin, quad = _find(rows, "schedule=linear"), _find(rows, "schedule=quadratic")
    return [(not beats(quad, lin), f"quadratic ({_metrics(quad)}) {'beats' if beats(quad, lin) else 'does not beat'}"
             f" linear ({_metrics(lin)}); cosine and sigmoid need alpha_bar_T near 0 (below)")]


def _capacity(rows, tables):
    m = moved(rows)
    return [(not m, "every size tried gives a similar result" if not m else
             f"{', '.join(m)} between the best and the worst size at this budget")]


def _time_emb(rows, tables):
    zero = _find(rows, "time_emb=zero")
    others = [r for r in rows if r is not zero]
    helps, m = all(beats(r, zero) for r in others), moved(others)
    return [(helps, f"{'every' if helps else 'not every'} encoding beats no time input ({_metrics(zero)}; "
             "the lesson below repeats this with alpha_bar_T near 0)"),
            (not m, "the encodings are alike" if not m else f"the encodings differ: {', '.join(m)}")]


def _input_emb(rows, tables):
    sin = _find(rows, "input_emb=sinusoidal")
    wins = all(beats(sin, r) for r in rows if r is not sin)
    return [(wins, f"sinusoidal ({_metrics(sin)}) {'beats' if wins else 'does not beat'} every other input "
             "embedding")]


BLOG = {
    "lr": ("the learning process is sensitive to the learning rate", _lr),
    "dataset": ("the model does not work well on `line`: its corners should be sharp but are fuzzy", _dataset),
    "timesteps": ("a longer diffusion process gives a better output; with few timesteps the dino misses points "
                  "at its top and bottom", _timesteps),
    "schedule": ("the quadratic schedule does not give better results", _schedule),
    "hidden_size": ("capacity is not a bottleneck: similar results across sizes", _capacity),
    "hidden_layers": ("as with the hidden size, capacity is not a limiting factor", _capacity),
    "time_emb": ("the model benefits from the timestep, but how it is encoded is not important", _time_emb),
    "input_emb": ("sinusoidal input embeddings help with high frequencies in low dimensions", _input_emb),
}


def conclusions(tables: dict, titles: dict | None = None) -> list[str]:
    """One lesson per ablation (the classic ones beside the write-up's conclusion), then the new questions."""
    titles = titles or {}
    out = []
    for key, rows in tables.items():
        head = f"- **{titles.get(key, key)}.** Here: {ranges(rows)}; {_verdict(rows)}."
        if key in BLOG:
            said, test = BLOG[key]
            parts = test(rows, tables)
            held = sum(h for h, _ in parts)
            verdict = "agree" if held == len(parts) else "disagree" if held == 0 else "agree in part"
            head += f" The write-up: \"{said}\". **We {verdict}**: " + "; ".join(e for _, e in parts) + "."
        out.append(head)
    for key, lesson in (("line", _line_corners), ("schedule", _cosine_and_sigmoid),
                        ("lr_default_batch", _lr_at_default_batch), ("default", _default)):
        if key in tables:
            out.append(lesson(tables[key]))
    if "timesteps" in tables and "terminal" in tables:
        out.append(_few_timesteps(tables["timesteps"], tables["terminal"]))
    for key, what in (("time_emb_right", "time"), ("input_emb_right", "input")):
        if key in tables:
            out.append(_embedding(tables[key], what))
    return out


def _metrics(r) -> str:
    return f"energy {r['energy']:.3g}, precision {r['precision']:.3g}, coverage {r['coverage']:.3g}"


def _line_corners(rows) -> str:
    classic, rescaled = rows[0], rows[1]
    best = min(rows, key=lambda r: r["outside"])
    return (f"- **Line corners.** With the classic schedule (alpha_bar_T = {classic['alpha_bar_T']:.2f}) "
            f"{100 * classic['outside']:.1f}% of samples land outside the rectangle ({_metrics(classic)}); the "
            f"fewest outside: {best['label']} with {100 * best['outside']:.1f}% ({_metrics(best)}). With "
            f"alpha_bar_T = {NEAR_ZERO:g} alone: {100 * rescaled['outside']:.1f}% outside ({_metrics(rescaled)}); "
            + ("so the leftover signal in x_T is what blurs them."
               if rescaled["outside"] < classic["outside"] else
               "so alpha_bar_T alone does not explain the blur at this budget."))


def _few_timesteps(timesteps, terminal) -> str:
    pairs = list(zip(timesteps, terminal))
    classic, rescaled = pairs[0]
    fixed = beats(rescaled, classic)
    return (f"- **Few timesteps, alpha_bar_T near 0.** At {_name(classic)} rescaling the betas to alpha_bar_T = "
            f"{NEAR_ZERO:g} gives {100 * rescaled['y_spread']:.0f}% of the vertical spread ({_metrics(rescaled)}) "
            f"against {100 * classic['y_spread']:.0f}% ({_metrics(classic)}): "
            + ("it fixes the missing top and bottom. " if fixed else
               "it does not fix it at this T (too few steps to denoise from pure noise). ")
            + "Per T, classic -> near-0 alpha_bar_T (energy; precision): "
            + "; ".join(f"{_name(a)}: {a['energy']:.3g} -> {c['energy']:.3g}; {a['precision']:.3g} -> "
                        f"{c['precision']:.3g}" for a, c in pairs) + ".")


def _cosine_and_sigmoid(rows) -> str:
    lin = rows[0]
    lin0 = next((r for r in rows if r["label"].startswith("schedule=linear,")), lin)
    new = [r for r in rows if "cosine" in r["label"] or "sigmoid" in r["label"]]
    verdict = [f"{r['label']} (alpha_bar_T {r['alpha_bar_T']:.2g}): {_metrics(r)}, "
               f"{'beats' if beats(r, lin) else 'does not beat'} classic linear and "
               f"{'beats' if beats(r, lin0) else 'does not beat'} linear rescaled to alpha_bar_T = {NEAR_ZERO:g}"
               for r in new]
    return ("- **Cosine and sigmoid.** " + "; ".join(verdict) + f". Classic linear: {_metrics(lin)}; rescaled: "
            f"{_metrics(lin0)}.")


def _lr_at_default_batch(rows) -> str:
    return ("- **Learning rate at our default batch size.** "
            + "; ".join(f"{_name(r)}: {_metrics(r)}" for r in rows)
            + f". {_name(rows[0])} beats "
            + (", ".join(_name(r) for r in rows[1:] if beats(rows[0], r)) or "none of the lower rates") + ".")


def _default(rows) -> str:
    classic, fast = rows[0], rows[-1]
    return (f"- **Classic configuration against our fast default.** Classic: {_metrics(classic)}; fast default: "
            f"{_metrics(fast)}; the fast default {'beats' if beats(fast, classic) else 'does not beat'} it.")


def _embedding(rows, what: str) -> str:
    return (f"- **{what.capitalize()} embedding with alpha_bar_T near 0.** {ranges(rows)}; {_verdict(rows)}.")
