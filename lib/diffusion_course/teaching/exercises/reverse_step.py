"""Chapters 3 and 4's exercise: one DDPM reverse step (Ho et al. 2020, Algorithm 2, line 4)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..._internal.validate import check_choice
from ...maths.samplers import ddpm_step
from ._diagnosis import _OFF_BY_ONE_MINUS, _OFF_BY_ONE_PLUS, _a, _ab, _b, _GlobalVariant, _shift, _Spec, _Tables, _Term, _term_with_shift, _Variant
from ._engine import CheckResult, _run, _uniform_cases


# reverse step: x_{t-1} = (x_t - beta_t / sqrt(1 - alpha_bar_t) eps_hat) / sqrt(alpha_t) + sigma_t z, no noise at t = 0
def _rs_xt(tab: _Tables, c: dict) -> torch.Tensor:
    return 1 / _a(tab, c).sqrt()


def _rs_eps(tab: _Tables, c: dict) -> torch.Tensor:
    return -_b(tab, c) / (_a(tab, c).sqrt() * (1 - _ab(tab, c)).sqrt())


def _sigma2(tab: _Tables, c: dict, variance: str) -> torch.Tensor:
    return _b(tab, c) if variance == "beta" else tab.at(tab.posterior_variance, c["t"])


def _not_last(c: dict) -> torch.Tensor:
    return (c["t"] > 0).double()


def _reverse_spec(variance: str) -> _Spec:
    name = "sigma_t^2 = beta_t" if variance == "beta" else "sigma_t^2 = tilde-beta_t (the posterior variance)"
    other = "posterior" if variance == "beta" else "beta"

    def z(tab: _Tables, c: dict) -> torch.Tensor:
        return _sigma2(tab, c, variance).sqrt() * _not_last(c)

    def z_other(tab: _Tables, c: dict) -> torch.Tensor:
        return _sigma2(tab, c, other).sqrt() * _not_last(c)

    other_text = ("sqrt(tilde-beta_t), the posterior standard deviation, where sqrt(beta_t) was asked for "
                  "(both are valid choices in Ho et al. 2020, section 3.2, but this exercise asks for sigma_t^2 = beta_t)."
                  if variance == "beta" else
                  "sqrt(beta_t) where sqrt(tilde-beta_t), the posterior standard deviation, was asked for.")
    z_variants = [
        _Variant("noise_at_t0", "noise added at the last step (t = 0): Algorithm 2 sets z = 0 there, so x_0 is the mean "
                 "itself. Multiply the noise term by a mask (t > 0).", lambda tab, c: _sigma2(tab, c, variance).sqrt()),
        _Variant("variance_for_std", f"the variance sigma_t^2 where the standard deviation sigma_t belongs ({name}; z ~ N(0, I) "
                 "must be scaled by a standard deviation).", lambda tab, c: _sigma2(tab, c, variance) * _not_last(c)),
        _Variant("wrong_variance", other_text, z_other),
        _Variant("variance_for_std", "the posterior variance tilde-beta_t (a variance, and not the one asked for) where the "
                 f"standard deviation sigma_t belongs ({name}).",
                 lambda tab, c: _sigma2(tab, c, other) * _not_last(c)),
        _Variant("off_by_one", _OFF_BY_ONE_MINUS, _term_with_shift(z, -1)),
    ]
    return _Spec(
        name="reverse_step",
        signature="fn(schedule, x_t, t, eps_hat, z) -> x_{t-1}",
        terms=(
            _Term("x_t", "1 / sqrt(alpha_t)", _rs_xt, (
                _Variant("alpha_bar_for_alpha", "1 / sqrt(alpha_bar_t) where 1 / sqrt(alpha_t) belongs: one reverse step "
                         "undoes one forward step's scaling, not all of them.", lambda tab, c: 1 / _ab(tab, c).sqrt()),
                _Variant("missing_sqrt", "1 / alpha_t where 1 / sqrt(alpha_t) belongs (a missing square root).",
                         lambda tab, c: 1 / _a(tab, c)),
                _Variant("inverted", "sqrt(alpha_t) where 1 / sqrt(alpha_t) belongs: divide by sqrt(alpha_t), don't multiply.",
                         lambda tab, c: _a(tab, c).sqrt()),
                _Variant("off_by_one", _OFF_BY_ONE_MINUS, _term_with_shift(_rs_xt, -1)),
            )),
            _Term("eps_hat", "-beta_t / (sqrt(alpha_t) sqrt(1 - alpha_bar_t))", _rs_eps, (
                _Variant("variance_for_std", "1 - alpha_bar_t where its square root sqrt(1 - alpha_bar_t) belongs in the "
                         "denominator (the standard deviation of the noise in x_t).",
                         lambda tab, c: -_b(tab, c) / (_a(tab, c).sqrt() * (1 - _ab(tab, c)))),
                _Variant("alpha_bar_for_alpha", "sqrt(alpha_bar_t) where sqrt(alpha_t) belongs in the denominator.",
                         lambda tab, c: -_b(tab, c) / (_ab(tab, c).sqrt() * (1 - _ab(tab, c)).sqrt())),
                _Variant("missing_division", "the eps_hat term is not divided by sqrt(alpha_t): the whole bracket "
                         "(x_t - beta_t / sqrt(1 - alpha_bar_t) eps_hat) is divided by sqrt(alpha_t).",
                         lambda tab, c: -_b(tab, c) / (1 - _ab(tab, c)).sqrt()),
                _Variant("simplified_step", "sqrt(1 - alpha_t) = sqrt(beta_t) in place of beta_t / sqrt(1 - alpha_bar_t): "
                         "this undoes one forward step as if eps_hat were that step's noise (the 'simplified' step of "
                         "chapter 4); eps_hat estimates the total noise in x_t, hence the factor beta_t / sqrt(1 - alpha_bar_t).",
                         lambda tab, c: -_b(tab, c).sqrt() / _a(tab, c).sqrt()),
                _Variant("std_for_variance", "sqrt(beta_t) where beta_t belongs in the numerator.",
                         lambda tab, c: -_b(tab, c).sqrt() / (_a(tab, c).sqrt() * (1 - _ab(tab, c)).sqrt())),
                _Variant("off_by_one", _OFF_BY_ONE_MINUS, _term_with_shift(_rs_eps, -1)),
            )),
            _Term("z", f"sigma_t ({name}), and 0 at t = 0", z, tuple(z_variants),
                  sign_note=" (With symmetric noise the samples have the same distribution, but Algorithm 2 adds sigma_t z; "
                            "add it to match the reference exactly.)"),
        ),
        global_variants=(
            _GlobalVariant("off_by_one", _OFF_BY_ONE_MINUS,
                           lambda tab, c: {"x_t": _rs_xt(tab, _shift(c, -1)), "eps_hat": _rs_eps(tab, _shift(c, -1)), "z": z(tab, _shift(c, -1))}),
            _GlobalVariant("off_by_one", _OFF_BY_ONE_PLUS,
                           lambda tab, c: {"x_t": _rs_xt(tab, _shift(c, 1)), "eps_hat": _rs_eps(tab, _shift(c, 1)), "z": z(tab, _shift(c, 1))}),
        ),
        call=lambda fn, s, x, c: fn(s, x["x_t"], c["t"], x["eps_hat"], x["z"]),
        reference=lambda s, x, c: ddpm_step(s, x["x_t"], c["t"], x["eps_hat"], variance=variance, noise=x["z"]),
        cases=_uniform_cases,
    )


def check_reverse_step(fn: Callable, *, variance: str = "beta", quiet: bool = False) -> CheckResult:
    """Check one DDPM reverse step ``fn(schedule, x_t, t, eps_hat, z) -> x_{t-1}`` (Ho et al. 2020, Algorithm 2, line 4):
    (x_t - beta_t / sqrt(1 - alpha_bar_t) eps_hat) / sqrt(alpha_t) + sigma_t z, with no noise at code t = 0.

    ``variance`` picks sigma_t^2: "beta" (beta_t, the default) or "posterior" (tilde-beta_t). Compared against
    :func:`~diffusion_course.samplers.ddpm_step`; prints the report and returns it.
    """
    check_choice(variance, ("beta", "posterior"), "variance")
    return _run(_reverse_spec(variance), fn, quiet)
