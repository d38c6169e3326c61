"""Step time: one sampler step and one training step of the shipped MNIST U-Net, at batch 1 and 64.

    python benchmarks/step_time.py               # 1 thread (the default)
    python benchmarks/step_time.py --threads 2

A sampler step is a 10-step ``ddim_sample`` divided by 10; a training step is ``train()`` of 12 steps on 512 MNIST
training images (the whole call, its one-off checks included) divided by 12. Each number is the minimum over 3
repeats. Prints a table last and writes benchmarks/results/step_time.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch
from common import RESULTS, environment, sync, table

from diffusion_course import TrainConfig, ddim_sample, load_pretrained_unet, mnist, schedule_from_card, train


def sampler_step(model: torch.nn.Module, schedule, batch: int, steps: int = 10) -> float:
    """Seconds per step of a ``steps``-step DDIM run (eta = 0) from fresh noise."""
    device = next(model.parameters()).device
    t0 = time.perf_counter()
    ddim_sample(model, schedule, (batch, 1, 28, 28), steps=steps, generator=torch.Generator().manual_seed(0))
    sync(device)
    return (time.perf_counter() - t0) / steps


def train_step(model: torch.nn.Module, schedule, data: torch.Tensor, batch: int, seed: int, steps: int = 12) -> tuple[float, float]:
    """Seconds per step of ``train()`` on a copy of ``model``: (the whole call / steps, the loop alone / steps)."""
    fresh = copy.deepcopy(model)
    config = TrainConfig(steps=steps, batch_size=batch, lr=1e-4, ema_decay=0.999, progress=False, seed=seed)
    t0 = time.perf_counter()
    result = train(fresh, data, config, schedule=schedule)
    sync(next(model.parameters()).device)
    return (time.perf_counter() - t0) / steps, result.seconds / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--repeats", type=int, default=3, help="the minimum over this many runs is reported")
    parser.add_argument("--out", type=Path, default=RESULTS / "step_time.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model, card = load_pretrained_unet()
    schedule = schedule_from_card(card)
    data = mnist("train", download=False)[0][:512]  # the full set if it is on disk, else the offline subset
    rows = []
    for b in args.batches:
        sample = min(sampler_step(model, schedule, b) for _ in range(args.repeats))
        trains = [train_step(model, schedule, data, b, seed=rep) for rep in range(args.repeats)]
        rows.append({
            "batch": b,
            "sampler_step_ms": 1e3 * sample,
            "train_step_ms": 1e3 * min(whole for whole, _ in trains),
            "train_loop_step_ms": 1e3 * min(loop for _, loop in trains),
        })
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "environment": environment(),
        "threads": args.threads,
        "method": "sampler: ddim_sample 10 steps / 10; train: train(TrainConfig(steps=12, batch_size=b, lr=1e-4, ema_decay=0.999, "
                  "progress=False, seed=rep)) on 512 MNIST training images / 12 (train_loop_step_ms: TrainResult.seconds / 12); "
                  f"min over {args.repeats} repeats",
        "rows": rows,
    }
    args.out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"step time of the shipped U-Net, {args.threads} thread(s), min of {args.repeats} (ms)")
    print(table(rows, ["batch", "sampler_step_ms", "train_step_ms", "train_loop_step_ms"]))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
