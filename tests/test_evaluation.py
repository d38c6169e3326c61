"""Respaced DDPM (sigma-hat sampler) and the DDIM Table-1 runner, on exact closed-form noise predictors."""

from __future__ import annotations

import math

import pytest
import torch

from diffusion_course.maths.respacing import RespacedModel, ddpm_sample_respaced, respaced_schedule
from diffusion_course.maths.samplers import ddim_sample, ddim_step, ddim_timesteps, ddpm_sample, ddpm_step
from diffusion_course.maths.schedules import NoiseSchedule
from diffusion_course.scoring.comparisons import SIGMA_HAT, ddim_table, sample_in_batches
from diffusion_course.scoring.distances import sliced_wasserstein

# --- respacing ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("spacing", ["uniform", "quadratic", "trailing", "leading"])
def test_respaced_schedule_keeps_alpha_bar_at_the_kept_steps(ddpm_schedule, spacing: str) -> None:
    ts = ddim_timesteps(1000, 20, spacing)
    r = respaced_schedule(ddpm_schedule, ts)
    assert r.T == 20
    torch.testing.assert_close(r.alpha_bar, ddpm_schedule.alpha_bar[ts], rtol=1e-5, atol=1e-9)
    assert bool((r.beta > 0).all()) and bool((r.beta < 1).all())


def test_respacing_every_step_is_the_identity(ddpm_schedule) -> None:
    r = respaced_schedule(ddpm_schedule, torch.arange(1000))
    torch.testing.assert_close(r.beta, ddpm_schedule.beta, rtol=1e-6, atol=0.0)
    torch.testing.assert_close(r.posterior_variance, ddpm_schedule.posterior_variance, rtol=1e-5, atol=0.0)


def test_respaced_ddpm_with_all_steps_is_ddpm(ddpm_schedule, gaussian_eps_model) -> None:
    sched = NoiseSchedule.linear(100, 1e-3, 0.2)
    model = gaussian_eps_model(sched, torch.tensor([0.5, -1.0]), 0.3)
    a = ddpm_sample(model, sched, (64, 2), generator=torch.Generator().manual_seed(1))
    b = ddpm_sample_respaced(model, sched, (64, 2), steps=100, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_respaced_posterior_step_equals_ddim_eta_1(ddpm_schedule, gen) -> None:
    # one respaced DDPM step with the posterior variance is the DDIM step with eta = 1 between the same kept steps
    ts = ddim_timesteps(1000, 25, "uniform")
    r = respaced_schedule(ddpm_schedule, ts)
    x = torch.randn(8, 3, generator=gen)
    eps_hat = torch.randn(8, 3, generator=gen)
    z = torch.randn(8, 3, generator=gen)
    for k in (24, 12, 1):
        a = ddpm_step(r, x, k, eps_hat, variance="posterior", noise=z)
        b = ddim_step(ddpm_schedule, x, int(ts[k]), int(ts[k - 1]), eps_hat, eta=1.0, noise=z)
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    # the last step goes to the clean data (t_prev = -1) and adds no noise in either
    torch.testing.assert_close(ddpm_step(r, x, 0, eps_hat, noise=z), ddim_step(ddpm_schedule, x, int(ts[0]), -1, eps_hat, eta=1.0, noise=z),
                               rtol=1e-4, atol=1e-5)


def test_respaced_model_maps_indices_to_original_timesteps() -> None:
    seen = []

    def model(x, t):
        seen.append(t.clone())
        return torch.zeros_like(x)

    wrapped = RespacedModel(model, torch.tensor([0, 10, 50]))
    wrapped(torch.zeros(2, 2), torch.tensor([2, 0]))
    assert seen[0].tolist() == [50, 0]


def test_respaced_schedule_rejects_bad_timesteps(ddpm_schedule) -> None:
    with pytest.raises(ValueError, match="strictly increasing"):
        respaced_schedule(ddpm_schedule, [0, 5, 5])
    with pytest.raises(ValueError, match=r"\[0, 999\]"):
        respaced_schedule(ddpm_schedule, [0, 1000])
    with pytest.raises(ValueError, match="integer"):
        respaced_schedule(ddpm_schedule, [0.0, 1.0])


# --- the table runner -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gaussian_setup(gaussian_eps_model):
    """2-D data x_0 ~ N(m, s^2 I), its exact noise predictor, and a sliced-Wasserstein score against fresh data."""
    sched = NoiseSchedule.linear(200, 1e-4 * 5, 0.02 * 5)
    m, s = torch.tensor([1.0, -0.5]), 0.4
    model = gaussian_eps_model(sched, m, s)
    g = torch.Generator().manual_seed(99)
    ref = m + s * torch.randn(800, 2, generator=g)
    other = m + s * torch.randn(800, 2, generator=g)
    floor = sliced_wasserstein(ref, other)
    return sched, model, ref, floor


def test_table_runner_fills_every_cell(gaussian_setup) -> None:
    sched, model, ref, floor = gaussian_setup
    table = ddim_table(model, sched, (2,), score_fn=lambda x: sliced_wasserstein(x, ref), floor=floor, etas=(0.0, 1.0),
                       steps=(5, 50), n_samples=800, batch_size=300, progress=False)
    assert table.rows == ["eta=0", "eta=1", SIGMA_HAT]
    assert table.steps == [5, 50]
    assert len(table.cells) == 6
    for cell in table.cells.values():
        assert math.isfinite(cell.score) and cell.seconds >= 0
        assert cell.ratio == pytest.approx(cell.score / floor)
    # with the exact model and 50 steps every sampler is close to the data: within a few floors
    for row in table.rows:
        assert table.ratio(row, 50) < 3.0, (row, table.ratio(row, 50))
    md = table.to_markdown()
    assert md.count("\n") == 2 + len(table.rows)  # header, separator, rows, seconds row
    assert "S=50" in md and "σ̂" in md
    assert table.as_dict()["floor"] == floor


def test_table_cells_reuse_the_same_x_T(gaussian_setup) -> None:
    # eta = 0 is deterministic given x_T; the table draws the same x_T for every cell, so its eta=0 cell is exactly
    # what ddim_sample gives from the seed's first draw
    sched, model, ref, floor = gaussian_setup
    scores = []
    table = ddim_table(model, sched, (2,), score_fn=lambda x: scores.append(x.clone()) or 1.0, floor=1.0, etas=(0.0,),
                       steps=(10,), sigma_hat=False, n_samples=100, batch_size=40, seed=3, progress=False)
    expected = sample_in_batches(ddim_sample, 100, (2,), 40, 3, model=model, schedule=sched, steps=10, eta=0.0)
    torch.testing.assert_close(scores[0], expected)
    assert table.ratio("eta=0", 10) == 1.0


def test_sigma_hat_with_few_steps_is_worse_than_ddim(gaussian_setup) -> None:
    # the large variance beta' of a 5-step chain adds far too much noise: the DDIM paper's sigma-hat row is
    # the worst at few steps. With the exact model the effect is already clear in 2-D.
    sched, model, ref, floor = gaussian_setup
    table = ddim_table(model, sched, (2,), score_fn=lambda x: sliced_wasserstein(x, ref), floor=floor, etas=(0.0,),
                       steps=(5,), n_samples=800, batch_size=800, progress=False)
    assert table.ratio(SIGMA_HAT, 5) > table.ratio("eta=0", 5)


def test_table_runner_rejects_bad_arguments(gaussian_setup) -> None:
    sched, model, ref, floor = gaussian_setup
    kw = dict(score_fn=lambda x: 1.0, progress=False, n_samples=4)
    with pytest.raises(ValueError, match="floor"):
        ddim_table(model, sched, (2,), floor=0.0, **kw)
    with pytest.raises(ValueError, match="steps must lie in"):
        ddim_table(model, sched, (2,), floor=1.0, steps=(500,), **kw)
    with pytest.raises(ValueError, match="eta must lie in"):
        ddim_table(model, sched, (2,), floor=1.0, etas=(-0.5,), **kw)
    with pytest.raises(ValueError, match="spacing must be one of"):
        ddim_table(model, sched, (2,), floor=1.0, spacing="random", **kw)


# ------------------------------------------------------------------ the shipped model's settings and its uint8 samples


def test_uint8_round_trip_is_within_half_a_level() -> None:
    from diffusion_course.data.encoding import from_uint8, to_uint8

    x = torch.rand(50, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2.4 - 1.2  # some pixels outside [-1, 1]
    u = to_uint8(x)
    assert u.dtype == torch.uint8 and int(u.min()) == 0 and int(u.max()) == 255
    back = from_uint8(u)
    assert float((back - x.clamp(-1, 1)).abs().max()) <= 0.5 / 127.5 + 1e-6
    assert torch.equal(to_uint8(back), u)  # a second round trip changes nothing
    with pytest.raises(ValueError, match="uint8"):
        from_uint8(x)


def test_settings_are_unique_and_named_by_what_they_run() -> None:
    from diffusion_course.scoring.comparisons import CARD_SETTINGS, table_settings

    for settings in (CARD_SETTINGS, table_settings()):
        names = [s.name for s in settings]
        assert len(names) == len(set(names))
    card = {s.name: s for s in CARD_SETTINGS}
    assert card["ddpm1000"].sampler == "ddpm" and card["ddpm1000"].steps == 1000 and card["ddpm1000"].n >= 500
    assert all(s.n >= 1000 for s in CARD_SETTINGS if s.sampler == "ddim")
    for s in table_settings(256):
        assert s.n == 256 and str(s.steps) in s.name and s.spacing in s.name
        assert (s.clip_x0 is None) == s.name.endswith("noclip")
    assert "eta = 0" in card["ddim50_eta0"].describe() and "no clipping" in card["ddim50_eta0_noclip"].describe()


def test_sample_setting_draws_the_same_x_T_for_every_sampler(ddpm_schedule) -> None:
    """Common random numbers: with eta = 0 DDIM is a deterministic map of x_T, so two settings that differ only in
    clipping agree wherever clipping never acts (a model that predicts eps = 0 keeps x0_hat tiny at small t)."""
    from diffusion_course.scoring.comparisons import SamplerSetting, sample_setting

    zero = lambda x, t: torch.zeros_like(x)  # noqa: E731
    a = sample_setting(zero, ddpm_schedule, SamplerSetting("a", "ema", "ddim", 5, eta=0.0, n=6), item_shape=(2,), batch_size=4, progress=False)
    b = sample_setting(zero, ddpm_schedule, SamplerSetting("b", "ema", "ddim", 5, eta=0.0, n=6, clip_x0=None), item_shape=(2,), batch_size=4,
                       progress=False)
    g = torch.Generator().manual_seed(0)
    x_T = torch.cat([torch.randn(4, 2, generator=g), torch.randn(2, 2, generator=g)])
    ab = float(ddpm_schedule.alpha_bar[-1])
    torch.testing.assert_close(b, (x_T / ab**0.5), rtol=1e-4, atol=1e-4)  # eps_hat = 0: x0_hat = x_T / sqrt(alpha_bar_T), kept to the end
    assert float(a.abs().max()) <= 1.0 + 1e-6  # clipped
