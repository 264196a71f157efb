"""The evaluation of the tutorial recipe on 20 photos (issue 26 item 1), counted in one-image forward passes: exact
numbers from the config rule, no timing. Runs on the code before issue 26 too (its rule: fixed 64-image blocks):

    python bench/photo_recipe_passes.py                              # this checkout
    PYTHONPATH=OLD/src python bench/photo_recipe_passes.py           # `git archive d933c6b src | tar -x -C OLD`
"""

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from tiny_diffusion.config import TrainConfig
photos = tempfile.mkdtemp()  # the rule needs only a folder (dataset_kind): what is in it does not count
cfg = TrainConfig.from_toml(ROOT / "configs" / "cars-tutorial.toml", {"dataset": photos, "epochs": 3})
seen, shots = 3 * 20, 3  # 3 steps of 20 photos; snapshot_steps(3, 1, 10) = [1, 2, 3]
try:
    from tiny_diffusion.train.length import eval_passes, fit_evaluation
    cfg = fit_evaluation(cfg, seen, shots)
    s, f = eval_passes(cfg, shots)
    code = "after (issues 24 and 26)"
except ImportError:
    cfg = cfg.scaled_eval(seen)
    pad = lambda n: -(-n // 64) * 64  # sampling's fixed 64-image blocks
    s, f = shots * pad(cfg.frame_points) * min(cfg.frame_steps, cfg.timesteps), pad(cfg.eval_n) * cfg.eval_steps
    code = "before (main d933c6b)"
print(f"command: python {' '.join(sys.argv)}\n{code}: frame_points {cfg.frame_points}, eval_n {cfg.eval_n}, eval_steps {cfg.eval_steps}; one-image "
      f"forward passes: snapshots {s}, final samples {f}, evaluation {s + f}; training {3 * seen} "
      f"(3 passes per image seen); evaluation / training {(s + f) / (3 * seen):.2f}")
