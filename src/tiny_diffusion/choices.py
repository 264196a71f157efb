"""The names a user can choose, in one torch-free place: config.py validates against them, the CLI offers
them (and `--help` stays fast), and each implementation's registry is keyed by exactly these (a test checks)."""

SCHEDULES = ("linear", "quadratic", "cosine", "sigmoid")  # core/schedules.py
EMBEDDINGS = ("sinusoidal", "learnable", "linear", "identity", "zero")  # models/embeddings.py
PREDICTIONS = ("eps", "x0", "v")  # core/diffusion.py: what the network predicts
T_SAMPLINGS = ("uniform", "logsnr", "stratified")  # core/diffusion.py: the training distribution of t
LOSSES = ("l2", "l1")  # core/diffusion.py
SAMPLERS = ("ddpm", "ddim", "dpm++")  # core/samplers.py
SPACINGS = ("leading", "trailing", "linspace", "logsnr", "karras")  # core/samplers.py: timestep grids
MODELS = ("mlp", "unet", "simple-unet")  # models/__init__.py
DEVICES = ("auto", "cpu", "cuda", "mps")  # runtime/device.py
KINDS = ("points", "images")  # what a run's samples are: recorded in config.json as `kind`
# the built-in point sets (data/points.py DATASETS): the classic toys, the Datasaurus Dozen's shapes one by one, and
# all 13 labelled (datasaurus); the image sets are data/image_names.py's IMAGE_DATASETS (with their descriptions)
DATASAURUS_SHAPES = ("away", "bullseye", "circle", "dino", "dots", "h_lines", "high_lines", "slant_down", "slant_up",
                     "star", "v_lines", "wide_lines", "x_shape")
POINT_DATASETS = ("dino", "moons", "line", "circle", "swissroll", "8gaussians", "checkerboard", "spirals", "gaussian",
                  *(f"datasaurus:{s}" for s in DATASAURUS_SHAPES), "datasaurus")


def kind_of_shape(shape) -> str:
    """The kind of samples of one sample's `shape`: (2,) points, (C, H, W) images. The rule for what records
    no kind: checkpoints written before config.json recorded it, and networks built outside build_model."""
    return "images" if len(shape) == 3 else "points"
