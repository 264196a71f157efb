"""`tiny-diffusion datasets`: the built-in data sets with one line each."""

from __future__ import annotations




def add_parser(sub) -> None:
    p = sub.add_parser("datasets", help="list the built-in data sets (points, then images; any folder of images "
                       "works too)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..data.image_names import IMAGE_DATASETS
    from ..data.points import DATASETS

    rows = [(name, _describe(name, fn, DATASETS)) for name, fn in DATASETS.items()]
    rows += [(name, IMAGE_DATASETS[name]) for name in IMAGE_DATASETS]
    rows += [("FILE.csv / FILE.npy", "your own 2D points (header x,y; or an (n, 2) array)"),
             ("FOLDER", "your own images, any folder (classes: its first-level subfolders)")]
    width = max(len(name) for name, _ in rows)
    print("\n".join(f"{name:<{width}}  {text}" for name, text in rows))
    return 0


def _describe(name: str, fn, table: dict) -> str:
    """What a point set is: a Datasaurus shape, or the first line of its function's docstring; and which
    other name draws the same distribution (dino is datasaurus:dino)."""
    key = (getattr(fn, "func", fn), getattr(fn, "args", ()))
    twin = next((other for other, g in table.items() if other != name and
                 (getattr(g, "func", g), getattr(g, "args", ())) == key), None)
    if key[1]:
        text = f"the Datasaurus Dozen's {key[1][0]!r} shape: its 142 points, each with a little Gaussian jitter"
    else:
        text = (fn.__doc__ or "").strip().split("\n")[0]
    return text + (f" (the same as {twin})" if twin else "")
