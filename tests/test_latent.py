"""Chapter 15's pieces: the KL-autoencoder, cross-attention (against diffusers' Attention), the label-token U-Net, the
latent scale factor, the latent training loss and latent sampling. Oracles: diffusers, torch.distributions' KL, and
the same computation written out by hand."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

from diffusion_course import (
    AutoencoderConfig,
    CrossAttention,
    CrossAttentionBlock,
    KLAutoencoder,
    NoiseSchedule,
    UNet,
    UNetConfig,
    autoencoder_loss,
    ddim_sample,
    decode_latents,
    gaussian_kl,
    latent_loss_fn,
    latent_sample,
    latent_scale_factor,
)
from diffusion_course.maths.losses import conditional_simple_loss_fn
from diffusion_course.training.checkpoints import CheckpointError, load_weights, save_weights

TINY_AE = AutoencoderConfig(widths=(8, 8, 16), norm_groups=4)
TINY_LATENT = UNetConfig(in_channels=4, base_channels=16, channel_mults=(1,), num_res_blocks=1, attention_levels=(0,), norm_groups=4,
                         dropout=0.0, num_classes=10, label_conditioning="cross_attention", context_tokens=3, context_dim=8)


def _perturb(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every parameter a random value, so zero-initialised outputs do not hide a path."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return model


def test_cross_attention_equals_diffusers_attention_on_the_same_weights() -> None:
    from diffusers.models.attention_processor import Attention

    torch.manual_seed(0)
    ours = _perturb(CrossAttention(24, 10, heads=3, head_dim=8)).eval()
    theirs = Attention(query_dim=24, cross_attention_dim=10, heads=3, dim_head=8).eval()
    theirs.load_state_dict(ours.state_dict(), strict=True)  # the same names and shapes: to_q, to_k, to_v, to_out.0
    x, c = torch.randn(2, 49, 24), torch.randn(2, 5, 10)
    with torch.no_grad():
        assert torch.allclose(ours(x, c), theirs(x, encoder_hidden_states=c), atol=1e-5)


def test_cross_attention_is_a_softmax_mix_of_the_context_values() -> None:
    """One head written out: out = softmax(q k^T / sqrt(d)) v W_o + b."""
    attn = _perturb(CrossAttention(6, 4, heads=1, head_dim=5)).eval()
    x, c = torch.randn(1, 7, 6), torch.randn(1, 3, 4)
    q, k, v = attn.to_q(x), attn.to_k(c), attn.to_v(c)
    w = torch.softmax(q @ k.transpose(1, 2) / 5**0.5, dim=-1)  # (1, 7, 3), rows sum to 1
    by_hand = attn.to_out[0](w @ v)
    with torch.no_grad():
        assert torch.allclose(attn(x, c), by_hand, atol=1e-6)
    with pytest.raises(ValueError, match="context"):
        attn(x, torch.randn(1, 3, 5))


def test_cross_attention_block_starts_as_the_identity() -> None:
    block = CrossAttentionBlock(8, 6, groups=4, heads=2)
    x = torch.randn(2, 8, 7, 7)
    assert torch.equal(block(x, torch.randn(2, 3, 6)), x)


def test_cross_attention_unet_starts_unconditional_and_then_reads_the_label() -> None:
    fresh = UNet(TINY_LATENT).eval()
    _ = [torch.nn.init.normal_(p, std=0.1) for n, p in fresh.named_parameters() if "conv_out" in n]  # a non-zero output layer
    z, t = torch.randn(3, 4, 7, 7), torch.tensor([10, 500, 900])
    with torch.no_grad():
        a, b = fresh(z, t, torch.tensor([1, 2, 3])), fresh(z, t, torch.tensor([7, 7, 10]))
    assert torch.allclose(a, b)  # the cross-attention outputs start at zero: labels cannot matter yet
    net = _perturb(UNet(TINY_LATENT)).eval()
    with torch.no_grad():
        a, b = net(z, t, torch.tensor([1, 2, 3])), net(z, t, torch.tensor([7, 7, 10]))
        a2 = net(z, t, torch.tensor([1, 2, 3]))
    assert not torch.allclose(a, b) and torch.equal(a, a2)
    assert not hasattr(net, "label_embed") and any("cross" in n for n, _ in net.named_parameters())


def test_cross_attention_needs_labels() -> None:
    with pytest.raises(ValueError, match="num_classes"):
        UNetConfig(label_conditioning="cross_attention")
    with pytest.raises(ValueError, match="label_conditioning"):
        UNetConfig(num_classes=10, label_conditioning="concat")


def test_gaussian_kl_equals_torch_distributions() -> None:
    mean, logvar = torch.randn(5, 4, 7, 7), torch.randn(5, 4, 7, 7)
    q = torch.distributions.Normal(mean, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros_like(mean), torch.ones_like(mean))
    expected = torch.distributions.kl_divergence(q, p).flatten(1).sum(1)
    assert torch.allclose(gaussian_kl(mean, logvar), expected, atol=1e-4)
    assert torch.allclose(gaussian_kl(torch.zeros(2, 3), torch.zeros(2, 3)), torch.zeros(2))


def test_autoencoder_shapes_and_loss_parts() -> None:
    ae = _perturb(KLAutoencoder(TINY_AE)).eval()
    x = torch.rand(3, 1, 28, 28) * 2 - 1
    mean, logvar = ae.encode(x)
    assert mean.shape == logvar.shape == (3, 4, 7, 7) and ae.decode(mean).shape == x.shape
    loss, rec, kl = autoencoder_loss(ae, x, kl_weight=0.25, generator=torch.Generator().manual_seed(1), parts=True)
    x_hat, m2, lv2 = ae(x, torch.Generator().manual_seed(1))  # the same draw of z
    assert torch.allclose(rec, (x_hat - x).pow(2).flatten(1).sum(1).mean())
    assert torch.allclose(kl, gaussian_kl(m2, lv2).mean()) and torch.allclose(loss, rec + 0.25 * kl)
    with pytest.raises(ValueError, match="divisible by 4"):
        ae.encode(torch.zeros(1, 1, 30, 30))
    with pytest.raises(ValueError, match="z must"):
        ae.decode(torch.zeros(1, 3, 7, 7))
    with pytest.raises(ValueError, match="kl_weight"):
        autoencoder_loss(ae, x, kl_weight=-1.0)


def test_latent_scale_factor_is_one_over_the_latent_std() -> None:
    mean = torch.randn(4000, 4, 7, 7, generator=torch.Generator().manual_seed(0)) * 3.0
    logvar = torch.full_like(mean, 2 * torch.log(torch.tensor(4.0)))  # posterior std 4: z has std 5 overall
    s = latent_scale_factor(mean, logvar, generator=torch.Generator().manual_seed(1))
    assert s == pytest.approx(1 / 5, rel=0.01)


def test_latent_loss_draws_z_from_the_posterior_then_takes_l_simple() -> None:
    schedule = NoiseSchedule.linear(50)
    net = _perturb(UNet(TINY_LATENT)).eval()
    mean, logvar = torch.randn(6, 4, 7, 7), torch.randn(6, 4, 7, 7) - 2
    y = torch.arange(6)
    got = latent_loss_fn(schedule, 0.7, 0.1, 10)(net, torch.cat([mean, logvar], 1), y, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    z = (mean + (0.5 * logvar).exp() * torch.randn(mean.shape, generator=g)) * 0.7
    expected = conditional_simple_loss_fn(schedule, 0.1, 10)(net, z, y, g)
    assert torch.allclose(got, expected)


def test_latent_sample_is_ddim_in_the_latent_then_decode() -> None:
    schedule = NoiseSchedule.linear(50)
    net = _perturb(UNet(TINY_LATENT)).eval()
    ae = _perturb(KLAutoencoder(TINY_AE)).eval()
    x_T = torch.randn(4, 4, 7, 7, generator=torch.Generator().manual_seed(2))
    y = torch.tensor([0, 3, 3, 9])
    images, z = latent_sample(net, schedule, (4, 4, 7, 7), autoencoder=ae, scale_factor=0.5, y=y, steps=5, x_T=x_T, return_latents=True)
    z_ref = ddim_sample(lambda z_, t: net(z_, t, y), schedule, (4, 4, 7, 7), steps=5, spacing="leading", x_T=x_T)
    assert torch.allclose(z, z_ref, atol=1e-5)
    with torch.no_grad():
        assert torch.allclose(images, ae.decode(z_ref / 0.5).clamp(-1, 1), atol=1e-5)
    assert images.shape == (4, 1, 28, 28)
    assert torch.allclose(decode_latents(ae, z_ref, 0.5), images, atol=1e-5)
    guided = latent_sample(net, schedule, (4, 4, 7, 7), autoencoder=ae, scale_factor=0.5, y=y, w=2.0, steps=5, x_T=x_T)
    assert not torch.allclose(guided, images)
    with pytest.raises(ValueError, match="w must be 0"):
        latent_sample(net, schedule, (4, 4, 7, 7), autoencoder=ae, scale_factor=0.5, w=1.0, steps=5)
    with pytest.raises(ValueError, match="scale_factor"):
        decode_latents(ae, z_ref, 0.0)


def test_cards_saved_before_a_config_field_existed_still_load(tmp_path: Path) -> None:
    """A U-Net card written before label_conditioning / context_* existed loads into a model that keeps their defaults;
    a field that truly differs still refuses."""
    cfg = UNetConfig(base_channels=8, channel_mults=(1, 2), num_res_blocks=1, attention_levels=(), norm_groups=4)
    path = tmp_path / "old.safetensors"
    save_weights(UNet(cfg), path, {"what": "test"})
    card = json.loads(path.with_suffix(".json").read_text())
    for k in ("label_conditioning", "context_tokens", "context_dim"):
        del card["architecture"]["config"][k]
    path.with_suffix(".json").write_text(json.dumps(card))
    load_weights(UNet(cfg), path)
    card["architecture"]["config"]["num_heads"] = 2
    path.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="num_heads"):
        load_weights(UNet(cfg), path)


def test_latent_commands_write_loadable_cards(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """train-autoencoder then train-latent-unet for a few steps at tiny sizes: both cards load, the latent card names
    the autoencoder's sha256 and scale factor, and latent_sample makes digits-shaped images from them."""
    from diffusion_course import load_pretrained_autoencoder, load_pretrained_latent_unet
    from diffusion_course.weights import make_latent, shipped

    monkeypatch.setattr(make_latent, "AUTOENCODER_CONFIG", TINY_AE)
    monkeypatch.setattr(make_latent, "LATENT_UNET_CONFIG", TINY_LATENT)
    common = dict(data="subset", batch_size=8, warmup=1, threads=0, checkpoint_every=0, seed=0, out=str(tmp_path))
    make_latent.train_autoencoder_cmd(argparse.Namespace(steps=3, lr=1e-3, kl_weight=1e-3, **common))
    ae, ae_card = load_pretrained_autoencoder(directory=tmp_path)
    assert ae_card["latent_scale_factor"] > 0 and ae_card["autoencoder_config"]["widths"] == [8, 8, 16]
    make_latent.train_latent_unet_cmd(argparse.Namespace(steps=3, lr=1e-3, label_dropout=0.1, ema_decay=0.9, **common))
    net, card = load_pretrained_latent_unet(directory=tmp_path)
    assert card["autoencoder"]["sha256"] == ae_card["weights_sha256"] and card["autoencoder"]["latent_scale_factor"] == ae_card["latent_scale_factor"]
    assert not (tmp_path / "checkpoints" / "mnist_latent_unet.pt").exists()
    schedule = shipped.schedule_from_card(card)
    x = latent_sample(net, schedule, (2, 4, 7, 7), autoencoder=ae, scale_factor=ae_card["latent_scale_factor"], y=torch.tensor([1, 2]), steps=2)
    assert x.shape == (2, 1, 28, 28) and x.abs().max() <= 1


def test_evaluate_latent_writes_the_card_the_chapter_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """evaluate-latent at tiny sizes (16 samples per digit, 2-3 DDIM steps) on a 3-step latent model, beside the shipped
    pixel U-Net and chapter 11's card: every setting is scored with KID and its interval, the paired and unpaired
    differences hold their intervals, the speed block has both models, and 16 samples per digit ship."""
    import shutil

    from diffusion_course import load_latent_samples, load_pretrained_latent_unet
    from diffusion_course.data.locations import DATA_DIR
    from diffusion_course.weights import make_latent

    for f in ("mnist_classifier", "mnist_unet_ema", "mnist_unet_samples", "mnist_cond_unet_ema"):
        for ext in (".json", ".safetensors"):
            shutil.copy(Path(DATA_DIR) / f"{f}{ext}", tmp_path / f"{f}{ext}")
    monkeypatch.setattr(make_latent, "AUTOENCODER_CONFIG", TINY_AE)
    monkeypatch.setattr(make_latent, "LATENT_UNET_CONFIG", TINY_LATENT)
    settings = (("null_ddim50", None, 2, "uniform", 16), ("w0_ddim50", 0.0, 2, "uniform", 16), ("sweep_uncond", None, 2, "leading", 16),
                ("sweep_w0", 0.0, 2, "leading", 16), ("sweep_w1", 1.0, 2, "leading", 16), ("sweep_w3", 3.0, 3, "leading", 16))
    monkeypatch.setattr(make_latent, "LATENT_SETTINGS", settings)
    common = dict(data="subset", batch_size=8, warmup=1, threads=0, checkpoint_every=0, seed=0, out=str(tmp_path))
    make_latent.train_autoencoder_cmd(argparse.Namespace(steps=2, lr=1e-3, kl_weight=1e-3, **common))
    make_latent.train_latent_unet_cmd(argparse.Namespace(steps=2, lr=1e-3, label_dropout=0.1, ema_decay=0.9, **common))
    make_latent.evaluate_latent_cmd(argparse.Namespace(batch=64, seed=0, threads=0, speed_n=4, out=str(tmp_path)))
    _, card = load_pretrained_latent_unet(directory=tmp_path)
    q = card["quality"]
    assert set(q["settings"]) == {s[0] for s in settings}
    for r in q["settings"].values():
        k = r["pooled"]
        assert r["n"] == 160 and k["kid_lo"] <= k["kid"] <= k["kid_hi"]
    assert "confident_correct_share" in q["settings"]["sweep_w1"] and "confident_correct_share" not in q["settings"]["sweep_uncond"]
    for d in list(q["paired"].values()) + [v for v in q["versus_pixel"].values() if "kid_a_minus_b" in v]:
        e, lo, hi = d["kid_a_minus_b"]
        assert lo <= e <= hi and d["kid_separated"] == (lo > 0 or hi < 0)
    sp = q["speed"]
    assert sp["ddim50_sampling_seconds"]["samples"] == 4 and sp["training_step_seconds_batch64"]["latent"] > 0
    assert sp["training_wall_clock_seconds"]["pixel_unet"] == json.loads((tmp_path / "mnist_unet_ema.json").read_text())["seconds"]
    shipped = load_latent_samples(directory=tmp_path)
    assert set(shipped) == {s[0] for s in settings} and all(v.shape == (160, 1, 28, 28) for v in shipped.values())
