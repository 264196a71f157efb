"""Embeddings of a scalar (a coordinate or the timestep) into a feature vector, the classic study's options."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..choices import EMBEDDINGS


class SinusoidalEmbedding(nn.Module):
    """Transformer-style features [sin(scale*x*f_k), cos(scale*x*f_k)], f_k from 1 down to 1/10000."""

    def __init__(self, size: int, scale: float = 1.0):
        super().__init__()
        half = size // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half) / max(half - 1, 1))
        self.register_buffer("freqs", freqs * scale, persistent=False)
        self.size = 2 * half

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (...,) -> (..., size)
        z = x.to(self.freqs.dtype).unsqueeze(-1) * self.freqs
        return torch.cat((z.sin(), z.cos()), dim=-1)


class LearnableEmbedding(nn.Module):
    """A learned linear map of x/size to `size` features."""

    def __init__(self, size: int):
        super().__init__()
        self.linear = nn.Linear(1, size)
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.to(self.linear.weight.dtype).unsqueeze(-1) / self.size)


class ScalarEmbedding(nn.Module):
    """One feature: x * factor (identity: 1, linear: scale/size, zero: 0 — the network never sees x)."""

    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor
        self.size = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.float() * self.factor).unsqueeze(-1)


EMBEDDING_TYPES = {  # choices.EMBEDDINGS: (size, scale) -> the module
    "sinusoidal": lambda size, scale: SinusoidalEmbedding(size, scale),
    "learnable": lambda size, scale: LearnableEmbedding(size),
    "linear": lambda size, scale: ScalarEmbedding(scale / size),
    "identity": lambda size, scale: ScalarEmbedding(1.0),
    "zero": lambda size, scale: ScalarEmbedding(0.0),
}


def make_embedding(kind: str, size: int, scale: float = 1.0) -> nn.Module:
    """The embedding `kind` with `size` features (or 1 for the scalar kinds); `.size` is its width."""
    if kind not in EMBEDDING_TYPES:
        raise ValueError(f"unknown embedding {kind!r}; choose one of {', '.join(EMBEDDINGS)}")
    return EMBEDDING_TYPES[kind](size, scale)


def add_label(emb: torch.Tensor, y: torch.Tensor | None, label_emb: nn.Embedding | None,
               label_dim: int, batch: int) -> torch.Tensor:
    """emb + label_emb(y), where y None or negative means the "no label" class label_dim.
    Shared by every network (MLP, U-Net, SimpleUnet). With label_dim 0 there is no label embedding and y must be None."""
    if label_emb is None:
        if y is not None:
            raise ValueError("y: labels given to a model built with label_dim=0; build it with label_dim > 0 "
                             "or pass y=None")
        return emb
    if y is None:
        y = torch.full((batch,), label_dim, dtype=torch.long, device=emb.device)
    else:
        y = y.reshape(-1).expand(batch)
        y = torch.where(y < 0, label_dim, y)
    return emb + label_emb(y)
