"""The lazy public names of `import tiny_diffusion as td` stay what they name on every access."""

import subprocess
import sys

from tests.helpers import SRC


def test_td_train_is_the_function_on_every_access():
    """td.train named the subpackage `train` after its first use (a notebook's second run failed: 'module' object
    is not callable). Fresh interpreter: the import order is what matters."""
    code = ("import tiny_diffusion as td, types\n"
            "first, second = td.train, td.train\n"
            "assert callable(first) and not isinstance(second, types.ModuleType), second\n"
            "assert first is second\n"
            "print(td.sample.__module__, td.plots.__name__)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONPATH": str(SRC)})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["tiny_diffusion.sampling", "tiny_diffusion.viz.points"]


def test_our_figures_leave_a_users_matplotlib_backend_alone(tmp_path):
    """A notebook's inline plots kept working after td.train drew its figures (the library switched to Agg)."""
    code = ("import matplotlib; matplotlib.use('svg'); import matplotlib.pyplot as plt, numpy as np\n"
            "import tiny_diffusion as td\n"
            f"td.plots.scatter(np.zeros((3, 2)), r'{tmp_path / 'x.png'}')\n"
            "print(matplotlib.get_backend(), plt.get_fignums())")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONPATH": str(SRC)})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["svg", "[]"]  # the user's backend, and our figure closed
    assert (tmp_path / "x.png").stat().st_size > 0
