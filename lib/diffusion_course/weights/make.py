"""``make weights``' command line (chapters 6-11): ``python -m diffusion_course.weights.make <command>`` with the
commands train-classifier | floors | train-unet | evaluate | collect (chapters 6-8, :mod:`.make_mnist`),
train-cond-unet | evaluate-guidance | collect-guidance | null-vs-start (chapter 11, :mod:`.make_guidance`), train-colour
(chapter 10, :mod:`.colour_study`) and train-flow-unet | evaluate-flow | collect-flow
(chapter 13, :mod:`.make_flow`), train-noisy-classifier | evaluate-classifier-guidance (chapter 14,
:mod:`.make_editing`) and train-autoencoder | train-latent-unet | evaluate-latent (chapter 15, :mod:`.make_latent`);
``--help`` for each."""

from __future__ import annotations

import argparse

from ..data.locations import DATA_DIR
from ..data.sets import MNIST_SOURCES
from .colour_study import CopyingSettings, StudySettings, train_colour_cmd
from .make_editing import evaluate_classifier_guidance_cmd, train_noisy_classifier_cmd
from .make_flow import collect_flow_cmd, evaluate_flow_cmd, train_flow_unet_cmd
from .make_guidance import collect_guidance_cmd, evaluate_guidance_cmd, guidance_setting_name, null_vs_start_cmd, train_cond_unet_cmd
from .make_latent import evaluate_latent_cmd, train_autoencoder_cmd, train_latent_unet_cmd
from .make_mnist import collect_cmd, evaluate_cmd, floors_cmd, train_classifier_cmd, train_unet_cmd
from .provenance import COMMAND
from .shipped import GUIDANCE_SCALES

__all__ = ["main"]


def _mnist_commands(sub: argparse._SubParsersAction) -> None:
    """Chapters 6-8: the classifier, its floors, the U-Net, its card and the DDIM table."""
    p = sub.add_parser("train-classifier", help="train the MNIST classifier of the quality score")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(DATA_DIR))
    p = sub.add_parser("train-unet", help="train the MNIST U-Net (resumes from data/checkpoints/ if a run was interrupted)")
    p.add_argument("--data", choices=MNIST_SOURCES, default="subset",
                   help="training digits: the shipped subset (default, the same everywhere), torchvision's full set, or full when it can be had")
    p.add_argument("--steps", type=int, default=15000, help="optimiser steps (the shipped run: 15,000 of batch 64, 107 min on one CPU thread)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: all cores torch sees)")
    p.add_argument("--ema-decay", type=float, default=0.999)
    p.add_argument("--checkpoint-every", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(DATA_DIR))
    p = sub.add_parser("floors", help="store the Frechet floor at each sample count in the classifier's card")
    p.add_argument("--n", type=int, nargs="+", default=[128, 256, 500, 1000])
    p.add_argument("--draws", type=int, default=20)
    p.add_argument("--out", default=str(DATA_DIR))
    for name, text in (("evaluate", "sample and score the shipped U-Nets, one part file per setting (run several at once with --only)"),
                       ("collect", "merge the scored parts into the cards and the samples file (or the DDIM table)")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--what", choices=("card", "table", "calls"), default="card",
                       help="the U-Net card, chapter 8's steps x eta table, or chapter 12's quality-against-calls table")
        p.add_argument("--table-n", type=int, default=1000, help="samples per cell of the DDIM and calls tables")
        p.add_argument("--out", default=str(DATA_DIR))
        if name == "evaluate":
            p.add_argument("--only", nargs="+", help="setting names (default: all of --what)")
            p.add_argument("--batch", type=int, default=250)
            p.add_argument("--seed", type=int, default=0)
            p.add_argument("--threads", type=int, default=0)
            p.add_argument("--redo", action="store_true", help="sample settings again even if scored")


def _guidance_commands(sub: argparse._SubParsersAction) -> None:
    """Chapter 11: the conditional U-Net and its guidance sweep."""
    p = sub.add_parser("train-cond-unet", help="train the class-conditional U-Net of chapter 11 (label dropout for guidance)")
    p.add_argument("--data", choices=MNIST_SOURCES, default="subset",
                   help="training digits: the shipped subset (default, the same everywhere), torchvision's full set, or full when it can be had")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=5e-4, help="LR of the weights taken over from the unconditional model")
    p.add_argument("--label-lr-multiplier", type=float, default=10.0,
                   help="the new label table learns this many times faster than the rest (its LR = lr x this)")
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--label-dropout", type=float, default=0.1)
    p.add_argument("--init", choices=("unconditional", "random"), default="unconditional",
                   help="start from the shipped unconditional EMA weights (default) or from scratch")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--ema-decay", type=float, default=0.999)
    p.add_argument("--checkpoint-every", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(DATA_DIR))
    p = sub.add_parser("evaluate-guidance", help="sample and score the conditional U-Net at each guidance scale (one part file each)")
    p.add_argument("--only", nargs="+", help="settings: " + ", ".join(guidance_setting_name(w) for w in (*GUIDANCE_SCALES, None)))
    p.add_argument("--per-class", type=int, default=128, help="samples per digit (the per-class Frechet needs 4 x 32 = 128)")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--redo", action="store_true")
    p.add_argument("--out", default=str(DATA_DIR))
    p = sub.add_parser("collect-guidance", help="merge the guidance sweep into the conditional card and ship its samples")
    p.add_argument("--out", default=str(DATA_DIR))
    p = sub.add_parser("null-vs-start", help="score the model the conditional U-Net started from beside its null label (same sampler and x_T)")
    p.add_argument("--start-dir", default=None, help="folder holding the starting weights (mnist_unet_ema.*; default: --out)")
    p.add_argument("--per-class", type=int, default=128, help="as evaluate-guidance: the sweep's 1,280 noises")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--out", default=str(DATA_DIR))


def _colour_command(sub: argparse._SubParsersAction) -> None:
    """Chapter 10: the colour U-Nets and their memorisation study."""
    p = sub.add_parser("train-colour", help="chapter 10: train the fixed and augmented colour runs, measure memorisation, write weights and cards")
    d = StudySettings()
    p.add_argument("--size", type=int, default=d.size, help="crop side in pixels")
    p.add_argument("--downscale", type=int, default=d.downscale, help="shrink the photos this many times first")
    p.add_argument("--milestones", default=",".join(map(str, d.milestones)), help="comma-separated training lengths to measure at")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--samples", type=int, default=d.samples, help="samples measured per milestone")
    p.add_argument("--base-channels", type=int, default=d.base_channels)
    p.add_argument("--no-tiny", action="store_true", help="skip the too-narrow U-Net")
    p.add_argument("--part", choices=("all", "shipped", "copying"), default="all",
                   help="the fixed and augmented runs (shipped), the copying study on 8 to 64 crops (copying), or both")
    c = CopyingSettings()
    p.add_argument("--set-sizes", default=",".join(map(str, c.set_sizes)), help="copying study: comma-separated training-set sizes")
    p.add_argument("--copy-milestones", default=",".join(map(str, c.milestones)), help="copying study: comma-separated training lengths")
    p.add_argument("--workdir", default="build/colour_copying", help="copying study: checkpoints and finished cells (a stopped run resumes)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (the card's timings are for 1)")
    p.add_argument("--cpu", action="store_true", help="use the CPU even when CUDA is present")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--out", default=str(DATA_DIR), help="folder for the weights and cards")


def _flow_command(sub: argparse._SubParsersAction) -> None:
    """Chapter 13: the flow-matching U-Net."""
    p = sub.add_parser("train-flow-unet", help="chapter 13: train the MNIST U-Net with flow matching (resumes from data/checkpoints/)")
    p.add_argument("--data", choices=MNIST_SOURCES, default="subset",
                   help="training digits: the shipped subset (default, the same everywhere), torchvision's full set, or full when it can be had")
    p.add_argument("--steps", type=int, default=15000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--t-sampling", choices=("uniform", "logit_normal"), default="uniform", help="how training draws t")
    p.add_argument("--logit-mean", type=float, default=0.0)
    p.add_argument("--logit-std", type=float, default=1.0)
    p.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: all cores torch sees)")
    p.add_argument("--ema-decay", type=float, default=0.999)
    p.add_argument("--checkpoint-every", type=int, default=250)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(DATA_DIR))
    p = sub.add_parser("evaluate-flow", help="chapter 13: sample and score the flow U-Net at each setting of its card (one part file each)")
    p.add_argument("--only", nargs="+", help="setting names (default: all)")
    p.add_argument("--batch", type=int, default=250)
    p.add_argument("--n", type=int, default=1000, help="samples per setting (the card: 1,000, paired with the DDPM U-Net's card)")
    p.add_argument("--seed", type=int, default=0, help="x_T seed: 0 pairs the samples with the DDPM U-Net's card")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--redo", action="store_true")
    p.add_argument("--out", default=str(DATA_DIR))
    p = sub.add_parser("collect-flow", help="chapter 13: merge the flow settings into the flow cards, paired with the DDPM U-Net's")
    p.add_argument("--out", default=str(DATA_DIR))


def _editing_commands(sub: argparse._SubParsersAction) -> None:
    """Chapter 14: the noise-aware classifier and the classifier-guidance sweep."""
    p = sub.add_parser("train-noisy-classifier", help="chapter 14: train the noise-aware classifier p(y | x_t, t) and measure it by t")
    p.add_argument("--steps", type=int, default=2000, help="optimiser steps (the shipped run: 2,000 of batch 128, 13 min on one busy CPU thread)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--width", type=int, default=16, help="channels of the first stage (16: 79,514 parameters)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: all cores torch sees)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(DATA_DIR))
    p = sub.add_parser("evaluate-classifier-guidance",
                       help="chapter 14: sample the U-Net guided by the noisy and the clean classifier, score it, write the card (resumable)")
    p.add_argument("--only", nargs="+", help="settings (default: all; the card is written once all are scored)")
    p.add_argument("--per-class", type=int, default=128, help="samples per digit (the per-class Frechet needs 4 x 32 = 128)")
    p.add_argument("--steps", type=int, default=20, help="DDIM steps (leading spacing, eta 0), as chapter 11's sweep")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--seed", type=int, default=0, help="x_T seed (0: the same x_T batches as chapter 11's sweep)")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--redo", action="store_true")
    p.add_argument("--out", default=str(DATA_DIR))


def _latent_commands(sub: argparse._SubParsersAction) -> None:
    """Chapter 15: the autoencoder and the latent U-Net."""
    p = sub.add_parser("train-autoencoder", help="chapter 15: train the KL-autoencoder 28x28 -> 4x7x7 and measure its latent scale factor")
    p.add_argument("--data", choices=MNIST_SOURCES, default="subset", help="training digits (default: the shipped subset)")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--kl-weight", type=float, default=1e-3, help="weight of KL(q(z|x) || N(0, I)) beside the summed squared error")
    p.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: all cores torch sees)")
    p.add_argument("--checkpoint-every", type=int, default=250)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(DATA_DIR))
    p = sub.add_parser("train-latent-unet", help="chapter 15: train the label-conditional U-Net on the autoencoder's latents (resumes)")
    p.add_argument("--data", choices=MNIST_SOURCES, default="subset", help="training digits (default: the shipped subset)")
    p.add_argument("--steps", type=int, default=25000, help="optimiser steps (with the autoencoder, about the pixel U-Net's 107 min on one thread)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=500)
    p.add_argument("--label-dropout", type=float, default=0.1, help="chance a label becomes 'no label' (classifier-free guidance)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: all cores torch sees)")
    p.add_argument("--ema-decay", type=float, default=0.999)
    p.add_argument("--checkpoint-every", type=int, default=250)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(DATA_DIR))
    p = sub.add_parser("evaluate-latent", help="chapter 15: sample and score the latent U-Net, time it beside the pixel U-Net, write its card")
    p.add_argument("--batch", type=int, default=250)
    p.add_argument("--speed-n", type=int, default=250, help="samples in each DDIM-50 timing (latent and pixel)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--out", default=str(DATA_DIR))


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m diffusion_course.weights.make <command> [options]`` (``--help`` for each)."""
    parser = argparse.ArgumentParser(prog=COMMAND, description="Produce the shipped weights in data/.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    _mnist_commands(sub)
    _guidance_commands(sub)
    _colour_command(sub)
    _flow_command(sub)
    _editing_commands(sub)
    _latent_commands(sub)
    args = parser.parse_args(argv)
    commands = {"train-classifier": train_classifier_cmd, "train-unet": train_unet_cmd, "floors": floors_cmd, "evaluate": evaluate_cmd,
                "collect": collect_cmd, "train-cond-unet": train_cond_unet_cmd, "evaluate-guidance": evaluate_guidance_cmd,
                "collect-guidance": collect_guidance_cmd,
                "null-vs-start": null_vs_start_cmd, "train-colour": train_colour_cmd, "train-flow-unet": train_flow_unet_cmd,
                "evaluate-flow": evaluate_flow_cmd, "collect-flow": collect_flow_cmd,
                "train-noisy-classifier": train_noisy_classifier_cmd, "evaluate-classifier-guidance": evaluate_classifier_guidance_cmd,
                "train-autoencoder": train_autoencoder_cmd, "train-latent-unet": train_latent_unet_cmd,
                "evaluate-latent": evaluate_latent_cmd}
    commands[args.cmd](args)


if __name__ == "__main__":
    main()
