"""The weight-making commands of chapters 6-8 (``make weights`` runs them through ``python -m diffusion_course.weights.make``)::

    train-classifier | floors | train-unet | evaluate | collect

They train the MNIST classifier, store its Frechet floors, train the U-Net (Ho et al. 2020, Algorithm 1), sample and
score it (Algorithm 2, DDIM, the steps x eta table), and write each result beside its weights with the command, seed,
device, time and git commit. Loading what they make is :mod:`.shipped`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..data.encoding import from_uint8, to_uint8
from ..data.sets import mnist
from ..maths.schedules import NoiseSchedule, make_betas
from ..models.classifier import ClassifierConfig
from ..models.unet import UNet
from ..scoring.comparisons import CALLS_BUDGETS, CALLS_SAMPLERS, CARD_SETTINGS, calls_settings, sample_setting, table_settings
from ..scoring.distances import nearest_train_distances
from ..scoring.quality import REFERENCE_SET, compare_paired, floor_table, quality_report, reference_splits
from ..scoring.reference import CLASSIFIER_FILE, load_classifier
from ..training.checkpoints import read_card, replace_atomically, save_weights
from ..training.classifier import accuracy, train_classifier
from ..training.distributed import init_distributed, is_main_process, main_process_first
from ..training.loop import TrainConfig, train
from .goals import goal_report
from .provenance import COMMAND, PARTS_DIR, card_provenance, default_device, git_state
from .shipped import CALLS_TABLE_FILE, SAMPLES_FILE, SHIPPED_UNET_CONFIG, TABLE_FILE, UNET_EMA_FILE, UNET_RAW_FILE, load_pretrained_unet, schedule_from_card

__all__ = ["calls_pairs", "table_pairs", "train_classifier_cmd", "train_unet_cmd", "floors_cmd", "evaluate_cmd", "collect_cmd"]


def train_classifier_cmd(args: argparse.Namespace) -> None:

    repo = git_state()
    x, y = mnist("train", source="subset")  # the yardstick's classifier is part of the reference: always the shipped subset
    xt, yt = mnist("test", source="subset")
    cfg = ClassifierConfig()
    model, losses, seconds = train_classifier(x, y, config=cfg, steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed)
    acc = accuracy(model, xt, yt)
    card = {
        "what": "MNIST classifier whose penultimate features give the course's Frechet distance (quality.quality_report)",
        "classifier_config": json.loads(json.dumps(cfg.__dict__)),
        "training": {"steps": args.steps, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed, "max_shift": 2,
                     "data": {"source": "subset", "images": len(x)}, "final_loss": round(sum(losses[-50:]) / 50, 4)},
        "test_accuracy": round(acc, 4),
        "test_images": len(xt),
        **card_provenance(seconds, torch.device("cpu"), repo),
    }
    path = Path(args.out) / CLASSIFIER_FILE
    save_weights(model, path, card)
    print(f"classifier: test accuracy {acc:.4f} on {len(xt)} images after {args.steps} steps in {seconds:.0f} s -> {path}")


def train_unet_cmd(args: argparse.Namespace) -> None:

    device = init_distributed(default_device())  # under torchrun: join the other processes, each on its own card
    if args.threads:
        torch.set_num_threads(args.threads)
    repo = git_state()
    with main_process_first():  # a download into data/ happens once
        x, _ = mnist("train", source=args.data)
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
    if not is_main_process():  # several processes: process 0 writes the weights and cards
        return
    n_params = sum(p.numel() for p in model.parameters())
    base = {
        "what": "eps-predicting U-Net for 28x28 MNIST digits in [-1, 1] (Ho et al. 2020, Algorithm 1)",
        "unet_config": json.loads(json.dumps(SHIPPED_UNET_CONFIG.__dict__)),
        "parameters": n_params,
        "schedule": {"kind": "linear", "T": 1000, "beta_1": 1e-4, "beta_T": 0.02},
        "training": {**{k: v for k, v in result.config.items() if k not in ("progress", "checkpoint_path")},
                     "data": {"source": args.data, "images": len(x)}, "resumed_from_step": result.resumed_from,
                     "seconds_this_call": round(result.seconds, 1),
                     "final_loss_mean_of_last_200": round(sum(result.losses[-200:]) / len(result.losses[-200:]), 4)},
        **card_provenance(result.seconds, device, repo),
    }
    out = Path(args.out)
    save_weights(result.ema.shadow, out / UNET_EMA_FILE, {**base, "weights": "EMA (sample with these)"})
    save_weights(model, out / UNET_RAW_FILE, {**base, "weights": "raw (last optimiser step; for the raw-vs-EMA comparison)"})
    Path(cfg.checkpoint_path).unlink(missing_ok=True)  # the run is complete: the next call trains afresh instead of resuming
    print(f"U-Net: {n_params:,} parameters, {args.steps} steps in {result.seconds:.0f} s on {device.type}; "
          f"final loss {base['training']['final_loss_mean_of_last_200']:.4f} -> {out / UNET_EMA_FILE}")


def floors_cmd(args: argparse.Namespace) -> None:

    path = Path(args.out) / CLASSIFIER_FILE
    card = read_card(path)
    card["floors"] = floor_table(tuple(args.n), classifier=load_classifier(directory=args.out)[0], draws=args.draws)
    card["floors_note"] = ("Frechet distance of n real training digits to the test digits, over `draws` draws (disjoint within "
                           "each pass over the training set): the floor every sample set of n images is compared with.")
    replace_atomically(lambda tmp: tmp.write_text(json.dumps(card, indent=2) + "\n"), path.with_suffix(".json"))
    for n, f in card["floors"].items():
        print(f"floor at n = {n:>5}: {f['mean']:.2f} +/- {f['std']:.2f} (min {f['min']:.2f}, max {f['max']:.2f}, {f['draws']} draws)")


def evaluate_cmd(args: argparse.Namespace) -> None:
    """Sample and score each setting; write its samples (uint8) and numbers as one part file under data/checkpoints/eval/."""

    if args.threads:
        torch.set_num_threads(args.threads)
    device = default_device()
    settings = {s.name: s for s in _settings_of(args)}
    names = args.only or list(settings)
    unknown = [n for n in names if n not in settings]
    if unknown:
        raise SystemExit(f"--only must name settings of --what {args.what}: {', '.join(settings)}; got {', '.join(unknown)}")
    classifier, _ = load_classifier(directory=args.out)
    train_images, _ = reference_splits()
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
        out_of_range = float(((x < -1) | (x > 1)).float().mean())  # before the uint8 file clips them
        x = from_uint8(to_uint8(x))  # score exactly what the samples file keeps, so anyone can recompute the card
        report = quality_report(x, classifier=classifier)
        report.out_of_range = out_of_range
        nn_med = float(nearest_train_distances(x, train_images).median())
        entry = {"name": name, "description": st.describe(), **{k: v for k, v in vars(st).items() if k != "name"}, "seed": args.seed,
                 "sampling_seconds": round(seconds, 1), "sampling_device": device.type, "threads": torch.get_num_threads(),
                 **report.as_dict(), "nearest_train_median": round(nn_med, 4)}
        save_file({name: to_uint8(x).contiguous()}, str(parts / f"{name}.safetensors"))  # collect pairs settings on these
        (parts / f"{name}.json").write_text(json.dumps(entry, indent=2) + "\n")
        print(f"{name}: {report.summary()}; nearest-training-digit median {nn_med:.2f} ({seconds:.0f} s)", flush=True)


# The paired differences every card reports (label, a, b): KID(a) - KID(b) with its paired bootstrap interval.
PAIRED_COMPARISONS = (
    ("ddim50_eta0 - ddpm1000", "ddim50_eta0", "ddpm1000"),
    ("ddim50_eta1 - ddim50_eta0", "ddim50_eta1", "ddim50_eta0"),
    ("noclip - clip, eta 0", "ddim50_eta0_noclip", "ddim50_eta0"),
    ("noclip - clip, eta 1", "ddim50_eta1_noclip", "ddim50_eta1"),
    ("raw - ema, eta 0", "raw_ddim50_eta0", "ddim50_eta0"),
    ("raw - ema, eta 1", "raw_ddim50_eta1", "ddim50_eta1"),
    ("dpm2m_20 - ddim50_eta0", "dpm2m_20", "ddim50_eta0"),
    ("dpm2m_20 - ddpm1000", "dpm2m_20", "ddpm1000"),
    ("ddim20_eta1 - dpm2m_20", "ddim20_eta1", "dpm2m_20"),
    ("heun_10 - dpm2m_20", "heun_10", "dpm2m_20"),
)


def table_pairs() -> tuple[tuple[str, str, str], ...]:
    """The DDIM table's paired comparisons (label, a, b): each eta against eta = 0 at the same S, sigma-hat against
    eta = 1, each S against the next smaller one at eta 0 and 1, each spacing against "leading", and no clipping
    against clipping."""
    out = []
    for S in (10, 20, 50):
        out += [(f"S{S}: eta {e} - eta 0", f"leading_S{S}_eta{e}", f"leading_S{S}_eta0") for e in ("0.2", "0.5", "1")]
        out.append((f"S{S}: sigma-hat - eta 1", f"leading_S{S}_sigmahat", f"leading_S{S}_eta1"))
    out.append(("S100: eta 1 - eta 0", "leading_S100_eta1", "leading_S100_eta0"))
    for e in ("0", "1"):
        out += [(f"eta {e}: S{b} - S{a}", f"leading_S{b}_eta{e}", f"leading_S{a}_eta{e}") for a, b in ((10, 20), (20, 50), (50, 100))]
    for S in (10, 50):
        out += [(f"S{S} eta 0: {sp} - leading", f"{sp}_S{S}_eta0", f"leading_S{S}_eta0") for sp in ("quadratic", "uniform", "trailing")]
    out += [(f"S10 eta {e}: noclip - clip", f"leading_S10_eta{e}_noclip", f"leading_S10_eta{e}") for e in ("0", "1")]
    return tuple(out)


def _settings_of(args: argparse.Namespace) -> tuple:
    return {"card": lambda: CARD_SETTINGS, "table": lambda: table_settings(args.table_n), "calls": lambda: calls_settings(args.table_n)}[args.what]()


def calls_pairs() -> tuple[tuple[str, str, str], ...]:
    """The calls table's paired comparisons (label, a, b): at each budget, every sampler against DPM-Solver++(2M), and
    each stochastic sampler against its deterministic twin; and 2M at each budget against 2M at the next smaller one."""
    out = []
    for c in CALLS_BUDGETS:
        out += [(f"c{c}: {s} - dpm2m", f"{s}_c{c}", f"dpm2m_c{c}") for s in CALLS_SAMPLERS if s != "dpm2m"]
        out += [(f"c{c}: ddim_eta1 - ddim_eta0", f"ddim_eta1_c{c}", f"ddim_eta0_c{c}"), (f"c{c}: heun_churn - heun", f"heun_churn_c{c}", f"heun_c{c}")]
    out += [(f"dpm2m: c{b} - c{a}", f"dpm2m_c{b}", f"dpm2m_c{a}") for a, b in zip(CALLS_BUDGETS, CALLS_BUDGETS[1:], strict=False)]
    return tuple(out)


def _paired(pairs, samples: dict, classifier) -> dict:
    """Every setting is sampled from the same seeded x_T, so differences are paired (scoring.quality.compare_paired)."""
    paired = {}
    for label, a, b in pairs:
        d = compare_paired(samples[a], samples[b], classifier=classifier)
        paired[label] = {"a": a, "b": b, "kid_a_minus_b": round(d.estimate, 6), "lo": round(d.lo, 6), "hi": round(d.hi, 6),
                         "separated": d.excludes_zero}
    return paired


def collect_cmd(args: argparse.Namespace) -> None:
    """Merge the scored parts into the U-Net cards (and the shipped samples file), or into the DDIM table file."""

    out = Path(args.out)
    parts = out / PARTS_DIR / args.what
    wanted = [s.name for s in _settings_of(args)]
    missing = [n for n in wanted if not (parts / f"{n}.json").exists()]
    if missing:
        raise SystemExit(f"not scored yet: {', '.join(missing)} (run `evaluate --what {args.what} --only ...` for them)")
    results = {n: json.loads((parts / f"{n}.json").read_text()) for n in wanted}
    floors = read_card(out / CLASSIFIER_FILE).get("floors", {})
    command = f"{COMMAND} evaluate --what " + args.what
    samples = {n: from_uint8(load_file(str(parts / f"{n}.safetensors"))[n]) for n in wanted}
    classifier = load_classifier(directory=out)[0]
    if args.what == "calls":
        table = {"what": "chapter 12's quality against network calls on the shipped EMA U-Net: each sampler at each budget, all from the "
                         "same x_T; paired = KID(a) - KID(b) with its paired bootstrap 95% interval",
                 "command": command, "git_commit": git_state()["git_commit"], "reference": REFERENCE_SET, "budgets": list(CALLS_BUDGETS),
                 "samplers": list(CALLS_SAMPLERS), "cells": results, "paired_kid_differences": _paired(calls_pairs(), samples, classifier)}
        replace_atomically(lambda tmp: tmp.write_text(json.dumps(table, indent=1) + "\n"), out / CALLS_TABLE_FILE)
        print(f"{len(results)} cells -> {out / CALLS_TABLE_FILE}")
        return
    if args.what == "table":
        paired = _paired(table_pairs(), samples, classifier)
        table = {"what": "DDIM steps x eta x spacing grid on the shipped EMA U-Net (chapter 8); ratio = Frechet / floor at the same n; "
                         "paired = KID(a) - KID(b) on samples from the same x_T, with its paired bootstrap 95% interval",
                 "command": command, "git_commit": git_state()["git_commit"], "reference": REFERENCE_SET, "cells": results,
                 "paired_kid_differences": paired, "floors": floors}
        replace_atomically(lambda tmp: tmp.write_text(json.dumps(table, indent=1) + "\n"), out / TABLE_FILE)
        print(f"{len(results)} cells -> {out / TABLE_FILE}")
        return
    train_images, test_images = reference_splits()
    test_nn = float(nearest_train_distances(test_images, train_images).median())
    ddpm, ddim = results["ddpm1000"], results["ddim50_eta0"]
    paired = _paired(PAIRED_COMPARISONS, samples, classifier)
    goals = {
        "ddpm1000_ratio_at_most_1.5": ddpm["ratio"] <= 1.5,
        "ddim50_eta0_ratio_at_most_1.5": ddim["ratio"] <= 1.5,
        "ddim50_eta0_within_1.2x_of_ddpm1000": ddim["ratio"] <= 1.2 * ddpm["ratio"],
        "ddim50_eta0_kid_interval_overlaps_ddpm1000": ddim["kid_lo"] <= ddpm["kid_hi"] and ddpm["kid_lo"] <= ddim["kid_hi"],
        "confident_share_at_least_0.9": {n: r["confident_share"] >= 0.9 for n, r in results.items() if r["weights"] == "ema" and r["clip_x0"]},
    }
    quality = {"headline": "ddpm1000", "reference": REFERENCE_SET, "settings": results, "paired_kid_differences": paired,
               "floors": floors, "goals": goals,
               "nearest_train_median_of_test_digits": round(test_nn, 4), "command": command}
    calls_path = out / CALLS_TABLE_FILE
    quality["goal_report"] = goal_report(quality, json.loads(calls_path.read_text()) if calls_path.exists() else None)
    tensors = {n: to_uint8(x).contiguous() for n, x in samples.items()}
    replace_atomically(lambda tmp: save_file(tensors, str(tmp), metadata={"what": "uint8 evaluation samples of the card's settings"}),
                        out / SAMPLES_FILE)
    samples_card = {"what": "uint8 evaluation samples of the U-Net card's settings (0..255 = pixel values -1..1); load with load_card_samples",
                    "settings": {n: {"description": results[n]["description"], "n": results[n]["n"], "seed": results[n]["seed"]} for n in wanted},
                    "weights": UNET_EMA_FILE, "command": command}
    replace_atomically(lambda tmp: tmp.write_text(json.dumps(samples_card, indent=2) + "\n"), (out / SAMPLES_FILE).with_suffix(".json"))
    for which in ("ema", "raw"):
        path = out / (UNET_EMA_FILE if which == "ema" else UNET_RAW_FILE)
        model, card = load_pretrained_unet(which, directory=out)
        card["quality"] = quality
        card.pop("quality_settings", None)
        card.pop("architecture", None)
        save_weights(model, path, card)
    print(f"{len(results)} settings -> the cards and {out / SAMPLES_FILE}")
    for n, r in results.items():
        print(f"  {n:20s} KID {r['kid']:.4f} [{r['kid_lo']:.4f}, {r['kid_hi']:.4f}]  ratio {r['ratio']:.2f} +/- {r['ratio_spread']:.2f}  "
              f"confident {r['confident_share']:.1%}  "
              f"nearest-train median {r['nearest_train_median']:.2f} (test digits {test_nn:.2f})  n={r['n']}")
