"""Shipped pretrained weights: the MNIST U-Net (EMA and raw) and the MNIST classifier behind the quality score.

Loading (CPU, no network)::

    model, card = load_pretrained_unet()          # EMA weights, eval mode
    schedule = schedule_from_card(card)            # the noise schedule it was trained with
    classifier, card = load_classifier()

Producing them (the one documented command; it uses CUDA when present, else the CPU)::

    make weights        # = python -m diffusion_course.pretrained train-classifier
                        #   python -m diffusion_course.pretrained train-unet
                        #   python -m diffusion_course.pretrained evaluate

Each ``.safetensors`` file has a JSON card beside it with the command, seed, steps, device, time, git commit and the
measured quality.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from .checkpoints import load_weights, read_card, save_weights
from .classifier import ClassifierConfig, MNISTClassifier, accuracy, train_classifier
from .data import DATA_DIR
from .models.unet import UNet, UNetConfig
from .schedules import NoiseSchedule, make_betas

__all__ = [
    "UNET_EMA_FILE",
    "UNET_RAW_FILE",
    "CLASSIFIER_FILE",
    "SHIPPED_UNET_CONFIG",
    "load_pretrained_unet",
    "load_classifier",
    "schedule_from_card",
    "main",
]

UNET_EMA_FILE = "mnist_unet_ema.safetensors"
UNET_RAW_FILE = "mnist_unet_raw.safetensors"
CLASSIFIER_FILE = "mnist_classifier.safetensors"

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


def _find(name: str, directory: str | Path | None) -> Path:
    path = Path(directory or DATA_DIR) / name
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `make weights` (or `python -m diffusion_course.pretrained --help`) to produce it")
    return path


def load_pretrained_unet(which: str = "ema", *, directory: str | Path | None = None) -> tuple[UNet, dict[str, Any]]:
    """The shipped MNIST noise predictor (``which`` = "ema", the weights to sample with, or "raw", the last optimiser
    iterate) in eval mode on the CPU, and its card."""
    if which not in ("ema", "raw"):
        raise ValueError(f"which must be 'ema' or 'raw'; got {which!r}")
    path = _find(UNET_EMA_FILE if which == "ema" else UNET_RAW_FILE, directory)
    card = read_card(path)
    model = UNet(UNetConfig(**card["unet_config"]))
    load_weights(model, path)
    return model.eval(), card


def schedule_from_card(card: dict[str, Any]) -> NoiseSchedule:
    """The noise schedule a shipped U-Net was trained with, rebuilt from its card."""
    s = card["schedule"]
    return NoiseSchedule.from_betas(make_betas(s["kind"], s["T"], s["beta_1"], s["beta_T"]))


def load_classifier(*, directory: str | Path | None = None) -> tuple[MNISTClassifier, dict[str, Any]]:
    """The shipped MNIST classifier (eval mode, CPU) whose features give the image quality score, and its card."""
    path = _find(CLASSIFIER_FILE, directory)
    card = read_card(path)
    model = MNISTClassifier(ClassifierConfig(**card["classifier_config"]))
    load_weights(model, path)
    return model.eval(), card


# ------------------------------------------------------------------------------------------------ producing them


def _git_state() -> dict[str, Any]:
    """The commit and whether tracked files differ from it, taken when training starts."""
    root = Path(__file__).resolve().parents[2]

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return "unknown"

    dirty = git("status", "--porcelain", "--untracked-files=no")
    return {"git_commit": git("rev-parse", "HEAD"), "git_tree_dirty": bool(dirty) if dirty != "unknown" else "unknown"}


def _provenance(seconds: float, device: torch.device, git_state: dict[str, Any]) -> dict[str, Any]:
    """Where and how a set of weights was made: command, commit, device, time."""
    cpu = f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu
    return {
        "command": "python -m diffusion_course.pretrained " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        **git_state,
        "device": name,
        "torch": torch.__version__,
        "seconds": round(seconds, 1),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _train_classifier_cmd(args: argparse.Namespace) -> None:
    from .data import mnist

    git_state = _git_state()
    x, y = mnist("train")
    xt, yt = mnist("test")
    cfg = ClassifierConfig()
    model, losses, seconds = train_classifier(x, y, config=cfg, steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed)
    acc = accuracy(model, xt, yt)
    card = {
        "what": "MNIST classifier whose penultimate features give the course's Frechet distance (metrics.quality_report)",
        "classifier_config": json.loads(json.dumps(cfg.__dict__)),
        "training": {"steps": args.steps, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed, "max_shift": 2,
                     "data": f"data.mnist('train'): {len(x)} images", "final_loss": round(sum(losses[-50:]) / 50, 4)},
        "test_accuracy": round(acc, 4),
        "test_images": len(xt),
        **_provenance(seconds, torch.device("cpu"), git_state),
    }
    path = Path(args.out) / CLASSIFIER_FILE
    save_weights(model, path, card)
    print(f"classifier: test accuracy {acc:.4f} on {len(xt)} images after {args.steps} steps in {seconds:.0f} s -> {path}")


def _train_unet_cmd(args: argparse.Namespace) -> None:
    from .data import mnist
    from .train import TrainConfig, train

    device = _device()
    if args.threads:
        torch.set_num_threads(args.threads)
    git_state = _git_state()
    x, _ = mnist("train")
    schedule = NoiseSchedule.from_betas(make_betas("linear", 1000, 1e-4, 0.02))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        model = UNet(SHIPPED_UNET_CONFIG).to(device)
    cfg = TrainConfig(
        steps=args.steps, batch_size=args.batch_size, lr=args.lr, warmup_steps=args.warmup, lr_schedule="cosine",
        grad_clip=1.0, ema_decay=args.ema_decay, seed=args.seed, checkpoint_path=str(Path(args.out) / "checkpoints" / "mnist_unet.pt"),
        checkpoint_every=args.checkpoint_every, progress=True,
    )
    result = train(model, x, cfg, schedule=schedule)
    n_params = sum(p.numel() for p in model.parameters())
    base = {
        "what": "eps-predicting U-Net for 28x28 MNIST digits in [-1, 1] (Ho et al. 2020, Algorithm 1)",
        "unet_config": json.loads(json.dumps(SHIPPED_UNET_CONFIG.__dict__)),
        "parameters": n_params,
        "schedule": {"kind": "linear", "T": 1000, "beta_1": 1e-4, "beta_T": 0.02},
        "training": {**{k: v for k, v in result.config.items() if k not in ("progress", "checkpoint_path")},
                     "data": f"data.mnist('train'): {len(x)} images", "resumed_from_step": result.resumed_from,
                     "seconds_this_call": round(result.seconds, 1),
                     "final_loss_mean_of_last_200": round(sum(result.losses[-200:]) / len(result.losses[-200:]), 4)},
        **_provenance(result.seconds, device, git_state),
    }
    out = Path(args.out)
    save_weights(result.ema.shadow, out / UNET_EMA_FILE, {**base, "weights": "EMA (sample with these)"})
    save_weights(model, out / UNET_RAW_FILE, {**base, "weights": "raw (last optimiser step; for the raw-vs-EMA comparison)"})
    Path(cfg.checkpoint_path).unlink(missing_ok=True)  # the run is complete: the next call trains afresh instead of resuming
    print(f"U-Net: {n_params:,} parameters, {args.steps} steps in {result.seconds:.0f} s on {device.type}; "
          f"final loss {base['training']['final_loss_mean_of_last_200']:.4f} -> {out / UNET_EMA_FILE}")


# (weights, variance, clip_x0) of every sampler setting that `evaluate` scores; the first is the headline number.
EVAL_SETTINGS = (("ema", "beta", 1.0), ("ema", "beta", None), ("ema", "posterior", 1.0), ("raw", "beta", 1.0))


def _evaluate_cmd(args: argparse.Namespace) -> None:
    from .metrics import quality_report
    from .samplers import ddpm_sample

    device = _device()
    classifier, _ = load_classifier(directory=args.out)
    command = "python -m diffusion_course.pretrained " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    models = {w: load_pretrained_unet(w, directory=args.out) for w in ("ema", "raw")}
    results: dict[str, list[dict[str, Any]]] = {"ema": [], "raw": []}
    for which, variance, clip in EVAL_SETTINGS:
        model, card = models[which]
        model = model.to(device)
        schedule = schedule_from_card(card)
        g = torch.Generator().manual_seed(args.seed)  # the same x_T and noise for every setting (common random numbers)
        t0 = time.perf_counter()
        samples = torch.cat([
            ddpm_sample(model, schedule, (min(args.batch, args.samples - i), 1, 28, 28), variance=variance, clip_x0=clip, generator=g, progress=True).cpu()
            for i in range(0, args.samples, args.batch)
        ])
        seconds = time.perf_counter() - t0
        report = quality_report(samples, classifier=classifier)
        print(f"{which} weights, variance={variance!r}, clip_x0={clip}: {report.summary()}  ({seconds:.0f} s)", flush=True)
        results[which].append({
            "sampler": f"ddpm_sample, 1000 steps, variance={variance!r}, clip_x0={clip}",
            "variance": variance, "clip_x0": clip,
            "samples": args.samples, "seed": args.seed, "sampling_seconds": round(seconds, 1), "sampling_device": device.type,
            "frechet": round(report.frechet, 3), "floor": round(report.floor, 3), "floor_std": round(report.floor_std, 3),
            "ratio": round(report.ratio, 3), "confidence": round(report.confidence, 3),
            "reference_confidence": round(report.reference_confidence, 3), "class_entropy": round(report.class_entropy, 3),
            "class_shares": report.class_shares, "out_of_range": round(report.out_of_range, 5), "command": command,
        })
    for which, (model, card) in models.items():
        card["quality"] = results[which][0]  # the headline: variance "beta", clip_x0 = 1
        card["quality_settings"] = results[which]
        card.pop("architecture", None)
        save_weights(model.cpu(), Path(args.out) / (UNET_EMA_FILE if which == "ema" else UNET_RAW_FILE), card)


def main(argv: list[str] | None = None) -> None:
    """Command line: train-classifier, train-unet, evaluate (see ``--help``)."""
    parser = argparse.ArgumentParser(prog="python -m diffusion_course.pretrained", description="Produce the shipped weights in data/.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("train-classifier", help="train the MNIST classifier of the quality score")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(DATA_DIR))
    p = sub.add_parser("train-unet", help="train the MNIST U-Net (resumes from data/checkpoints/ if a run was interrupted)")
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: all cores torch sees)")
    p.add_argument("--ema-decay", type=float, default=0.999)
    p.add_argument("--checkpoint-every", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(DATA_DIR))
    p = sub.add_parser("evaluate", help="sample the shipped U-Nets (1000 DDPM steps) and write the quality into their cards")
    p.add_argument("--samples", type=int, default=100)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(DATA_DIR))
    args = parser.parse_args(argv)
    {"train-classifier": _train_classifier_cmd, "train-unet": _train_unet_cmd, "evaluate": _evaluate_cmd}[args.cmd](args)


if __name__ == "__main__":
    main()
