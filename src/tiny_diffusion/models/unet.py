"""A DDPM-style U-Net denoiser for images (Ho et al. 2020; Nichol & Dhariwal 2021, "improved DDPM").

Layout, for the default 28x28 MNIST model (channel_mult (1, 2, 2), one res block per level):

    x (B, C, 28, 28) -> stem conv -> [res]         28x28, 32 ch   -> down (stride-2 conv)
                                  -> [res]         14x14, 64 ch   -> down
                                  -> [res + attn]   7x7,  64 ch
                     -> middle: res, attn, res      7x7
                     -> up path: each level has num_res_blocks + 1 res blocks, each taking one skip
                        (concatenated on channels), then nearest-neighbour x2 + conv to the next level's width
                     -> GroupNorm, SiLU, conv -> (B, C, 28, 28)

Every res block receives the time (+ label) embedding as a scale and shift of its second GroupNorm,
h = norm(h) * (1 + scale) + shift. The last conv of every res block, the output projection of every
attention block and the output conv start at zero: every block starts as the identity (its residual path
outputs 0), and a fresh network outputs exactly 0.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .embeddings import SinusoidalEmbedding, add_label


def count_params(module: nn.Module) -> int:
    """Number of trainable parameters of `module`."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def num_groups(ch: int) -> int:
    """GroupNorm groups for `ch` channels: the largest divisor of ch that is at most min(32, ch // 4)."""
    # >= 4 channels a group: a one-channel group is instance norm, which erases each map's mean (DDPM: 128 ch / 32)
    g = max(1, min(32, ch // 4))
    while ch % g:
        g -= 1
    return g


def zero_(module: nn.Module) -> nn.Module:
    """`module` with its weight and bias set to zero (it starts by outputting 0)."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    """x -> skip(x) + conv(dropout(SiLU(norm(conv(SiLU(norm(x)))) * (1 + scale) + shift))), (scale, shift) = W emb."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, dropout: float):
        super().__init__()
        self.norm1 = nn.GroupNorm(num_groups(in_ch), in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb_proj = nn.Linear(emb_dim, 2 * out_ch)
        self.norm2 = nn.GroupNorm(num_groups(out_ch), out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = zero_(nn.Conv2d(out_ch, out_ch, 3, padding=1))
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        # x: (B, in_ch, H, W); emb: (B, emb_dim), already through SiLU
        h = self.conv1(F.silu(self.norm1(x)))  # (B, out_ch, H, W)
        scale, shift = self.emb_proj(emb)[:, :, None, None].chunk(2, dim=1)  # (B, out_ch, 1, 1) each
        h = F.silu(torch.addcmul(shift, self.norm2(h), 1 + scale))
        return self.skip(x) + self.conv2(self.dropout(h))


class Attention(nn.Module):
    """x + proj(softmax(q k^T / sqrt(d)) v) over the H*W positions, with `heads` heads of d = C/heads channels.

    q, k, v and proj are Linear layers on (B, HW, C) rather than 1x1 convs: the same maps, but as 1x1 convs
    the default model's four attention blocks took ~35% of a CPU training step, as Linear layers a few %."""

    def __init__(self, ch: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(num_groups(ch), ch)
        self.qkv = nn.Linear(ch, 3 * ch)
        self.proj = zero_(nn.Linear(ch, ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        h = self.norm(x).flatten(2).transpose(1, 2)  # (B, HW, C)
        qkv = self.qkv(h).reshape(B, H * W, 3, self.heads, C // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # (B, heads, HW, d) each
        h = F.scaled_dot_product_attention(q, k, v)  # (B, heads, HW, d)
        h = self.proj(h.transpose(1, 2).reshape(B, H * W, C))  # (B, HW, C)
        return x + h.transpose(1, 2).reshape(B, C, H, W)


class Downsample(nn.Module):
    """Halve H and W with a stride-2 3x3 conv (learned, unlike avg-pooling; as in DDPM)."""

    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest-neighbour resize to `size` (the skip's H, W: x2 when it divides), then a 3x3 conv to out_ch.

    The conv already takes the next level's (smaller) width: keeping in_ch would make it the costliest
    conv of the network (~15% of the default model's FLOPs at 28x28)."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, 3, padding=1)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return self.conv(F.interpolate(x, size=size, mode="nearest"))


class ResAttnBlock(nn.Module):
    """A res block, followed by self-attention when `attn`."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, dropout: float, attn: bool, heads: int):
        super().__init__()
        self.res = ResBlock(in_ch, out_ch, emb_dim, dropout)
        self.attn = Attention(out_ch, heads) if attn else None

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.res(x, emb)
        return self.attn(h) if self.attn is not None else h


def _check(img_channels, img_resolution, label_dim, base_channels, channel_mult, num_res_blocks,
           attn_resolutions, dropout, time_emb_dim, num_heads) -> tuple[list[int], tuple[int, ...]]:
    """The resolution of each level and the attention resolutions (None: the lowest level's), after raising
    ValueError for any impossible setting."""
    for name, value, low in [("img_channels", img_channels, 1), ("img_resolution", img_resolution, 1),
                             ("label_dim", label_dim, 0), ("base_channels", base_channels, 1),
                             ("num_res_blocks", num_res_blocks, 1), ("num_heads", num_heads, 1)]:
        if not isinstance(value, int) or value < low:
            raise ValueError(f"{name}: {value!r} is not an integer >= {low}")
    if time_emb_dim is not None and (not isinstance(time_emb_dim, int) or time_emb_dim < 1):
        raise ValueError(f"time_emb_dim: {time_emb_dim!r} is not an integer >= 1; or None for 4 * base_channels")
    if not channel_mult or any(not isinstance(m, int) or m < 1 for m in channel_mult):
        raise ValueError(f"channel_mult: {channel_mult!r} must be a non-empty list of integers >= 1, like (1, 2, 2)")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout: {dropout!r} is not in [0, 1)")
    resolutions = [img_resolution]
    for _ in channel_mult[1:]:
        if resolutions[-1] % 2:
            raise ValueError(f"channel_mult: {len(channel_mult)} levels halve img_resolution {img_resolution} "
                             f"{len(channel_mult) - 1} times, but {resolutions[-1]} is odd; use fewer levels")
        resolutions.append(resolutions[-1] // 2)
    if attn_resolutions is None:
        attn_resolutions = (resolutions[-1],)
    missing = sorted(set(attn_resolutions) - set(resolutions))
    if missing:
        raise ValueError(f"attn_resolutions: {missing} never occur; the levels' resolutions are {resolutions}")
    for m, res in zip(channel_mult, resolutions):
        if res in attn_resolutions and base_channels * m % num_heads:
            raise ValueError(f"num_heads: {num_heads} does not divide the {base_channels * m} channels at "
                             f"resolution {res}; choose a divisor of base_channels")
    return resolutions, tuple(attn_resolutions)


class UNet(nn.Module):
    """eps/x0/v-prediction network for images: model(x, t, y=None) -> same shape as x.

    x: (B, img_channels, H, W) float; t: (B,) integer timesteps or a 0-dim tensor shared by the batch;
    y: (B,) int64 class labels in [0, label_dim), or None. Index label_dim (and any negative y) is a learned
    "no label" class, used for y None: training with some y set to -1 gives classifier-free guidance.
    The network is fully convolutional: it also takes other sizes than img_resolution (each up-sampling
    matches its skip's size, so odd sizes at a level work too).
    """

    def __init__(
        self,
        img_channels: int = 1,  # MNIST
        img_resolution: int = 28,  # MNIST
        label_dim: int = 0,  # unconditional
        base_channels: int = 16,  # TrainConfig's image defaults (a test checks; config.py has the measurements)
        channel_mult: tuple[int, ...] = (1, 2, 4),  # 28 -> 14 -> 7: three levels, 7x7 is small enough
        num_res_blocks: int = 1,  # DDPM uses 2; one halves the cost and is enough for MNIST
        attn_resolutions: tuple[int, ...] | None = None,  # None: the lowest level only (7x7 at 28), cheap
        dropout: float = 0.0,  # small models on small data underfit before they overfit
        time_emb_dim: int | None = None,  # None: 4 * base_channels, as in DDPM
        num_heads: int = 1,  # one head: at 64 channels more heads only shrink each head
    ):
        super().__init__()
        self.img_channels, self.img_resolution, self.label_dim = img_channels, img_resolution, label_dim
        resolutions, attn_resolutions = _check(img_channels, img_resolution, label_dim, base_channels, channel_mult,
                                               num_res_blocks, attn_resolutions, dropout, time_emb_dim, num_heads)
        emb_dim = time_emb_dim or 4 * base_channels
        chans = [base_channels * m for m in channel_mult]

        # time (+ label) embedding: sinusoidal features of t, then a 2-layer MLP (DDPM)
        self.time_emb = SinusoidalEmbedding(base_channels)
        self.time_mlp = nn.Sequential(nn.Linear(self.time_emb.size, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.label_emb = nn.Embedding(label_dim + 1, emb_dim) if label_dim else None

        self.stem = nn.Conv2d(img_channels, base_channels, 3, padding=1)

        # down path: every block's output is a skip for the up path
        self.down = nn.ModuleList()
        skips, ch = [base_channels], base_channels
        for level, (out_ch, res) in enumerate(zip(chans, resolutions)):
            for _ in range(num_res_blocks):
                self.down.append(ResAttnBlock(ch, out_ch, emb_dim, dropout, res in attn_resolutions, num_heads))
                ch = out_ch
                skips.append(ch)
            if level < len(chans) - 1:
                self.down.append(Downsample(ch))
                skips.append(ch)

        mid_attn = resolutions[-1] in attn_resolutions
        self.mid = nn.ModuleList([ResAttnBlock(ch, ch, emb_dim, dropout, mid_attn, num_heads),
                                  ResAttnBlock(ch, ch, emb_dim, dropout, False, num_heads)])

        # up path: num_res_blocks + 1 blocks a level, each on [h, skip] concatenated
        self.up = nn.ModuleList()
        for level in reversed(range(len(chans))):
            for _ in range(num_res_blocks + 1):
                self.up.append(ResAttnBlock(ch + skips.pop(), chans[level], emb_dim, dropout,
                                      resolutions[level] in attn_resolutions, num_heads))
                ch = chans[level]
            if level > 0:
                self.up.append(Upsample(ch, chans[level - 1]))
                ch = chans[level - 1]

        self.out_norm = nn.GroupNorm(num_groups(ch), ch)
        self.out_conv = zero_(nn.Conv2d(ch, img_channels, 3, padding=1))

    def embed(self, t: torch.Tensor, y: torch.Tensor | None, batch: int) -> torch.Tensor:
        """SiLU(MLP(sinusoidal(t)) + label_emb(y)): (batch, emb_dim), the input of every res block's scale-shift."""
        emb = self.time_mlp(self.time_emb(t.reshape(-1).expand(batch)))  # (B, emb_dim)
        return F.silu(add_label(emb, y, self.label_emb, self.label_dim, batch))

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        # x: (B, C, H, W); t: (B,) or scalar; y: (B,) or None
        emb = self.embed(t, y, x.shape[0])
        h = self.stem(x)  # (B, base, H, W)
        skips = [h]
        for block in self.down:
            h = block(h, emb) if isinstance(block, ResAttnBlock) else block(h)
            skips.append(h)
        for block in self.mid:
            h = block(h, emb)
        for block in self.up:
            if isinstance(block, Upsample):
                h = block(h, skips[-1].shape[-2:])  # to the next skip's size
            else:
                h = block(torch.cat([h, skips.pop()], dim=1), emb)
        return self.out_conv(F.silu(self.out_norm(h)))  # (B, C, H, W)
