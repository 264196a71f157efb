"""Config values as users give them: TOML and JSON files, command-line text, layers merged (a file, then flags),
and the small parsers the config and its readers share. Pure Python (no torch), no TrainConfig: config.py builds
on this."""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path

from .errors import InputError

def read_config_file(path: Path, kind: str) -> dict:
    """A `kind` file's values: TOML, or JSON for a .json file (a run's config.json, a sweep's sweep.json)."""
    if Path(path).suffix.lower() != ".json":
        return read_toml(path, kind)
    try:
        values = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: no such {kind} file") from None
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as e:
        raise InputError(f"{path}: not valid JSON ({str(e).splitlines()[0]})") from None
    if not isinstance(values, dict):
        raise InputError(f"{path}: expected a JSON object of {kind} values")
    return values


def read_toml(path: Path, kind: str) -> dict:
    """The TOML file at `path` as a dict; InputError naming the file (a `kind` file) otherwise."""
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: no such {kind} file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError) as e:
        raise InputError(f"{path}: not valid TOML ({str(e).splitlines()[0]})") from None


def check_length(values: dict, source: str, flags: bool = False) -> None:
    """One layer of user values (a TOML file, the command line, a sweep's base or run) sets the training length
    once: epochs, or kimg > 0, not both (which would win is a guess the user should not have to make)."""
    kimg = values.get("kimg")
    if "epochs" in values and isinstance(kimg, (int, float)) and kimg > 0:
        e, k = ("--epochs", "--kimg") if flags else ("epochs", "kimg")
        raise InputError(f"{source}: {e} {values['epochs']} and {k} {kimg:g} both set the training length; give "
                         f"one of them")


def merge_values(base: dict, over: dict) -> dict:
    """`over`'s values on top of `base`'s (the command line over a TOML file, a sweep run over its base). A layer
    that sets the length replaces the other way of setting it below: epochs drops a kimg, kimg > 0 drops epochs."""
    merged = {**base, **over}
    if "epochs" in over and "kimg" not in over:
        merged.pop("kimg", None)
    kimg = over.get("kimg")
    if isinstance(kimg, (int, float)) and kimg > 0 and "epochs" not in over:
        merged.pop("epochs", None)
    return merged


def _int_list(text: str, name: str, source: str, low: int = 0, high: int = 64) -> list[int]:
    """'1,2,2' -> [1, 2, 2]; InputError naming the field otherwise."""
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise InputError(f"{source}: {name} = {text!r} should be comma-separated integers, e.g. 1,2,2") from None
    if not values or min(values) < low or max(values) > high:
        raise InputError(f"{source}: {name} = {text!r} should be integers from {low} to {high}, e.g. 1,2,2")
    return values


def shape_text(shape) -> str:
    """One sample's shape as config.json records it: (1, 28, 28) -> '1,28,28'."""
    return ",".join(str(int(s)) for s in shape)


def int_list(text: str) -> list[int]:
    """A validated comma-separated integer field as a list."""
    return [int(v) for v in text.split(",")]


def type_of(f) -> type:
    """The Python type a field holds (int, float or str)."""
    t = f.type if isinstance(f.type, str) else f.type.__name__
    return {"int": int, "float": float, "str": str, "bool": bool}[t.split("|")[0].strip()]


def _coerce(f, value, source: str):
    """`value` as the field's type; InputError for a wrong type (a bool is not a number here)."""
    t = type_of(f)
    if value is None and (f.metadata["nullable"] or f.metadata["auto"]):
        return None
    if t is float and isinstance(value, int) and not isinstance(value, bool):
        if abs(value) > 1e300:
            raise InputError(f"{source}: {f.name} = {value} is far too large for a number")
        return float(value)
    if not isinstance(value, t) or (isinstance(value, bool) and t is not bool):
        what = {str: "a string", bool: "true or false"}.get(t, "a number")
        raise InputError(f"{source}: {f.name} = {value!r} should be {what} ({t.__name__})")
    return value


def parse_interval(text: str | None, what: str = "--guidance-interval") -> tuple[float, float] | None:
    """'lo,hi' (log-SNR lambda, lo < hi) -> (lo, hi); 'all', '' or None -> None (every step guided); InputError
    naming `what` and the form otherwise."""
    if text is None or text.strip().lower() in ("all", ""):
        return None
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        lo = hi = math.nan
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise InputError(f"{what} {text!r}: give 'lo,hi', two log-SNR values with lo < hi (e.g. -2,1), or 'all'")
    return lo, hi


def check_applies(cfg, given: dict, source: str, flags: bool = False) -> None:
    """Refuse a setting the user gave (`given`: one layer of values) that only the other kind of data uses
    (image_size for points, hidden_size for images): training would drop it without a word."""
    for name in given:
        fields = type(cfg).__dataclass_fields__
        only = fields[name].metadata["only"] if name in fields else None
        if only is not None and only != cfg.kind:
            key = "--" + name.replace("_", "-") if flags else name
            raise InputError(f"{source}: {key} applies to {only} only and {cfg.dataset} holds {cfg.kind}, so it "
                             f"would be ignored; drop it")


def user_values(values: dict, path: Path, resolved_names: list[str]) -> dict:
    """A config file's values less what a run records of itself: a config.json's kind and sample shape (found again
    from the data) and its length's other half (kimg 0 beside epochs); InputError for those keys in a TOML file,
    and for a distilled student's grid (only `distill` trains one). resolved_names: the fields a run fills in."""
    resolved = [name for name in resolved_names if name in values]
    if path.suffix.lower() != ".json":
        if resolved:
            raise InputError(f"{path}: {resolved[0]!r} is not a setting (the run finds it from the data); remove it")
        return values
    if values.get("sample_grid"):
        raise InputError(f"{path}: the config of a distilled student; make one with `tiny-diffusion distill`")
    values = {k: v for k, v in values.items() if k not in resolved}
    if values.get("kimg") == 0 and "epochs" in values:
        values.pop("kimg")
    elif isinstance(values.get("kimg"), (int, float)) and values["kimg"] > 0:
        values.pop("epochs", None)
    return values
