"""The classic tiny-diffusion denoiser: embeddings of x, y and t, then residual GELU blocks."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .embeddings import SinusoidalEmbedding, add_label, make_embedding


class Block(nn.Module):
    """x + GELU(W x + b)."""

    def __init__(self, size: int):
        super().__init__()
        self.ff = nn.Linear(size, size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.ff(x)).add_(x)  # in place on a fresh tensor: one allocation fewer per block


class MLP(nn.Module):
    """eps/x0/v-prediction network for points in R^dim.

    The classic network concatenates [emb(x_1), ..., emb(x_dim), emb(t)] and applies one Linear. We
    split that Linear into a point part and a time part (the same function: W [a; b] = W_a a + W_b b),
    so that when all points share one t — every sampling step — the time part is computed once.
    """

    def __init__(
        self,
        hidden_size: int = 64,  # the defaults are TrainConfig's (a test checks), whose reasons config.py gives
        hidden_layers: int = 3,
        emb_size: int = 32,
        time_emb: str = "sinusoidal",
        input_emb: str = "sinusoidal",
        input_scale: float = 25.0,  # the classic study's scale for coordinates in about [-4, 4]
        dim: int = 2,
        label_dim: int = 0,  # unconditional; > 0: class labels 0..label_dim-1, plus a learned "no label" class
    ):
        super().__init__()
        self.input_embs = nn.ModuleList(make_embedding(input_emb, emb_size, input_scale) for _ in range(dim))
        self.time_emb = make_embedding(time_emb, emb_size)
        in_size = sum(e.size for e in self.input_embs)
        self.point_proj = nn.Linear(in_size, hidden_size)
        self.time_proj = nn.Linear(self.time_emb.size, hidden_size, bias=False)
        self.blocks = nn.Sequential(*(Block(hidden_size) for _ in range(hidden_layers)))
        self.out = nn.Linear(hidden_size, dim)
        self.label_dim = label_dim  # the label embedding is added to the time part, as in the U-Net
        self.label_emb = nn.Embedding(label_dim + 1, hidden_size) if label_dim else None

    def point_features(self, x: torch.Tensor) -> torch.Tensor:  # (B, dim) -> (B, in_size)
        """[emb(x_1), ..., emb(x_dim)]; the sinusoidal case as one operation over all coordinates."""
        if isinstance(self.input_embs[0], SinusoidalEmbedding):  # every coordinate shares the frequencies
            z = x.unsqueeze(-1) * self.input_embs[0].freqs  # (B, dim, half)
            return torch.cat((z.sin(), z.cos()), dim=-1).reshape(len(x), -1)
        return torch.cat([emb(x[:, i]) for i, emb in enumerate(self.input_embs)], dim=-1)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        # x: (B, dim); t: (B,) integer steps, or a scalar shared by the batch; y: (B,) class labels, or None
        t_feat = self.time_proj(self.time_emb(t.reshape(-1)))  # (B or 1, hidden)
        t_feat = add_label(t_feat, y, self.label_emb, self.label_dim, len(x))  # (B, hidden) with labels
        h = F.gelu(self.point_proj(self.point_features(x)).add_(t_feat))  # (B, hidden)
        return self.out(self.blocks(h))  # (B, dim)
