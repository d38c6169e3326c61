"""Loading the shipped files (chapters 6-13): the MNIST U-Net (EMA and raw, Ho et al. 2020's eps-predictor), the
class-conditional U-Net of chapter 11, chapter 10's colour U-Nets, chapter 13's flow-matching U-Net, and the samples and tables
measured on them. CPU, no network, nothing trained or written here::

    model, card = load_pretrained_unet()          # EMA weights, eval mode
    schedule = schedule_from_card(card)            # the noise schedule it was trained with

Each ``.safetensors`` file has a JSON card beside it with the command, seed, steps, device, time, git commit and the
measured quality. They are made by ``make weights``, which runs ``python -m diffusion_course.weights.make`` (``--help``).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from .._internal.validate import check_choice
from ..data.encoding import from_uint8
from ..data.locations import find_shipped
from ..maths.schedules import NoiseSchedule, make_betas
from ..models.autoencoder import AutoencoderConfig, KLAutoencoder
from ..models.flow_time import FLOW_TIME_SCALE, FlowTime
from ..models.noisy_classifier import NoisyClassifier, NoisyClassifierConfig
from ..models.unet import UNet, UNetConfig
from ..training.checkpoints import CheckpointError, load_weights, read_card

__all__ = ["COLOUR_UNET_FILE", "COLOUR_FIXED_FILE", "COLOUR_TINY_SAMPLES_FILE", "COLOUR_UNET_CONFIG", "TINY_UNET_CONFIG",
    "load_colour_unet", "load_tiny_samples",
    "UNET_EMA_FILE",
    "UNET_RAW_FILE",
    "SHIPPED_UNET_CONFIG",
    "load_pretrained_unet",
    "schedule_from_card",
    "load_card_samples",
    "load_ddim_table",
    "SAMPLES_FILE",
    "TABLE_FILE",
    "COND_UNET_FILE",
    "COND_SAMPLES_FILE",
    "GUIDANCE_SCALES",
    "load_pretrained_cond_unet",
    "load_guidance_samples",
    "FLOW_EMA_FILE",
    "FLOW_RAW_FILE",
    "FLOW_SAMPLES_FILE",
    "load_pretrained_flow_unet",
    "load_flow_samples",
    "CALLS_TABLE_FILE",
    "load_calls_table",
    "AUTOENCODER_FILE",
    "AUTOENCODER_CONFIG",
    "LATENT_UNET_FILE",
    "LATENT_UNET_RAW_FILE",
    "LATENT_UNET_CONFIG",
    "load_pretrained_autoencoder",
    "load_pretrained_latent_unet",
    "NOISY_CLASSIFIER_FILE",
    "CG_SAMPLES_FILE",
    "load_noisy_classifier",
    "load_classifier_guidance_samples",
]

UNET_EMA_FILE = "mnist_unet_ema.safetensors"
UNET_RAW_FILE = "mnist_unet_raw.safetensors"

# The shipped U-Net: small enough to train on a laptop CPU in about 20 minutes and to sample 1000 DDPM steps there.
SHIPPED_UNET_CONFIG = UNetConfig(
    in_channels=1,
    base_channels=16,
    channel_mults=(1, 2, 4),  # 28x28 (16 ch) -> 14x14 (32 ch) -> 7x7 (64 ch)
    num_res_blocks=1,
    attention_levels=(2,),  # self-attention at 7x7 only, plus the middle
    norm_groups=8,
    time_conditioning="scale_shift",
    dropout=0.0,  # short runs on 4,000 images do not overfit; the paper's 0.1 only slows them down
)


def _load_unet_file(path: Path, made_by: str = "`make weights`") -> tuple[UNet, dict[str, Any]]:
    """A shipped UNet weights file and its card: the card's unet_config builds the model, the weights are checked
    against the card's sha256 and loaded; eval mode, CPU."""
    card = read_card(path)
    if "unet_config" not in card:
        raise CheckpointError(f"{path.with_suffix('.json')} is missing or holds no 'unet_config': the card beside the weights says "
                              f"which U-Net they fit; run {made_by} to produce both")
    model = UNet(UNetConfig(**card["unet_config"]))
    load_weights(model, path)
    return model.eval(), card


def load_pretrained_unet(which: str = "ema", *, directory: str | Path | None = None) -> tuple[UNet, dict[str, Any]]:
    """The shipped MNIST noise predictor (``which`` = "ema", the weights to sample with, or "raw", the last optimiser
    iterate) in eval mode on the CPU, and its card."""
    check_choice(which, ("ema", "raw"), "which")
    return _load_unet_file(find_shipped(UNET_EMA_FILE if which == "ema" else UNET_RAW_FILE, directory))


FLOW_EMA_FILE = "mnist_flow_unet_ema.safetensors"
FLOW_RAW_FILE = "mnist_flow_unet_raw.safetensors"
FLOW_SAMPLES_FILE = "mnist_flow_unet_samples.safetensors"


def load_pretrained_flow_unet(which: str = "ema", *, directory: str | Path | None = None) -> tuple[FlowTime, dict[str, Any]]:
    """Chapter 13's velocity predictor v_theta(x_t, t): the U-Net of chapter 6 trained with flow matching, wrapped in
    :class:`FlowTime` so it is called with t in [0, 1] (0 = data, 1 = noise). Eval mode, CPU, and its card."""
    check_choice(which, ("ema", "raw"), "which")
    net, card = _load_unet_file(find_shipped(FLOW_EMA_FILE if which == "ema" else FLOW_RAW_FILE, directory))
    return FlowTime(net, card.get("path", {}).get("time_scale", FLOW_TIME_SCALE)).eval(), card


def load_flow_samples(name: str, *, directory: str | Path | None = None) -> torch.Tensor:
    """The flow card's evaluation samples of one setting (e.g. "flow_euler_20", see ``card["quality"]["settings"]``) as
    floats in [-1, 1], (n, 1, 28, 28), from the same x_T as the DDPM card's samples (:func:`load_card_samples`)."""
    from safetensors.torch import load_file

    tensors = load_file(str(find_shipped(FLOW_SAMPLES_FILE, directory)))
    if name not in tensors:
        raise ValueError(f"name must be one of {sorted(tensors)}; got {name!r}")
    return from_uint8(tensors[name])


AUTOENCODER_FILE = "mnist_autoencoder.safetensors"
LATENT_UNET_FILE = "mnist_latent_unet_ema.safetensors"
LATENT_UNET_RAW_FILE = "mnist_latent_unet_raw.safetensors"
LATENT_SAMPLES_FILE = "mnist_latent_samples.safetensors"
# Chapter 15's two stages: 28x28 -> 4x7x7 (f = 4, 4 channels: 196 numbers for 784 pixels), and a one-level U-Net on the
# 7x7 latent (no halving: 7 is odd) with self- and cross-attention in every block, labels as 4 tokens of width 64
AUTOENCODER_CONFIG = AutoencoderConfig(in_channels=1, latent_channels=4, widths=(16, 32, 64), blocks=1, norm_groups=8)
LATENT_UNET_CONFIG = UNetConfig(
    in_channels=4, base_channels=64, channel_mults=(1,), num_res_blocks=2, attention_levels=(0,), norm_groups=8,
    time_conditioning="scale_shift", dropout=0.0, num_classes=10, label_conditioning="cross_attention", context_tokens=4, context_dim=64,
)


def load_pretrained_autoencoder(*, directory: str | Path | None = None) -> tuple[KLAutoencoder, dict[str, Any]]:
    """Chapter 15's KL-autoencoder (eval mode, CPU) and its card, whose ``latent_scale_factor`` rescales its latents."""
    path = find_shipped(AUTOENCODER_FILE, directory)
    card = read_card(path)
    if "autoencoder_config" not in card:
        raise CheckpointError(f"{path.with_suffix('.json')} is missing or holds no 'autoencoder_config'; run `make weights` to produce both")
    model = KLAutoencoder(AutoencoderConfig(**card["autoencoder_config"]))
    load_weights(model, path)
    return model.eval(), card


def load_pretrained_latent_unet(which: str = "ema", *, directory: str | Path | None = None) -> tuple[UNet, dict[str, Any]]:
    """Chapter 15's latent noise predictor eps_theta(z_t, t, y) (labels by cross-attention; eval mode, CPU) and its card."""
    check_choice(which, ("ema", "raw"), "which")
    return _load_unet_file(find_shipped(LATENT_UNET_FILE if which == "ema" else LATENT_UNET_RAW_FILE, directory))


def load_latent_samples(*, directory: str | Path | None = None) -> dict[str, torch.Tensor]:
    """The latent card's shipped samples as floats in [-1, 1]: {setting: (160, 1, 28, 28)}, 16 per digit in label order
    (the null-label settings too: their labels are only the order the card drew them in)."""
    from safetensors.torch import load_file

    return {k: from_uint8(v) for k, v in load_file(str(find_shipped(LATENT_SAMPLES_FILE, directory))).items()}


COND_UNET_FILE = "mnist_cond_unet_ema.safetensors"
COND_SAMPLES_FILE = "mnist_cond_unet_samples.safetensors"
GUIDANCE_SCALES = (0.0, 1.0, 2.0, 3.0, 5.0)  # the card's guidance sweep (chapter 11); "uncond" is the null label alone


def load_pretrained_cond_unet(*, directory: str | Path | None = None) -> tuple[UNet, dict[str, Any]]:
    """The shipped class-conditional MNIST noise predictor eps_theta(x_t, t, y) (EMA weights, eval mode, CPU; chapter 11)
    and its card, whose ``guidance_sweep`` holds the quality measured at each guidance scale w."""
    return _load_unet_file(find_shipped(COND_UNET_FILE, directory))


def load_guidance_samples(*, directory: str | Path | None = None) -> dict[str, torch.Tensor]:
    """The shipped samples of the guidance sweep as floats in [-1, 1]: {"w0": (160, 1, 28, 28), ..., "uncond": ...},
    16 per digit in label order 0, 0, ..., 9 (the first 16 of each class the card's numbers were measured on)."""
    from safetensors.torch import load_file

    return {k: from_uint8(v) for k, v in load_file(str(find_shipped(COND_SAMPLES_FILE, directory))).items()}


def schedule_from_card(card: dict[str, Any]) -> NoiseSchedule:
    """The noise schedule a shipped U-Net was trained with, rebuilt from its card."""
    s = card["schedule"]
    return NoiseSchedule.from_betas(make_betas(s["kind"], s["T"], s["beta_1"], s["beta_T"]))


SAMPLES_FILE = "mnist_unet_samples.safetensors"
TABLE_FILE = "mnist_unet_ddim_table.json"


def load_card_samples(name: str, *, directory: str | Path | None = None) -> torch.Tensor:
    """The shipped evaluation samples of one card setting (e.g. "ddim50_eta0", see ``card["quality"]["settings"]``) as
    floats in [-1, 1], (n, 1, 28, 28): what the card's numbers were measured on, to look at without sampling live."""
    from safetensors.torch import load_file

    tensors = load_file(str(find_shipped(SAMPLES_FILE, directory)))
    if name not in tensors:
        raise ValueError(f"name must be one of {sorted(tensors)}; got {name!r}")
    return from_uint8(tensors[name])


CALLS_TABLE_FILE = "mnist_unet_calls_table.json"


def load_calls_table(*, directory: str | Path | None = None) -> dict[str, Any]:
    """Chapter 12's quality-against-network-calls table on the shipped EMA U-Net (``evaluate --what calls``): every
    sampler of ``CALLS_SAMPLERS`` at every budget of ``CALLS_BUDGETS``, with paired KID differences."""
    return json.loads(find_shipped(CALLS_TABLE_FILE, directory).read_text())


def load_ddim_table(*, directory: str | Path | None = None) -> dict[str, Any]:
    """The steps x eta x spacing grid measured on the shipped EMA U-Net (chapter 8), as written by ``evaluate --what table``."""
    return json.loads(find_shipped(TABLE_FILE, directory).read_text())


COLOUR_MADE_BY = "`python -m diffusion_course.weights.make train-colour`"
COLOUR_UNET_FILE = "colour_unet_ema.safetensors"  # EMA weights of the augmented run (the chapter's shipped model)


COLOUR_FIXED_FILE = "colour_unet_fixed_ema.safetensors"  # EMA weights of the fixed-crop run (to show memorisation)


COLOUR_TINY_SAMPLES_FILE = "colour_tiny_samples.safetensors"  # samples of a too-narrow U-Net (colour artefacts)


# The shipped colour U-Net: 32x32 (16 ch) -> 16x16 (32 ch) -> 8x8 (32 ch, self-attention), about 0.3 M parameters.
COLOUR_UNET_CONFIG = UNetConfig(
    in_channels=3,
    base_channels=16,
    channel_mults=(1, 2, 2),
    num_res_blocks=1,
    attention_levels=(2,),  # self-attention at the lowest level only (8x8 = 64 positions), plus the middle
    norm_groups=8,
    time_conditioning="scale_shift",
    dropout=0.0,
)


# A deliberately narrow version (widths 4, 8, 8) for the colour-artefact comparison.
TINY_UNET_CONFIG = replace(COLOUR_UNET_CONFIG, base_channels=4, norm_groups=4)


def load_colour_unet(which: str = "augmented", *, directory: str | Path | None = None) -> tuple[UNet, dict[str, Any]]:
    """A shipped colour U-Net (``which`` = "augmented", the chapter's model, or "fixed", the fixed-crop run) in eval mode
    on the CPU, and its card (with the data's per-channel range "lo"/"hi" and the memorisation table)."""
    check_choice(which, ("augmented", "fixed"), "which")
    path = find_shipped(COLOUR_UNET_FILE if which == "augmented" else COLOUR_FIXED_FILE, directory, made_by=COLOUR_MADE_BY)
    card = read_card(path)
    if "unet_config" not in card:
        raise CheckpointError(f"{path.with_suffix('.json')} is missing or holds no 'unet_config'; run {COLOUR_MADE_BY}")
    model = UNet(UNetConfig(**card["unet_config"]))
    load_weights(model, path)
    return model.eval(), card


def load_tiny_samples(*, directory: str | Path | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
    """The shipped samples (model space, per-channel [-1, 1]) of the too-narrow U-Net, and their card."""
    from safetensors.torch import load_file

    path = find_shipped(COLOUR_TINY_SAMPLES_FILE, directory, made_by=COLOUR_MADE_BY)
    return load_file(str(path))["samples"].float(), read_card(path)


NOISY_CLASSIFIER_FILE = "mnist_noisy_classifier.safetensors"
CG_SAMPLES_FILE = "mnist_classifier_guidance_samples.safetensors"


def load_noisy_classifier(*, directory: str | Path | None = None) -> tuple[NoisyClassifier, dict[str, Any]]:
    """Chapter 14's noise-aware classifier p_phi(y | x_t, t) (eval mode, CPU, parameters frozen: guidance takes gradients
    with respect to x_t only) and its card, with its accuracy by t beside the clean classifier's (``accuracy_by_t``) and
    the classifier-guidance sweep (``classifier_guidance_sweep``)."""
    path = find_shipped(NOISY_CLASSIFIER_FILE, directory)
    card = read_card(path)
    if "noisy_classifier_config" not in card:
        raise CheckpointError(f"{path.with_suffix('.json')} is missing or holds no 'noisy_classifier_config'; run `make weights` to produce both")
    model = NoisyClassifier(NoisyClassifierConfig(**card["noisy_classifier_config"]))
    load_weights(model, path)
    model.requires_grad_(False)
    return model.eval(), card


def load_classifier_guidance_samples(*, directory: str | Path | None = None) -> dict[str, torch.Tensor]:
    """The shipped samples of chapter 14's classifier-guidance sweep as floats in [-1, 1]: {"unguided": (160, 1, 28, 28),
    "noisy_s1": ..., "clean_s3": ...}, 16 per digit in label order 0, 0, ..., 9 (the first 16 of each digit the card scored)."""
    from safetensors.torch import load_file

    return {k: from_uint8(v) for k, v in load_file(str(find_shipped(CG_SAMPLES_FILE, directory))).items()}
