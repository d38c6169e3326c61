"""The weight-making commands of chapter 11 (``make weights`` runs them through ``python -m diffusion_course.weights.make``):
train the class-conditional U-Net (label dropout, Ho & Salimans 2022), sample it at every guidance scale and score
the sweep, and merge the results into its card and the shipped samples file."""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from .._internal.validate import check_positive_int
from ..data.encoding import from_uint8, to_uint8
from ..data.sets import mnist
from ..maths.guidance import guided_sample
from ..maths.samplers import ddim_sample
from ..maths.schedules import NoiseSchedule, make_betas
from ..models.unet import UNet
from ..scoring.distances import paired_mean_difference
from ..scoring.guidance_report import guidance_report
from ..scoring.quality import CONFIDENT, MIN_SAMPLES_PER_FEATURE, classifier_outputs, compare_paired, compare_unpaired
from ..scoring.reference import load_classifier
from ..training.checkpoints import CheckpointError, replace_atomically, save_weights
from ..training.distributed import init_distributed, is_main_process, main_process_first
from ..training.loop import TrainConfig, train
from .provenance import COMMAND, PARTS_DIR, card_provenance, default_device, git_state
from .shipped import (
    COND_SAMPLES_FILE,
    COND_UNET_FILE,
    GUIDANCE_SCALES,
    SHIPPED_UNET_CONFIG,
    UNET_EMA_FILE,
    load_guidance_samples,
    load_pretrained_cond_unet,
    load_pretrained_unet,
    schedule_from_card,
)

__all__ = [
    "train_cond_unet_cmd", "guidance_setting_name", "evaluate_guidance_cmd", "collect_guidance_cmd", "guidance_paired_differences",
    "GUIDANCE_PAIRS", "null_vs_start_cmd",
]


def train_cond_unet_cmd(args: argparse.Namespace) -> None:
    """Chapter 11's class-conditional U-Net: the shipped U-Net's layout plus a label embedding, trained with label
    dropout; by default initialised from the shipped unconditional EMA weights (the label embedding starts at zero, so
    step 0 is exactly the unconditional model) and fine-tuned with labels."""


    device = init_distributed(default_device())  # under torchrun: join the other processes, each on its own card
    if args.threads:
        torch.set_num_threads(args.threads)
    repo = git_state()
    with main_process_first():  # a download into data/ happens once
        x, y = mnist("train", source=args.data)
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
    if not is_main_process():  # several processes: process 0 writes the weights and card
        return
    n_params = sum(p.numel() for p in model.parameters())
    card = {
        "what": "class-conditional eps-predicting U-Net eps(x_t, t, y) for 28x28 MNIST digits, trained with label dropout for "
                "classifier-free guidance (Ho & Salimans 2022); label 10 = no label",
        "unet_config": json.loads(json.dumps(config.__dict__)),
        "parameters": n_params,
        "schedule": {"kind": "linear", "T": 1000, "beta_1": 1e-4, "beta_T": 0.02},
        "initialised_from": init,
        "training": {**{k: v for k, v in result.config.items() if k not in ("progress", "checkpoint_path")},
                     "data": {"source": args.data, "images": len(x), "labels": True}, "resumed_from_step": result.resumed_from,
                     "seconds_this_call": round(result.seconds, 1),
                     "final_loss_mean_of_last_200": round(sum(result.losses[-200:]) / len(result.losses[-200:]), 4)},
        "weights": "EMA (sample with these)",
        **card_provenance(result.seconds, device, repo),
    }
    save_weights(result.ema.shadow, Path(args.out) / COND_UNET_FILE, card)
    Path(cfg.checkpoint_path).unlink(missing_ok=True)
    print(f"conditional U-Net: {n_params:,} parameters, {args.steps} steps in {result.seconds:.0f} s on {device.type}; "
          f"final loss {card['training']['final_loss_mean_of_last_200']:.4f} -> {Path(args.out) / COND_UNET_FILE}")


def guidance_setting_name(w: float | None) -> str:
    """The name of a guidance setting in the card: "w3" for w = 3, "uncond" for the null label alone."""
    return "uncond" if w is None else f"w{w:g}"


def evaluate_guidance_cmd(args: argparse.Namespace) -> None:
    """Sample args.per_class digits of every class at each guidance scale (DDIM, same x_T for every w) and score them."""

    if args.threads:
        torch.set_num_threads(args.threads)
    device = default_device()
    names = {guidance_setting_name(w): w for w in (*GUIDANCE_SCALES, None)}
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
    return _ddim_sweep(lambda x, t: model(x, t, null), schedule, x_T.to(dev), args.steps)


def _ddim_sweep(eps_model: Any, schedule: NoiseSchedule, x_T: torch.Tensor, steps: int) -> torch.Tensor:
    """The sweep's sampler: DDIM ``steps`` leading steps, eta = 0, x0 clipped to +/-1, from the given x_T."""
    return ddim_sample(eps_model, schedule, tuple(x_T.shape), steps=steps, eta=0.0, spacing="leading", clip_x0=1.0, x_T=x_T).cpu()


def null_vs_start_cmd(args: argparse.Namespace) -> None:
    """The model the conditional U-Net was initialised from (``--start-dir``'s unconditional EMA weights), sampled as the
    sweep's null-label row (DDIM, leading steps, eta 0, clipped, the same x_T batches from the same seed), and the
    null label sampled again from those x_T: scored side by side, compared by the paired and the unpaired KID interval,
    and stored in the conditional card as ``null_vs_start``."""
    if args.threads:
        torch.set_num_threads(args.threads)
    device = default_device()
    cond, card = load_pretrained_cond_unet(directory=args.out)
    start, start_card = load_pretrained_unet("ema", directory=args.start_dir or args.out)
    cond.to(device), start.to(device)
    schedule = schedule_from_card(card)
    classifier, _ = load_classifier(directory=args.out)
    n = 10 * args.per_class
    g = torch.Generator().manual_seed(args.seed)
    null_x, start_x, t0 = [], [], time.perf_counter()
    for i in range(0, n, args.batch):
        x_T = torch.randn((min(args.batch, n - i), 1, 28, 28), generator=g)  # as evaluate-guidance draws them
        null_x.append(_ddim_null(cond, schedule, x_T, torch.full((len(x_T),), cond.null_label), args))
        start_x.append(_ddim_sweep(start, schedule, x_T.to(device), args.steps))
        print(f"  {i + len(x_T)}/{n} noises, null label and starting model ({time.perf_counter() - t0:.0f} s)", flush=True)
    x_null, x_start = torch.cat(null_x), torch.cat(start_x)
    enough = n >= MIN_SAMPLES_PER_FEATURE * 32
    pooled = {k: guidance_report(x, None, classifier=classifier)["pooled"] if enough else None for k, x in (("null", x_null), ("start", x_start))}
    paired, unpaired = compare_paired(x_null, x_start, classifier=classifier), compare_unpaired(x_null, x_start, classifier=classifier)
    same_digit = classifier_outputs(classifier, x_null)[1].argmax(1) == classifier_outputs(classifier, x_start)[1].argmax(1)
    reproduced, swept = None, card.get("guidance_sweep", {}).get("settings", {}).get("uncond", {})
    if (swept.get("per_class"), swept.get("seed")) == (args.per_class, args.seed) and (Path(args.out) / COND_SAMPLES_FILE).exists():
        # the sweep shipped the first 16 of each digit's block of noises: does sampling again give the same pixels?
        shipped = to_uint8(load_guidance_samples(directory=args.out)["uncond"])
        mine = to_uint8(torch.cat([x_null[c * args.per_class : c * args.per_class + 16] for c in range(10)]))
        diff = (mine.int() - shipped.int()).abs()
        reproduced = {"compared": int(mine.shape[0]), "max_uint8_difference": int(diff.max()),
                      "share_of_pixels_identical": round(float((diff == 0).double().mean()), 6)}
    start_sha = hashlib.sha256((Path(args.start_dir or args.out) / UNET_EMA_FILE).read_bytes()).hexdigest()
    entry = {
        "start": {"weights_sha256": start_sha, "steps": start_card.get("training", {}).get("steps"),
                  "is_initialised_from": start_sha == card.get("initialised_from", {}).get("weights_sha256")},
        "sampler": f"DDIM {args.steps} leading steps, eta = 0, x0 clipped to +/-1", "seed": args.seed, "per_class": args.per_class, "n": n,
        "null_reproduces_shipped_samples": reproduced, "null": pooled["null"], "start_model": pooled["start"],
        "kid_null_minus_start_paired": [round(v, 6) for v in paired], "paired_separated": paired.excludes_zero,
        "kid_null_minus_start_unpaired": [round(v, 6) for v in unpaired], "unpaired_separated": unpaired.excludes_zero,
        "same_digit_share": round(float(same_digit.double().mean()), 4), "sampling_seconds": round(time.perf_counter() - t0, 1),
        "threads": torch.get_num_threads(), "command": f"{COMMAND} null-vs-start",
    }
    card_path = (Path(args.out) / COND_UNET_FILE).with_suffix(".json")
    full = json.loads(card_path.read_text())  # only the card changes: the weights and their sha256 stay as they are
    full["null_vs_start"] = entry
    replace_atomically(lambda tmp: tmp.write_text(json.dumps(full, indent=2) + "\n"), card_path)
    print(f"null label - starting model, KID: paired {paired.estimate:+.4f} [{paired.lo:+.4f}, {paired.hi:+.4f}], unpaired "
          f"{unpaired.estimate:+.4f} [{unpaired.lo:+.4f}, {unpaired.hi:+.4f}]; same digit {entry['same_digit_share']:.0%}; "
          f"start = initialised_from: {entry['start']['is_initialised_from']}; reproduced: {reproduced}")


def collect_guidance_cmd(args: argparse.Namespace) -> None:
    """Merge the scored guidance settings into the conditional card and ship 16 samples per digit and setting."""
    parts = Path(args.out) / PARTS_DIR / "guidance"
    names = [guidance_setting_name(w) for w in (*GUIDANCE_SCALES, None)]
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

    replace_atomically(lambda tmp: save_file(shipped, str(tmp), metadata={"what": "16 guided samples per digit and setting, uint8"}), path)
    samples_card = {"what": "uint8 guided samples of the conditional U-Net (0..255 = pixel values -1..1), the first 16 of each digit of "
                            "every guidance setting, in label order; load with load_guidance_samples",
                    "settings": {n: {"w": results[n]["w"], "sampler": results[n]["sampler"], "seed": results[n]["seed"],
                                     "shipped": shipped[n].shape[0], "scored": results[n]["n"]} for n in names},
                    "weights": COND_UNET_FILE, "command": f"{COMMAND} collect-guidance"}
    replace_atomically(lambda tmp: tmp.write_text(json.dumps(samples_card, indent=2) + "\n"), path.with_suffix(".json"))
    model, card = load_pretrained_cond_unet(directory=args.out)
    paired = guidance_paired_differences({n: from_uint8(load_file(str(parts / f"{n}.safetensors"))[n]) for n in names},
                                         results["w0"]["per_class"], classifier=load_classifier(directory=args.out)[0])
    card["guidance_sweep"] = {"settings": results, "paired": paired, "command": f"{COMMAND} evaluate-guidance",
                              "goal_w3_confident_correct_at_least_0.95": results["w3"]["confident_correct_share"] >= 0.95}
    card.pop("architecture", None)
    save_weights(model, Path(args.out) / COND_UNET_FILE, card)
    for n, r in results.items():
        pc = r.get("per_class_ratio")
        asked = f"accuracy {r['accuracy']:.1%}  confident & right {r['confident_correct_share']:.1%}  " if "accuracy" in r else ""
        print(f"  {n:7s} {asked}pooled KID {r['pooled']['kid']:.4f}, ratio {r['pooled']['ratio']:.2f} +/- {r['pooled']['ratio_spread']:.2f}"
              + (f"  per-class ratio {pc['mean']:.2f} (range {pc['min']:.2f}-{pc['max']:.2f})" if pc else ""))


# (label, a, b): the guidance sweep's paired comparisons; every setting starts from the same x_T (one seed), sample i asks
# for the same digit in each, so KID(a) - KID(b) and the difference in "read as the digit asked for, p > 0.9" are paired.
GUIDANCE_PAIRS = (("w1 - w0", "w1", "w0"), ("w2 - w1", "w2", "w1"), ("w3 - w1", "w3", "w1"), ("w3 - w2", "w3", "w2"),
                  ("w5 - w3", "w5", "w3"), ("w0 - uncond", "w0", "uncond"))


def guidance_paired_differences(samples: dict[str, torch.Tensor], per_class: int, *, classifier: torch.nn.Module) -> dict:
    """The paired differences of :data:`GUIDANCE_PAIRS` on full sample sets (label order, ``per_class`` of each digit):
    pooled KID and, where both settings asked for a digit, the confident-and-right share and each digit's own KID
    (its samples against the reference's test digits of that digit, [estimate, lo, hi] per digit)."""
    check_positive_int(per_class, "per_class", 1)
    missing = sorted({n for _, a, b in GUIDANCE_PAIRS for n in (a, b)} - set(samples))
    if missing:
        raise ValueError(f"samples must hold a sample set for every setting of GUIDANCE_PAIRS; missing {missing}")
    labels = torch.arange(10).repeat_interleave(per_class)
    bad = {n: tuple(x.shape) for n, x in samples.items() if tuple(x.shape) != (len(labels), 1, 28, 28)}
    if bad:
        raise ValueError(f"each sample set must have shape (10 x per_class, 1, 28, 28) = ({len(labels)}, 1, 28, 28); got {bad}")
    right = {}
    for n, x in samples.items():
        _, p = classifier_outputs(classifier, x)
        conf, pred = p.max(1)
        right[n] = ((pred == labels) & (conf > CONFIDENT)).double()
    x_te, y_te = mnist("test", source="subset")  # each digit's KID is taken against the reference's test digits of that digit
    out = {}
    for label, a, b in GUIDANCE_PAIRS:
        d = compare_paired(samples[a], samples[b], classifier=classifier)
        row = {"a": a, "b": b, "kid_a_minus_b": [round(v, 6) for v in d], "kid_separated": d.excludes_zero}
        if "uncond" not in (a, b):
            s = paired_mean_difference(right[a], right[b])
            row.update(confident_correct_a_minus_b=[round(v, 4) for v in s], confident_correct_separated=s.excludes_zero)
            each = [compare_paired(samples[a][labels == c], samples[b][labels == c], classifier=classifier, reference=x_te[y_te == c])
                    for c in range(10)]
            row["per_class_kid_a_minus_b"] = [[round(v, 6) for v in e] for e in each]  # digit c: [estimate, lo, hi]
        out[label] = row
    return out
