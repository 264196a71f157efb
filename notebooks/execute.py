"""Run the tutorial notebooks top to bottom and save them with their outputs (what GitHub renders).

    python notebooks/execute.py                      # all of them, full size, in place
    python notebooks/execute.py 01_points.ipynb      # one
    TINY_DIFFUSION_QUICK=1 python notebooks/execute.py --out /tmp/nb   # the tests' quick size, elsewhere

Each runs in a fresh kernel (nbclient, ipykernel: `pip install -e '.[test]'`) in a scratch folder, so its runs/
and data/ do not land in the repository; a cell that raises stops it and nothing is written.
"""

import argparse
import tempfile
from pathlib import Path

import nbclient
import nbformat

HERE = Path(__file__).resolve().parent


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("notebooks", nargs="*", help="names in notebooks/ (default: every .ipynb there)")
    p.add_argument("--out", type=Path, help="write the executed notebooks here instead of in place")
    p.add_argument("--timeout", type=int, default=3600, help="seconds per cell (default 3600)")
    args = p.parse_args()
    paths = [HERE / n for n in args.notebooks] or sorted(HERE.glob("*.ipynb"))
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        with tempfile.TemporaryDirectory() as scratch:
            nbclient.NotebookClient(nb, timeout=args.timeout, kernel_name="python3",
                                    resources={"metadata": {"path": scratch}}).execute()
        out = args.out / path.name if args.out else path
        out.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, out)
        print(f"{path.name}: executed, saved to {out}", flush=True)


if __name__ == "__main__":
    main()
