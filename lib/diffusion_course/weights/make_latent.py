"""The weight-making commands of chapter 15 (latent diffusion, Rombach et al. 2022, at MNIST scale):
``train-autoencoder`` fits the KL-autoencoder (28x28 -> 4x7x7) and measures the latent scale factor;
``train-latent-unet`` trains a label-conditional U-Net (labels by cross-attention, label dropout for classifier-free
guidance) on the scaled latents of the same digits. Each writes its weights beside a card with the command, seed,
device, time and git commit; both resume from data/checkpoints/ when interrupted."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from torch import nn

from .._internal.validate import check_positive_int
from ..data.sets import mnist
from ..maths.losses import conditional_simple_loss_fn
from ..maths.schedules import NoiseSchedule
from ..models.autoencoder import KLAutoencoder, autoencoder_loss, autoencoder_loss_fn
from ..models.unet import UNet
from ..training.checkpoints import save_weights
from ..training.distributed import init_distributed, is_main_process, main_process_first
from ..training.loop import TrainConfig, train
from .provenance import card_provenance, default_device, git_state
from .shipped import (
    AUTOENCODER_CONFIG,
    AUTOENCODER_FILE,
    LATENT_UNET_CONFIG,
    LATENT_UNET_FILE,
    LATENT_UNET_RAW_FILE,
    load_pretrained_autoencoder,
)

__all__ = ["train_autoencoder_cmd", "train_latent_unet_cmd", "encode_posterior", "latent_scale_factor", "latent_loss_fn"]


@torch.no_grad()
def encode_posterior(autoencoder: KLAutoencoder, images: torch.Tensor, *, batch: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, logvar) of q(z | x) for every image, in batches, on the autoencoder's device; returned on the CPU."""
    check_positive_int(batch, "batch", 1)
    dev = next(autoencoder.parameters()).device
    parts = [autoencoder.encode(images[i : i + batch].to(dev)) for i in range(0, len(images), batch)]
    return torch.cat([m for m, _ in parts]).cpu(), torch.cat([v for _, v in parts]).cpu()


def latent_scale_factor(mean: torch.Tensor, logvar: torch.Tensor, *, generator: torch.Generator | None = None) -> float:
    """1 / std of latents drawn from q(z | x) over a set of images: the number that makes the latent's overall standard
    deviation 1 before the forward process (Stable Diffusion's 0.18215 is this for its VAE, measured on its data)."""
    z = mean + torch.exp(0.5 * logvar) * torch.randn(mean.shape, generator=generator)
    return float(1.0 / z.float().std())


def latent_loss_fn(schedule: NoiseSchedule, scale: float, p_uncond: float, null: int):
    """The training loss of the latent U-Net, ``loss_fn(model, posterior, y, generator)``: ``posterior`` (B, 2c, h, w)
    holds q(z | x)'s mean and log-variance; a fresh z is drawn from it each step (as Stable Diffusion's training
    script does), scaled by ``scale``, and L_simple with label dropout is taken on it."""
    inner = conditional_simple_loss_fn(schedule, p_uncond, null)

    def loss_fn(model: nn.Module, posterior: torch.Tensor, y: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        mean, logvar = posterior.chunk(2, dim=1)
        n = torch.randn(mean.shape, generator=g).to(mean.device)
        z = (mean + torch.exp(0.5 * logvar) * n) * scale
        return inner(model, z, y, g)

    return loss_fn


def train_autoencoder_cmd(args: argparse.Namespace) -> None:
    device = init_distributed(default_device())  # under torchrun: join the other processes, each on its own card
    if args.threads:
        torch.set_num_threads(args.threads)
    repo = git_state()
    with main_process_first():  # a download into data/ happens once
        x, _ = mnist("train", source=args.data)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        model = KLAutoencoder(AUTOENCODER_CONFIG).to(device)
    out = Path(args.out)
    cfg = TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, warmup_steps=args.warmup, lr_schedule="cosine",
                      grad_clip=1.0, ema_decay=None, seed=args.seed, checkpoint_path=str(out / "checkpoints" / "mnist_autoencoder.pt"),
                      checkpoint_every=args.checkpoint_every, progress=True)
    result = train(model, x, cfg, loss_fn=autoencoder_loss_fn(args.kl_weight))
    if not is_main_process():  # several processes: process 0 measures and writes
        return
    model.eval()
    x_test, _ = mnist("test", source="subset")
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        mean, logvar = encode_posterior(model, x)
        scale = latent_scale_factor(mean, logvar, generator=g)
        _, rec, kl = autoencoder_loss(model, x_test.to(device), kl_weight=args.kl_weight, generator=g, parts=True)
        mean_t, _ = model.encode(x_test.to(device))
        rec_mean = (model.decode(mean_t) - x_test.to(device)).pow(2).flatten(1).mean(1)
    card = {
        "what": "KL-autoencoder of 28x28 MNIST digits in [-1, 1] to a 4x7x7 latent (latent diffusion's first stage, Rombach et al. 2022); "
                "encode(x) -> (mean, logvar), decode(z) -> x",
        "autoencoder_config": json.loads(json.dumps(AUTOENCODER_CONFIG.__dict__)),
        "parameters": sum(p.numel() for p in model.parameters()),
        "loss": {"reconstruction": "sum of squared pixel errors per image", "kl_weight": args.kl_weight},
        "latent_scale_factor": scale,
        "latent_scale_factor_measured_on": f"one draw from q(z|x) of each of the {len(x)} training digits: 1 / std",
        "latent_statistics": {"mean": float(mean.mean()), "std_of_means": float(mean.std()),
                              "posterior_std_median": float(torch.exp(0.5 * logvar).median())},
        "test": {"images": len(x_test), "reconstruction_sse_per_image": round(float(rec), 3), "kl_per_image": round(float(kl), 3),
                 "mse_per_pixel_decoding_the_mean": round(float(rec_mean.mean()), 5)},
        "training": {**{k: v for k, v in result.config.items() if k not in ("progress", "checkpoint_path")},
                     "data": {"source": args.data, "images": len(x)}, "resumed_from_step": result.resumed_from,
                     "seconds_this_call": round(result.seconds, 1),
                     "final_loss_mean_of_last_200": round(sum(result.losses[-200:]) / len(result.losses[-200:]), 3)},
        **card_provenance(result.seconds, device, repo),
    }
    save_weights(model, out / AUTOENCODER_FILE, card)
    Path(cfg.checkpoint_path).unlink(missing_ok=True)
    print(f"autoencoder: {card['parameters']:,} parameters, {args.steps} steps in {result.seconds:.0f} s; test MSE per pixel "
          f"{card['test']['mse_per_pixel_decoding_the_mean']:.4f}, KL {card['test']['kl_per_image']:.1f}; scale factor {scale:.4f} -> {out / AUTOENCODER_FILE}")


def train_latent_unet_cmd(args: argparse.Namespace) -> None:
    device = init_distributed(default_device())
    if args.threads:
        torch.set_num_threads(args.threads)
    repo = git_state()
    out = Path(args.out)
    autoencoder, ae_card = load_pretrained_autoencoder(directory=out)
    autoencoder.to(device)
    with main_process_first():
        x, y = mnist("train", source=args.data)
    t0 = time.perf_counter()
    mean, logvar = encode_posterior(autoencoder, x)
    encode_seconds = time.perf_counter() - t0
    scale = float(ae_card["latent_scale_factor"])
    schedule = NoiseSchedule.linear(1000)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        model = UNet(LATENT_UNET_CONFIG).to(device)
    cfg = TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, warmup_steps=args.warmup, lr_schedule="cosine",
                      grad_clip=1.0, ema_decay=args.ema_decay, label_dropout=args.label_dropout, seed=args.seed,
                      checkpoint_path=str(out / "checkpoints" / "mnist_latent_unet.pt"), checkpoint_every=args.checkpoint_every, progress=True)
    posterior = torch.cat([mean, logvar], dim=1)  # (N, 8, 7, 7)
    loss = latent_loss_fn(schedule.to(device), scale, args.label_dropout, model.null_label)
    result = train(model, posterior, cfg, loss_fn=loss, labels=y)
    if not is_main_process():
        return
    base = {
        "what": "label-conditional noise predictor eps_theta(z_t, t, y) in the 4x7x7 latent of the shipped autoencoder (latent diffusion); "
                "labels 0-9 enter by cross-attention (10 = no label, for classifier-free guidance); sample z, divide by "
                "latent_scale_factor, decode with the autoencoder",
        "unet_config": json.loads(json.dumps(LATENT_UNET_CONFIG.__dict__)),
        "parameters": sum(p.numel() for p in model.parameters()),
        "schedule": {"kind": "linear", "T": 1000, "beta_1": 1e-4, "beta_T": 0.02},
        "autoencoder": {"file": AUTOENCODER_FILE, "sha256": ae_card.get("weights_sha256"), "latent_scale_factor": scale,
                        "training_seconds": ae_card.get("seconds")},
        "training": {**{k: v for k, v in result.config.items() if k not in ("progress", "checkpoint_path")},
                     "data": {"source": args.data, "images": len(x), "latents": "a fresh draw from q(z|x) each step, times the scale factor"},
                     "encode_seconds": round(encode_seconds, 1), "resumed_from_step": result.resumed_from,
                     "seconds_this_call": round(result.seconds, 1),
                     "final_loss_mean_of_last_200": round(sum(result.losses[-200:]) / len(result.losses[-200:]), 4)},
        **card_provenance(result.seconds, device, repo),
    }
    save_weights(result.ema.shadow, out / LATENT_UNET_FILE, {**base, "weights": "EMA (sample with these)"})
    save_weights(model, out / LATENT_UNET_RAW_FILE, {**base, "weights": "raw (last optimiser step)"})
    Path(cfg.checkpoint_path).unlink(missing_ok=True)
    print(f"latent U-Net: {base['parameters']:,} parameters, {args.steps} steps in {result.seconds:.0f} s; final loss "
          f"{base['training']['final_loss_mean_of_last_200']:.4f} -> {out / LATENT_UNET_FILE}")
