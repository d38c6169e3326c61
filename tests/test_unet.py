"""The time-conditioned U-Net: shapes at several sizes, clear errors, per-sample independence, the attention block
against a float64 oracle, every parameter in use, and a short run that really learns."""

from __future__ import annotations

import math

import pytest
import torch

from diffusion_course.maths.schedules import NoiseSchedule
from diffusion_course.models.basic_unet import BasicUNet
from diffusion_course.models.sizes import conv2d_output_size, conv2d_parameter_count, conv_transpose2d_output_size
from diffusion_course.models.unet import ResBlock, SelfAttention, UNet, UNetConfig
from diffusion_course.training.loop import TrainConfig, train

SMALL = dict(base_channels=8, norm_groups=4, num_res_blocks=1, dropout=0.0)


def _randomise(model: torch.nn.Module, seed: int = 0) -> None:
    """Replace the zero initialisations by random weights so every path of the network carries signal."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)


@pytest.mark.parametrize(
    "size, channels, mults, attention",
    [(8, 1, (1, 2), (1,)), (28, 1, (1, 2, 2), (2,)), (32, 3, (1, 2, 2, 2), (2,)), (64, 1, (1, 2, 2, 2), (3,))],
)
@pytest.mark.parametrize("conditioning", ["add", "scale_shift"])
def test_output_shape_matches_input(size: int, channels: int, mults: tuple, attention: tuple, conditioning: str) -> None:
    cfg = UNetConfig(in_channels=channels, channel_mults=mults, attention_levels=attention, time_conditioning=conditioning, **SMALL)
    model = UNet(cfg).eval()
    x = torch.randn(2, channels, size, size)
    eps_hat = model(x, torch.tensor([0, 999]))
    assert eps_hat.shape == x.shape
    assert torch.isfinite(eps_hat).all()


def test_output_starts_at_zero() -> None:
    """The last conv is zero-initialised, so an untrained model predicts eps_hat = 0 (L_simple starts at E||eps||^2 = 1)."""
    model = UNet(UNetConfig(**SMALL))
    assert torch.equal(model(torch.randn(3, 1, 28, 28), torch.tensor([1, 2, 3])), torch.zeros(3, 1, 28, 28))


def test_out_channels_can_differ() -> None:
    model = UNet(UNetConfig(in_channels=3, out_channels=6, **SMALL))
    assert model(torch.randn(1, 3, 28, 28), torch.tensor([5])).shape == (1, 6, 28, 28)


def test_depends_on_t_and_each_sample_only() -> None:
    torch.manual_seed(0)
    for conditioning in ("add", "scale_shift"):
        model = UNet(UNetConfig(time_conditioning=conditioning, **SMALL)).eval()
        _randomise(model)
        x = torch.randn(4, 1, 28, 28)
        t = torch.tensor([0, 10, 500, 999])
        full = model(x, t)
        # GroupNorm and attention act within one image: a batch is just many images side by side.
        for i in range(4):
            torch.testing.assert_close(model(x[i : i + 1], t[i : i + 1]), full[i : i + 1], rtol=1e-4, atol=1e-5)
        # The prediction changes with t (the time embedding reaches the output).
        other = model(x, torch.tensor([999, 500, 10, 0]))
        assert (other - full).abs().mean() > 1e-3 * full.abs().mean()


def test_scale_shift_has_twice_the_time_projection() -> None:
    add = ResBlock(16, 32, 64, groups=8, dropout=0.0, time_conditioning="add")
    ada = ResBlock(16, 32, 64, groups=8, dropout=0.0, time_conditioning="scale_shift")
    assert add.time_proj.out_features == 32 and ada.time_proj.out_features == 64


def test_scale_shift_formula() -> None:
    """AdaGN: with the time projection fixed to (s, b), the block computes conv2(SiLU(GroupNorm(h) (1 + s) + b))."""
    torch.manual_seed(1)
    block = ResBlock(8, 8, 4, groups=4, dropout=0.0, time_conditioning="scale_shift").eval()
    _randomise(block)
    x, temb = torch.randn(2, 8, 6, 6), torch.randn(2, 4)
    h = block.conv1(torch.nn.functional.silu(block.norm1(x)))
    s, b = block.time_proj(torch.nn.functional.silu(temb)).chunk(2, dim=1)
    expected = x + block.conv2(torch.nn.functional.silu(block.norm2(h) * (1 + s[:, :, None, None]) + b[:, :, None, None]))
    torch.testing.assert_close(block(x, temb), expected)


def test_attention_matches_float64_oracle() -> None:
    torch.manual_seed(2)
    attn = SelfAttention(8, groups=4, num_heads=2).eval()
    _randomise(attn)
    x = torch.randn(2, 8, 5, 5)
    out = attn(x)
    # Oracle: plain softmax attention written out in float64, one head at a time.
    xd = x.double()
    h = torch.nn.functional.group_norm(xd, 4, attn.norm.weight.double(), attn.norm.bias.double(), attn.norm.eps)
    qkv = torch.einsum("oc,bchw->bohw", attn.qkv.weight.double()[:, :, 0, 0], h) + attn.qkv.bias.double()[None, :, None, None]
    q, k, v = qkv.reshape(2, 3, 2, 4, 25).unbind(1)  # (B, heads, C/heads, HW)
    w = torch.softmax(torch.einsum("bhcn,bhcm->bhnm", q, k) / math.sqrt(4), dim=-1)  # (B, heads, HW, HW)
    o = torch.einsum("bhnm,bhcm->bhcn", w, v).reshape(2, 8, 5, 5)
    o = torch.einsum("oc,bchw->bohw", attn.proj.weight.double()[:, :, 0, 0], o) + attn.proj.bias.double()[None, :, None, None]
    torch.testing.assert_close(out.double(), xd + o, rtol=1e-5, atol=1e-5)


def test_every_parameter_gets_a_gradient() -> None:
    model = UNet(UNetConfig(channel_mults=(1, 2, 2), attention_levels=(1, 2), time_conditioning="scale_shift", **SMALL))
    _randomise(model)
    model(torch.randn(2, 1, 28, 28), torch.tensor([3, 700])).square().mean().backward()
    unused = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert unused == []


@pytest.mark.parametrize(
    "x_shape, t, match",
    [
        ((2, 3, 28, 28), torch.tensor([1, 2]), "x must have shape"),
        ((2, 1, 28), torch.tensor([1, 2]), "x must have shape"),
        ((2, 1, 30, 28), torch.tensor([1, 2]), "divisible by 2"),
        ((2, 1, 28, 28), torch.tensor([1, 2, 3]), "t must have shape"),
        ((2, 1, 28, 28), torch.tensor([[1, 2]]), "t must have shape"),
    ],
)
def test_bad_inputs_raise_clear_errors(x_shape: tuple, t: torch.Tensor, match: str) -> None:
    model = UNet(UNetConfig(**SMALL))
    with pytest.raises(ValueError, match=match):
        model(torch.randn(*x_shape), t)


def test_28_pixels_cannot_take_four_levels() -> None:
    model = UNet(UNetConfig(channel_mults=(1, 2, 2, 2), attention_levels=(), **SMALL))
    with pytest.raises(ValueError, match="divisible by 2\\^\\(levels-1\\) = 8"):
        model(torch.randn(1, 1, 28, 28), torch.tensor([0]))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(norm_groups=5), "norm_groups"),
        (dict(attention_levels=(3,)), "attention_levels"),
        (dict(time_conditioning="concat"), "time_conditioning"),
        (dict(channel_mults=()), "channel_mults"),
        (dict(dropout=1.0), "dropout"),
        (dict(num_heads=3), "num_heads"),
    ],
)
def test_bad_config_raises(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        UNetConfig(**{**SMALL, **kwargs})


def test_config_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        UNetConfig(1)  # type: ignore[misc]


def test_basic_unet_is_unchanged() -> None:
    """Chapter 1's BasicUNet keeps its layout (309,057 parameters with the default widths, as in seed 002)."""
    assert sum(p.numel() for p in BasicUNet().parameters()) == 309_057


def test_learns_8x8_digits() -> None:
    """A short L_simple run on scikit-learn's 8x8 digits takes the loss well below its starting value of 1."""
    from diffusion_course.data.sets import digits

    x, _ = digits()
    torch.manual_seed(0)
    model = UNet(UNetConfig(channel_mults=(1, 2), attention_levels=(1,), base_channels=16, norm_groups=8, num_res_blocks=1, dropout=0.0))
    cfg = TrainConfig(steps=150, batch_size=64, lr=2e-3, warmup_steps=10, ema_decay=None, progress=False, seed=0)
    losses = train(model, x, cfg, schedule=NoiseSchedule.linear(1000)).losses
    assert sum(losses[:10]) / 10 > 0.8  # eps_hat starts at 0
    assert sum(losses[-30:]) / 30 < 0.35


def test_layer_arithmetic_matches_torch() -> None:
    """The chapter-5 formulas against the layers themselves, over a grid of settings."""
    x = torch.zeros(1, 2, 11, 11)
    for k in (1, 2, 3, 5):
        for s in (1, 2, 3):
            for p in range(0, k // 2 + 1):
                for d in (1, 2):
                    if d * (k - 1) + 1 > 11 + 2 * p:
                        continue
                    conv = torch.nn.Conv2d(2, 4, k, stride=s, padding=p, dilation=d)
                    assert conv(x).shape[-1] == conv2d_output_size(11, k, s, p, d)
                    assert sum(q.numel() for q in conv.parameters()) == conv2d_parameter_count(2, 4, k)
                    pool = torch.nn.MaxPool2d(k, stride=s, padding=p, dilation=d)
                    assert pool(x).shape[-1] == conv2d_output_size(11, k, s, p, d)
                    for op in range(0, max(s, d)):
                        tconv = torch.nn.ConvTranspose2d(2, 4, k, stride=s, padding=p, output_padding=op, dilation=d)
                        assert tconv(x).shape[-1] == conv_transpose2d_output_size(11, k, s, p, op, d)
    grouped = torch.nn.Conv2d(8, 16, 3, groups=4, bias=False)
    assert sum(q.numel() for q in grouped.parameters()) == conv2d_parameter_count(8, 16, 3, bias=False, groups=4)
    with pytest.raises(ValueError, match="does not fit"):
        conv2d_output_size(2, 5)
    with pytest.raises(ValueError, match="output_padding"):
        conv_transpose2d_output_size(4, 3, stride=2, output_padding=2)
