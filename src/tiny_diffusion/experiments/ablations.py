"""The ablation study's plan: the classic tiny-diffusion base configuration, the budgets (presets) and the
ablations, the classic eight and the new ones, as one sweep.Spec."""

from __future__ import annotations

from dataclasses import dataclass

from . import sweep
from ..config import TrainConfig

# The classic study's base configuration (tiny-diffusion, 2023): no EMA, no warm-up, constant LR.
CLASSIC = dict(dataset="dino", n_points=8000, epochs=200, batch_size=32, lr=1e-3, timesteps=50, schedule="linear",
               beta_start=1e-4, beta_end=0.02, terminal_alpha_bar=None, prediction="eps", hidden_size=128,
               hidden_layers=3, emb_size=128, time_emb="sinusoidal", input_emb="sinusoidal", input_scale=25.0,
               weight_decay=0.0, warmup=0.0, lr_decay="constant", grad_clip=1.0, ema=0.0, seed=0, device="cpu",
               t_sampling="uniform",  # t drawn uniformly, as in Ho et al. and the classic code
               frame_sampler="ddpm", frame_steps=100_000)  # snapshots by full ancestral sampling (all T steps)

NEAR_ZERO = 1e-4  # alpha_bar_T "near 0": x_T is N(0, I) up to 1e-4 of signal variance
# Budgets: what each preset changes in the classic base (and in our default config).
PRESETS = {
    # the classic budget: 200 epochs of 8000 points at batch 32 (50k steps per run)
    "full": dict(frames=10),
    # <= 10 min on 2 cores: 1/8 of the samples seen (25 epochs) at batch 256 (775 steps per run);
    # runs of our fast default config keep its own budget (TrainConfig's epochs and batch size)
    "quick": dict(epochs=25, batch_size=256, frames=4),
    # the test suite's: seconds, not a meaningful result
    "test": dict(n_points=256, epochs=2, batch_size=128, frames=2, hidden_size=16, emb_size=8, frame_points=200),
}


@dataclass
class Ablation:
    key: str
    title: str
    runs: list  # change dicts, relative to the classic base
    new: bool = False  # not in the classic study

    def label(self, changes: dict) -> str:
        """'lr=0.01, ...'; the changes that make up our fast default config read 'fast default'."""
        fast = _fast_default()
        is_fast = bool(fast) and all(changes.get(k) == v for k, v in fast.items() if k != "lr")
        words = [f"{k}={v}" for k, v in changes.items() if not (is_fast and k in fast and k != "lr")]
        return ", ".join(words + ["fast default"] * is_fast) or "classic base"


def ablations(preset: str) -> list[Ablation]:
    """The study: the classic eight, then the new ones. Values follow the classic write-up."""
    def one(name, values, **extra):  # one run per value; the varied key first, so labels lead with it
        return [{name: v, **{k: x for k, x in extra.items() if k != name}} for v in values]

    default_batch = TrainConfig().batch_size
    study = [
        Ablation("lr", "1. learning rate", one("lr", [1e-2, 1e-3, 1e-4, 1e-5])),
        Ablation("dataset", "2. dataset", one("dataset", ["moons", "dino", "line", "circle"])),
        Ablation("timesteps", "3. number of timesteps", one("timesteps", [5, 10, 25, 50, 100, 250])),
        Ablation("schedule", "4. beta schedule (cosine, sigmoid and near-0 alpha_bar_T new)",
                 one("schedule", ["linear", "quadratic", "cosine", "sigmoid"])
                 + one("schedule", ["linear", "quadratic", "cosine", "sigmoid"], terminal_alpha_bar=NEAR_ZERO)),
        Ablation("hidden_size", "5. hidden size", one("hidden_size", [16, 32, 64, 128, 256, 512])),
        Ablation("hidden_layers", "6. number of hidden layers", one("hidden_layers", [1, 2, 3, 4, 5])),
        Ablation("time_emb", "7. time embedding", one("time_emb", ["sinusoidal", "learnable", "linear", "zero"])),
        Ablation("input_emb", "8. input embedding",
                 one("input_emb", ["sinusoidal", "learnable", "linear", "identity"])),
        Ablation("terminal", "9. timesteps with alpha_bar_T near 0",
                 one("timesteps", [5, 10, 25, 50, 100, 250], terminal_alpha_bar=NEAR_ZERO), new=True),
        Ablation("line", "10. the line's corners",
                 [{"dataset": "line"}, {"dataset": "line", "terminal_alpha_bar": NEAR_ZERO},
                  {"dataset": "line", "timesteps": 250, "terminal_alpha_bar": NEAR_ZERO},
                  {"dataset": "line", **_fast_default()}], new=True),
        Ablation("lr_default_batch", f"11. learning rate at our default batch size ({default_batch})",
                 one("lr", [1e-2, 3e-3, 1e-3, 1e-4], **_fast_default()), new=True),
        Ablation("time_emb_right", "12. time embedding with alpha_bar_T near 0",
                 one("time_emb", ["sinusoidal", "learnable", "linear", "zero"], terminal_alpha_bar=NEAR_ZERO),
                 new=True),
        Ablation("input_emb_right", "13. input embedding with alpha_bar_T near 0",
                 one("input_emb", ["sinusoidal", "learnable", "linear", "identity"], terminal_alpha_bar=NEAR_ZERO),
                 new=True),
        Ablation("default", "14. classic configuration vs our fast default", [{}, _fast_default()], new=True),
    ]
    if preset == "test":  # one small ablation of each kind the report needs
        keep = {"lr": [1e-3, 1e-2], "timesteps": [5, 50]}
        study = [Ablation(a.key, a.title, [r for r in a.runs if list(r.values())[0] in keep.get(a.key, [])])
                 for a in study if a.key in keep]
    return study


def _fast_default() -> dict:
    """Our default training config's changes to the classic one (what `tiny-diffusion train` uses)."""
    default = TrainConfig().to_dict()
    skip = {"dataset", "seed", "device", "frames", "frame_points", "n_points", "frame_sampler", "frame_steps",
            "cuda_graphs", "autocast", "compile"}
    return {k: v for k, v in default.items() if k not in skip and CLASSIC.get(k) != v}


def base_config(preset: str) -> dict:
    return {**CLASSIC, **PRESETS[preset]}


def spec_of(preset: str) -> tuple[sweep.Spec, list[Ablation]]:
    study = ablations(preset)
    return sweep.Spec(base=base_config(preset), runs=[c for a in study for c in a.runs]), study
