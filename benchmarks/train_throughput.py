"""Benchmark 1: training throughput (images/s) of our U-Net and of diffusers' UNet2DModel at matched parameter
count, same batch, same data, in one run.

    python benchmarks/train_throughput.py                       # CUDA: fp32, bf16, bf16+channels_last, +compile
    python benchmarks/train_throughput.py --batch 64 --variants fp32 channels_last    # a CPU-sized run

Prints a table last and writes benchmarks/results/train_throughput_<cpu|cuda>.json. On CUDA it also reports the
achieved TFLOP/s (FLOPs counted with torch.utils.flop_counter) as a fraction of the GPU's dense bf16 matrix peak.
"""

from __future__ import annotations

import argparse
import copy
import math
import time

import torch
from common import environment, median_time, table, write_result
from torch.utils.flop_counter import FlopCounterMode

from diffusion_course.data.sets import mnist
from diffusion_course.maths.schedules import NoiseSchedule
from diffusion_course.models.unet import UNet, UNetConfig

# Dense bf16 tensor-core peaks (no sparsity), from the vendors' data sheets.
BF16_PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L4": 121.0, "A10": 125.0}
VARIANTS = ("fp32", "bf16", "channels_last", "compile")


def bf16_peak(name: str) -> float | None:
    """Peak dense bf16 TFLOP/s of a GPU named ``name`` (None when unknown or on a CPU)."""
    for key, value in BF16_PEAK_TFLOPS.items():
        if key in name:
            return value
    return None


def ours(width: int) -> torch.nn.Module:
    """The course U-Net: levels (w, 2w, 2w), two blocks per level, attention at 14x14, 7x7 and in the middle."""
    return UNet(UNetConfig(base_channels=width, channel_mults=(1, 2, 2), attention_levels=(1, 2), dropout=0.0))


def theirs(width: int) -> torch.nn.Module:
    """diffusers' UNet2DModel of the same shape: block_out_channels (w, 2w, 2w), attention in the two lower levels."""
    from diffusers import UNet2DModel

    return UNet2DModel(
        sample_size=28, in_channels=1, out_channels=1, layers_per_block=2, block_out_channels=(width, 2 * width, 2 * width),
        down_block_types=("DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"), norm_num_groups=8,
    )


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def make_step(model: torch.nn.Module, is_diffusers: bool, variant: str, data: torch.Tensor, batch: int, schedule: NoiseSchedule,
              device: torch.device):
    """One Algorithm-1 training step (forward, L_simple, backward, Adam) as a closure, in the given variant."""
    model = model.to(device).train()
    if variant in ("channels_last", "compile"):
        model = model.to(memory_format=torch.channels_last)
    forward = (lambda x, t: model(x, t).sample) if is_diffusers else model
    if variant == "compile":
        forward = torch.compile(forward)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    use_bf16 = variant != "fp32" and device.type == "cuda"
    sched = schedule.to(device)
    g = torch.Generator(device=device).manual_seed(0)
    x0 = data[:batch].to(device)
    if variant in ("channels_last", "compile"):
        x0 = x0.contiguous(memory_format=torch.channels_last)

    def step() -> torch.Tensor:
        t = torch.randint(0, sched.T, (batch,), device=device, generator=g)
        eps = torch.randn(x0.shape, device=device, generator=g)
        ab = sched.alpha_bar[t].view(-1, 1, 1, 1)
        x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            loss = torch.mean((forward(x_t, t).float() - eps) ** 2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    return step


def shipped_pair() -> tuple[torch.nn.Module, torch.nn.Module]:
    """The shipped U-Net (SHIPPED_UNET_CONFIG) and diffusers' UNet2DModel of the same shape (widths 16/32/64, one block
    per level, attention at 7x7, scale-shift time conditioning), wrapped to take (x_t, t) and return eps_hat."""
    from diffusers import UNet2DModel

    from diffusion_course.models.diffusers_bridge import DiffusersEps
    from diffusion_course.weights.shipped import SHIPPED_UNET_CONFIG

    torch.manual_seed(0)
    mine = UNet(SHIPPED_UNET_CONFIG)
    theirs_ = UNet2DModel(
        sample_size=28, in_channels=1, out_channels=1, layers_per_block=1, block_out_channels=(16, 32, 64),
        down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
        norm_num_groups=8, resnet_time_scale_shift="scale_shift",
    )
    return mine, DiffusersEps(theirs_)


LOOP_VARIANTS = {"fp32": {}, "bf16": {"amp": "bf16"}, "compile": {"compile": True}}


def time_train_loop(variants: list[str], batch: int, steps: int, threads: int) -> list[dict]:
    """Images per second through the real diffusion_course.train() (data sampling, L_simple, backward, clip,
    Adam, EMA, progress bookkeeping), ours vs diffusers at the shipped configuration. One run per model and variant;
    the clock reads the on_step hook's timestamps from step 5 on, so start-up and compilation are excluded."""
    from diffusion_course.training.loop import TrainConfig, train

    torch.set_num_threads(threads)
    data, _ = mnist("train")
    schedule = NoiseSchedule.linear(1000)
    rows = []
    for variant in variants:
        row = {"variant": variant, "batch": batch, "threads": threads, "loop": "train()"}
        for label, model in zip(("ours", "diffusers"), shipped_pair()):
            stamps: list[float] = []
            cfg = TrainConfig(steps=5 + steps, batch_size=batch, lr=2e-3, warmup_steps=0, progress=False, **LOOP_VARIANTS[variant])
            train(copy.deepcopy(model), data, cfg, schedule=schedule, on_step=lambda step, m: stamps.append(time.perf_counter()))
            seconds = (stamps[-1] - stamps[4]) / steps
            row[f"{label}_params"] = n_params(model)
            row[f"{label}_img_s"] = batch / seconds
            print(f"train() {variant:>8} {label:>9} batch {batch} threads {threads}: {batch / seconds:7.1f} img/s", flush=True)
        row["ratio_ours_over_theirs"] = row["ours_img_s"] / row["diffusers_img_s"]
        rows.append(row)
    return rows


def count_flops(step) -> int:
    """FLOPs of one training step (forward + backward), counted by torch's dispatcher-level counter."""
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=None, help="batch size (default 256 on CUDA, 32 on CPU)")
    parser.add_argument("--width", type=int, default=32, help="base width of both U-Nets")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=None)
    parser.add_argument("--repeats", type=int, default=None, help="timed steps per measurement (median is reported)")
    parser.add_argument("--loop", action="store_true", help="time the real train() loop at the shipped configuration instead")
    parser.add_argument("--loop-variants", nargs="+", choices=list(LOOP_VARIANTS), default=list(LOOP_VARIANTS))
    parser.add_argument("--loop-steps", type=int, default=30)
    parser.add_argument("--threads", type=int, nargs="+", default=[torch.get_num_threads()])
    parser.add_argument("--loop-batches", type=int, nargs="+", default=None,
                        help="batch sizes for the fp32 loop rows (all variants run at --batch, default 128)")
    args = parser.parse_args()
    if args.loop:
        rows = [r for th in args.threads for b in (args.loop_batches or [args.batch or 128])
                for r in time_train_loop(args.loop_variants if b == (args.batch or 128) else ["fp32"], b, args.loop_steps, th)]
        path = write_result("train_loop_throughput", {"config": "SHIPPED_UNET_CONFIG vs matched UNet2DModel", "rows": rows})
        print(table(rows, ["variant", "batch", "threads", "ours_params", "diffusers_params", "ours_img_s", "diffusers_img_s", "ratio_ours_over_theirs"]))
        print(f"\nwritten to {path.name}")
        return
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    batch = args.batch or (256 if device.type == "cuda" else 32)
    variants = args.variants or (list(VARIANTS) if device.type == "cuda" else ["fp32", "channels_last"])
    repeats = args.repeats or (20 if device.type == "cuda" else 5)
    data, _ = mnist("train")
    schedule = NoiseSchedule.linear(1000)
    env = environment()
    peak = bf16_peak(env["device"]) if device.type == "cuda" else None
    rows = []
    for variant in variants:
        result = {"variant": variant}
        for label, build, is_diffusers in (("ours", ours, False), ("diffusers", theirs, True)):
            torch.manual_seed(0)
            model = build(args.width)
            step = make_step(model, is_diffusers, variant, data, batch, schedule, device)
            seconds = median_time(step, device, warmup=3 if variant == "compile" else 2, repeats=repeats)
            flops = count_flops(step) if variant != "compile" else None
            result[f"{label}_params"] = n_params(model)
            result[f"{label}_img_s"] = batch / seconds
            result[f"{label}_ms_step"] = seconds * 1000
            if flops is not None:
                result[f"{label}_tflops"] = flops / seconds / 1e12
                result[f"{label}_peak_frac"] = (flops / seconds / 1e12 / peak) if peak else None
            print(f"{variant:>14} {label:>9}: {batch / seconds:9.1f} img/s ({seconds * 1000:.1f} ms/step)", flush=True)
        result["ratio_ours_over_theirs"] = result["ours_img_s"] / result["diffusers_img_s"]
        rows.append(result)
    path = write_result("train_throughput", {"batch": batch, "width": args.width, "bf16_peak_tflops": peak, "rows": rows,
                                             "goal": "ours >= 2x diffusers at matched parameters and batch"})
    print()
    print(f"batch {batch}, base width {args.width}, device {env['device']}")
    print(table(rows, ["variant", "ours_params", "diffusers_params", "ours_img_s", "diffusers_img_s", "ratio_ours_over_theirs",
                       "ours_tflops", "ours_peak_frac"]))
    print(f"\nwritten to {path.name}")
    assert all(math.isfinite(r["ours_img_s"]) for r in rows)


if __name__ == "__main__":
    main()
