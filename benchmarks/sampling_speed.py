"""Benchmark 2: sampling speed. 1000-step DDPM against DDIM at 10/20/50/100 steps, for one batch of MNIST-sized
images, with the course U-Net (shipped weights when present) and, for scale, one step of diffusers' UNet2DModel of
matched size.

    python benchmarks/sampling_speed.py                 # CUDA: batch 1000, bf16 autocast
    python benchmarks/sampling_speed.py --batch 16      # a CPU-sized run

Prints a table last and writes benchmarks/results/sampling_speed_<cpu|cuda>.json. Goals (on one H100): the 50-step
DDIM speed-up over 1000-step DDPM >= 15x; <= 10 ms per denoising step for a batch of 1,000.
"""

from __future__ import annotations

import argparse
import time

import torch
from common import environment, median_time, sync, table, write_result
from train_throughput import ours, theirs

from diffusion_course.maths.samplers import ddim_sample, ddpm_sample
from diffusion_course.maths.schedules import NoiseSchedule


def load_model(width: int, device: torch.device) -> tuple[torch.nn.Module, str]:
    """The shipped MNIST U-Net when it loads, else a randomly initialised one of the same size (speed is the same)."""
    try:
        from diffusion_course.weights.shipped import load_pretrained_unet

        model, _ = load_pretrained_unet()
        return model.to(device).eval(), "shipped weights"
    except Exception as err:  # no weights yet: timing does not depend on the values
        print(f"shipped weights unavailable ({type(err).__name__}); timing a randomly initialised U-Net")
        return ours(width).to(device).eval(), "random init"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=None, help="images per batch (default 1000 on CUDA, 16 on CPU)")
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--ddpm-steps", type=int, default=1000, help="run the DDPM row with this many of its steps, timed, "
                        "then scaled to 1000 (use fewer on a CPU)")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    batch = args.batch or (1000 if device.type == "cuda" else 16)
    schedule = NoiseSchedule.linear(1000)
    model, weights = load_model(args.width, device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    shape = (batch, 1, 28, 28)
    rows = []

    def timed(fn) -> float:
        sync(device)
        t0 = time.perf_counter()
        with torch.no_grad(), autocast:
            fn()
        sync(device)
        return time.perf_counter() - t0

    gen = lambda: torch.Generator(device=device).manual_seed(0)  # noqa: E731
    timed(lambda: ddim_sample(model, schedule, shape, steps=5, generator=gen()))  # warm-up (kernels, allocator)
    if args.ddpm_steps >= 1000:
        seconds = timed(lambda: ddpm_sample(model, schedule, shape, generator=gen()))
        measured = 1000
    else:  # time a prefix of the chain with the same per-step work, then scale
        prefix = NoiseSchedule.from_betas(schedule.beta.double()[: args.ddpm_steps])
        seconds = timed(lambda: ddpm_sample(model, prefix, shape, generator=gen())) * 1000 / args.ddpm_steps
        measured = args.ddpm_steps
    rows.append({"sampler": "DDPM", "steps": 1000, "seconds": seconds, "ms_per_step": seconds / 1000 * 1000, "img_s": batch / seconds,
                 "speedup_vs_ddpm": 1.0, "note": f"{measured} steps timed" + ("" if measured == 1000 else ", scaled to 1000")})
    ddpm_s = seconds
    for steps in (10, 20, 50, 100):
        seconds = min(timed(lambda: ddim_sample(model, schedule, shape, steps=steps, generator=gen())) for _ in range(2))
        rows.append({"sampler": "DDIM", "steps": steps, "seconds": seconds, "ms_per_step": seconds / steps * 1000,
                     "img_s": batch / seconds, "speedup_vs_ddpm": ddpm_s / seconds, "note": ""})

    # One denoising step of diffusers' UNet2DModel of matched size, for scale.
    ref = theirs(args.width).to(device).eval()
    x = torch.randn(shape, device=device)
    t = torch.full((batch,), 500, device=device, dtype=torch.long)
    matched = ours(args.width).to(device).eval()  # same parameter count as ``ref``
    if device.type == "cuda":
        ref, matched = ref.to(memory_format=torch.channels_last), matched.to(memory_format=torch.channels_last)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    with torch.no_grad(), autocast:
        ours_ms = median_time(lambda: model(x, t), device) * 1000
        matched_ms = median_time(lambda: matched(x, t), device) * 1000
        theirs_ms = median_time(lambda: ref(x, t).sample, device) * 1000
    path = write_result("sampling_speed", {"batch": batch, "weights": weights, "rows": rows,
                                           "forward_ms": {"ours_sampled_model": ours_ms, "ours_matched": matched_ms, "diffusers_matched": theirs_ms},
                                           "params": {"ours_sampled_model": count(model), "ours_matched": count(matched),
                                                      "diffusers_matched": count(ref)},
                                           "goals": {"ddim50_speedup": 15, "ms_per_step_batch1000_h100": 10}})
    print()
    print(f"batch {batch}, {weights}, device {environment()['device']}")
    print(table(rows, ["sampler", "steps", "seconds", "ms_per_step", "img_s", "speedup_vs_ddpm", "note"]))
    print(f"\none denoising step (model forward), batch {batch}: sampled model ({count(model):,} parameters) {ours_ms:.1f} ms; "
          f"at matched size ({count(ref):,} parameters) ours {matched_ms:.1f} ms, diffusers UNet2DModel {theirs_ms:.1f} ms")
    print(f"written to {path.name}")


if __name__ == "__main__":
    main()
