"""A training run that really learns: the MLP noise predictor on the swiss roll, trained on the CPU with L_simple
(Ho et al. 2020, Algorithm 1), sampled with Algorithm 2, and scored against fresh data beside the data-vs-data floor.

Run with ``-s`` to see the numbers."""

from __future__ import annotations

import pytest
import torch

from diffusion_course.data.sets import swiss_roll
from diffusion_course.maths.samplers import ddpm_sample
from diffusion_course.maths.schedules import NoiseSchedule
from diffusion_course.models.mlp import MLPConfig, MLPDenoiser
from diffusion_course.scoring.distances import sliced_wasserstein
from diffusion_course.scoring.quality import toy_2d_reference_and_floor
from diffusion_course.training.loop import TrainConfig, train

N_SAMPLES = 2_000
CONFIG = dict(steps=3000, batch_size=256, lr=1e-3, warmup_steps=100, lr_schedule="cosine", ema_decay=0.995, progress=False)


@pytest.fixture(scope="module")
def trained():
    """One training run shared by the tests of this module (the expensive part, ~15-30 s on one CPU thread)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # small tensors: one thread is as fast and immune to a busy machine
    try:
        torch.manual_seed(0)  # model initialisation
        model = MLPDenoiser(MLPConfig(hidden=128))
        schedule = NoiseSchedule.linear(1000)
        data = swiss_roll(20_000, seed=0)
        result = train(model, data, TrainConfig(**CONFIG, seed=0), schedule=schedule)
        yield model, schedule, result
    finally:
        torch.set_num_threads(before)


def test_samples_reach_the_data_floor(trained, one_thread) -> None:
    model, schedule, result = trained
    ema = result.ema.shadow
    samples = ddpm_sample(ema, schedule, (N_SAMPLES, 2), generator=torch.Generator().manual_seed(1))
    # the floor: the same distance between the reference draw and 8 further fresh draws of the same size, averaged
    # (a single pair swings by about 2x at this n)
    fresh_a, sw_floor, floor_lo, floor_hi = toy_2d_reference_and_floor("swiss_roll", N_SAMPLES, draws=8)
    sw_model = sliced_wasserstein(samples, fresh_a)
    noise = torch.randn(N_SAMPLES, 2, generator=torch.Generator().manual_seed(3))
    sw_noise = sliced_wasserstein(noise, fresh_a)  # what an untrained sampler would score
    print(
        f"\nswiss roll, {N_SAMPLES} DDPM samples: sliced W2 {sw_model:.4f} vs data-vs-data floor {sw_floor:.4f} "
        f"(range {floor_lo:.4f}-{floor_hi:.4f} over 8 draws) "
        f"(ratio {sw_model / sw_floor:.2f}; pure noise scores {sw_noise:.4f}); training {result.seconds:.1f} s, "
        f"final loss {sum(result.losses[-100:]) / 100:.4f}"
    )
    assert torch.isfinite(samples).all()
    assert sw_model < 2 * sw_floor
    assert sw_noise > 4 * sw_floor  # the metric can tell noise from data at this sample size


def test_loss_went_down(trained) -> None:
    _, _, result = trained
    first, last = sum(result.losses[:100]) / 100, sum(result.losses[-100:]) / 100
    assert len(result.losses) == CONFIG["steps"]
    assert last < 0.75 * first, (first, last)


def test_same_seed_same_samples(trained, one_thread) -> None:
    _, schedule, result = trained
    a = ddpm_sample(result.ema.shadow, schedule, (64, 2), generator=torch.Generator().manual_seed(5))
    b = ddpm_sample(result.ema.shadow, schedule, (64, 2), generator=torch.Generator().manual_seed(5))
    c = ddpm_sample(result.ema.shadow, schedule, (64, 2), generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_same_seed_same_training(one_thread) -> None:
    """Two short trainings with the same seeds give bitwise-identical losses and weights."""
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        model = MLPDenoiser(MLPConfig(hidden=32, depth=2))
        cfg = TrainConfig(**{**CONFIG, "steps": 150, "warmup_steps": 10}, seed=4)
        result = train(model, swiss_roll(1_000, seed=0), cfg, schedule=NoiseSchedule.linear(1000))
        runs.append((result.losses, model.state_dict()))
    assert runs[0][0] == runs[1][0]
    for k in runs[0][1]:
        assert torch.equal(runs[0][1][k], runs[1][1][k]), k


def test_toy_2d_floor_is_the_mean_of_fresh_draws() -> None:
    from diffusion_course.data.sets import toy_2d
    from diffusion_course.scoring.distances import sliced_wasserstein
    from diffusion_course.scoring.quality import toy_2d_reference_and_floor

    reference, mean, lo, hi = toy_2d_reference_and_floor("moons", 300, draws=3)
    d = [sliced_wasserstein(toy_2d("moons", 300, seed=2 + k), reference) for k in range(3)]
    assert torch.equal(reference, toy_2d("moons", 300, seed=1))
    assert abs(mean - sum(d) / 3) < 1e-12 and lo == min(d) and hi == max(d) and lo <= mean <= hi
