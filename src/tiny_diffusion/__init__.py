"""tiny-diffusion: denoising diffusion models (DDPM) you can read, run on a laptop and trust.

    import tiny_diffusion as td
    cfg = td.TrainConfig(dataset="moons", epochs=50)
    result = td.train(cfg, out_dir="runs/moons")
    x = td.sample(result.model, result.diffusion, n=1000, seed=0)      # (1000, 2)
    print(td.quality(x.numpy(), td.references("moons")))

    result = td.train(td.TrainConfig(dataset="mnist"), out_dir="runs/mnist")
    x = td.sample(result.model, result.diffusion, n=64, sampler="dpm++", steps=20)  # (64, 1, 28, 28) in [-1, 1]

    cfg, model, diffusion = td.load_run("runs/mnist")  # as `tiny-diffusion sample runs/mnist --n 64` draws:
    x = td.sample(model, diffusion, **td.plan(cfg, "sample", classes=model.classes, n=64).kwargs())

Names are imported on first use, so `import tiny_diffusion` (and `tiny-diffusion --help`) stays
fast and does not load torch.
"""

__version__ = "0.1.0"

_EXPORTS = {
    "TrainConfig": "config",
    "InputError": "errors",
    "load_dataset": "data",
    "dataset_names": "data",
    "read_points": "data",
    "load_images": "data.images",
    "load_source": "data.source",
    "make_betas": "core.schedules",
    "alpha_bar": "core.schedules",
    "Diffusion": "core.diffusion",
    "MLP": "models",
    "build_model": "models",
    "UNet": "models.unet",
    "train": "train",
    "distill": "train.distill",
    "TrainResult": "train",
    "sample": "sampling",
    "trajectory": "sampling",
    "plan": "sampling",
    "SAMPLERS": "core.samplers",
    "load_run": "runs",
    "quality": "eval.points",
    "references": "eval.points",
    "data_floor": "eval.points",
    "Quality": "eval.points",
    "plots": "viz.points",  # modules: td.plots, td.figures
    "figures": "viz.figures",
}

_MODULES = {"plots", "figures"}  # names that are whole modules

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    import importlib

    if name not in _EXPORTS:
        raise AttributeError(f"module 'tiny_diffusion' has no attribute {name!r}")
    module = importlib.import_module(f".{_EXPORTS[name]}", __name__)
    value = module if name in _MODULES else getattr(module, name)
    # kept, so the next access finds it: importing the subpackage `train` set td.train to that package, and
    # __getattr__ is only asked for names the package lacks, so without this a second td.train was a module
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The lazy names too, so that help(), dir() and tab completion show them."""
    return sorted(set(globals()) | set(_EXPORTS))
