"""Denoising networks, one registry: every model is called as model(x, t, y=None) and returns x's shape."""

from __future__ import annotations

from .embeddings import EMBEDDINGS, make_embedding
from .mlp import MLP

__all__ = ["EMBEDDINGS", "MLP", "MODELS", "build_model", "make_embedding"]


def _mlp(cfg, shape, label_dim):
    return MLP(hidden_size=cfg.hidden_size, hidden_layers=cfg.hidden_layers, emb_size=cfg.emb_size,
               time_emb=cfg.time_emb, input_emb=cfg.input_emb, input_scale=cfg.input_scale, dim=shape[0],
               label_dim=label_dim)


def _unet(cfg, shape, label_dim):
    from ..config_values import int_list
    from .unet import UNet

    channels, resolution = shape[0], shape[-1]
    mult = int_list(cfg.channel_mult)
    if cfg.attn_resolutions == "auto":  # attention at the lowest resolution only: cheap and global there
        attn = (_lowest_resolution(resolution, len(mult)),)
    elif cfg.attn_resolutions in ("none", ""):
        attn = ()
    else:
        attn = tuple(int_list(cfg.attn_resolutions))
    return UNet(img_channels=channels, img_resolution=resolution, label_dim=label_dim, base_channels=cfg.base_channels,
                channel_mult=tuple(mult), num_res_blocks=cfg.num_res_blocks, attn_resolutions=attn, dropout=cfg.dropout)


def _simple_unet(cfg, shape, label_dim):
    from .simple_unet import SimpleUnet

    return SimpleUnet(img_channels=shape[0], img_resolution=shape[-1], label_dim=label_dim)


def _lowest_resolution(resolution: int, levels: int) -> int:
    for _ in range(levels - 1):
        resolution = -(-resolution // 2)
    return resolution


MODELS = {"mlp": _mlp, "unet": _unet, "simple-unet": _simple_unet}


def build_model(cfg, shape: tuple[int, ...] = (2,), label_dim: int = 0, classes: list[str] | None = None):
    """The network `cfg.model` names for samples of `shape` ((2,) or (C, H, W)); label_dim > 0 adds class labels,
    and so do `classes`, the names of a class-conditional model's classes (label_dim = len(classes)), which the
    network then carries as `model.classes` (None: unconditional). A size the network cannot take raises InputError."""
    from ..errors import InputError

    if len(shape) == 3 and shape[1] != shape[2]:
        raise InputError(f"{cfg.dataset}: images of {shape[1]}x{shape[2]}; the networks take square images, "
                         f"set --image-size")
    label_dim = len(classes) if classes else label_dim
    try:
        model = MODELS[cfg.model](cfg, shape, label_dim)
    except ValueError as e:
        raise InputError(f"model {cfg.model} for samples of shape {tuple(shape)}: {e}") from None
    model.sample_shape = tuple(shape)  # the network carries its samples' shape and kind: samplers need no data set
    model.kind = cfg.kind
    model.classes = list(classes) if classes else None  # ... and its classes' names: --class needs no data set
    # a distilled student's own timestep grid (config sample_grid): its samplers visit these unless told otherwise
    model.grid = tuple(int(t) for t in cfg.sample_grid.split(",")) if getattr(cfg, "sample_grid", None) else None
    return model
