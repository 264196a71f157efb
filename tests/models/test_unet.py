import copy
import math

import pytest
import torch

from tiny_diffusion.core.diffusion import Diffusion
from tiny_diffusion.models.simple_unet import SimpleUnet
from tiny_diffusion.models.unet import Attention, UNet, count_params
from tiny_diffusion.core.schedules import make_betas

TINY = dict(base_channels=8, time_emb_dim=16)  # a UNet small enough for fast tests
SMALL_SIMPLE = dict(channels=(8, 16, 32), time_emb_dim=16)  # a SimpleUnet small enough for fast tests


def randomised(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """`model` with every parameter redrawn (the zero-initialised convs would otherwise hide most of it)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return model.eval()


@pytest.mark.parametrize("channels, resolution, kwargs", [
    (1, 28, {}),  # the default MNIST model
    (1, 28, dict(TINY, num_res_blocks=2, attn_resolutions=(14, 7), num_heads=2)),
    (3, 32, dict(TINY, channel_mult=(1, 2, 2, 2), attn_resolutions=(8,))),
    (1, 16, dict(TINY, channel_mult=(1, 2), attn_resolutions=())),
    (3, 64, dict(base_channels=4, channel_mult=(1, 1, 2, 2), attn_resolutions=(16, 8))),
    (3, 12, dict(TINY, channel_mult=(1,), attn_resolutions=(12,))),  # one level: no resampling at all
    (1, 28, dict(TINY, dropout=0.1)),
    (3, 32, dict(TINY, label_dim=10)),
])
def test_unet_output_shape(channels, resolution, kwargs):
    model = randomised(UNet(img_channels=channels, img_resolution=resolution, **kwargs)).train()
    x = torch.randn(3, channels, resolution, resolution)
    t = torch.tensor([0, 5, 99])
    assert model(x, t).shape == x.shape
    if model.label_dim:
        assert model(x, t, torch.tensor([0, 9, -1])).shape == x.shape
    assert (model.img_channels, model.img_resolution, model.label_dim) == (channels, resolution,
                                                                           kwargs.get("label_dim", 0))


@pytest.mark.parametrize("height, width", [(30, 30), (20, 12), (9, 13)])
def test_unet_takes_sizes_it_was_not_built_for(height, width):
    """Odd sizes at some level (30 -> 15 -> 8): each up-sampling goes to its skip's size, not just x2."""
    model = randomised(UNet(img_channels=1, img_resolution=28, **TINY))
    x = torch.randn(2, 1, height, width)
    out = model(x, torch.tensor([3, 7]))
    assert out.shape == x.shape and torch.isfinite(out).all()


@pytest.mark.parametrize("channels, resolution, label_dim", [(1, 28, 0), (3, 32, 0), (1, 16, 4), (3, 20, 0)])
def test_simple_unet_output_shape(channels, resolution, label_dim):
    """Resolutions that 2^(levels-1) does not divide (28, 20 with 4 levels: 8) are padded and cropped back."""
    model = SimpleUnet(img_channels=channels, img_resolution=resolution, label_dim=label_dim,
                       channels=(8, 16, 32, 64), time_emb_dim=16)
    x = torch.randn(2, channels, resolution, resolution)
    y = torch.tensor([1, -1]) if label_dim else None
    assert model(x, torch.tensor([3, 7]), y).shape == x.shape


def simple_unet_params(img_channels: int, channels: tuple[int, ...], temb: int) -> int:
    """The parameter count of the tutorial's architecture, summed from its description."""
    def block(cin: int, cout: int, up: bool) -> int:
        conv1 = (2 * cin if up else cin) * cout * 9 + cout
        conv2, resample, bns = cout * cout * 9 + cout, cout * cout * 16 + cout, 2 * 2 * cout
        return conv1 + (temb * cout + cout) + conv2 + bns + resample

    rev = channels[::-1]
    return ((temb * temb + temb) + (img_channels * channels[0] * 9 + channels[0])  # time MLP, stem
            + sum(block(a, b, False) for a, b in zip(channels, channels[1:]))
            + sum(block(a, b, True) for a, b in zip(rev, rev[1:]))
            + (channels[0] * img_channels + img_channels))  # 1x1 output conv


@pytest.mark.parametrize("img_channels, channels, temb", [(1, (8, 16, 32), 16), (3, (4, 8, 16, 32, 64), 32)])
def test_simple_unet_parameter_count(img_channels, channels, temb):
    model = SimpleUnet(img_channels=img_channels, channels=channels, time_emb_dim=temb)
    assert count_params(model) == simple_unet_params(img_channels, channels, temb)


def test_simple_unet_has_the_tutorials_parameter_count():
    """The tutorial's notebook prints "Num params: 62438883" for its 3-channel model."""
    assert simple_unet_params(3, (64, 128, 256, 512, 1024), 32) == 62438883
    assert count_params(SimpleUnet()) == 62438883


@pytest.mark.parametrize("make", [
    lambda: UNet(img_channels=1, img_resolution=28, **TINY),
    lambda: UNet(img_channels=3, img_resolution=16, channel_mult=(1, 2), attn_resolutions=(16, 8), **TINY),
    lambda: SimpleUnet(img_channels=1, img_resolution=28, **SMALL_SIMPLE),
])
def test_scalar_t_equals_broadcast_t(make):
    model = randomised(make())
    x = torch.randn(4, model.img_channels, model.img_resolution, model.img_resolution)
    assert torch.equal(model(x, torch.tensor(17)), model(x, torch.full((4,), 17)))
    assert not torch.allclose(model(x, torch.tensor(17)), model(x, torch.tensor(60)), atol=1e-4)  # t is used


@pytest.mark.parametrize("make", [
    lambda: UNet(img_channels=1, img_resolution=16, label_dim=10, channel_mult=(1, 2), **TINY),
    lambda: SimpleUnet(img_channels=1, img_resolution=16, label_dim=10, **SMALL_SIMPLE),
])
def test_no_label_is_the_null_class(make):
    """y None, y = label_dim and y < 0 all select the learned "no label" class; a real label differs."""
    model = randomised(make())
    x, t = torch.randn(4, 1, 16, 16), torch.tensor([1, 2, 3, 4])
    unlabelled = model(x, t)
    assert torch.equal(unlabelled, model(x, t, torch.full((4,), 10)))
    assert torch.equal(unlabelled, model(x, t, torch.full((4,), -1)))
    mixed = model(x, t, torch.tensor([3, -1, 3, 10]))
    assert torch.equal(mixed[[1, 3]], unlabelled[[1, 3]])
    assert not torch.allclose(mixed[[0, 2]], unlabelled[[0, 2]], atol=1e-4)


@pytest.mark.parametrize("make", [lambda: UNet(**TINY), lambda: SimpleUnet(img_channels=1, **SMALL_SIMPLE)])
def test_labels_without_label_dim_are_an_error(make):
    model = make()
    with pytest.raises(ValueError, match="label_dim=0"):
        model(torch.randn(2, 1, 28, 28), torch.tensor(3), torch.tensor([1, 2]))


@pytest.mark.parametrize("kwargs, match", [
    (dict(img_resolution=28, channel_mult=(1, 2, 2, 2)), "7 is odd"),  # 28 -> 14 -> 7 -> ?
    (dict(img_resolution=28, attn_resolutions=(8,)), r"attn_resolutions: \[8\] never occur"),
    (dict(img_resolution=28, attn_resolutions=(28,), num_heads=3), "num_heads: 3 does not divide"),
    (dict(channel_mult=()), "channel_mult"),
    (dict(channel_mult=(1, 0)), "channel_mult"),
    (dict(dropout=1.0), "dropout"),
    (dict(base_channels=0), "base_channels"),
    (dict(num_res_blocks=0), "num_res_blocks"),
    (dict(img_channels=2.5), "img_channels"),
    (dict(label_dim=-1), "label_dim"),
    (dict(time_emb_dim=0), "time_emb_dim"),
])
def test_unet_impossible_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        UNet(**kwargs)


@pytest.mark.parametrize("kwargs, match", [
    (dict(channels=(64,)), "channels"), (dict(channels=(8, 0)), "channels"),
    (dict(img_channels=0), "img_channels"), (dict(time_emb_dim=1), "time_emb_dim"),
])
def test_simple_unet_impossible_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SimpleUnet(**kwargs)


def test_fresh_unet_outputs_zero_and_can_learn():
    """The output conv starts at zero: a fresh UNet predicts exactly 0, yet the output conv gets a gradient."""
    torch.manual_seed(0)
    model = UNet(img_channels=3, img_resolution=16, channel_mult=(1, 2), attn_resolutions=(8,), **TINY)
    out = model(torch.randn(2, 3, 16, 16), torch.tensor([4, 40]))
    assert torch.equal(out, torch.zeros_like(out))
    (out - 1).pow(2).sum().backward()
    assert model.out_conv.weight.grad.abs().sum() > 0


def test_samples_do_not_see_each_other():
    """No operation mixes the batch (GroupNorm, attention are per sample): a sample's output is its own."""
    model = randomised(UNet(img_channels=1, img_resolution=16, channel_mult=(1, 2), attn_resolutions=(16, 8),
                            num_heads=2, **TINY))
    x, t = torch.randn(5, 1, 16, 16), torch.tensor([1, 2, 3, 4, 5])
    torch.testing.assert_close(model(x, t)[1:3], model(x[1:3], t[1:3]), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("heads", [1, 4])
def test_attention_matches_the_formula(heads):
    """x + proj(softmax(Q K^T / sqrt(d)) V) per head, written out with einsum."""
    torch.manual_seed(0)
    attn = randomised(Attention(16, heads))
    x = torch.randn(2, 16, 5, 3)  # non-square, 15 positions
    B, C, H, W = x.shape
    d = C // heads
    tokens = attn.norm(x).reshape(B, C, H * W).transpose(1, 2)  # (B, N, C): one token per position
    qkv = attn.qkv(tokens)  # (B, N, 3C): [q | k | v], each heads x d
    q, k, v = (qkv[..., i * C:(i + 1) * C].reshape(B, H * W, heads, d) for i in range(3))
    weights = torch.softmax(torch.einsum("bnhd,bmhd->bhnm", q, k) / math.sqrt(d), dim=-1)
    h = torch.einsum("bhnm,bmhd->bnhd", weights, v).reshape(B, H * W, C)
    expected = x + attn.proj(h).transpose(1, 2).reshape(B, C, H, W)
    torch.testing.assert_close(attn(x), expected, rtol=1e-5, atol=1e-5)


def test_channels_last_and_bf16_autocast_agree_with_float32():
    model = randomised(UNet(img_channels=1, img_resolution=28, **TINY))
    x, t = torch.randn(4, 1, 28, 28), torch.tensor([0, 10, 50, 99])
    ref = model(x, t)
    fast = copy.deepcopy(model).to(memory_format=torch.channels_last)
    out = fast(x.to(memory_format=torch.channels_last), t)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = model(x, t)
    assert low.dtype == torch.bfloat16
    assert (low.float() - ref).abs().max() < 0.05 * ref.abs().max()  # bf16 has ~3 significant digits


def test_count_params():
    model = UNet(img_channels=3, img_resolution=32, **TINY)
    assert count_params(model) == sum(p.numel() for p in model.parameters()) > 0
    model.out_conv.requires_grad_(False)  # frozen parameters are not counted
    assert count_params(model) == sum(p.numel() for p in model.parameters()) - model.out_conv.weight.numel() - 3
    # Both widths scale the convs' weights: doubling base_channels roughly quadruples the count.
    assert 3 < count_params(UNet(base_channels=64)) / count_params(UNet(base_channels=32)) < 4.2
    assert 0.5e6 < count_params(UNet()) < 2e6  # the lean default


def digits(n: int, size: int) -> torch.Tensor:
    """n distinct structured images in [-1, 1]: bright bars at different places on a dark background."""
    x = -torch.ones(n, 1, size, size)
    for i in range(n):
        x[i, 0, i % size, :] = 1.0
        x[i, 0, :, (3 * i + 1) % size] = 1.0
    return x


@pytest.mark.parametrize("make, lr", [
    (lambda: UNet(img_channels=1, img_resolution=8, channel_mult=(1, 2), attn_resolutions=(4,), **TINY), 3e-3),
    (lambda: SimpleUnet(img_channels=1, img_resolution=8, **SMALL_SIMPLE), 1e-2),
])
def test_overfits_one_batch(make, lr):
    """At fixed (t, eps), 100 Adam steps on 8 images drive the DDPM loss below 10% of its start."""
    torch.manual_seed(0)
    model = make()
    d = Diffusion(make_betas("linear", 100, warn=False))
    x0 = digits(8, 8)
    t = torch.tensor([0, 10, 20, 40, 60, 80, 90, 99])
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1))
    xt = d.q_sample(x0, t, eps)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(100):
        loss = torch.mean((model(xt, t) - d.target(x0, eps, t)) ** 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] > 0.5  # the fresh network is far from eps (a zero output scores mean(eps^2) ~ 1)
    assert losses[-1] < 0.1 * losses[0]
