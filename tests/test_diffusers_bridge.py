"""The diffusers bridge: the adapter makes UNet2DModel a course model (shapes, training, sampling), and diffusers'
schedulers serve as an independent oracle for our schedules and whole sampling loops."""

from __future__ import annotations

import diffusers  # a hard dependency of the course: a missing install must fail, not skip
import pytest
import torch

from diffusion_course.maths.forward import q_sample
from diffusion_course.maths.samplers import ddim_sample, ddim_timesteps, ddpm_sample
from diffusion_course.maths.schedules import SCHEDULE_KINDS, NoiseSchedule, make_betas
from diffusion_course.models.diffusers_bridge import DIFFUSERS_BETA_SCHEDULES, DiffusersEps, diffusers_schedule_config, schedule_from_diffusers
from diffusion_course.training.loop import TrainConfig, train


def _tiny_unet(size: int = 8, seed: int = 0) -> torch.nn.Module:
    """A UNet2DModel small enough to train for a few steps in a test (built from a config, nothing downloaded)."""
    torch.manual_seed(seed)  # diffusers initialises from the global RNG
    return diffusers.UNet2DModel(
        sample_size=size, in_channels=1, out_channels=1, layers_per_block=1, block_out_channels=(8, 16),
        down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"), norm_num_groups=4,
    )


# --- the adapter ------------------------------------------------------------------------------------------------------


def test_adapter_returns_eps_of_the_input_shape(gen) -> None:
    model = DiffusersEps(_tiny_unet())
    x = torch.randn(5, 1, 8, 8, generator=gen)
    t = torch.tensor([0, 1, 10, 500, 999])
    out = model(x, t)
    assert out.shape == x.shape and out.dtype == x.dtype
    torch.testing.assert_close(out, model.unet(x, t).sample)  # the adapter adds nothing to the maths
    assert set(dict(model.named_parameters())) == {"unet." + k for k, _ in model.unet.named_parameters()}
    assert model.config["sample_size"] == 8


def test_adapter_accepts_modules_returning_tensors_or_tuples(gen) -> None:
    class Plain(torch.nn.Module):
        def forward(self, x, t):
            return 2 * x

    class Tuple(torch.nn.Module):
        def forward(self, x, t):
            return (3 * x,)

    x = torch.randn(2, 4, generator=gen)
    t = torch.tensor([1, 2])
    torch.testing.assert_close(DiffusersEps(Plain())(x, t), 2 * x)
    torch.testing.assert_close(DiffusersEps(Tuple())(x, t), 3 * x)


def test_adapter_rejects_bad_inputs(gen) -> None:
    model = DiffusersEps(_tiny_unet())
    x = torch.randn(2, 1, 8, 8, generator=gen)
    with pytest.raises(ValueError, match="t must be a tensor of shape"):
        model(x, torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="integer timesteps"):
        model(x, torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match="torch.nn.Module"):
        DiffusersEps(lambda x, t: x)

    class Wrong(torch.nn.Module):
        def forward(self, x, t):
            return x[:, :, :4]

    with pytest.raises(ValueError, match="output must have the same shape"):
        DiffusersEps(Wrong())(x, torch.tensor([1, 2]))


def test_our_training_loop_trains_their_unet() -> None:
    from diffusion_course.data.sets import digits

    images, _ = digits()  # (1797, 1, 8, 8) in [-1, 1]
    model = DiffusersEps(_tiny_unet())
    schedule = NoiseSchedule.linear(1000)
    cfg = TrainConfig(steps=24, batch_size=16, lr=2e-3, ema_decay=0.9, progress=False, seed=0)
    result = train(model, images, cfg, schedule=schedule)
    assert len(result.losses) == 24
    assert all(torch.isfinite(torch.tensor(result.losses)))
    first, last = sum(result.losses[:8]) / 8, sum(result.losses[-8:]) / 8
    assert last < 0.8 * first  # it learns: the eps-MSE drops from the untrained level (about 0.75 -> 0.4 here)
    assert isinstance(result.ema.shadow, DiffusersEps)
    x = ddim_sample(result.ema.shadow, schedule, (3, 1, 8, 8), steps=5, generator=torch.Generator().manual_seed(0))
    assert x.shape == (3, 1, 8, 8) and torch.isfinite(x).all()


# --- schedules and the forward process against diffusers --------------------------------------------------------------


@pytest.mark.parametrize("kind", SCHEDULE_KINDS)
def test_schedule_config_gives_diffusers_the_same_betas(kind: str) -> None:
    cfg = diffusers_schedule_config(kind, 1000)
    assert cfg["beta_schedule"] == DIFFUSERS_BETA_SCHEDULES[kind]
    theirs = diffusers.DDPMScheduler(**cfg)
    ours = NoiseSchedule.from_betas(make_betas(kind, 1000))
    torch.testing.assert_close(ours.beta, theirs.betas.float(), rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(ours.alpha_bar, theirs.alphas_cumprod.float(), rtol=2e-4, atol=1e-7)
    # and back: their betas as our schedule agree with their own alpha_bar to float32 precision
    back = schedule_from_diffusers(theirs)
    torch.testing.assert_close(back.alpha_bar, theirs.alphas_cumprod.float(), rtol=1e-5, atol=1e-8)


def test_schedule_helpers_reject_bad_inputs() -> None:
    with pytest.raises(ValueError, match="kind must be one of"):
        diffusers_schedule_config("exponential")
    with pytest.raises(ValueError, match="T must"):
        diffusers_schedule_config("linear", 0)
    with pytest.raises(ValueError, match="betas"):
        schedule_from_diffusers(object())


def test_q_sample_matches_add_noise(gen) -> None:
    theirs = diffusers.DDPMScheduler(**diffusers_schedule_config("cosine", 1000))
    ours = schedule_from_diffusers(theirs)
    x0 = torch.rand(6, 1, 8, 8, generator=gen) * 2 - 1
    eps = torch.randn(6, 1, 8, 8, generator=gen)
    t = torch.tensor([0, 1, 250, 500, 998, 999])
    torch.testing.assert_close(q_sample(ours, x0, t, eps=eps), theirs.add_noise(x0, eps, t), rtol=1e-5, atol=1e-5)  # float32 cumprod


# --- whole sampling loops through the adapter -------------------------------------------------------------------------


def test_ddpm_sample_matches_a_diffusers_ddpm_loop() -> None:
    T = 50
    sched = diffusers.DDPMScheduler(**diffusers_schedule_config("linear", T, 1e-3, 0.2), clip_sample=False, variance_type="fixed_small")
    ours = schedule_from_diffusers(sched)
    model = DiffusersEps(_tiny_unet()).eval()
    x_T = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    got = ddpm_sample(model, ours, x_T.shape, variance="posterior", x_T=x_T, generator=torch.Generator().manual_seed(7))
    g = torch.Generator().manual_seed(7)
    x = x_T.clone()
    with torch.no_grad():
        for t in sched.timesteps:  # T-1, ..., 0
            eps_hat = model.unet(x, t).sample
            x = sched.step(eps_hat, t, x, generator=g).prev_sample
    torch.testing.assert_close(got, x, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("spacing,eta", [("trailing", 0.0), ("leading", 0.0), ("trailing", 0.7)])
def test_ddim_sample_matches_a_diffusers_ddim_loop(spacing: str, eta: float) -> None:
    T, S = 100, 10  # S divides T, so diffusers' fixed stride T // S agrees with the kept timesteps
    sched = diffusers.DDIMScheduler(**diffusers_schedule_config("linear", T, 1e-3, 0.2), clip_sample=False,
                                    set_alpha_to_one=True, timestep_spacing=spacing)
    sched.set_timesteps(S)
    assert sched.timesteps.flip(0).tolist() == ddim_timesteps(T, S, spacing).tolist()
    ours = schedule_from_diffusers(sched)
    model = DiffusersEps(_tiny_unet()).eval()
    x_T = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    got = ddim_sample(model, ours, x_T.shape, steps=S, eta=eta, spacing=spacing, x_T=x_T, generator=torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    x = x_T.clone()
    with torch.no_grad():
        for t in sched.timesteps:
            eps_hat = model.unet(x, t).sample
            noise = torch.randn(x.shape, generator=g) if eta > 0 else None
            x = sched.step(eps_hat, t, x, eta=eta, variance_noise=noise).prev_sample
    torch.testing.assert_close(got, x, rtol=1e-4, atol=1e-4)
