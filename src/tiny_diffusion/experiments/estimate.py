"""How long a sweep will take, said before it starts (`sweep`, `reproduce`): each run's training images (its
schedule's length on its own data) times the seconds per image of one training pass (forward and backward) of
the first run's model, timed here on one of its batches; shared out over the workers. An estimate of the training
alone: the other runs' models are taken to cost what the first one does, and the optimizer, snapshots and scoring
(for a short point run, most of its time) come on top; the line says so."""

from __future__ import annotations


def sweep_estimate(pending: list, jobs: int) -> tuple[float, str]:
    """(seconds, how they were estimated) for the runs `pending` (sweep.Run) on `jobs` workers."""
    import torch

    from ..data.source import load_source
    from ..models import build_model
    from ..runtime.device import resolve_device
    from ..train.estimate import measure
    from ..train.length import schedule_length

    if not pending:
        return 0.0, "every run of this sweep (or shard) is finished"
    first = pending[0].config
    device = resolve_device(first.device)
    sizes, images = {}, 0
    for run in pending:  # each run's data set, loaded once per distinct data setting, gives its schedule's length
        cfg = run.config
        key = (cfg.dataset, cfg.n_points, cfg.data_dir, cfg.image_size, cfg.channels, cfg.seed)
        if key not in sizes:
            sizes[key] = load_source(cfg, torch.device("cpu"))
        batch, _, total_steps = schedule_length(cfg, len(sizes[key]))
        images += batch * total_steps
    data = sizes[next(iter(sizes))]
    batch = schedule_length(first, len(data))[0]
    torch.manual_seed(first.seed)
    model = build_model(first, data.shape, classes=data.classes if first.class_cond else None).to(device)
    per_image = measure(model, data.shape, device, (), bool(first.class_cond), images=batch).train
    workers = min(jobs, len(pending))
    seconds = images * per_image / workers
    return seconds, (f"an estimate of the training alone: {images} training images in all, times a forward and "
                     f"backward pass of the first run's model timed here on a batch of {batch}, over {workers} "
                     f"worker{'s' if workers > 1 else ''}; each run's snapshots and scoring come on top")
