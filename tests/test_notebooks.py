"""The tutorial notebooks run top to bottom at their quick size (TINY_DIFFUSION_QUICK=1) through a real Jupyter
kernel: a cell that raises fails the test (issue 27 part 1), and so does a warning in any output (issue 31). A second
"Run All" in the same folder works (issue 31). The saved .ipynb files keep their full-size outputs."""

import json
import os
import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
# what Python's warnings module prints (TqdmWarning, UserWarning, ...) and the usual "WARNING" of loggers
WARNING = re.compile(r"\w*Warning\b|\bWARNING\b")


def warnings_in(cells) -> list[str]:
    """The output streams (stdout and stderr) of code cells that print a warning; a saved notebook is read as JSON,
    an executed one as nbformat nodes: both are dicts."""
    return [f"cell {i}: {text.strip()[:300]}" for i, c in enumerate(cells) if c["cell_type"] == "code"
            for o in c["outputs"] if o["output_type"] == "stream"
            for text in ["".join(o["text"])] if WARNING.search(text)]


def test_the_tutorials_are_there():
    assert [p.name for p in NOTEBOOKS] == ["01_points.ipynb", "02_digits.ipynb", "03_your_photos.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_saved_with_their_figures(path):
    """Rendered on GitHub, each notebook shows its figures: the saved file holds executed cells with images."""
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code and all(c["execution_count"] is not None for c in code), "save the notebook executed"
    assert [c["execution_count"] for c in code] == list(range(1, len(code) + 1)), "run top to bottom, once"
    images = [o for c in code for o in c["outputs"] if {"image/png", "image/gif"} & set(o.get("data", {}))]
    assert len(images) >= 3
    assert not [o for c in code for o in c["outputs"] if o["output_type"] == "error"]
    assert not warnings_in(nb["cells"]), "a learner sees every saved output: no warnings"


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One data cache for the three: the digits' metric classifier is trained once (it is cached by its data)."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def quick(monkeypatch, cache):
    """The tests' size, this checkout's code (the kernel inherits PYTHONPATH) and a data cache of our own."""
    monkeypatch.setenv("TINY_DIFFUSION_QUICK", "1")
    monkeypatch.setenv("TINY_DIFFUSION_DATA", str(cache))  # the classifier and folder caches, never the user's
    src = Path(__file__).resolve().parent.parent / "src"
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(src), os.environ.get("PYTHONPATH")])))


def run_all(path: Path, folder: Path):
    """What Jupyter's "Restart & Run All" does with the notebook standing in `folder`: a fresh kernel, every cell."""
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(folder)}})
    client.execute()  # raises CellExecutionError on the first cell that fails
    return nb


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_runs_top_to_bottom(path, tmp_path, quick):
    nb = run_all(path, tmp_path)
    figures = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
               if {"image/png", "image/gif"} & set(o.get("data", {}))]
    assert len(figures) >= 3
    assert not warnings_in(nb.cells)


def test_runs_again_where_it_stands(tmp_path, quick):
    """A second Run All in the same folder finds the first one's runs/ (and data/) and still runs to the end. One
    notebook stands for the three (each clears its own run folders the same way); 01 is the quickest."""
    path = next(p for p in NOTEBOOKS if p.name == "01_points.ipynb")
    run_all(path, tmp_path)
    assert (tmp_path / "runs").is_dir()  # the first run left its run folders where the second will look
    nb = run_all(path, tmp_path)
    assert not warnings_in(nb.cells)
