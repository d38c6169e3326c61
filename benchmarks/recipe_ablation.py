"""Benchmark 5: which recipe reaches MNIST quality fastest on this CPU? Each row trains the shipped U-Net for the same
wall-clock budget with one change against the baseline (schedule, learning rate and warm-up, batch size, EMA decay,
width, loss weighting, augmentation), then scores its EMA weights with the course metric (Frechet / floor on the
shipped classifier's features, at n samples, DDIM-50 with eta = 0 and eta = 1, x0 clipped).

    python benchmarks/recipe_ablation.py --rows base cosine --threads 1     # one process per core: run two at once
    python benchmarks/recipe_ablation.py --collect                          # the table of every row measured so far
    python benchmarks/recipe_ablation.py --rows base cosine lr_4e-3 min_snr_5 --images 38400 --n 1000 --tag settle
    python benchmarks/recipe_ablation.py --settle --tag settle              # each row against base: paired KID intervals

With ``--tag`` a row's JSON is ``<row>.<tag>.json`` and its samples go to build/recipe_samples/ (uint8, not committed):
every row samples from the same seeded x_T (and, at eta = 1, the same step noise), so ``--settle`` compares each row
with the baseline by the paired bootstrap interval of the KID difference (chapter 6's yardstick).

Each row writes benchmarks/results/recipe_ablation/<row>.json. Rows are short (minutes, not the hour of the shipped
run): they rank what speeds up the *start* of training, which is what a learner's budget buys. The step count of a
row is its budget divided by the step time measured on its first steps, so the cosine LR decay ends on time.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

import torch
from common import RESULTS, environment

from diffusion_course.maths.losses import simple_loss_fn
from diffusion_course.maths.schedules import NoiseSchedule, make_betas
from diffusion_course.models.unet import UNet
from diffusion_course.scoring.comparisons import SamplerSetting, sample_setting
from diffusion_course.scoring.quality import quality_report
from diffusion_course.scoring.reference import load_classifier
from diffusion_course.training.classifier import random_shift
from diffusion_course.training.ema import EMA
from diffusion_course.training.loop import TrainConfig, train
from diffusion_course.weights.shipped import SHIPPED_UNET_CONFIG

OUT = RESULTS / "recipe_ablation"
BASE = dict(schedule="linear", batch_size=128, lr=2e-3, warmup_steps=50, ema_decay=0.999, width=16, snr_gamma=None, shift=0)
ROWS = {
    "base": {},
    "cosine": {"schedule": "cosine"},
    "lr_1e-3": {"lr": 1e-3},
    "lr_4e-3": {"lr": 4e-3},
    "no_warmup": {"warmup_steps": 0},
    "batch_64": {"batch_size": 64},
    "batch_256": {"batch_size": 256},
    "width_24": {"width": 24},
    "min_snr_5": {"snr_gamma": 5.0},
    "shift_1px": {"shift": 1},
}
EXTRA_EMA = (0.99, 0.995)  # scored in the base row beside its 0.999


SAMPLES = RESULTS.parents[1] / "build" / "recipe_samples"


def run_row(name: str, budget: float, n: int, seed: int, images_budget: int = 0, tag: str = "") -> dict:
    spec = {**BASE, **ROWS[name]}
    from diffusion_course.data.sets import mnist

    x, _ = mnist("train")
    schedule = NoiseSchedule.from_betas(make_betas(spec["schedule"], 1000, 1e-4, 0.02))
    unet_cfg = replace(SHIPPED_UNET_CONFIG, base_channels=spec["width"])
    base_loss = simple_loss_fn(schedule, spec["snr_gamma"])

    def loss_fn(m, x0, g):
        if spec["shift"]:
            x0 = random_shift(x0, spec["shift"], g)
        return base_loss(m, x0, g)

    def fresh() -> UNet:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return UNet(unet_cfg)

    if images_budget:  # a fixed number of training images: the same work whatever else the machine is doing
        steps = max(20, round(images_budget / spec["batch_size"]))
    else:  # step time from a few steps of a throw-away copy, then as many steps as fit in the wall-clock budget
        probe = train(fresh(), x, TrainConfig(steps=6, batch_size=spec["batch_size"], lr=spec["lr"], ema_decay=None, progress=False),
                      loss_fn=loss_fn)
        steps = max(20, int(budget / (probe.seconds / 6)))
    extra = {}
    model = fresh()
    if name == "base":
        extra = {d: EMA(model, d) for d in EXTRA_EMA}

    def on_step(step, m):
        for e in extra.values():
            e.update(m)

    cfg = TrainConfig(steps=steps, batch_size=spec["batch_size"], lr=spec["lr"], warmup_steps=min(spec["warmup_steps"], steps // 4),
                      lr_schedule="cosine", ema_decay=spec["ema_decay"], seed=seed, progress=False)
    result = train(model, x, cfg, loss_fn=loss_fn, on_step=on_step)
    classifier, _ = load_classifier()
    scores = {}
    weights = {f"ema {spec['ema_decay']}": result.ema.shadow, **{f"ema {d}": e.shadow for d, e in extra.items()}}
    for label, net in weights.items():
        for eta in ((0.0, 1.0) if label == f"ema {spec['ema_decay']}" else (0.0,)):
            st = SamplerSetting(f"{label} eta{eta:g}", "ema", "ddim", 50, eta=eta, n=n)
            samples = sample_setting(net.eval(), schedule, st, seed=seed, progress=False)
            r = quality_report(samples, classifier=classifier)
            if tag and label == f"ema {spec['ema_decay']}":
                from safetensors.torch import save_file

                from diffusion_course.data.encoding import to_uint8

                SAMPLES.mkdir(parents=True, exist_ok=True)
                save_file({"samples": to_uint8(samples).contiguous()}, str(SAMPLES / f"{name}.{tag}.eta{eta:g}.safetensors"))
            scores[f"{label}, DDIM-50 eta={eta:g}"] = r.as_dict()
            print(f"{name:10s} {label:10s} eta={eta:g}: {r.summary()}", flush=True)
    return {"row": name, "change": ROWS[name] or "baseline", "spec": spec, "budget_seconds": None if images_budget else budget,
            "images_budget": images_budget or None, "train_seconds": round(result.seconds, 1),
            "steps": steps, "images_seen": steps * spec["batch_size"], "threads": torch.get_num_threads(),
            "final_loss": round(sum(result.losses[-50:]) / len(result.losses[-50:]), 4),
            "parameters": sum(p.numel() for p in model.parameters()), "n_samples": n, "scores": scores, **environment()}


def collect() -> str:
    rows = [json.loads(p.read_text()) for p in sorted(OUT.glob("*.json")) if p.name.count(".") == 1]  # untagged rows
    order = {k: i for i, k in enumerate(ROWS)}
    rows.sort(key=lambda r: order.get(r["row"], 99))
    lines = ["| row | change | steps × batch | final loss | η = 0: Fréchet ÷ floor | η = 0: confident | η = 1: Fréchet ÷ floor | η = 1: confident |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        d = r["spec"]["ema_decay"]
        s0, s1 = r["scores"][f"ema {d}, DDIM-50 eta=0"], r["scores"][f"ema {d}, DDIM-50 eta=1"]
        change = "baseline" if r["change"] == "baseline" else ", ".join(f"{k} = {v}" for k, v in r["change"].items())
        lines.append(f"| {r['row']} | {change} | {r['steps']} × {r['spec']['batch_size']} | {r['final_loss']:.4f} | "
                     f"{s0['ratio']:.2f} ± {s0['ratio_spread']:.2f} | {s0['confident_share']:.0%} | {s1['ratio']:.2f} ± {s1['ratio_spread']:.2f} | "
                     f"{s1['confident_share']:.0%} |")
        if r["row"] == "base":
            for key, s in r["scores"].items():
                if key.startswith("ema 0.99") and not key.startswith(f"ema {d},"):
                    lines.append(f"| base, EMA {key.split(',')[0][4:]} | EMA decay | same run | | {s['ratio']:.2f} ± {s['ratio_spread']:.2f} | "
                                 f"{s['confident_share']:.0%} | | |")
    return "\n".join(lines)


def settle(tag: str, resamples: int = 1000) -> str:
    """Every tagged row against the tagged baseline: KID(row) - KID(base) on the same x_T, paired bootstrap 95% interval."""
    from safetensors.torch import load_file

    from diffusion_course.data.encoding import from_uint8
    from diffusion_course.scoring.quality import compare_paired

    classifier, _ = load_classifier()
    rows = {p.name.split(".")[0]: json.loads(p.read_text()) for p in sorted(OUT.glob(f"*.{tag}.json"))}
    if "base" not in rows:
        raise SystemExit(f"no baseline row tagged {tag!r} in {OUT}")
    lines = ["| row | change | steps × batch | η = 0: KID [95%] | η = 0: row − base [95%] | η = 1: KID [95%] | η = 1: row − base [95%] |",
             "|---|---|---|---|---|---|---|"]
    load = lambda row, eta: from_uint8(load_file(str(SAMPLES / f"{row}.{tag}.eta{eta}.safetensors"))["samples"])  # noqa: E731
    for name in sorted(rows, key=lambda k: list(ROWS).index(k)):
        r = rows[name]
        d = r["spec"]["ema_decay"]
        cells = [f"| {name} | {'baseline' if r['change'] == 'baseline' else ', '.join(f'{k} = {v}' for k, v in r['change'].items())} | "
                 f"{r['steps']} × {r['spec']['batch_size']} |"]
        for eta in (0, 1):
            s = r["scores"][f"ema {d}, DDIM-50 eta={eta}"]
            diff = "—"
            if name != "base":
                k = compare_paired(load(name, eta), load("base", eta), classifier=classifier, resamples=resamples)
                diff = f"{k.estimate:+.4f} [{k.lo:+.4f}, {k.hi:+.4f}] {'separated' if k.excludes_zero else 'not separated'}"
            cells.append(f" {s['kid']:.4f} [{s['kid_lo']:.4f}, {s['kid_hi']:.4f}] | {diff} |")
        lines.append("".join(cells))
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", nargs="+", choices=list(ROWS), default=[])
    p.add_argument("--budget", type=float, default=210.0, help="training seconds per row")
    p.add_argument("--images", type=int, default=0, help="train each row on this many images instead (steps = images / batch)")
    p.add_argument("--n", type=int, default=256, help="samples scored per sampler")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--collect", action="store_true")
    p.add_argument("--tag", default="", help="name this set of rows (<row>.<tag>.json) and keep its samples for --settle")
    p.add_argument("--settle", action="store_true", help="paired KID differences of the tagged rows against the tagged base row")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    OUT.mkdir(parents=True, exist_ok=True)
    for name in args.rows:
        t0 = time.perf_counter()
        res = run_row(name, args.budget, args.n, args.seed, args.images, args.tag)
        res["row_seconds"] = round(time.perf_counter() - t0, 1)
        (OUT / (f"{name}.{args.tag}.json" if args.tag else f"{name}.json")).write_text(json.dumps(res, indent=1) + "\n")
    if args.settle:
        print(settle(args.tag))
    elif args.collect or not args.rows:
        print(collect())


if __name__ == "__main__":
    main()
