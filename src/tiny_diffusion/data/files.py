"""Reading a user's point file (.csv with header x,y, or .npy of shape (n, 2)) with clear errors."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ..errors import InputError

MAX_ABS = 1e6  # coordinates this large are almost surely a unit or parsing mistake


def read_points(path: str | Path) -> np.ndarray:
    """The (n, 2) float32 points in `path`; InputError naming the file and the problem otherwise."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file; pass a .csv (header x,y) or .npy file of shape (n, 2)")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        pts = _read_npy(path)
    elif suffix == ".csv":
        pts = _read_csv(path)
    else:
        raise InputError(f"{path}: unsupported file type {suffix!r}; use .csv (header x,y) or .npy")
    if pts.shape[0] == 0:
        raise InputError(f"{path}: no points; the file needs at least one row")
    if np.abs(pts).max() > MAX_ABS:
        raise InputError(f"{path}: coordinates up to {np.abs(pts).max():.3g}; rescale the data to about [-10, 10]")
    return pts.astype(np.float32)


def _read_npy(path: Path) -> np.ndarray:
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as e:  # numpy raises ValueError, OSError, EOFError, UnicodeDecodeError...
        raise InputError(f"{path}: not a readable .npy array ({type(e).__name__}); save one with numpy.save") from None
    if not isinstance(arr, np.ndarray) or arr.ndim != 2 or arr.shape[1] != 2:
        raise InputError(f"{path}: array of shape {getattr(arr, 'shape', '?')}; expected (n, 2)")
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise InputError(f"{path}: array of dtype {arr.dtype}; expected real numbers")
    if not np.isfinite(arr).all():
        row = int(np.argwhere(~np.isfinite(arr))[0, 0])
        raise InputError(f"{path}: row {row} (counted from 0) is NaN or infinite; remove or fix that row")
    return arr.astype(np.float64)


def _read_csv(path: Path) -> np.ndarray:
    try:
        text = path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError) as e:
        raise InputError(f"{path}: not a readable text file ({type(e).__name__}); expected CSV with header x,y") from None
    lines = [(i, ln) for i, ln in enumerate(text.splitlines(), 1) if ln.strip()]  # (line number, line)
    if not lines:
        raise InputError(f"{path}: empty file; expected a header line 'x,y' and one point per line")
    first = lines[0][1]
    header = [h.strip().lower() for h in first.split(",")]
    if len(header) == 1 and len(first.replace(";", " ").split()) > 1:
        raise InputError(f"{path}: the header {first[:60]!r} is not comma-separated; use commas (x,y), one point per line")
    if "x" not in header or "y" not in header:
        raise InputError(f"{path}: header {first[:60]!r} has no 'x' and 'y' columns; the first line must be 'x,y'")
    ix, iy = header.index("x"), header.index("y")
    ignored = [h for i, h in enumerate(header) if i not in (ix, iy)]
    if ignored:  # e.g. a label column: fine to keep, but say so (an (n, 3) array is refused outright)
        warnings.warn(f"{path}: using columns x and y, ignoring {', '.join(repr(h) for h in ignored)}",
                      stacklevel=2)
    pts = np.empty((len(lines) - 1, 2))
    for row, (number, line) in enumerate(lines[1:]):
        cells = line.split(",")
        if len(cells) != len(header):
            raise InputError(f"{path}: line {number} has {len(cells)} fields, the header has {len(header)}")
        try:
            pts[row] = float(cells[ix]), float(cells[iy])
        except ValueError:
            raise InputError(f"{path}: line {number}: {line[:60]!r} is not numeric in column x or y") from None
    if not np.isfinite(pts).all():
        number, line = lines[1 + int(np.argwhere(~np.isfinite(pts))[0, 0])]
        raise InputError(f"{path}: line {number}: {line[:60]!r} is NaN or infinite; remove or fix that line")
    return pts
