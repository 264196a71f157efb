"""Per-sample seeded Gaussian noise: sample i's noise depends only on (seed, i), never on the batch size.

Sample i owns a SplitMix64 stream (Steele, Lea & Flood 2014) whose state starts at a key hashed from
(seed, i); the k-th draw of D numbers reads positions 2kD .. 2(k+1)D - 1 of that stream and turns
each pair of uniforms into one normal (Box-Muller). The stream is counter-based, so every draw is one
vectorised numpy expression over all samples: no Python loop over samples, no per-sample generator
objects, and sampling 1000 points for 1000 steps costs tens of milliseconds of noise.
"""

from __future__ import annotations

import math

import numpy as np
import torch

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # SplitMix64's increment (2^64 / golden ratio)
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def _mix(z: np.ndarray) -> np.ndarray:
    """SplitMix64's output function: a bijective 64-bit hash (uint64 arithmetic wraps modulo 2^64)."""
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def sample_keys(seed: int, start: int, n: int) -> np.ndarray:
    """(n,) stream keys of samples start .. start + n - 1 for `seed`."""
    base = _mix(np.array([seed], dtype=np.uint64) + _GOLDEN)
    return _mix(base + np.arange(start, start + n, dtype=np.uint64) * _GOLDEN)


class SampleNoise:
    """Successive N(0, I) draws of shape (n, *shape); row i is a function of (seed, start + i, draw number).

    Pass it wherever a sampler takes `generator`: the first draw is x_T, later draws are step noise."""

    def __init__(self, seed: int, n: int, shape: tuple[int, ...], device="cpu", dtype=torch.float32, start: int = 0):
        self.keys = sample_keys(seed, start, n)[:, None]  # (n, 1)
        self.n, self.shape, self.size = n, tuple(shape), math.prod(shape)
        self.device, self.dtype = device, dtype
        self.draws = 0

    def randn(self) -> torch.Tensor:
        pos = (np.arange(self.size, dtype=np.uint64) + np.uint64(self.draws * self.size)) * np.uint64(2)  # (D,)
        state = self.keys + (pos + np.uint64(1)) * _GOLDEN  # (n, D): stream positions 2j and 2j + 1
        u1 = ((_mix(state) >> np.uint64(11)).astype(np.float64) + 1.0) * 2.0**-53  # in (0, 1]: log is finite
        u2 = (_mix(state + _GOLDEN) >> np.uint64(11)).astype(np.float64) * 2.0**-53
        z = np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * math.pi * u2)
        self.draws += 1
        return torch.from_numpy(z.reshape((self.n, *self.shape))).to(device=self.device, dtype=self.dtype)


def randn_like(x: torch.Tensor, generator) -> torch.Tensor:
    """The next noise shaped like x, from a SampleNoise or a torch.Generator (or the global RNG if None)."""
    if isinstance(generator, SampleNoise):
        return generator.randn()
    return torch.randn(x.shape, device=x.device, dtype=x.dtype, generator=generator)
