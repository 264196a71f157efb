"""SimpleUnet: the architecture of the best-known from-scratch diffusion tutorial, rebuilt from its description.

    x (B, C, H, W) -> stem conv 3x3 -> 64 ch
      down blocks  64 -> 128 -> 256 -> 512 -> 1024, each ending in a stride-2 conv: H/2, H/4, H/8, H/16
      up blocks    1024 -> 512 -> 256 -> 128 -> 64, each on [h, skip] concatenated, ending in a
                   stride-2 transposed conv: H/8, H/4, H/2, H
    -> conv 1x1 -> (B, C, H, W)

A block is conv3x3 -> ReLU -> BatchNorm, + ReLU(Linear(time embedding)) broadcast over H and W,
conv3x3 -> ReLU -> BatchNorm, then the resampling conv. The skips are the down blocks' (resampled)
outputs; the first up block so concatenates the bottom feature map with itself, as in the tutorial.
The time embedding is 32 sinusoidal features of t, then Linear(32, 32) + ReLU. With the default
channels it has ~62M parameters: a large, plain baseline next to `UNet`.

The resampling needs H and W divisible by 2^4 = 16; other sizes (MNIST's 28) are zero-padded to the
next multiple of 16 (28 -> 32, 2 pixels a side) and the output is cropped back.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .embeddings import SinusoidalEmbedding, add_label


class Block(nn.Module):
    """BN(ReLU(conv(x))) + ReLU(W t_emb), then BN(ReLU(conv(.))), then a x2 down- or up-sampling conv."""

    def __init__(self, in_ch: int, out_ch: int, time_emb_dim: int, up: bool):
        super().__init__()
        self.conv1 = nn.Conv2d(2 * in_ch if up else in_ch, out_ch, 3, padding=1)  # up: [h, skip]
        self.time_proj = nn.Linear(time_emb_dim, out_ch)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(out_ch)
        resample = nn.ConvTranspose2d if up else nn.Conv2d
        self.resample = resample(out_ch, out_ch, 4, stride=2, padding=1)

    def forward(self, x: torch.Tensor, t_emb: torch.Tensor) -> torch.Tensor:
        # x: (B, in_ch or 2 in_ch, H, W); t_emb: (B, time_emb_dim)
        h = self.bn1(F.relu(self.conv1(x)))  # (B, out_ch, H, W)
        h = h + F.relu(self.time_proj(t_emb))[:, :, None, None]
        h = self.bn2(F.relu(self.conv2(h)))
        return self.resample(h)  # (B, out_ch, H/2 or 2H, W/2 or 2W)


class SimpleUnet(nn.Module):
    """eps/x0/v-prediction network for images: model(x, t, y=None) -> same shape as x.

    x: (B, img_channels, H, W); t: (B,) integer timesteps or a 0-dim tensor shared by the batch;
    y: (B,) int64 labels in [0, label_dim), or None; label_dim (or any negative y) is the learned
    "no label" class used for y None. The label embedding is added to the time embedding.
    """

    def __init__(
        self,
        img_channels: int = 3,  # the tutorial's RGB images
        img_resolution: int = 64,  # the tutorial's 64x64 cars
        label_dim: int = 0,  # unconditional, as in the tutorial
        channels: tuple[int, ...] = (64, 128, 256, 512, 1024),  # the tutorial's widths, one per level
        time_emb_dim: int = 32,  # the tutorial's
    ):
        super().__init__()
        _check(img_channels, img_resolution, label_dim, channels, time_emb_dim)
        self.img_channels, self.img_resolution, self.label_dim = img_channels, img_resolution, label_dim
        self.multiple = 2 ** (len(channels) - 1)  # H and W must divide by this; others are padded
        self.time_emb = SinusoidalEmbedding(time_emb_dim)
        self.time_mlp = nn.Linear(self.time_emb.size, time_emb_dim)
        self.label_emb = nn.Embedding(label_dim + 1, time_emb_dim) if label_dim else None
        self.stem = nn.Conv2d(img_channels, channels[0], 3, padding=1)
        self.downs = nn.ModuleList(Block(a, b, time_emb_dim, up=False) for a, b in zip(channels, channels[1:]))
        rev = channels[::-1]
        self.ups = nn.ModuleList(Block(a, b, time_emb_dim, up=True) for a, b in zip(rev, rev[1:]))
        self.out = nn.Conv2d(channels[0], img_channels, 1)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        # x: (B, C, H, W); t: (B,) or scalar; y: (B,) or None
        B, _, H, W = x.shape
        t_emb = F.relu(self.time_mlp(self.time_emb(t.reshape(-1).expand(B))))  # (B, time_emb_dim)
        t_emb = add_label(t_emb, y, self.label_emb, self.label_dim, B)
        pad_h, pad_w = -H % self.multiple, -W % self.multiple
        if pad_h or pad_w:  # zero-pad to the next multiple (centred), cropped back below
            x = F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
        h = self.stem(x)  # (B, channels[0], H', W')
        skips = []
        for down in self.downs:
            h = down(h, t_emb)
            skips.append(h)
        for up in self.ups:
            h = up(torch.cat([h, skips.pop()], dim=1), t_emb)
        out = self.out(h)  # (B, C, H', W')
        return out[:, :, pad_h // 2: pad_h // 2 + H, pad_w // 2: pad_w // 2 + W]


def _check(img_channels, img_resolution, label_dim, channels, time_emb_dim) -> None:
    """Raise ValueError for an impossible setting."""
    for name, value, low in [("img_channels", img_channels, 1), ("img_resolution", img_resolution, 1),
                             ("label_dim", label_dim, 0), ("time_emb_dim", time_emb_dim, 2)]:
        if not isinstance(value, int) or value < low:
            raise ValueError(f"{name}: {value!r} is not an integer >= {low}")
    if len(channels) < 2 or any(not isinstance(c, int) or c < 1 for c in channels):
        raise ValueError(f"channels: {channels!r} must list at least 2 integer widths >= 1, "
                         "like (64, 128, 256, 512, 1024)")
