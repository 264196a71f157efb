"""Denoising networks."""

from .embeddings import EMBEDDINGS, make_embedding
from .mlp import MLP

__all__ = ["EMBEDDINGS", "MLP", "build_model", "make_embedding"]


def build_model(cfg) -> MLP:
    """The network a TrainConfig describes."""
    return MLP(
        hidden_size=cfg.hidden_size,
        hidden_layers=cfg.hidden_layers,
        emb_size=cfg.emb_size,
        time_emb=cfg.time_emb,
        input_emb=cfg.input_emb,
        input_scale=cfg.input_scale,
    )
