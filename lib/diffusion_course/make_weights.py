"""The commands that make the shipped weights and their cards (chapters 6-8, 11), run by ``make weights``::

    python -m diffusion_course.make_weights train-classifier | floors | train-unet | evaluate | collect
                                            | train-cond-unet | evaluate-guidance | collect-guidance   (--help for each)

They train the MNIST classifier, store its Frechet floors, train the U-Net (Ho et al. 2020, Algorithm 1) and the
class-conditional U-Net (label dropout, Ho & Salimans 2022), sample and score them (Algorithm 2, DDIM, the guidance
sweep), and write each result beside its weights with the command, seed, device, time and git commit. Loading what
they make is :mod:`.pretrained`; ``python -m diffusion_course.pretrained <command>`` still forwards here.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ._provenance import git_state as _git_state
from .checkpoints import CheckpointError, _replace_atomically, read_card, save_weights
from .classifier import ClassifierConfig, accuracy, train_classifier
from .data import DATA_DIR, mnist
from .evaluation import CARD_SETTINGS, from_uint8, sample_setting, table_settings, to_uint8
from .guidance import guidance_report, guided_sample
from .metrics import nearest_train_distances
from .models.unet import UNet
from .pretrained import (
    CLASSIFIER_FILE,
    COND_SAMPLES_FILE,
    COND_UNET_FILE,
    GUIDANCE_SCALES,
    SAMPLES_FILE,
    SHIPPED_UNET_CONFIG,
    TABLE_FILE,
    UNET_EMA_FILE,
    UNET_RAW_FILE,
    load_classifier,
    load_pretrained_cond_unet,
    load_pretrained_unet,
    schedule_from_card,
)
from .quality import _mnist_splits, floor_table, quality_report
from .samplers import ddim_sample
from .schedules import NoiseSchedule, make_betas
from .train import TrainConfig, train

__all__ = ["main", "PARTS_DIR", "COMMAND"]

COMMAND = "python -m diffusion_course.make_weights"
PARTS_DIR = "checkpoints/eval"  # under data/ (git-ignored): one file per scored setting, merged by `collect`


def _provenance(seconds: float, device: torch.device, git_state: dict[str, Any]) -> dict[str, Any]:
    """Where and how a set of weights was made: command, commit, device, time."""
    cpu = f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu
    return {
        "command": COMMAND + " " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        **git_state,
        "device": name,
        "torch": torch.__version__,
        "seconds": round(seconds, 1),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _train_classifier_cmd(args: argparse.Namespace) -> None:

    git_state = _git_state()
    x, y = mnist("train")
    xt, yt = mnist("test")
    cfg = ClassifierConfig()
    model, losses, seconds = train_classifier(x, y, config=cfg, steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed)
    acc = accuracy(model, xt, yt)
    card = {
        "what": "MNIST classifier whose penultimate features give the course's Frechet distance (quality.quality_report)",
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


def _floors_cmd(args: argparse.Namespace) -> None:

    path = Path(args.out) / CLASSIFIER_FILE
    card = read_card(path)
    card["floors"] = floor_table(tuple(args.n), classifier=load_classifier(directory=args.out)[0], draws=args.draws)
    card["floors_note"] = ("Frechet distance of n real training digits to the test digits, over `draws` draws (disjoint within "
                           "each pass over the training set): the floor every sample set of n images is compared with.")
    _replace_atomically(lambda tmp: tmp.write_text(json.dumps(card, indent=2) + "\n"), path.with_suffix(".json"))
    for n, f in card["floors"].items():
        print(f"floor at n = {n:>5}: {f['mean']:.2f} +/- {f['std']:.2f} (min {f['min']:.2f}, max {f['max']:.2f}, {f['draws']} draws)")


def _evaluate_cmd(args: argparse.Namespace) -> None:
    """Sample and score each setting; write its samples (uint8) and numbers as one part file under data/checkpoints/eval/."""

    if args.threads:
        torch.set_num_threads(args.threads)
    device = _device()
    settings = {s.name: s for s in (CARD_SETTINGS if args.what == "card" else table_settings(args.table_n))}
    names = args.only or list(settings)
    unknown = [n for n in names if n not in settings]
    if unknown:
        raise SystemExit(f"--only must name settings of --what {args.what}: {', '.join(settings)}; got {', '.join(unknown)}")
    classifier, _ = load_classifier(directory=args.out)
    train_images, _ = _mnist_splits()
    parts = Path(args.out) / PARTS_DIR / args.what
    parts.mkdir(parents=True, exist_ok=True)
    models = {}
    for name in names:
        st = settings[name]
        if (parts / f"{name}.json").exists() and not args.redo:
            print(f"{name}: already scored ({parts / name}.json); --redo to sample it again", flush=True)
            continue
        if st.weights not in models:
            m, card = load_pretrained_unet(st.weights, directory=args.out)
            models[st.weights] = (m.to(device), schedule_from_card(card))
        model, schedule = models[st.weights]
        t0 = time.perf_counter()
        x = sample_setting(model, schedule, st, seed=args.seed, batch_size=args.batch)
        seconds = time.perf_counter() - t0
        report = quality_report(x, classifier=classifier)
        nn_med = float(nearest_train_distances(x, train_images).median())
        entry = {"name": name, "description": st.describe(), **{k: v for k, v in vars(st).items() if k != "name"}, "seed": args.seed,
                 "sampling_seconds": round(seconds, 1), "sampling_device": device.type, "threads": torch.get_num_threads(),
                 **report.as_dict(), "nearest_train_median": round(nn_med, 4)}
        if args.what == "card":
            save_file({name: to_uint8(x).contiguous()}, str(parts / f"{name}.safetensors"))
        (parts / f"{name}.json").write_text(json.dumps(entry, indent=2) + "\n")
        print(f"{name}: {report.summary()}; nearest-training-digit median {nn_med:.2f} ({seconds:.0f} s)", flush=True)


def _collect_cmd(args: argparse.Namespace) -> None:
    """Merge the scored parts into the U-Net cards (and the shipped samples file), or into the DDIM table file."""

    out = Path(args.out)
    parts = out / PARTS_DIR / args.what
    wanted = [s.name for s in (CARD_SETTINGS if args.what == "card" else table_settings(args.table_n))]
    missing = [n for n in wanted if not (parts / f"{n}.json").exists()]
    if missing:
        raise SystemExit(f"not scored yet: {', '.join(missing)} (run `evaluate --what {args.what} --only ...` for them)")
    results = {n: json.loads((parts / f"{n}.json").read_text()) for n in wanted}
    floors = read_card(out / CLASSIFIER_FILE).get("floors", {})
    command = f"{COMMAND} evaluate --what " + args.what
    if args.what == "table":
        table = {"what": "DDIM steps x eta x spacing grid on the shipped EMA U-Net (chapter 8); ratio = Frechet / floor at the same n",
                 "command": command, "git_commit": _git_state()["git_commit"], "cells": results, "floors": floors}
        _replace_atomically(lambda tmp: tmp.write_text(json.dumps(table, indent=1) + "\n"), out / TABLE_FILE)
        print(f"{len(results)} cells -> {out / TABLE_FILE}")
        return
    train_images, test_images = _mnist_splits()
    test_nn = float(nearest_train_distances(test_images, train_images).median())
    ddpm, ddim = results["ddpm1000"], results["ddim50_eta0"]
    # ratios compare only at the same n: score the first ddpm["n"] DDIM samples too (same seed, so the same first x_T)

    first = from_uint8(load_file(str(parts / "ddim50_eta0.safetensors"))["ddim50_eta0"][: ddpm["n"]])
    ddim_same_n = quality_report(first, classifier=load_classifier(directory=out)[0]).as_dict()
    goals = {
        "ddpm1000_ratio_at_most_1.5": ddpm["ratio"] <= 1.5,
        "ddim50_eta0_ratio_at_most_1.5": ddim["ratio"] <= 1.5,
        "ddim50_eta0_within_1.2x_of_ddpm1000_at_the_same_n": ddim_same_n["ratio"] <= 1.2 * ddpm["ratio"],
        "ddim50_eta0_at_the_same_n": {"n": ddpm["n"], "ratio": ddim_same_n["ratio"], "ratio_spread": ddim_same_n["ratio_spread"],
                                      "ratio_to_ddpm1000": round(ddim_same_n["ratio"] / ddpm["ratio"], 3)},
        "confident_share_at_least_0.9": {n: r["confident_share"] >= 0.9 for n, r in results.items() if r["weights"] == "ema" and r["clip_x0"]},
    }
    quality = {"headline": "ddpm1000", "settings": results, "floors": floors, "goals": goals,
               "nearest_train_median_of_test_digits": round(test_nn, 4), "command": command}
    tensors = {n: load_file(str(parts / f"{n}.safetensors"))[n] for n in wanted}
    _replace_atomically(lambda tmp: save_file(tensors, str(tmp), metadata={"what": "uint8 evaluation samples of the card's settings"}),
                        out / SAMPLES_FILE)
    samples_card = {"what": "uint8 evaluation samples of the U-Net card's settings (0..255 = pixel values -1..1); load with load_card_samples",
                    "settings": {n: {"description": results[n]["description"], "n": results[n]["n"], "seed": results[n]["seed"]} for n in wanted},
                    "weights": UNET_EMA_FILE, "command": command}
    _replace_atomically(lambda tmp: tmp.write_text(json.dumps(samples_card, indent=2) + "\n"), (out / SAMPLES_FILE).with_suffix(".json"))
    for which in ("ema", "raw"):
        path = out / (UNET_EMA_FILE if which == "ema" else UNET_RAW_FILE)
        model, card = load_pretrained_unet(which, directory=out)
        card["quality"] = quality
        card.pop("quality_settings", None)
        card.pop("architecture", None)
        save_weights(model, path, card)
    print(f"{len(results)} settings -> the cards and {out / SAMPLES_FILE}")
    for n, r in results.items():
        print(f"  {n:20s} ratio {r['ratio']:.2f} +/- {r['ratio_spread']:.2f}  confident {r['confident_share']:.1%}  "
              f"nearest-train median {r['nearest_train_median']:.2f} (test digits {test_nn:.2f})  n={r['n']}")


def _train_cond_unet_cmd(args: argparse.Namespace) -> None:
    """Chapter 11's class-conditional U-Net: the shipped U-Net's layout plus a label embedding, trained with label
    dropout; by default initialised from the shipped unconditional EMA weights (the label embedding starts at zero, so
    step 0 is exactly the unconditional model) and fine-tuned with labels."""


    device = _device()
    if args.threads:
        torch.set_num_threads(args.threads)
    git_state = _git_state()
    x, y = mnist("train")
    schedule = NoiseSchedule.from_betas(make_betas("linear", 1000, 1e-4, 0.02))
    config = dataclasses.replace(SHIPPED_UNET_CONFIG, num_classes=10)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        model = UNet(config)
    init: dict[str, Any] = {"from": "random (seed)"}
    if args.init == "unconditional":
        uncond, ucard = load_pretrained_unet("ema", directory=args.out)
        missing, unexpected = model.load_state_dict(uncond.state_dict(), strict=False)
        if set(missing) != {"label_embed.weight"} or unexpected:
            raise CheckpointError(f"the unconditional weights do not fit the conditional U-Net: missing {missing}, unexpected {unexpected}")
        init = {"from": UNET_EMA_FILE, "weights_sha256": ucard.get("weights_sha256"), "its_training_seconds": ucard.get("seconds"),
                "its_steps": ucard.get("training", {}).get("steps")}
    model.to(device)
    cfg = TrainConfig(
        steps=args.steps, batch_size=args.batch_size, lr=args.lr, warmup_steps=args.warmup, lr_schedule="cosine", grad_clip=1.0,
        ema_decay=args.ema_decay, label_dropout=args.label_dropout, seed=args.seed,
        lr_multipliers={"label_embed": args.label_lr_multiplier} if args.label_lr_multiplier != 1 else None,
        checkpoint_path=str(Path(args.out) / "checkpoints" / "mnist_cond_unet.pt"), checkpoint_every=args.checkpoint_every,
    )
    result = train(model, x, cfg, schedule=schedule, labels=y)
    n_params = sum(p.numel() for p in model.parameters())
    card = {
        "what": "class-conditional eps-predicting U-Net eps(x_t, t, y) for 28x28 MNIST digits, trained with label dropout for "
                "classifier-free guidance (Ho & Salimans 2022); label 10 = no label",
        "unet_config": json.loads(json.dumps(config.__dict__)),
        "parameters": n_params,
        "schedule": {"kind": "linear", "T": 1000, "beta_1": 1e-4, "beta_T": 0.02},
        "initialised_from": init,
        "training": {**{k: v for k, v in result.config.items() if k not in ("progress", "checkpoint_path")},
                     "data": f"data.mnist('train'): {len(x)} images with labels", "resumed_from_step": result.resumed_from,
                     "seconds_this_call": round(result.seconds, 1),
                     "final_loss_mean_of_last_200": round(sum(result.losses[-200:]) / len(result.losses[-200:]), 4)},
        "weights": "EMA (sample with these)",
        **_provenance(result.seconds, device, git_state),
    }
    save_weights(result.ema.shadow, Path(args.out) / COND_UNET_FILE, card)
    Path(cfg.checkpoint_path).unlink(missing_ok=True)
    print(f"conditional U-Net: {n_params:,} parameters, {args.steps} steps in {result.seconds:.0f} s on {device.type}; "
          f"final loss {card['training']['final_loss_mean_of_last_200']:.4f} -> {Path(args.out) / COND_UNET_FILE}")


def _guidance_setting_name(w: float | None) -> str:
    return "uncond" if w is None else f"w{w:g}"


def _evaluate_guidance_cmd(args: argparse.Namespace) -> None:
    """Sample args.per_class digits of every class at each guidance scale (DDIM, same x_T for every w) and score them."""

    if args.threads:
        torch.set_num_threads(args.threads)
    device = _device()
    names = {_guidance_setting_name(w): w for w in (*GUIDANCE_SCALES, None)}
    wanted = args.only or list(names)
    unknown = [n for n in wanted if n not in names]
    if unknown:
        raise SystemExit(f"--only must name settings among {', '.join(names)}; got {', '.join(unknown)}")
    model, card = load_pretrained_cond_unet(directory=args.out)
    model.to(device)
    schedule = schedule_from_card(card)
    classifier, _ = load_classifier(directory=args.out)
    parts = Path(args.out) / PARTS_DIR / "guidance"
    parts.mkdir(parents=True, exist_ok=True)
    labels = torch.arange(10).repeat_interleave(args.per_class)
    for name in wanted:
        if (parts / f"{name}.json").exists() and not args.redo:
            print(f"{name}: already scored; --redo to sample it again", flush=True)
            continue
        w = names[name]
        t0 = time.perf_counter()
        g = torch.Generator().manual_seed(args.seed)
        xs = []
        for i in range(0, len(labels), args.batch):
            yb = labels[i : i + args.batch]
            x_T = torch.randn((len(yb), 1, 28, 28), generator=g)
            if w is None:  # the null label alone: the unconditional model inside the conditional one
                null = torch.full_like(yb, model.null_label)
                xs.append(_ddim_null(model, schedule, x_T, null, args))
            else:
                xs.append(guided_sample(model, schedule, yb, w=w, steps=args.steps, eta=0.0, spacing="leading", clip_x0=1.0,
                                        x_T=x_T.to(device)).cpu())
            print(f"  {name}: {i + len(yb)}/{len(labels)} samples ({time.perf_counter() - t0:.0f} s)", flush=True)
        x = torch.cat(xs)
        seconds = time.perf_counter() - t0
        report = guidance_report(x, labels if w is not None else None, classifier=classifier)
        entry = {"name": name, "w": w, "sampler": f"DDIM {args.steps} leading steps, eta = 0, x0 clipped to +/-1", "per_class": args.per_class,
                 "seed": args.seed, "sampling_seconds": round(seconds, 1), "threads": torch.get_num_threads(), **report}
        save_file({name: to_uint8(x).contiguous()}, str(parts / f"{name}.safetensors"))
        (parts / f"{name}.json").write_text(json.dumps(entry, indent=2) + "\n")
        asked = (f"accuracy {report['accuracy']:.1%}, confident and right {report['confident_correct_share']:.1%}, " if w is not None else "")
        print(f"{name}: {asked}pooled ratio {report['pooled']['ratio']:.2f}, confident {report['pooled']['confident_share']:.1%} "
              f"({seconds:.0f} s)", flush=True)


def _ddim_null(model: UNet, schedule: NoiseSchedule, x_T: torch.Tensor, null: torch.Tensor, args: argparse.Namespace) -> torch.Tensor:
    """DDIM samples of the conditional model with the null label: its unconditional half."""

    dev = next(model.parameters()).device
    null = null.to(dev)
    return ddim_sample(lambda x, t: model(x, t, null), schedule, tuple(x_T.shape), steps=args.steps, eta=0.0, spacing="leading",
                       clip_x0=1.0, x_T=x_T.to(dev)).cpu()


def _collect_guidance_cmd(args: argparse.Namespace) -> None:
    """Merge the scored guidance settings into the conditional card and ship 16 samples per digit and setting."""
    parts = Path(args.out) / PARTS_DIR / "guidance"
    names = [_guidance_setting_name(w) for w in (*GUIDANCE_SCALES, None)]
    missing = [n for n in names if not (parts / f"{n}.json").exists()]
    if missing:
        raise SystemExit(f"not scored yet: {', '.join(missing)} (run `evaluate-guidance --only ...` for them)")
    results = {n: json.loads((parts / f"{n}.json").read_text()) for n in names}
    shipped = {}
    for n in names:
        u = load_file(str(parts / f"{n}.safetensors"))[n]
        per = results[n]["per_class"]
        shipped[n] = torch.cat([u[c * per : c * per + 16] for c in range(10)]).contiguous()
    path = Path(args.out) / COND_SAMPLES_FILE

    _replace_atomically(lambda tmp: save_file(shipped, str(tmp), metadata={"what": "16 guided samples per digit and setting, uint8"}), path)
    samples_card = {"what": "uint8 guided samples of the conditional U-Net (0..255 = pixel values -1..1), the first 16 of each digit of "
                            "every guidance setting, in label order; load with load_guidance_samples",
                    "settings": {n: {"w": results[n]["w"], "sampler": results[n]["sampler"], "seed": results[n]["seed"],
                                     "shipped": shipped[n].shape[0], "scored": results[n]["n"]} for n in names},
                    "weights": COND_UNET_FILE, "command": f"{COMMAND} collect-guidance"}
    _replace_atomically(lambda tmp: tmp.write_text(json.dumps(samples_card, indent=2) + "\n"), path.with_suffix(".json"))
    model, card = load_pretrained_cond_unet(directory=args.out)
    card["guidance_sweep"] = {"settings": results, "command": f"{COMMAND} evaluate-guidance",
                              "goal_w3_confident_correct_at_least_0.95": results["w3"]["confident_correct_share"] >= 0.95}
    card.pop("architecture", None)
    save_weights(model, Path(args.out) / COND_UNET_FILE, card)
    for n, r in results.items():
        pc = r.get("per_class_ratio")
        asked = f"accuracy {r['accuracy']:.1%}  confident & right {r['confident_correct_share']:.1%}  " if "accuracy" in r else ""
        print(f"  {n:7s} {asked}pooled ratio {r['pooled']['ratio']:.2f} +/- {r['pooled']['ratio_spread']:.2f}"
              + (f"  per-class ratio {pc['mean']:.2f} (range {pc['min']:.2f}-{pc['max']:.2f})" if pc else ""))


def main(argv: list[str] | None = None) -> None:
    """Command line: train-classifier, train-unet, evaluate (see ``--help``)."""
    parser = argparse.ArgumentParser(prog=COMMAND, description="Produce the shipped weights in data/.")
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
    p = sub.add_parser("floors", help="store the Frechet floor at each sample count in the classifier's card")
    p.add_argument("--n", type=int, nargs="+", default=[128, 256, 500, 1000])
    p.add_argument("--draws", type=int, default=20)
    p.add_argument("--out", default=str(DATA_DIR))
    for name, text in (("evaluate", "sample and score the shipped U-Nets, one part file per setting (run several at once with --only)"),
                       ("collect", "merge the scored parts into the cards and the samples file (or the DDIM table)")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--what", choices=("card", "table"), default="card")
        p.add_argument("--table-n", type=int, default=256, help="samples per cell of the DDIM table")
        p.add_argument("--out", default=str(DATA_DIR))
        if name == "evaluate":
            p.add_argument("--only", nargs="+", help="setting names (default: all of --what)")
            p.add_argument("--batch", type=int, default=250)
            p.add_argument("--seed", type=int, default=0)
            p.add_argument("--threads", type=int, default=0)
            p.add_argument("--redo", action="store_true", help="sample settings again even if scored")
    p = sub.add_parser("train-cond-unet", help="train the class-conditional U-Net of chapter 11 (label dropout for guidance)")
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
    p.add_argument("--only", nargs="+", help="settings: " + ", ".join(_guidance_setting_name(w) for w in (*GUIDANCE_SCALES, None)))
    p.add_argument("--per-class", type=int, default=128, help="samples per digit (the per-class Frechet needs 4 x 32 = 128)")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--redo", action="store_true")
    p.add_argument("--out", default=str(DATA_DIR))
    p = sub.add_parser("collect-guidance", help="merge the guidance sweep into the conditional card and ship its samples")
    p.add_argument("--out", default=str(DATA_DIR))
    args = parser.parse_args(argv)
    commands = {"train-classifier": _train_classifier_cmd, "train-unet": _train_unet_cmd, "floors": _floors_cmd, "evaluate": _evaluate_cmd,
                "collect": _collect_cmd, "train-cond-unet": _train_cond_unet_cmd, "evaluate-guidance": _evaluate_guidance_cmd,
                "collect-guidance": _collect_guidance_cmd}
    commands[args.cmd](args)


if __name__ == "__main__":
    main()
