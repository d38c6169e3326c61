"""The weight-making commands of chapter 13 (``python -m diffusion_course.weights.make train-flow-unet``): the same
U-Net as chapters 6-8, trained with the flow-matching loss on the straight path (Lipman et al. 2023, Liu et al. 2022),
written beside its card with the command, seed, device, time and git commit."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from ..data.sets import mnist
from ..maths.flow import flow_matching_loss_fn
from ..models.flow_time import FLOW_TIME_SCALE, FlowTime
from ..models.unet import UNet
from ..training.checkpoints import save_weights
from ..training.loop import TrainConfig, train
from .provenance import card_provenance, default_device, git_state
from .shipped import FLOW_EMA_FILE, FLOW_RAW_FILE, SHIPPED_UNET_CONFIG

__all__ = ["train_flow_unet_cmd"]


def train_flow_unet_cmd(args: argparse.Namespace) -> None:

    device = default_device()
    if args.threads:
        torch.set_num_threads(args.threads)
    repo = git_state()
    x, _ = mnist("train", source=args.data)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        model = FlowTime(UNet(SHIPPED_UNET_CONFIG)).to(device)
    cfg = TrainConfig(
        steps=args.steps, batch_size=args.batch_size, lr=args.lr, warmup_steps=args.warmup, lr_schedule="cosine",
        grad_clip=1.0, ema_decay=args.ema_decay, seed=args.seed, checkpoint_path=str(Path(args.out) / "checkpoints" / "mnist_flow_unet.pt"),
        checkpoint_every=args.checkpoint_every, progress=True,
    )
    loss = {"t_sampling": args.t_sampling, "logit_mean": args.logit_mean, "logit_std": args.logit_std}
    result = train(model, x, cfg, loss_fn=flow_matching_loss_fn(**loss))
    n_params = sum(p.numel() for p in model.parameters())
    base = {
        "what": "velocity-predicting U-Net for 28x28 MNIST digits in [-1, 1]: flow matching on x_t = (1 - t) x0 + t eps, v = eps - x0; "
                f"called as FlowTime(UNet)(x_t, t) with t in [0, 1] (the U-Net sees {FLOW_TIME_SCALE:g} t)",
        "unet_config": json.loads(json.dumps(SHIPPED_UNET_CONFIG.__dict__)),
        "parameters": n_params,
        "path": {"kind": "straight (rectified flow)", "t": "0 = data, 1 = noise", "time_scale": FLOW_TIME_SCALE, "loss": loss},
        "training": {**{k: v for k, v in result.config.items() if k not in ("progress", "checkpoint_path")},
                     "data": {"source": args.data, "images": len(x)}, "resumed_from_step": result.resumed_from,
                     "seconds_this_call": round(result.seconds, 1),
                     "final_loss_mean_of_last_200": round(sum(result.losses[-200:]) / len(result.losses[-200:]), 4)},
        **card_provenance(result.seconds, device, repo),
    }
    out = Path(args.out)
    save_weights(result.ema.shadow.net, out / FLOW_EMA_FILE, {**base, "weights": "EMA (sample with these)"})
    save_weights(model.net, out / FLOW_RAW_FILE, {**base, "weights": "raw (last optimiser step)"})
    Path(cfg.checkpoint_path).unlink(missing_ok=True)
    print(f"flow U-Net: {n_params:,} parameters, {args.steps} steps in {result.seconds:.0f} s on {device.type}; "
          f"final loss {base['training']['final_loss_mean_of_last_200']:.4f} -> {out / FLOW_EMA_FILE}")
