"""The weight-making commands of chapter 14 (``python -m diffusion_course.weights.make train-noisy-classifier``,
``evaluate-classifier-guidance``): a noise-aware MNIST classifier p_phi(y | x_t, t), trained on digits noised at every
timestep as Dhariwal & Nichol 2021 (section 4) train theirs, with its accuracy by t beside the clean classifier's; then
the shipped unconditional U-Net guided by its gradient (their Algorithm 2, DDIM) at several scales, and by the clean
classifier's, scored like chapter 11's guidance sweep and written into its card with the samples."""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .._internal.validate import check_positive_int
from ..data.encoding import from_uint8, to_uint8
from ..data.sets import mnist
from ..maths.classifier_guidance import classifier_guided_sample
from ..models.noisy_classifier import NoisyClassifier, NoisyClassifierConfig, TimeIgnoring
from ..scoring.distances import paired_mean_difference
from ..scoring.guidance_report import guidance_report
from ..scoring.quality import CONFIDENT, classifier_outputs, compare_paired
from ..scoring.reference import CLASSIFIER_FILE, load_classifier
from ..training.checkpoints import replace_atomically, save_weights
from ..training.distributed import is_main_process
from ..training.noisy_classifier import noisy_accuracy_by_t, train_noisy_classifier
from .provenance import COMMAND, PARTS_DIR, card_provenance, default_device, git_state
from .shipped import (
    CG_SAMPLES_FILE,
    NOISY_CLASSIFIER_FILE,
    UNET_EMA_FILE,
    load_noisy_classifier,
    load_pretrained_unet,
    schedule_from_card,
)

__all__ = ["train_noisy_classifier_cmd", "evaluate_classifier_guidance_cmd", "classifier_guidance_paired_differences", "ACCURACY_TS",
           "CG_SETTINGS", "CG_PAIRS"]

# The timesteps at which both classifiers are measured on the 1,000 test digits (the same noise for both).
ACCURACY_TS = (0, 50, 100, 200, 300, 400, 500, 600, 700, 800, 999)
ACCURACY_NOISE_SEED = 1


def train_noisy_classifier_cmd(args: argparse.Namespace) -> None:
    """Train the noise-aware classifier on the 4,000 offline training digits (t uniform, q(x_t | x_0) with the shipped
    U-Net's schedule), measure it and the clean classifier on the 1,000 test digits at every t of ACCURACY_TS, and
    write the weights and card."""
    if args.threads:
        torch.set_num_threads(args.threads)
    device = default_device()
    repo = git_state()
    x, y = mnist("train", source="subset")
    x_test, y_test = mnist("test", source="subset")
    _, ucard = load_pretrained_unet(directory=args.out)
    schedule = schedule_from_card(ucard)
    config = NoisyClassifierConfig(width=args.width, T=schedule.T)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        model = NoisyClassifier(config).to(device)
    model, losses, seconds = train_noisy_classifier(model, x, y, schedule, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                                                    seed=args.seed, progress=True)
    clean, _ = load_classifier(directory=args.out)
    acc = {}
    for name, clf in (("noisy", model), ("clean", TimeIgnoring(clean.to(device)))):
        g = torch.Generator().manual_seed(ACCURACY_NOISE_SEED)  # the same noise for both classifiers
        acc[name] = noisy_accuracy_by_t(clf, x_test, y_test, schedule, ACCURACY_TS, generator=g)
    if not is_main_process():  # consistency with the other commands: process 0 writes the files
        return
    n_params = sum(p.numel() for p in model.parameters())
    card = {
        "what": "noise-aware MNIST classifier p_phi(y | x_t, t) for classifier guidance (Dhariwal & Nichol 2021, section 4): "
                "NoisyClassifier(x_t, t) -> logits of the digits 0-9, trained on digits noised with q(x_t | x_0) at t ~ U{0..T-1}",
        "noisy_classifier_config": dataclasses.asdict(config),
        "parameters": n_params,
        "schedule": ucard["schedule"],
        "schedule_from": UNET_EMA_FILE,
        "training": {"steps": args.steps, "batch_size": args.batch_size, "lr": args.lr, "lr_schedule": "cosine", "optimizer": "Adam",
                     "max_shift": 2, "seed": args.seed, "data": {"source": "subset", "images": len(x)},
                     "seconds": round(seconds, 1), "final_loss_mean_of_last_100": round(sum(losses[-100:]) / len(losses[-100:]), 4)},
        "accuracy_by_t": {"t": list(ACCURACY_TS), "noisy": [acc["noisy"][t] for t in ACCURACY_TS],
                          "clean": [acc["clean"][t] for t in ACCURACY_TS], "images": len(x_test), "noise_seed": ACCURACY_NOISE_SEED,
                          "clean_classifier": CLASSIFIER_FILE,
                          "what": "share of the 1,000 offline test digits, noised to timestep t with q(x_t | x_0) (the same noise for both), "
                                  "whose top class is their label; clean = the yardstick's classifier, which never saw noise"},
        **card_provenance(seconds, device, repo),
    }
    out = Path(args.out)
    save_weights(model, out / NOISY_CLASSIFIER_FILE, card)
    print(f"noisy classifier: {n_params:,} parameters, {args.steps} steps in {seconds:.0f} s on {device.type} -> {out / NOISY_CLASSIFIER_FILE}")
    print("     t  noisy  clean")
    for t in ACCURACY_TS:
        print(f"  {t:4d}  {acc['noisy'][t]:.3f}  {acc['clean'][t]:.3f}")


# The sweep's settings: (name, guide, gradient scale s). "unguided" is scale 0 (DDIM itself, whichever classifier);
# "noisy" guides with the noise-aware classifier, "clean" with the yardstick's classifier through TimeIgnoring, which is
# also the judge: its rows are read by the classifier that steered them, which flatters them.
CG_SETTINGS = (
    ("unguided", None, 0.0),
    ("noisy_s1", "noisy", 1.0),
    ("noisy_s3", "noisy", 3.0),
    ("noisy_s10", "noisy", 10.0),
    ("clean_s3", "clean", 3.0),
    ("clean_s10", "clean", 10.0),
)
# (label, a, b): every setting starts from the same x_T and asks for the same digit at sample i, so the differences pair
CG_PAIRS = (
    ("noisy_s1 - unguided", "noisy_s1", "unguided"),
    ("noisy_s3 - noisy_s1", "noisy_s3", "noisy_s1"),
    ("noisy_s10 - noisy_s3", "noisy_s10", "noisy_s3"),
    ("clean_s3 - unguided", "clean_s3", "unguided"),
    ("clean_s3 - noisy_s3", "clean_s3", "noisy_s3"),
    ("clean_s10 - noisy_s10", "clean_s10", "noisy_s10"),
)


def _sample_setting(unet: torch.nn.Module, guides: dict, schedule, labels: torch.Tensor, guide: str | None, scale: float,
                    args: argparse.Namespace, device: torch.device, name: str) -> torch.Tensor:
    """The samples of one setting in label order, x_T drawn batch by batch from one seeded generator (as chapter 11's sweep)."""
    g = torch.Generator().manual_seed(args.seed)
    xs, t0 = [], time.perf_counter()
    for i in range(0, len(labels), args.batch):
        yb = labels[i : i + args.batch]
        x_T = torch.randn((len(yb), 1, 28, 28), generator=g)
        clf = guides["noisy" if guide is None else guide]  # scale 0 never calls the classifier
        xs.append(classifier_guided_sample(unet, clf, schedule, x_T.shape, y=yb.to(device), scale=scale, steps=args.steps, eta=0.0,
                                           spacing="leading", clip_x0=1.0, x_T=x_T.to(device)).cpu())
        print(f"  {name}: {i + len(yb)}/{len(labels)} samples ({time.perf_counter() - t0:.0f} s)", flush=True)
    return torch.cat(xs)


def evaluate_classifier_guidance_cmd(args: argparse.Namespace) -> None:
    """Sample ``--per-class`` digits of each class for every setting of CG_SETTINGS (one part file each, resumable), then,
    once all are scored, merge them into the noisy classifier's card (``classifier_guidance_sweep``) and ship 16 samples
    per digit and setting."""
    if args.threads:
        torch.set_num_threads(args.threads)
    device = default_device()
    settings = {s[0]: s for s in CG_SETTINGS}
    wanted = args.only or list(settings)
    unknown = [n for n in wanted if n not in settings]
    if unknown:
        raise SystemExit(f"--only must name settings among {', '.join(settings)}; got {', '.join(unknown)}")
    unet, ucard = load_pretrained_unet(directory=args.out)
    unet.to(device)
    schedule = schedule_from_card(ucard)
    noisy, _ = load_noisy_classifier(directory=args.out)
    judge, _ = load_classifier(directory=args.out)
    guides = {"noisy": noisy.to(device), "clean": TimeIgnoring(judge).to(device)}
    for m in guides.values():
        m.requires_grad_(False)  # the gradient is taken with respect to x_t only
    parts = Path(args.out) / PARTS_DIR / "classifier_guidance"
    parts.mkdir(parents=True, exist_ok=True)
    labels = torch.arange(10).repeat_interleave(args.per_class)
    for name in wanted:
        if (parts / f"{name}.json").exists() and not args.redo:
            print(f"{name}: already scored; --redo to sample it again", flush=True)
            continue
        _, guide, scale = settings[name]
        t0 = time.perf_counter()
        x = from_uint8(to_uint8(_sample_setting(unet, guides, schedule, labels, guide, scale, args, device, name)))  # score what ships
        seconds = time.perf_counter() - t0
        report = guidance_report(x, labels, classifier=judge, per_class_frechet=args.per_class >= 128)
        entry = {"name": name, "guide": guide, "scale": scale, "sampler": f"DDIM {args.steps} leading steps, eta = 0, x0 clipped to +/-1",
                 "per_class": args.per_class, "seed": args.seed, "sampling_seconds": round(seconds, 1), "threads": torch.get_num_threads(),
                 "judged_by_its_own_guide": guide == "clean", **report}
        save_file({name: to_uint8(x).contiguous()}, str(parts / f"{name}.safetensors"))
        (parts / f"{name}.json").write_text(json.dumps(entry, indent=2) + "\n")
        print(f"{name}: read as asked {report['accuracy']:.1%}, confident and right {report['confident_correct_share']:.1%}, pooled KID "
              f"{report['pooled']['kid']:.4f}, ratio {report['pooled']['ratio']:.2f} ({seconds:.0f} s)", flush=True)
    missing = [n for n in settings if not (parts / f"{n}.json").exists()]
    if missing:
        print(f"not merged into the card yet: {', '.join(missing)} still to score")
        return
    if is_main_process():
        _collect(Path(args.out), parts, judge)


def _collect(out: Path, parts: Path, judge: torch.nn.Module) -> None:
    """Write the sweep and its paired differences into the noisy classifier's card, and 16 samples per digit and setting."""
    names = [s[0] for s in CG_SETTINGS]
    results = {n: json.loads((parts / f"{n}.json").read_text()) for n in names}
    pers = {r["per_class"] for r in results.values()}
    if len(pers) != 1:
        raise SystemExit(f"the scored parts hold different numbers of samples per digit ({sorted(pers)}); run again with --redo")
    per = pers.pop()
    full = {n: from_uint8(load_file(str(parts / f"{n}.safetensors"))[n]) for n in names}
    paired = classifier_guidance_paired_differences(full, per, classifier=judge)
    keep = min(16, per)
    shipped = {n: torch.cat([to_uint8(x)[c * per : c * per + keep] for c in range(10)]).contiguous() for n, x in full.items()}
    path = out / CG_SAMPLES_FILE
    replace_atomically(lambda tmp: save_file(shipped, str(tmp), metadata={"what": f"{keep} classifier-guided samples per digit and setting, uint8"}),
                       path)
    samples_card = {"what": f"uint8 classifier-guided samples of the unconditional U-Net (0..255 = pixel values -1..1), the first {keep} "
                            "of each digit of every setting, in label order; load with load_classifier_guidance_samples",
                    "settings": {n: {"guide": results[n]["guide"], "scale": results[n]["scale"], "sampler": results[n]["sampler"],
                                     "seed": results[n]["seed"], "shipped": shipped[n].shape[0], "scored": results[n]["n"]} for n in names},
                    "weights": [UNET_EMA_FILE, NOISY_CLASSIFIER_FILE, CLASSIFIER_FILE], "command": f"{COMMAND} evaluate-classifier-guidance"}
    replace_atomically(lambda tmp: tmp.write_text(json.dumps(samples_card, indent=2) + "\n"), path.with_suffix(".json"))
    model, card = load_noisy_classifier(directory=out)
    card["classifier_guidance_sweep"] = {
        "settings": results, "paired": paired, "command": f"{COMMAND} evaluate-classifier-guidance",
        "model": UNET_EMA_FILE, "judge": CLASSIFIER_FILE,
        "note": "every setting is read by the yardstick's clean classifier; the clean-guided rows were steered by that same "
                "classifier's gradient, so the judge flatters them (their samples are made to please it)",
    }
    card.pop("architecture", None)
    save_weights(model, out / NOISY_CLASSIFIER_FILE, card)
    for n, r in results.items():
        print(f"  {n:10s} read as asked {r['accuracy']:.1%}  confident & right {r['confident_correct_share']:.1%}  "
              f"pooled KID {r['pooled']['kid']:.4f} [{r['pooled']['kid_lo']:.4f}, {r['pooled']['kid_hi']:.4f}]  ratio {r['pooled']['ratio']:.2f}")
    for label, d in paired.items():
        lo_hi = d["confident_correct_a_minus_b"]
        print(f"  {label:24s} confident & right {lo_hi[0]:+.3f} [{lo_hi[1]:+.3f}, {lo_hi[2]:+.3f}]  KID {d['kid_a_minus_b'][0]:+.4f} "
              f"[{d['kid_a_minus_b'][1]:+.4f}, {d['kid_a_minus_b'][2]:+.4f}]")


def classifier_guidance_paired_differences(samples: dict[str, torch.Tensor], per_class: int, *, classifier: torch.nn.Module) -> dict:
    """The paired differences of :data:`CG_PAIRS` on full sample sets (label order, ``per_class`` of each digit, the same
    x_T at sample i in every setting): pooled KID(a) - KID(b) and the difference in the share read as the digit asked for
    (top class) and read so with p > 0.9, each [estimate, lo, hi] with a paired bootstrap 95% interval."""
    check_positive_int(per_class, "per_class", 1)
    missing = sorted({n for _, a, b in CG_PAIRS for n in (a, b)} - set(samples))
    if missing:
        raise ValueError(f"samples must hold a sample set for every setting of CG_PAIRS; missing {missing}")
    labels = torch.arange(10).repeat_interleave(per_class)
    bad = {n: tuple(x.shape) for n, x in samples.items() if tuple(x.shape) != (len(labels), 1, 28, 28)}
    if bad:
        raise ValueError(f"each sample set must have shape (10 x per_class, 1, 28, 28) = ({len(labels)}, 1, 28, 28); got {bad}")
    right, confident_right = {}, {}
    for n, x in samples.items():
        _, p = classifier_outputs(classifier, x.clamp(-1, 1))
        conf, pred = p.max(1)
        right[n] = (pred == labels).double()
        confident_right[n] = ((pred == labels) & (conf > CONFIDENT)).double()
    out = {}
    for label, a, b in CG_PAIRS:
        d = compare_paired(samples[a], samples[b], classifier=classifier)
        acc = paired_mean_difference(right[a], right[b])
        conf = paired_mean_difference(confident_right[a], confident_right[b])
        out[label] = {"a": a, "b": b, "kid_a_minus_b": [round(v, 6) for v in d], "kid_separated": d.excludes_zero,
                      "accuracy_a_minus_b": [round(v, 4) for v in acc], "accuracy_separated": acc.excludes_zero,
                      "confident_correct_a_minus_b": [round(v, 4) for v in conf], "confident_correct_separated": conf.excludes_zero}
    return out
