"""Benchmark 3: training time on one GPU until the quality score / floor of 1000-step DDPM samples reaches a target
(default 1.5), with the course's U-Net, loop and metric.

    python benchmarks/time_to_quality.py                          # CUDA; goal: <= 5 minutes on an H100
    python benchmarks/time_to_quality.py --allow-cpu --max-minutes 10 --samples 128   # a slow CPU attempt; 128 = 4 x 32 features, the least scored

Training runs in chunks of --eval-every steps (resuming the same run from its checkpoint); after each chunk the EMA
model draws --samples images with 1000 DDPM steps and is scored with metrics.quality_report. The clock counts
training only; evaluation time is reported separately. Prints a table last and writes
benchmarks/results/time_to_quality_<cpu|cuda>.json.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from common import environment, table, write_result

from diffusion_course.data.sets import mnist
from diffusion_course.maths.samplers import ddpm_sample
from diffusion_course.maths.schedules import NoiseSchedule
from diffusion_course.models.unet import UNet
from diffusion_course.scoring.quality import quality_report
from diffusion_course.training.loop import TrainConfig, train
from diffusion_course.weights.shipped import SHIPPED_UNET_CONFIG


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", type=float, default=1.5, help="quality score / floor to reach")
    parser.add_argument("--eval-every", type=int, default=1000, help="training steps between evaluations")
    parser.add_argument("--max-minutes", type=float, default=15.0, help="give up after this much training time")
    parser.add_argument("--samples", type=int, default=1000, help="images sampled per evaluation")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--allow-cpu", action="store_true", help="run even without CUDA (very slow)")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type != "cuda" and not args.allow_cpu:
        sys.exit("time_to_quality needs a CUDA GPU (pass --allow-cpu to try on the CPU anyway)")
    x, _ = mnist("train")
    schedule = NoiseSchedule.linear(1000)
    torch.manual_seed(0)
    model = UNet(SHIPPED_UNET_CONFIG).to(device)
    rows, trained_s, reached = [], 0.0, None
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = str(Path(tmp) / "run.pt")
        step = 0
        while trained_s < args.max_minutes * 60:
            step += args.eval_every
            cfg = TrainConfig(steps=step, batch_size=args.batch_size, lr=args.lr, warmup_steps=200, ema_decay=0.999, seed=0,
                              checkpoint_path=ckpt, progress=False)
            result = train(model, x, cfg, schedule=schedule)
            trained_s += result.seconds
            t0 = time.perf_counter()
            g = torch.Generator(device=device).manual_seed(1)
            with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                samples = ddpm_sample(result.ema.shadow, schedule, (args.samples, 1, 28, 28), clip_x0=1.0, generator=g)
            report = quality_report(samples.float().cpu())
            eval_s = time.perf_counter() - t0
            rows.append({"steps": step, "train_s": trained_s, "frechet": report.frechet, "floor": report.floor,
                         "ratio": report.ratio, "eval_s": eval_s})
            print(f"step {step}: {trained_s:.0f} s trained, score/floor {report.ratio:.2f} (eval {eval_s:.0f} s)", flush=True)
            if report.ratio <= args.target:
                reached = trained_s
                break
    path = write_result("time_to_quality", {"target_ratio": args.target, "samples_per_eval": args.samples, "rows": rows,
                                            "seconds_to_target": reached, "goal_s": 300})
    print()
    print(f"device {environment()['device']}; target score/floor <= {args.target} with {args.samples} samples of 1000-step DDPM")
    print(table(rows, ["steps", "train_s", "frechet", "floor", "ratio", "eval_s"]))
    print(f"\ntime to target: {'not reached' if reached is None else f'{reached:.0f} s'}; written to {path.name}")


if __name__ == "__main__":
    main()
