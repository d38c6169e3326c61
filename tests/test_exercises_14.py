"""The checker of chapter 14 (one replacement-inpainting step): it accepts the reference solution, written in two ways;
that solution, run as a loop, is the package's inpaint (so the exercise teaches the lib's step); it says "not written
yet" for a stub, and names every slip in its catalogue."""

from __future__ import annotations

import pytest
import torch

from diffusion_course.maths.editing import inpaint
from diffusion_course.maths.oracles import ExactDenoiser
from diffusion_course.maths.samplers import ddpm_step
from diffusion_course.maths.schedules import NoiseSchedule
from diffusion_course.teaching import exercises as ex

pytestmark = pytest.mark.usefixtures("one_thread")


def _col(v, x):
    return v[:, None] if x.ndim == 2 else v.view(-1, *[1] * (x.ndim - 1))


def right(schedule, x_t, t, eps_hat, known, mask, z, z_known):
    """Lugmayr et al. 2022, eq. 8a-8c, from the formulas."""
    ab, ab_prev, a, b = (_col(v[t], x_t) for v in (schedule.alpha_bar, schedule.alpha_bar_prev, schedule.alpha, schedule.beta))
    unknown = (x_t - b / (1 - ab).sqrt() * eps_hat) / a.sqrt() + _col((t > 0).float(), x_t) * b.sqrt() * z
    known_t = ab_prev.sqrt() * known + (1 - ab_prev).sqrt() * z_known
    return mask * known_t + (1 - mask) * unknown


def right_with_the_package(schedule, x_t, t, eps_hat, known, mask, z, z_known):
    """The same step with ddpm_step for the unknown pixels and torch.where for the blend."""
    ab_prev = _col(schedule.alpha_bar_prev[t], x_t)
    return torch.where(mask == 1, ab_prev.sqrt() * known + (1 - ab_prev).sqrt() * z_known, ddpm_step(schedule, x_t, t, eps_hat, noise=z))


def test_the_reference_passes_in_both_spellings():
    for fn in (right, right_with_the_package):
        r = ex.check_inpaint_step(fn, quiet=True)
        assert r and r.status == "correct" and r.cases_run == 18, r.message


def test_the_step_run_as_a_loop_is_inpaint():
    """`right` chained from x_T with the draws inpaint makes (one per step, shared by both parts) is inpaint itself."""
    schedule = NoiseSchedule.linear(50, 1e-3, 0.2)
    centres = torch.randn(4, 1, 4, 4, generator=torch.Generator().manual_seed(0)).clamp(-1, 1)
    model = ExactDenoiser(schedule, centres, 0.2)
    known, mask = centres[:3], (torch.rand(3, 1, 4, 4, generator=torch.Generator().manual_seed(1)) < 0.5).float()
    g = torch.Generator().manual_seed(2)
    x = torch.randn(known.shape, generator=g)
    for t in range(schedule.T - 1, -1, -1):
        tt = torch.full((3,), t)
        z = torch.randn(x.shape, generator=g) if t > 0 else torch.zeros_like(x)
        x = right(schedule, x, tt, model(x, tt), known, mask, z, z)
    lib = inpaint(model, schedule, known, mask, clip_x0=None, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(x, lib, rtol=1e-4, atol=1e-5)


def _slip(kind):
    """`right` with one slip."""

    def fn(schedule, x_t, t, eps_hat, known, mask, z, z_known):
        ab, ab_prev, a, b = (_col(v[t], x_t) for v in (schedule.alpha_bar, schedule.alpha_bar_prev, schedule.alpha, schedule.beta))
        var = _col(schedule.posterior_variance[t], x_t) if kind == "posterior_variance" else b
        zs, zk = (z_known, z) if kind == "noises_swapped" else (z, z if kind == "z_for_known" else z_known)
        on = torch.ones_like(ab) if kind == "noise_at_t0" else _col((t > 0).float(), x_t)
        unknown = x_t if kind == "no_reverse_step" else (x_t - b / (1 - ab).sqrt() * eps_hat) / a.sqrt() + on * var.sqrt() * zs
        level = ab if kind == "known_at_t" else ab_prev
        mean = level * known if kind == "alpha_bar_for_sqrt" else level.sqrt() * known
        noise = {"variance_for_std": 1 - level, "known_clean": torch.zeros_like(level)}.get(kind, (1 - level).sqrt()) * zk
        m = 1 - mask if kind == "mask_inverted" else mask
        return m * (mean + noise) + (1 - m) * unknown

    return fn


SLIPS = ["mask_inverted", "known_at_t", "known_clean", "variance_for_std", "alpha_bar_for_sqrt", "z_for_known", "noises_swapped",
         "noise_at_t0", "posterior_variance", "no_reverse_step"]


@pytest.mark.parametrize("kind", SLIPS)
def test_each_slip_is_named(kind):
    r = ex.check_inpaint_step(_slip(kind), quiet=True)
    assert not r and r.status == "wrong" and r.mistakes == (kind,), r.message
    assert "First difference" in r.message and "Diagnosis:" in r.message and "differ" in r.message


def test_the_report_says_which_pixels_differ():
    only_known = ex.check_inpaint_step(lambda s, x, t, e, k, m, z, zk: right(s, x, t, e, k * 1.1, m, z, zk), quiet=True)
    assert only_known.mistakes == () and "Only the known pixels" in only_known.message
    only_unknown = ex.check_inpaint_step(lambda s, x, t, e, k, m, z, zk: right(s, x, t, e * 1.1, k, m, z, zk), quiet=True)
    assert only_unknown.mistakes == () and "Only the pixels to fill in" in only_unknown.message


def test_stub_error_shape_in_place_and_nonfinite():
    def stub(*args):
        raise NotImplementedError

    assert ex.check_inpaint_step(stub, quiet=True).status == "not written yet"
    assert ex.check_inpaint_step(lambda *a: None, quiet=True).status == "not written yet"
    assert ex.check_inpaint_step(3, quiet=True).mistakes == ("not_callable",)
    raised = ex.check_inpaint_step(lambda s, x, t, e, k, m, z, zk: x + s.alpha_bar[t] * k, quiet=True)
    assert raised.status == "error" and "in your line" in raised.message and "Hint" in raised.message
    assert ex.check_inpaint_step(lambda *a: right(*a).flatten(), quiet=True).mistakes == ("shape",)

    def in_place(s, x, t, e, k, m, z, zk):
        out = right(s, x, t, e, k, m, z, zk)
        return k.copy_(out)

    r = ex.check_inpaint_step(in_place, quiet=True)
    assert r.mistakes == ("in_place",) and "known" in r.message
    assert ex.check_inpaint_step(lambda s, x, t, e, k, m, z, zk: x / 0, quiet=True).mistakes == ("nonfinite",)


def test_the_report_is_printed_unless_quiet(capsys):
    ex.check_inpaint_step(right)
    assert "inpaint_step: correct" in capsys.readouterr().out
    ex.check_inpaint_step(right, quiet=True)
    assert capsys.readouterr().out == ""
