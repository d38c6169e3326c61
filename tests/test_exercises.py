"""The exercise checkers: the reference passes, stubs are "not written yet" without raising, and deliberately wrong
functions are caught with the right explanation (which mistake, which term, which t)."""

from __future__ import annotations

import pytest
import torch

from diffusion_course.maths.forward import q_sample
from diffusion_course.maths.posterior import q_posterior
from diffusion_course.maths.samplers import ddim_step, ddpm_step
from diffusion_course.maths.schedules import NoiseSchedule, extract
from diffusion_course.teaching import exercises as ex
from diffusion_course.teaching.exercises import _engine as engine
from diffusion_course.teaching.exercises import ddim_step as ddim_step_ex
from diffusion_course.teaching.exercises import posterior_mean as posterior_mean_ex
from diffusion_course.teaching.exercises import q_sample as q_sample_ex
from diffusion_course.teaching.exercises import reverse_step as reverse_step_ex

E = extract


def _mask(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return (t > 0).to(x.dtype).reshape(-1, *([1] * (x.ndim - 1)))


# ---------------------------------------------------------------------------------------------- learner-style code
# Written the way a learner would: from the schedule's float32 tables, including the cancellation-prone 1 - alpha_bar.
def qs_learner(s, x0, t, eps):
    ab = E(s.alpha_bar, t, x0)
    return ab.sqrt() * x0 + (1 - ab).sqrt() * eps


def pm_learner(s, x0, x_t, t):
    ab, abp, b, a = (E(v, t, x_t) for v in (s.alpha_bar, s.alpha_bar_prev, s.beta, s.alpha))
    return (abp.sqrt() * b * x0 + a.sqrt() * (1 - abp) * x_t) / (1 - ab)


def rs_learner(s, x_t, t, eps_hat, z):
    ab, b, a = (E(v, t, x_t) for v in (s.alpha_bar, s.beta, s.alpha))
    return (x_t - b / (1 - ab).sqrt() * eps_hat) / a.sqrt() + _mask(t, x_t) * b.sqrt() * z


def rs_posterior_learner(s, x_t, t, eps_hat, z):
    ab, abp, b, a = (E(v, t, x_t) for v in (s.alpha_bar, s.alpha_bar_prev, s.beta, s.alpha))
    return (x_t - b / (1 - ab).sqrt() * eps_hat) / a.sqrt() + _mask(t, x_t) * (b * (1 - abp) / (1 - ab)).sqrt() * z


def _ab_prev(s, t_prev, x):
    """alpha_bar at t_prev with 1 for t_prev = -1."""
    table = torch.cat([torch.ones(1), s.alpha_bar])
    return E(table, t_prev + 1, x)


def ddim_learner(s, x_t, t, t_prev, eps_hat, eta, z):
    ab, abp = E(s.alpha_bar, t, x_t), _ab_prev(s, t_prev, x_t)
    x0_hat = (x_t - (1 - ab).sqrt() * eps_hat) / ab.sqrt()
    sigma = eta * ((1 - abp) / (1 - ab)).sqrt() * (1 - ab / abp).sqrt()
    return abp.sqrt() * x0_hat + (1 - abp - sigma**2).clamp(min=0).sqrt() * eps_hat + sigma * z


# -------------------------------------------------------------------------------------------------- references pass
@pytest.mark.parametrize(
    "checker, fn",
    [
        (ex.check_q_sample, lambda s, x0, t, eps: q_sample(s, x0, t, eps=eps)),
        (ex.check_q_sample, qs_learner),
        (ex.check_posterior_mean, lambda s, x0, x_t, t: q_posterior(s, x0, x_t, t)[0]),
        (ex.check_posterior_mean, pm_learner),
        (ex.check_reverse_step, lambda s, x_t, t, e, z: ddpm_step(s, x_t, t, e, noise=z)),
        (ex.check_reverse_step, rs_learner),
        (ex.check_ddim_step, lambda s, x_t, t, tp, e, eta, z: ddim_step(s, x_t, t, tp, e, eta=eta, noise=z)),
        (ex.check_ddim_step, ddim_learner),
    ],
)
def test_reference_and_learner_style_solutions_pass(checker, fn, capsys):
    result = checker(fn)
    out = capsys.readouterr().out
    assert result and result.passed and result.status == "correct", result.message
    assert "correct" in out and result.mistakes == ()
    assert result.cases_run >= 18
    assert "t in {0, 1," in out and "999}" in out  # says what was tested: both ends of the chain


def test_reverse_step_posterior_variance_option():
    assert ex.check_reverse_step(rs_posterior_learner, variance="posterior", quiet=True)
    wrong = ex.check_reverse_step(rs_posterior_learner, quiet=True)  # asks for beta_t
    assert wrong.status == "wrong" and wrong.mistake == "wrong_variance"
    assert "tilde-beta" in wrong.message
    with pytest.raises(ValueError, match="variance"):
        ex.check_reverse_step(rs_learner, variance="small")


def test_coefficient_formulas_match_the_lib():
    """The checker's own coefficient tables (used to diagnose) reproduce the lib on every case: an oracle for them."""
    g = torch.Generator().manual_seed(0)
    specs = [q_sample_ex._Q_SAMPLE, posterior_mean_ex._POSTERIOR_MEAN, reverse_step_ex._reverse_spec("beta"),
             reverse_step_ex._reverse_spec("posterior"), ddim_step_ex._DDIM]
    for spec in specs:
        for case in spec.cases(engine._schedules()):
            inputs = engine._draw_inputs(spec, case, g)
            want = spec.reference(case["tab"].schedule, inputs, case).double()
            got = engine._linear_output(spec, case, inputs)
            scale = engine._scale(spec, case, inputs)
            assert engine._close(got, want, scale).all(), (spec.name, engine._describe_case(case))


# -------------------------------------------------------------------------------------------------------- stubs
def _raise(*args):
    raise NotImplementedError


def _ellipsis(*args):
    ...


def _none(*args):
    return None


@pytest.mark.parametrize("stub", [_raise, _ellipsis, _none, lambda *a: ...])
@pytest.mark.parametrize("checker", [ex.check_q_sample, ex.check_posterior_mean, ex.check_reverse_step, ex.check_ddim_step])
def test_stubs_are_not_written_yet_and_do_not_raise(checker, stub, capsys):
    result = checker(stub)
    assert not result
    assert result.status == "not written yet"
    assert "not written yet" in capsys.readouterr().out


def test_errors_are_reported_not_raised(capsys):
    def broken(s, x0, t, eps):
        return x0 @ torch.ones(7, 7)  # a shape error of the learner's own making

    result = ex.check_q_sample(broken)
    out = capsys.readouterr().out
    assert result.status == "error" and not result
    assert "RuntimeError" in out and "x0 @ torch.ones(7, 7)" in out  # quotes the learner's line


def test_not_callable_and_wrong_return_type():
    assert ex.check_q_sample(3, quiet=True).mistake == "not_callable"
    r = ex.check_posterior_mean(lambda s, x0, x_t, t: q_posterior(s, x0, x_t, t), quiet=True)  # returns the tuple
    assert r.mistake == "not_a_tensor" and "tuple" in r.message


# ------------------------------------------------------------------------------------------------ q_sample mistakes
def qs_variance_for_std(s, x0, t, eps):
    ab = E(s.alpha_bar, t, x0)
    return ab.sqrt() * x0 + (1 - ab) * eps


def qs_alpha_for_alpha_bar(s, x0, t, eps):
    a = E(s.alpha, t, x0)
    return a.sqrt() * x0 + (1 - a).sqrt() * eps


def qs_off_by_one(s, x0, t, eps):  # paper index used as code index
    ab = E(s.alpha_bar, t - 1, x0)
    return ab.sqrt() * x0 + (1 - ab).sqrt() * eps


def qs_off_by_one_plus(s, x0, t, eps):
    ab = s.alpha_bar[t + 1].reshape(-1, *([1] * (x0.ndim - 1)))
    return ab.sqrt() * x0 + (1 - ab).sqrt() * eps


def qs_wrong_sign(s, x0, t, eps):
    ab = E(s.alpha_bar, t, x0)
    return ab.sqrt() * x0 - (1 - ab).sqrt() * eps


def qs_missing_sqrt_x0(s, x0, t, eps):
    ab = E(s.alpha_bar, t, x0)
    return ab * x0 + (1 - ab).sqrt() * eps


def qs_swapped(s, x0, t, eps):
    ab = E(s.alpha_bar, t, x0)
    return (1 - ab).sqrt() * x0 + ab.sqrt() * eps


def qs_2d_only(s, x0, t, eps):  # the seeds' reshape(-1, 1): fine for points, wrong for images
    return s.sqrt_alpha_bar[t].reshape(-1, 1) * x0 + s.sqrt_one_minus_alpha_bar[t].reshape(-1, 1) * eps


def qs_own_noise(s, x0, t, eps):
    return q_sample(s, x0, t)  # ignores eps, draws fresh noise


def qs_in_place(s, x0, t, eps):
    eps *= E(s.sqrt_one_minus_alpha_bar, t, x0)
    return E(s.sqrt_alpha_bar, t, x0) * x0 + eps


def qs_nonlinear(s, x0, t, eps):
    return q_sample(s, x0, t, eps=eps).clamp(-1, 1)


@pytest.mark.parametrize(
    "fn, key, words",
    [
        (qs_variance_for_std, "variance_for_std", ["coefficient of eps: wrong", "standard deviation", "coefficient of x0: correct"]),
        (qs_alpha_for_alpha_bar, "alpha_for_alpha_bar", ["alpha_t where alpha_bar_t belongs"]),
        (qs_off_by_one, "off_by_one", ["off by one", "t-1"]),
        (qs_wrong_sign, "wrong_sign", ["coefficient of eps: wrong", "sign"]),
        (qs_missing_sqrt_x0, "missing_sqrt", ["coefficient of x0: wrong", "missing square root", "coefficient of eps: correct"]),
        (qs_swapped, "swapped", ["swapped"]),
        (qs_own_noise, "random", ["different results for the same inputs"]),
        (qs_in_place, "in_place", ["in place", "`eps`"]),
    ],
)
def test_q_sample_mistakes_are_named(fn, key, words):
    result = ex.check_q_sample(fn, quiet=True)
    assert not result and result.status == "wrong"
    assert result.mistake == key, result.message
    for w in words:
        assert w in result.message, (w, result.message)


def test_q_sample_first_difference_names_case_and_values():
    result = ex.check_q_sample(qs_variance_for_std, quiet=True)
    f = result.first_failure
    assert f["kind"] == "mismatch" and "t = " in f["where"] and "paper t = " in f["where"]
    assert f"expected {f['expected']:.6g}, got {f['got']:.6g}" in result.message
    # the reported numbers are the real ones: expected = lib's value, got = the learner's value
    assert abs(f["expected"] - f["got"]) > 1e-3


def test_q_sample_index_past_the_end_gets_the_t_plus_one_hint():
    result = ex.check_q_sample(qs_off_by_one_plus, quiet=True)
    assert result.status == "error"
    assert "off_by_one" in result.mistakes
    assert "IndexError" in result.message and "t = T-1" in result.message and "t+1" in result.message


def test_q_sample_2d_only_broadcast_is_explained():
    result = ex.check_q_sample(qs_2d_only, quiet=True)
    assert result.status == "error" and "broadcast_2d_only" in result.mistakes
    assert "(B, 1, ..., 1)" in result.message and "extract" in result.message


def test_nonlinear_function_is_reported_without_term_diagnosis():
    result = ex.check_q_sample(qs_nonlinear, quiet=True)
    assert result.status == "wrong" and result.mistakes == ()
    assert "not a fixed multiple of each input" in result.message


# ------------------------------------------------------------------------------------------- posterior mistakes
def pm_seed_004_slip(s, x0, x_t, t):
    """sqrt(alpha_bar_t) where sqrt(alpha_t) belongs in the x_t coefficient (seed 004's exponent)."""
    ab, abp, b = (E(v, t, x_t) for v in (s.alpha_bar, s.alpha_bar_prev, s.beta))
    return (abp.sqrt() * b * x0 + ab.sqrt() * (1 - abp) * x_t) / (1 - ab)


def pm_alpha_bar_for_prev(s, x0, x_t, t):
    ab, abp, b, a = (E(v, t, x_t) for v in (s.alpha_bar, s.alpha_bar_prev, s.beta, s.alpha))
    return (ab.sqrt() * b * x0 + a.sqrt() * (1 - abp) * x_t) / (1 - ab)


def pm_missing_sqrt(s, x0, x_t, t):
    ab, abp, b, a = (E(v, t, x_t) for v in (s.alpha_bar, s.alpha_bar_prev, s.beta, s.alpha))
    return (abp.sqrt() * b * x0 + a * (1 - abp) * x_t) / (1 - ab)


def pm_off_by_one(s, x0, x_t, t):
    return pm_learner(s, x0, x_t, t - 1)


@pytest.mark.parametrize(
    "fn, key, words",
    [
        (pm_seed_004_slip, "alpha_bar_for_alpha", ["coefficient of x_t: wrong", "sqrt(alpha_bar_t) where sqrt(alpha_t) belongs",
                                                   "coefficient of x0: correct"]),
        (pm_alpha_bar_for_prev, "alpha_bar_for_alpha_bar_prev", ["coefficient of x0: wrong", "alpha_bar_prev"]),
        (pm_missing_sqrt, "missing_sqrt", ["coefficient of x_t: wrong", "missing square root"]),
        (pm_off_by_one, "off_by_one", ["off by one"]),
        (lambda s, x0, x_t, t: pm_learner(s, x_t, x0, t), "swapped_arguments", ["swapped"]),
    ],
)
def test_posterior_mean_mistakes_are_named(fn, key, words):
    result = ex.check_posterior_mean(fn, quiet=True)
    assert result.status == "wrong" and result.mistake == key, result.message
    for w in words:
        assert w in result.message, (w, result.message)


# -------------------------------------------------------------------------------------------- reverse-step mistakes
def rs_noise_at_t0(s, x_t, t, eps_hat, z):
    ab, b, a = (E(v, t, x_t) for v in (s.alpha_bar, s.beta, s.alpha))
    return (x_t - b / (1 - ab).sqrt() * eps_hat) / a.sqrt() + b.sqrt() * z


def rs_variance_for_std(s, x_t, t, eps_hat, z):  # seed 004's sampling line: a variance times z
    ab, b, a = (E(v, t, x_t) for v in (s.alpha_bar, s.beta, s.alpha))
    return (x_t - b / (1 - ab).sqrt() * eps_hat) / a.sqrt() + _mask(t, x_t) * b * z


def rs_alpha_bar_for_alpha(s, x_t, t, eps_hat, z):
    ab, b = E(s.alpha_bar, t, x_t), E(s.beta, t, x_t)
    return (x_t - b / (1 - ab).sqrt() * eps_hat) / ab.sqrt() + _mask(t, x_t) * b.sqrt() * z


def rs_off_by_one(s, x_t, t, eps_hat, z):
    return rs_learner(s, x_t, t - 1, eps_hat, z)  # every table read at t - 1 (the paper's index used as code index)


def rs_simplified(s, x_t, t, eps_hat, z):  # chapter 4's "simplified" step
    b, a = E(s.beta, t, x_t), E(s.alpha, t, x_t)
    return (x_t - b.sqrt() * eps_hat) / a.sqrt() + _mask(t, x_t) * b.sqrt() * z


def rs_scalar_if(s, x_t, t, eps_hat, z):
    ab, b, a = (E(v, t, x_t) for v in (s.alpha_bar, s.beta, s.alpha))
    mean = (x_t - b / (1 - ab).sqrt() * eps_hat) / a.sqrt()
    if t == 0:
        return mean
    return mean + b.sqrt() * z


@pytest.mark.parametrize(
    "fn, key, words",
    [
        (rs_noise_at_t0, "noise_at_t0", ["coefficient of z: wrong", "t = 0 (paper t = 1)", "expected 0", "mask"]),
        (rs_variance_for_std, "variance_for_std", ["coefficient of z: wrong", "standard deviation", "coefficient of x_t: correct",
                                                   "coefficient of eps_hat: correct"]),
        (rs_alpha_bar_for_alpha, "alpha_bar_for_alpha", ["coefficient of x_t: wrong", "1 / sqrt(alpha_bar_t)"]),
        (rs_off_by_one, "off_by_one", ["off by one"]),
        (rs_simplified, "simplified_step", ["coefficient of eps_hat: wrong", "simplified' step of chapter 4"]),
    ],
)
def test_reverse_step_mistakes_are_named(fn, key, words):
    result = ex.check_reverse_step(fn, quiet=True)
    assert result.status == "wrong" and result.mistake == key, result.message
    for w in words:
        assert w in result.message, (w, result.message)


def test_extract_refusing_t_minus_one_gets_a_hint():
    result = ex.check_reverse_step(lambda s, x_t, t, e, z: rs_learner(s, x_t, t - 1, e, z), quiet=True)
    assert "off_by_one" in result.mistakes  # diagnosed from the timesteps where it ran (mismatch at t = 999 first)
    only_t0 = ex.check_q_sample(lambda s, x0, t, eps: qs_learner(s, x0, torch.where(t == 0, t - 1, t), eps), quiet=True)
    assert only_t0.status == "error" and "It failed at t = 0" in only_t0.message


def test_ddim_t_prev_minus_one_through_extract_gets_a_hint():
    def fn(s, x_t, t, t_prev, eps_hat, eta, z):
        ab, abp = E(s.alpha_bar, t, x_t), E(s.alpha_bar, t_prev, x_t)  # extract refuses t_prev = -1
        x0_hat = (x_t - (1 - ab).sqrt() * eps_hat) / ab.sqrt()
        sigma = eta * ((1 - abp) / (1 - ab)).sqrt() * (1 - ab / abp).sqrt()
        return abp.sqrt() * x0_hat + (1 - abp - sigma**2).clamp(min=0).sqrt() * eps_hat + sigma * z

    result = ex.check_ddim_step(fn, quiet=True)
    assert result.status == "error" and "t_prev = -1 stands for the clean data" in result.message


def test_reverse_step_scalar_if_gets_the_mask_hint():
    result = ex.check_reverse_step(rs_scalar_if, quiet=True)
    assert result.status == "error" and "scalar_t" in result.mistakes
    assert "(t > 0)" in result.message and "if t == 0" in result.message


def test_noise_at_t0_reports_the_real_numbers():
    s = NoiseSchedule.linear(1000)
    result = ex.check_reverse_step(rs_noise_at_t0, quiet=True)
    assert f"got {float(s.beta[0].sqrt()):.6g}" in result.message  # sqrt(beta_0) = 0.01 added at the last step


# ---------------------------------------------------------------------------------------------------- DDIM mistakes
def ddim_wrapped(s, x_t, t, t_prev, eps_hat, eta, z):
    ab = E(s.alpha_bar, t, x_t)
    abp = s.alpha_bar[t_prev].reshape(-1, *([1] * (x_t.ndim - 1)))  # plain indexing: alpha_bar[-1] at t_prev = -1
    x0_hat = (x_t - (1 - ab).sqrt() * eps_hat) / ab.sqrt()
    sigma = eta * ((1 - abp) / (1 - ab)).sqrt() * (1 - ab / abp).clamp(min=0).sqrt()
    return abp.sqrt() * x0_hat + (1 - abp - sigma**2).clamp(min=0).sqrt() * eps_hat + sigma * z


def ddim_no_sigma_in_direction(s, x_t, t, t_prev, eps_hat, eta, z):
    ab, abp = E(s.alpha_bar, t, x_t), _ab_prev(s, t_prev, x_t)
    x0_hat = (x_t - (1 - ab).sqrt() * eps_hat) / ab.sqrt()
    sigma = eta * ((1 - abp) / (1 - ab)).sqrt() * (1 - ab / abp).sqrt()
    return abp.sqrt() * x0_hat + (1 - abp).sqrt() * eps_hat + sigma * z


def ddim_variance_for_std(s, x_t, t, t_prev, eps_hat, eta, z):
    ab, abp = E(s.alpha_bar, t, x_t), _ab_prev(s, t_prev, x_t)
    x0_hat = (x_t - (1 - ab).sqrt() * eps_hat) / ab.sqrt()
    sigma = eta * ((1 - abp) / (1 - ab)).sqrt() * (1 - ab / abp).sqrt()
    return abp.sqrt() * x0_hat + (1 - abp - sigma**2).clamp(min=0).sqrt() * eps_hat + sigma**2 * z


def ddim_alpha(s, x_t, t, t_prev, eps_hat, eta, z):
    table = torch.cat([torch.ones(1), s.alpha])
    ab, abp = E(s.alpha, t, x_t), E(table, t_prev + 1, x_t)
    x0_hat = (x_t - (1 - ab).sqrt() * eps_hat) / ab.sqrt()
    sigma = eta * ((1 - abp) / (1 - ab)).sqrt() * (1 - ab / abp).clamp(min=0).sqrt()
    return abp.sqrt() * x0_hat + (1 - abp - sigma**2).clamp(min=0).sqrt() * eps_hat + sigma * z


@pytest.mark.parametrize(
    "fn, key, words",
    [
        (ddim_wrapped, "t_prev_wrapped", ["t_prev = -1", "alpha_bar[-1]"]),
        (ddim_no_sigma_in_direction, "sigma_missing_from_direction", ["coefficient of eps_hat: wrong", "sigma^2"]),
        (ddim_variance_for_std, "variance_for_std", ["coefficient of z: wrong", "standard deviation"]),
        (ddim_alpha, "alpha_for_alpha_bar", ["alpha_t where alpha_bar_t belongs"]),
    ],
)
def test_ddim_mistakes_are_named(fn, key, words):
    result = ex.check_ddim_step(fn, quiet=True)
    assert not result and result.mistake == key, result.message
    for w in words:
        assert w in result.message, (w, result.message)


def test_check_result_is_bool_like_and_printable():
    ok = ex.check_q_sample(qs_learner, quiet=True)
    bad = ex.check_q_sample(qs_variance_for_std, quiet=True)
    assert bool(ok) is True and bool(bad) is False
    assert str(bad) == bad.message and "q_sample" in repr(bad)


# ------------------------------------------------------------------------------ chapter 11: guidance
def test_guidance_checker_passes_eq6_in_both_common_spellings():

    assert ex.check_guidance(lambda c, u, w: (1 + w) * c - w * u, quiet=True)
    assert ex.check_guidance(lambda c, u, w: u + (1 + w) * (c - u), quiet=True)


@pytest.mark.parametrize(
    "fn, mistake",
    [
        (lambda c, u, w: u + w * (c - u), "diffusers_scale"),
        (lambda c, u, w: (1 + w) * u - w * c, "swapped"),
        (lambda c, u, w: (1 + w) * c + w * u, "sign"),
        (lambda c, u, w: c - w * u, "no_one_plus"),
    ],
)
def test_guidance_checker_names_the_slip(fn, mistake):
    r = ex.check_guidance(fn, quiet=True)
    assert not r and r.status == "wrong" and r.mistakes == (mistake,)
    assert "Measured weights" in r.message and "First difference" in r.message


def test_guidance_checker_stub_in_place_shape_and_error():
    def stub(c, u, w):
        raise NotImplementedError

    assert ex.check_guidance(stub, quiet=True).status == "not written yet"
    assert ex.check_guidance(lambda c, u, w: None, quiet=True).status == "not written yet"
    assert ex.check_guidance(lambda c, u, w: c.mul_(1 + w).sub_(w * u), quiet=True).mistakes == ("in_place",)
    assert ex.check_guidance(lambda c, u, w: ((1 + w) * c - w * u).flatten(), quiet=True).mistakes == ("shape",)
    assert ex.check_guidance(lambda c, u, w: c.view(-1, 7), quiet=True).status == "error"
    assert ex.check_guidance(3, quiet=True).mistakes == ("not_callable",)
