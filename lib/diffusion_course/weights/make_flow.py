"""The weight-making commands of chapter 13 (``python -m diffusion_course.weights.make train-flow-unet``): the same
U-Net as chapters 6-8, trained with the flow-matching loss on the straight path (Lipman et al. 2023, Liu et al. 2022),
written beside its card with the command, seed, device, time and git commit."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..data.encoding import from_uint8, to_uint8
from ..data.sets import mnist
from ..maths.flow import flow_matching_loss_fn, flow_sample
from ..models.flow_time import FLOW_TIME_SCALE, FlowTime
from ..models.unet import UNet
from ..scoring.comparisons import sample_in_batches
from ..scoring.distances import nearest_train_distances
from ..scoring.quality import REFERENCE_SET, compare_paired, quality_report, reference_splits
from ..scoring.reference import load_classifier
from ..training.checkpoints import replace_atomically, save_weights
from ..training.distributed import init_distributed, is_main_process, main_process_first
from ..training.loop import TrainConfig, train
from .provenance import COMMAND, PARTS_DIR, card_provenance, default_device, git_state
from .shipped import (
    FLOW_EMA_FILE,
    FLOW_RAW_FILE,
    FLOW_SAMPLES_FILE,
    SHIPPED_UNET_CONFIG,
    load_card_samples,
    load_pretrained_flow_unet,
    load_pretrained_unet,
)

__all__ = ["train_flow_unet_cmd", "evaluate_flow_cmd", "collect_flow_cmd", "FLOW_CARD_SETTINGS", "FLOW_PAIRS", "FLOW_N"]


def train_flow_unet_cmd(args: argparse.Namespace) -> None:

    device = init_distributed(default_device())  # under torchrun: join the other processes, each on its own card
    if args.threads:
        torch.set_num_threads(args.threads)
    repo = git_state()
    with main_process_first():  # a download into data/ happens once
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
    if not is_main_process():  # several processes: process 0 writes the weights and cards
        return
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


# The flow card's settings: (name, method, steps, shift). Each is sampled from the same seeded x_T batches as the DDPM
# U-Net's card (both draw x_T first from one generator, and these samplers draw nothing else), so flow and DDPM
# samples pair exactly with the deterministic DDPM settings.
FLOW_CARD_SETTINGS = (
    ("flow_euler_10", "euler", 10, 1.0),
    ("flow_euler_20", "euler", 20, 1.0),
    ("flow_euler_50", "euler", 50, 1.0),
    ("flow_heun_10", "heun", 10, 1.0),
    ("flow_euler_20_shift3", "euler", 20, 3.0),
)
# (label, a, b): flow settings against each other, and against the DDPM U-Net's card settings at equal network calls
FLOW_PAIRS = (
    ("flow_euler_20 - flow_euler_10", "flow_euler_20", "flow_euler_10"),
    ("flow_euler_50 - flow_euler_20", "flow_euler_50", "flow_euler_20"),
    ("flow_heun_10 - flow_euler_20", "flow_heun_10", "flow_euler_20"),
    ("flow_euler_20_shift3 - flow_euler_20", "flow_euler_20_shift3", "flow_euler_20"),
    ("flow_euler_10 - ddpm:dpm2m_10", "flow_euler_10", "ddpm:dpm2m_10"),
    ("flow_euler_20 - ddpm:dpm2m_20", "flow_euler_20", "ddpm:dpm2m_20"),
    ("flow_heun_10 - ddpm:heun_10", "flow_heun_10", "ddpm:heun_10"),
    ("flow_euler_50 - ddpm:ddim50_eta0", "flow_euler_50", "ddpm:ddim50_eta0"),
)
FLOW_N = 1000


def evaluate_flow_cmd(args: argparse.Namespace) -> None:
    """Sample and score each flow setting on ``--n`` images (FLOW_N for the card); one part file (numbers + uint8 samples) per setting."""
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = {s[0]: s for s in FLOW_CARD_SETTINGS}
    names = args.only or list(settings)
    unknown = [n for n in names if n not in settings]
    if unknown:
        raise SystemExit(f"--only must name flow settings: {', '.join(settings)}; got {', '.join(unknown)}")
    model, _ = load_pretrained_flow_unet(directory=args.out)
    classifier, _ = load_classifier(directory=args.out)
    train_images, _ = reference_splits()
    parts = Path(args.out) / PARTS_DIR / "flow"
    parts.mkdir(parents=True, exist_ok=True)
    for name in names:
        if (parts / f"{name}.json").exists() and not args.redo:
            print(f"{name}: already scored; --redo to sample it again", flush=True)
            continue
        _, method, steps, shift = settings[name]
        t0 = time.perf_counter()
        x = sample_in_batches(flow_sample, args.n, (1, 28, 28), args.batch, args.seed, model=model, steps=steps, method=method,
                              shift=shift, progress=True)
        seconds = time.perf_counter() - t0
        out_of_range = float(((x < -1) | (x > 1)).float().mean())
        x = from_uint8(to_uint8(x))  # score what the samples file keeps
        report = quality_report(x, classifier=classifier)
        report.out_of_range = out_of_range
        calls = 2 * steps - 1 if method == "heun" else steps
        entry = {"name": name, "method": method, "steps": steps, "shift": shift, "calls": calls, "n": args.n, "seed": args.seed,
                 "sampling_seconds": round(seconds, 1), "threads": torch.get_num_threads(), **report.as_dict(),
                 "nearest_train_median": round(float(nearest_train_distances(x, train_images).median()), 4)}
        save_file({name: to_uint8(x).contiguous()}, str(parts / f"{name}.safetensors"))
        (parts / f"{name}.json").write_text(json.dumps(entry, indent=2) + "\n")
        print(f"{name} ({calls} calls): {report.summary()} ({seconds:.0f} s)", flush=True)


def collect_flow_cmd(args: argparse.Namespace) -> None:
    """Merge the scored flow settings into both flow cards, with paired KID differences (against each other and against
    the DDPM U-Net's shipped card samples at equal calls), and ship the samples."""
    out = Path(args.out)
    parts = out / PARTS_DIR / "flow"
    names = [s[0] for s in FLOW_CARD_SETTINGS]
    missing = [n for n in names if not (parts / f"{n}.json").exists()]
    if missing:
        raise SystemExit(f"not scored yet: {', '.join(missing)} (run `evaluate-flow --only ...` for them)")
    results = {n: json.loads((parts / f"{n}.json").read_text()) for n in names}
    samples = {n: from_uint8(load_file(str(parts / f"{n}.safetensors"))[n]) for n in names}
    classifier = load_classifier(directory=out)[0]
    _, ddpm_card = load_pretrained_unet(directory=out)
    paired = {}
    for label, a, b in FLOW_PAIRS:
        xa = samples[a]
        xb = load_card_samples(b.split(":", 1)[1], directory=out) if b.startswith("ddpm:") else samples[b]
        d = compare_paired(xa, xb, classifier=classifier)
        paired[label] = {"a": a, "b": b, "kid_a_minus_b": round(d.estimate, 6), "lo": round(d.lo, 6), "hi": round(d.hi, 6),
                         "separated": d.excludes_zero}
    ddpm_rows = {b.split(":", 1)[1]: ddpm_card["quality"]["settings"][b.split(":", 1)[1]] for _, _, b in FLOW_PAIRS if b.startswith("ddpm:")}
    at20 = [r for r in results.values() if r["calls"] <= 20]
    goals = {"some_setting_at_most_20_calls_ratio_at_most_1.5": any(r["ratio"] <= 1.5 for r in at20),
             "some_setting_at_most_20_calls_confident_share_at_least_0.9": any(r["confident_share"] >= 0.9 for r in at20)}
    quality = {"reference": REFERENCE_SET, "settings": results, "paired_kid_differences": paired, "goals": goals,
               "ddpm_unet_at_equal_calls": {k: {f: v[f] for f in ("kid", "kid_lo", "kid_hi", "ratio", "confident_share", "calls") if f in v}
                                            for k, v in ddpm_rows.items()},
               "command": f"{COMMAND} evaluate-flow"}
    tensors = {n: to_uint8(x).contiguous() for n, x in samples.items()}
    replace_atomically(lambda tmp: save_file(tensors, str(tmp), metadata={"what": "uint8 evaluation samples of the flow card"}),
                       out / FLOW_SAMPLES_FILE)
    samples_card = {"what": "uint8 evaluation samples of the flow U-Net card's settings (0..255 = pixel values -1..1); load with "
                            "load_flow_samples; x_T from the same seeded batches as the DDPM card's samples",
                    "settings": {n: {k: results[n].get(k) for k in ("method", "steps", "shift", "calls", "n", "seed")} for n in names},
                    "weights": FLOW_EMA_FILE, "command": f"{COMMAND} evaluate-flow"}
    replace_atomically(lambda tmp: tmp.write_text(json.dumps(samples_card, indent=2) + "\n"), (out / FLOW_SAMPLES_FILE).with_suffix(".json"))
    for which, fname in (("ema", FLOW_EMA_FILE), ("raw", FLOW_RAW_FILE)):
        model, card = load_pretrained_flow_unet(which, directory=out)
        card["quality"] = quality
        card.pop("architecture", None)
        save_weights(model.net, out / fname, card)
    for n, r in results.items():
        print(f"  {n:22s} {r['calls']:3d} calls  KID {r['kid']:.4f} [{r['kid_lo']:.4f}, {r['kid_hi']:.4f}]  ratio {r['ratio']:.2f}  "
              f"confident {r['confident_share']:.1%}")
    for label, d in paired.items():
        print(f"  {label:40s} {d['kid_a_minus_b']:+.4f} [{d['lo']:+.4f}, {d['hi']:+.4f}] {'separated' if d['separated'] else 'not separated'}")
