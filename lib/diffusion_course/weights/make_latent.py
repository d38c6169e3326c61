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

from .._internal.validate import check_positive_int, check_range
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

__all__ = ["train_autoencoder_cmd", "train_latent_unet_cmd", "evaluate_latent_cmd", "encode_posterior", "latent_scale_factor", "latent_loss_fn",
           "LATENT_SETTINGS", "LATENT_PAIRS"]


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
    check_range(scale, "scale", 0.0, float("inf"), open_low=True)
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


# The latent card's settings: (name, w or None for the null label alone, DDIM steps, spacing, samples per digit).
# The "sweep" rows repeat chapter 11's sweep exactly (DDIM 20 leading, 128 per digit), so labels-by-cross-attention
# sits beside labels-added-to-the-time-embedding; the 50-step rows sit beside the pixel U-Net's DDIM-50 card row.
LATENT_SETTINGS = (
    ("null_ddim50", None, 50, "uniform", 100),
    ("w0_ddim50", 0.0, 50, "uniform", 100),
    ("sweep_uncond", None, 20, "leading", 128),
    ("sweep_w0", 0.0, 20, "leading", 128),
    ("sweep_w1", 1.0, 20, "leading", 128),
    ("sweep_w3", 3.0, 20, "leading", 128),
)
LATENT_PAIRS = (("sweep_w1 - sweep_w0", "sweep_w1", "sweep_w0"), ("sweep_w3 - sweep_w1", "sweep_w3", "sweep_w1"),
                ("sweep_w0 - sweep_uncond", "sweep_w0", "sweep_uncond"), ("w0_ddim50 - null_ddim50", "w0_ddim50", "null_ddim50"))


def _sample_latent_setting(model, autoencoder, schedule, scale, setting, *, seed: int, batch: int, device) -> tuple[torch.Tensor, float]:
    """One setting's samples (label order, the same seeded latent x_T for every setting) and the seconds they took."""
    from ..models.latent import latent_sample

    name, w, steps, spacing, per = setting
    labels = torch.arange(10).repeat_interleave(per)
    g = torch.Generator().manual_seed(seed)
    out, t0 = [], time.perf_counter()
    for i in range(0, len(labels), batch):
        yb = labels[i : i + batch]
        x_T = torch.randn((len(yb), 4, 7, 7), generator=g).to(device)
        y = None if w is None else yb.to(device)  # no labels: the U-Net's null label for the whole batch, its unconditional half
        out.append(latent_sample(model, schedule, tuple(x_T.shape), autoencoder=autoencoder, scale_factor=scale, y=y,
                                 w=0.0 if w is None else w, steps=steps, spacing=spacing, x_T=x_T))
    return torch.cat(out), time.perf_counter() - t0


def _step_seconds(model: nn.Module, data: torch.Tensor, loss_fn, labels: torch.Tensor | None, steps: int = 20) -> float:
    """Median seconds of one optimiser step at batch 64 (after 3 warm-up steps), measured here and now."""
    opt = torch.optim.Adam(model.parameters(), 1e-4)
    g = torch.Generator().manual_seed(0)
    times = []
    for k in range(steps + 3):
        idx = torch.randint(0, len(data), (64,), generator=g)
        t0 = time.perf_counter()
        loss = loss_fn(model, data[idx], g) if labels is None else loss_fn(model, data[idx], labels[idx], g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if k >= 3:
            times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def evaluate_latent_cmd(args: argparse.Namespace) -> None:
    """Sample and score the latent U-Net (LATENT_SETTINGS), time one training step and one DDIM-50 sample of it and of the
    pixel U-Net in this process, and write it all into the latent card; ship 16 samples per digit and setting."""
    from safetensors.torch import save_file

    from ..data.encoding import to_uint8
    from ..scoring.guidance_report import guidance_report
    from ..scoring.quality import CONFIDENT, classifier_outputs, compare_paired, compare_unpaired
    from ..scoring.reference import load_classifier
    from ..training.checkpoints import read_card, replace_atomically
    from .shipped import COND_UNET_FILE, LATENT_SAMPLES_FILE, load_card_samples, load_pretrained_latent_unet, schedule_from_card

    if args.threads:
        torch.set_num_threads(args.threads)
    device = default_device()
    out = Path(args.out)
    autoencoder, ae_card = load_pretrained_autoencoder(directory=out)
    model, card = load_pretrained_latent_unet(directory=out)
    autoencoder.to(device), model.to(device)
    scale = float(ae_card["latent_scale_factor"])
    schedule = schedule_from_card(card)
    classifier, _ = load_classifier(directory=out)
    results, samples = {}, {}
    for setting in LATENT_SETTINGS:
        name, w, steps, spacing, per = setting
        x, seconds = _sample_latent_setting(model, autoencoder, schedule, scale, setting, seed=args.seed, batch=args.batch, device=device)
        labels = None if w is None else torch.arange(10).repeat_interleave(per)
        report = guidance_report(x, labels, classifier=classifier, per_class_frechet=per >= 128)
        results[name] = {"name": name, "w": w, "sampler": f"DDIM {steps} {spacing} steps, eta = 0 (no clipping in the latent)", "per_class": per,
                         "seed": args.seed, "sampling_seconds": round(seconds, 1), "threads": torch.get_num_threads(), **report}
        samples[name] = x
        print(f"{name}: KID {report['pooled']['kid']:.4f} [{report['pooled']['kid_lo']:.4f}, {report['pooled']['kid_hi']:.4f}]"
              + (f", confident & right {report['confident_correct_share']:.1%}" if w is not None else "") + f" ({seconds:.0f} s)", flush=True)
    paired = {}
    for label, a, b in LATENT_PAIRS:
        d = compare_paired(samples[a], samples[b], classifier=classifier)
        paired[label] = {"a": a, "b": b, "kid_a_minus_b": [round(v, 6) for v in d], "kid_separated": d.excludes_zero}
    # against the pixel models: different noises (4x7x7 against 1x28x28), so unpaired intervals
    pixel = load_card_samples("ddim50_eta0", directory=out)
    cond_card = read_card(out / COND_UNET_FILE)  # chapter 11's sweep: only 16 samples per digit ship, so its card's numbers
    versus = {}
    for name in ("null_ddim50", "w0_ddim50"):
        d = compare_unpaired(samples[name], pixel, classifier=classifier)
        versus[f"{name} - pixel ddim50_eta0"] = {"kid_a_minus_b": [round(v, 6) for v in d], "kid_separated": d.excludes_zero}
    for w in ("w0", "w1", "w3"):
        labels = torch.arange(10).repeat_interleave(results[f"sweep_{w}"]["per_class"])
        _, p = classifier_outputs(classifier, samples[f"sweep_{w}"])
        mine = ((p.argmax(1) == labels) & (p.max(1).values > CONFIDENT)).double()
        theirs = cond_card["guidance_sweep"]["settings"][w]["confident_correct_share"]
        versus[f"sweep_{w}: confident & right, cross-attention latent - added-label pixel (chapter 11)"] = {
            "latent": round(float(mine.mean()), 4), "pixel": theirs,
            "note": "the pixel model's per-sample values are not shipped, only its share: an interval of the difference is the "
                    "normal approximation for two independent shares (chapter 15 computes it)"}
    speed = _speed(model, autoencoder, schedule, scale, card, out, device, n=args.speed_n)
    card["quality"] = {"reference": results["null_ddim50"]["pooled"]["reference"], "settings": results, "paired": paired, "versus_pixel": versus,
                       "speed": speed, "command": "python -m diffusion_course.weights.make evaluate-latent"}
    card.pop("architecture", None)
    save_weights(model.cpu(), out / LATENT_UNET_FILE, card)
    shipped = {}
    for name, x in samples.items():
        per = results[name]["per_class"]
        shipped[name] = torch.cat([to_uint8(x[c * per : c * per + 16]) for c in range(10)]).contiguous()
    path = out / LATENT_SAMPLES_FILE
    replace_atomically(lambda tmp: save_file(shipped, str(tmp), metadata={"what": "16 latent-model samples per digit and setting, uint8"}), path)
    replace_atomically(lambda tmp: tmp.write_text(json.dumps({
        "what": "uint8 samples of the latent U-Net (0..255 = pixel values -1..1), the first 16 of each digit of every setting of its card, "
                "in label order; load with load_latent_samples", "settings": {n: results[n]["sampler"] for n in results},
        "weights": LATENT_UNET_FILE, "command": "python -m diffusion_course.weights.make evaluate-latent"}, indent=2) + "\n"), path.with_suffix(".json"))
    print(json.dumps(speed, indent=1))


def _speed(model, autoencoder, schedule, scale, card, out, device, *, n: int = 250) -> dict:
    """Training-step and sampling times of the latent and the pixel U-Net, measured one after the other in this process."""
    import copy

    from ..maths.losses import simple_loss_fn
    from ..maths.samplers import ddim_sample
    from ..models.latent import latent_sample
    from .shipped import load_pretrained_unet, schedule_from_card

    pixel, pcard = load_pretrained_unet(directory=out)
    pixel.to(device)
    x, y = mnist("train", source="subset")
    mean, logvar = encode_posterior(autoencoder, x[:512])
    post = torch.cat([mean, logvar], 1).to(device)
    pschedule = schedule_from_card(pcard).to(device)
    lat = copy.deepcopy(model).train()
    pix = copy.deepcopy(pixel).train()
    latent_step = _step_seconds(lat, post, latent_loss_fn(schedule.to(device), scale, 0.1, model.null_label), y[:512].to(device))
    pixel_step = _step_seconds(pix, x[:512].to(device), simple_loss_fn(pschedule, None), None)
    check_positive_int(n, "n", 1)
    g = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    latent_sample(model, schedule, (n, 4, 7, 7), autoencoder=autoencoder, scale_factor=scale, steps=50, spacing="uniform", generator=g)
    latent_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    with torch.no_grad():
        ddim_sample(pixel, schedule_from_card(pcard), (n, 1, 28, 28), steps=50, spacing="uniform", clip_x0=1.0, generator=g)
    pixel_s = time.perf_counter() - t0
    ae_seconds = float(card["autoencoder"].get("training_seconds") or 0.0)
    return {"threads": torch.get_num_threads(), "device": str(device),
            "training_step_seconds_batch64": {"latent": round(latent_step, 4), "pixel": round(pixel_step, 4),
                                              "pixel_over_latent": round(pixel_step / latent_step, 2)},
            "ddim50_sampling_seconds": {"samples": n, "latent_incl_decode": round(latent_s, 2), "pixel": round(pixel_s, 2),
                                               "pixel_over_latent": round(pixel_s / latent_s, 2)},
            "training_wall_clock_seconds": {"autoencoder": ae_seconds, "latent_unet": card.get("seconds"),
                                            "latent_total": round(ae_seconds + float(card.get("seconds") or 0.0), 1), "pixel_unet": pcard.get("seconds")},
            "parameters": {"latent_unet": sum(p.numel() for p in model.parameters()), "autoencoder": sum(p.numel() for p in autoencoder.parameters()),
                           "pixel_unet": sum(p.numel() for p in pixel.parameters())}}
