"""Benchmark 1c: the bare training step of the shipped U-Net on the CPU, per variant (fp32, bf16 autocast,
torch.compile, compile + bf16), for one thread count and batch size. The same arithmetic as train()'s loss
(q_sample, the U-Net, MSE, backward, Adam) without the loop around it. Prints one line per variant.

    python benchmarks/cpu_step_variants.py 2 128 fp32,bf16,compile,compile_bf16    # threads, batch, variants
"""
import sys
import time

import torch

from diffusion_course.data.sets import mnist
from diffusion_course.maths.forward import q_sample
from diffusion_course.maths.schedules import NoiseSchedule, make_betas
from diffusion_course.models.unet import UNet
from diffusion_course.weights.shipped import SHIPPED_UNET_CONFIG

threads, batch, variants = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3].split(",")
torch.set_num_threads(threads)
x, _ = mnist("train")
sched = NoiseSchedule.from_betas(make_betas("linear", 1000, 1e-4, 0.02))
for v in variants:
    torch.manual_seed(0)
    m = UNet(SHIPPED_UNET_CONFIG)
    if "cl" in v:
        m = m.to(memory_format=torch.channels_last)
    f = torch.compile(m) if "compile" in v else m
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    bf = "bf16" in v
    g = torch.Generator().manual_seed(0)

    def step():
        idx = torch.randint(0, len(x), (batch,), generator=g)
        x0 = x[idx]
        t = torch.randint(0, 1000, (batch,), generator=g)
        eps = torch.randn(x0.shape, generator=g)
        xt = q_sample(sched, x0, t, eps=eps)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf):
            out = f(xt, t)
        loss = ((out.float() - eps) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.detach()

    t0 = time.perf_counter()
    for _ in range(3):
        step()
    warm = time.perf_counter() - t0
    n = max(5, 2048 // batch)
    t0 = time.perf_counter()
    for _ in range(n):
        last = step()
    dt = time.perf_counter() - t0
    print(f"{v:20s} threads={threads} batch={batch}: {n * batch / dt:7.1f} img/s  (warm-up {warm:.1f}s) loss {float(last):.3f}", flush=True)
