"""Chapter 14's editing functions against oracles: SDEdit against a manual loop of the course's steps and the exact
denoiser of a finite data set; inpainting against plain DDPM / DDIM sampling (mask all 0), against ``known`` (mask
all 1), against diffusers' RePaintScheduler (step, undo_step and the jump schedule, draw for draw), the undo step's
moments against q(x_t | x_s), and the calls helper against a counting model."""

from __future__ import annotations

import math

import pytest
import torch

from diffusion_course.maths.editing import inpaint, inpaint_calls, inpaint_step, renoise, repaint_schedule, sdedit
from diffusion_course.maths.forward import q_sample
from diffusion_course.maths.oracles import ExactDenoiser
from diffusion_course.maths.samplers import ddim_sample, ddim_step, ddim_timesteps, ddpm_sample, ddpm_step
from diffusion_course.maths.schedules import NoiseSchedule

pytestmark = pytest.mark.usefixtures("one_thread")

G = lambda seed=0: torch.Generator().manual_seed(seed)  # noqa: E731
SHORT = NoiseSchedule.linear(40, 1e-3, 0.2)
FAR = torch.tensor([[3.0, 0.0], [-3.0, 0.0], [0.0, 3.5]])  # three points far apart (2-D)


class Counting:
    """A model wrapper that counts its calls."""

    def __init__(self, model) -> None:
        self.model, self.calls = model, 0

    def __call__(self, x, t):
        self.calls += 1
        return self.model(x, t)


# --- SDEdit --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
def test_sdedit_from_t0_zero_returns_the_input(ddpm_schedule, sampler):
    """t0 = 0 adds noise of standard deviation sqrt(beta_1) = 0.01 and denoises it in one step."""
    x = torch.randn(64, 2, generator=G(1))
    model = ExactDenoiser(ddpm_schedule, x, 0.5)
    out = sdedit(model, ddpm_schedule, x, t0=0, sampler=sampler, clip_x0=None, generator=G(2))
    assert (out - x).abs().max() < 0.05
    assert (out - x).abs().max() > 0  # it did noise and denoise


@pytest.mark.parametrize("sampler,steps", [("ddim", 20), ("ddim", None), ("ddpm", None)])
def test_sdedit_with_the_exact_denoiser_keeps_a_data_point(ddpm_schedule, sampler, steps):
    """The exact denoiser of the data set {mu_k}: from a data point noised to t0 = 150 (noise 0.4, the points 6 apart)
    the reverse process comes back to that same point."""
    model = ExactDenoiser(ddpm_schedule, FAR)
    x = FAR[[0, 1, 2]].repeat(50, 1)
    out = sdedit(model, ddpm_schedule, x, t0=150, steps=steps, sampler=sampler, clip_x0=None, generator=G(3))
    torch.testing.assert_close(out, x, rtol=0, atol=1e-3)


@pytest.mark.parametrize("eta", [0.0, 0.5])
def test_ddim_sdedit_is_a_loop_of_ddim_steps_from_the_noised_input(eta):
    x = torch.randn(8, 1, 4, 4, generator=G(4)).clamp(-1, 1)
    model = ExactDenoiser(SHORT, torch.randn(5, 1, 4, 4, generator=G(5)), 0.3)
    eps = torch.randn(x.shape, generator=G(6))
    t0, steps = 25, 7
    out = sdedit(model, SHORT, x, t0=t0, steps=steps, eta=eta, noise=eps, generator=G(7))
    g = G(7)
    y = q_sample(SHORT, x, t0, eps)
    ts = ddim_timesteps(t0 + 1, steps).tolist()
    assert ts[-1] == t0 and ts[0] == 0
    for k in range(steps - 1, -1, -1):
        t = torch.full((8,), ts[k])
        y = ddim_step(SHORT, y, t, ts[k - 1] if k else -1, model(y, t), eta=eta, clip_x0=1.0, generator=g)
    torch.testing.assert_close(out, y, rtol=1e-5, atol=1e-6)


def test_ddpm_sdedit_is_a_loop_of_ddpm_steps():
    x = torch.randn(8, 2, generator=G(8))
    model = ExactDenoiser(SHORT, torch.randn(4, 2, generator=G(9)), 0.2)
    eps = torch.randn(x.shape, generator=G(10))
    out, traj = sdedit(model, SHORT, x, t0=12, sampler="ddpm", clip_x0=None, noise=eps, generator=G(11), return_trajectory=True)
    g = G(11)
    y = q_sample(SHORT, x, 12, eps)
    for t in range(12, -1, -1):
        y = ddpm_step(SHORT, y, t, model(y, torch.full((8,), t)), noise=torch.randn(y.shape, generator=g) if t > 0 else torch.zeros_like(y))
    torch.testing.assert_close(out, y, rtol=1e-5, atol=1e-6)
    assert traj.shape == (12 + 1 + 2, 8, 2)  # the input, x_t0, then every step
    torch.testing.assert_close(traj[0], x)
    torch.testing.assert_close(traj[-1], out)


def test_sdedit_moves_further_from_the_input_as_t0_grows(ddpm_schedule):
    """On eight Gaussian blobs on a circle, the mean distance from the input (a blob's centre) to its edit grows with t0,
    from about the blob's own spread towards the distance to a random blob."""
    angles = torch.arange(8) * 2 * math.pi / 8
    centres = torch.stack([2 * angles.cos(), 2 * angles.sin()], 1)
    model = ExactDenoiser(ddpm_schedule, centres, 0.2)
    x = centres[:1].repeat(400, 1)
    means = []
    for t0 in (0, 100, 200, 400, 600, 999):
        out = sdedit(model, ddpm_schedule, x, t0=t0, steps=20, clip_x0=None, generator=G(t0))
        means.append(float((out - x).norm(dim=1).mean()))
    assert all(b > a + 0.05 for a, b in zip(means, means[1:])), means
    assert means[0] < 0.05 and means[-1] > 2.0, means


def test_sdedit_checks_its_arguments():
    x = torch.zeros(2, 2)
    with pytest.raises(ValueError, match=r"\bt0\b.*\[0, 39\]"):
        sdedit(lambda x, t: x, SHORT, x, t0=40)
    with pytest.raises(ValueError, match=r"\bsteps\b.*ddim"):
        sdedit(lambda x, t: x, SHORT, x, t0=10, steps=5, sampler="ddpm")
    with pytest.raises(ValueError, match=r"\bspacing\b"):
        sdedit(lambda x, t: x, SHORT, x, t0=10, spacing="leading")
    with pytest.raises(ValueError, match=r"\bnoise\b"):
        sdedit(lambda x, t: x, SHORT, x, t0=10, noise=torch.zeros(3, 2))
    calls = Counting(lambda x, t: torch.zeros_like(x))
    sdedit(calls, SHORT, x, t0=3, steps=20)
    assert calls.calls == 4  # min(steps, t0 + 1): the grid [0, t0] has t0 + 1 levels


# --- inpainting ----------------------------------------------------------------------------------------------------


def _toy():
    centres = torch.randn(6, 1, 4, 4, generator=G(12)).clamp(-1, 1)
    return ExactDenoiser(SHORT, centres, 0.2), centres


@pytest.mark.parametrize("steps,resample,jump", [(None, 1, 1), (None, 4, 3), (10, 3, 1), (10, 2, 4)])
def test_inpainting_with_every_pixel_known_returns_known(steps, resample, jump):
    model, centres = _toy()
    known = centres[[0, 1, 2]] * 0.9
    out = inpaint(model, SHORT, known, torch.ones(1, 1, 4, 4), steps=steps, resample=resample, jump=jump, generator=G(13))
    torch.testing.assert_close(out, known, rtol=0, atol=1e-6)


def test_inpainting_with_no_pixel_known_is_plain_sampling():
    """mask all 0 and resample = 1: the draws and steps are those of ddpm_sample / ddim_sample (same generator)."""
    model, centres = _toy()
    known, mask = torch.randn(5, 1, 4, 4), torch.zeros(5, 1, 4, 4)
    a = inpaint(model, SHORT, known, mask, clip_x0=1.0, generator=G(14))
    torch.testing.assert_close(a, ddpm_sample(model, SHORT, known.shape, clip_x0=1.0, generator=G(14)), rtol=0, atol=0)
    for eta in (0.0, 0.6, 1.0):
        a = inpaint(model, SHORT, known, mask, steps=8, eta=eta, clip_x0=1.0, generator=G(15))
        b = ddim_sample(model, SHORT, known.shape, steps=8, eta=eta, clip_x0=1.0, generator=G(15))
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_inpaint_step_is_the_ddpm_step_where_unknown_and_q_of_known_where_known():
    g = G(16)
    x_t, eps, known, z, zk = (torch.randn(6, 3, generator=g) for _ in range(5))
    mask = (torch.rand(6, 3, generator=g) < 0.5).float()
    for t in (0, 1, 20, 39):
        out = inpaint_step(SHORT, x_t, t, eps, known, mask, noise=z, known_noise=zk)
        step = ddpm_step(SHORT, x_t, t, eps, noise=z)
        ab_prev = float(SHORT.alpha_bar_prev.double()[t])
        pasted = math.sqrt(ab_prev) * known + math.sqrt(1 - ab_prev) * zk
        torch.testing.assert_close(out, torch.where(mask == 1, pasted, step), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(inpaint_step(SHORT, x_t, 0, eps, known, mask, noise=z)[mask == 1], known[mask == 1])
    torch.testing.assert_close(inpaint_step(SHORT, x_t, 5, eps, known, mask, noise=z),
                               inpaint_step(SHORT, x_t, 5, eps, known, mask, noise=z, known_noise=z))  # one draw serves both


@pytest.mark.parametrize("s,t", [(9, 10), (-1, 0), (3, 30), (-1, 39)])
def test_the_undo_step_has_the_moments_of_q(s, t):
    """renoise(x, s, t) ~ N(sqrt(alpha_bar_t / alpha_bar_s) x, (1 - alpha_bar_t / alpha_bar_s) I); for s = t - 1 that is
    q(x_t | x_{t-1}) = N(sqrt(1 - beta_t) x_{t-1}, beta_t I)."""
    ab = SHORT.alpha_bar.double()
    ratio = float(ab[t] / (ab[s] if s >= 0 else 1.0))
    if s == t - 1:
        assert ratio == pytest.approx(1 - float(SHORT.beta.double()[t]), rel=1e-6)
    n = 200_000
    x = torch.full((n, 1), 1.5, dtype=torch.float64)
    out = renoise(SHORT, x, s, t, generator=G(17))
    mean, var = float(out.mean()), float(out.var())
    assert abs(mean - math.sqrt(ratio) * 1.5) < 5 * math.sqrt((1 - ratio) / n)
    assert abs(var - (1 - ratio)) < 5 * (1 - ratio) * math.sqrt(2 / n)


def test_renoise_checks_its_levels():
    x = torch.zeros(2, 2)
    with pytest.raises(ValueError, match=r"\bs\b.*\[-1, 4\]"):
        renoise(SHORT, x, 5, 5)
    with pytest.raises(ValueError, match=r"\bt\b.*\[0, 39\]"):
        renoise(SHORT, x, 3, 40)


def _algorithm_1_calls(N: int, r: int) -> int:
    """Lugmayr et al. 2022, Algorithm 1: for t = T..1, U resampling rounds, each one model call; the undo (line 10)
    happens only when u < U and t > 1, so the last step is made once."""
    calls = 0
    for t in range(N, 0, -1):
        for u in range(1, r + 1):
            calls += 1
            if not (u < r and t > 1):
                break
    return calls


@pytest.mark.parametrize("N,r,j", [(10, 1, 1), (10, 3, 1), (12, 2, 3), (25, 4, 5), (7, 3, 7), (250, 10, 10)])
def test_the_jump_schedule_is_repaints(N, r, j):
    """The walk is RePaint's get_schedule_jump (the walk diffusers' RePaintScheduler.set_timesteps also builds), moves
    one level at a time, ends at -1, and costs Algorithm 1's calls for j = 1."""
    diffusers = pytest.importorskip("diffusers")
    walk = repaint_schedule(N, r, j)
    sched = diffusers.RePaintScheduler(num_train_timesteps=N)
    sched.set_timesteps(N, jump_length=j, jump_n_sample=r)
    assert walk[:-1] == sched.timesteps.tolist() and walk[0] == N - 1 and walk[-1] == -1
    assert all(abs(a - b) == 1 for a, b in zip(walk[:-1], walk[1:]))
    jumps = len(range(0, N - j, j))
    assert inpaint_calls(N, r, j) == N + jumps * (r - 1) * j
    if j == 1:
        assert inpaint_calls(N, r, 1) == _algorithm_1_calls(N, r) == N + (N - 1) * (r - 1)


@pytest.mark.parametrize("steps,resample,jump", [(None, 1, 1), (None, 3, 1), (None, 2, 5), (8, 3, 2)])
def test_inpaint_calls_counts_the_model_calls(steps, resample, jump):
    model, centres = _toy()
    calls = Counting(model)
    inpaint(calls, SHORT, centres[:2], torch.ones(1, 1, 4, 4), steps=steps, resample=resample, jump=jump, generator=G(18))
    assert calls.calls == inpaint_calls(steps or SHORT.T, resample, jump)


def _diffusers_repaint(T: int, eta: float):
    diffusers = pytest.importorskip("diffusers")
    sched = diffusers.RePaintScheduler(num_train_timesteps=T, trained_betas=SHORT.beta.double().numpy(), eta=eta, clip_sample=False)
    return sched


@pytest.mark.parametrize("resample,jump", [(1, 1), (3, 1), (2, 4)])
def test_inpainting_on_every_timestep_matches_diffusers_repaint_draw_for_draw(resample, jump):
    """inpaint(steps=T, eta=1) against diffusers' RePaintScheduler.step / undo_step called along the same walk with the
    same generator: diffusers noises the known pixels with the step's own draw, as the course does."""
    model, centres = _toy()
    known, mask = centres[[0, 3]], (torch.rand(2, 1, 4, 4, generator=G(19)) < 0.5).float()
    sched = _diffusers_repaint(SHORT.T, eta=1.0)
    sched.set_timesteps(SHORT.T, jump_length=jump, jump_n_sample=resample)
    g = G(20)
    x = torch.randn(known.shape, generator=g)
    walk = repaint_schedule(SHORT.T, resample, jump)
    for a, b in zip(walk[:-1], walk[1:]):
        if b < a:
            x = sched.step(model(x, torch.full((2,), a)), a, x, known, mask, generator=g).prev_sample
        else:
            x = sched.undo_step(x, b, generator=g)  # from level a to b = a + 1 with beta_b
    ours = inpaint(model, SHORT, known, mask, steps=SHORT.T, eta=1.0, resample=resample, jump=jump, clip_x0=None, generator=G(20))
    torch.testing.assert_close(ours, x, rtol=1e-4, atol=1e-4)


def test_inpainting_on_a_strided_grid_matches_diffusers_repaint():
    """On diffusers' grid k (T // N) ("leading" spacing) with resample = 1, the DDIM path is diffusers' step, any eta."""
    model, centres = _toy()
    known, mask = centres[[1, 2, 4]], (torch.rand(3, 1, 4, 4, generator=G(21)) < 0.5).float()
    for eta in (0.0, 1.0):
        sched = _diffusers_repaint(SHORT.T, eta=eta)
        sched.set_timesteps(8, jump_length=1, jump_n_sample=1)
        g = G(22)
        x = torch.randn(known.shape, generator=g)
        for t in sched.timesteps.tolist():
            x = sched.step(model(x, torch.full((3,), t)), t, x, known, mask, generator=g).prev_sample
        ours = inpaint(model, SHORT, known, mask, steps=8, spacing="leading", eta=eta, clip_x0=None, generator=G(22))
        assert ddim_timesteps(SHORT.T, 8, "leading").tolist() == sorted(sched.timesteps.tolist())
        # with eta = 0 diffusers still draws a noise tensor at every step (for the known pixels); the course skips the
        # last one, whose known pixels are known itself: the earlier draws line up, and so do the results
        torch.testing.assert_close(ours, x, rtol=1e-4, atol=1e-4)


def test_diffusers_undo_step_matches_renoise_on_every_timestep():
    sched = _diffusers_repaint(SHORT.T, eta=1.0)
    sched.set_timesteps(SHORT.T)
    x = torch.randn(4, 1, 4, 4, generator=G(23))
    for t in (1, 10, 39):
        torch.testing.assert_close(renoise(SHORT, x, t - 1, t, generator=G(24)), sched.undo_step(x, t, generator=G(24)), rtol=1e-5, atol=1e-6)


def test_inpaint_checks_its_arguments():
    model, centres = _toy()
    known = centres[:2]
    with pytest.raises(ValueError, match=r"\bmask\b.*0.*1"):
        inpaint(model, SHORT, known, torch.full((1, 1, 4, 4), 0.5))
    with pytest.raises(ValueError, match=r"\bmask\b.*broadcast"):
        inpaint(model, SHORT, known, torch.ones(1, 1, 3, 3))
    with pytest.raises(ValueError, match=r"\bresample\b.*\[1"):
        inpaint(model, SHORT, known, torch.ones(1, 1, 4, 4), resample=0)
    with pytest.raises(ValueError, match=r"\bjump\b.*\[1, 40\]"):
        inpaint(model, SHORT, known, torch.ones(1, 1, 4, 4), jump=41)
    with pytest.raises(ValueError, match=r"\bsteps\b.*\[1, 40\]"):
        inpaint(model, SHORT, known, torch.ones(1, 1, 4, 4), steps=41)
    with pytest.raises(ValueError, match=r"\bx_T\b"):
        inpaint(model, SHORT, known, torch.ones(1, 1, 4, 4), x_T=torch.zeros(3, 1, 4, 4))
    with pytest.raises(ValueError, match=r"\bknown\b"):
        inpaint_step(SHORT, known, 3, known, known[:1], torch.ones(1, 1, 4, 4))


def test_inpaint_trajectory_holds_every_move():
    model, centres = _toy()
    out, traj = inpaint(model, SHORT, centres[:2], torch.zeros(1, 1, 4, 4), resample=2, jump=3, generator=G(25), return_trajectory=True)
    assert traj.shape[0] == len(repaint_schedule(SHORT.T, 2, 3))
    torch.testing.assert_close(traj[-1], out)
