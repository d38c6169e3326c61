"""Chapter 3's exercise: the mean of q(x_{t-1} | x_t, x_0) (Ho et al. 2020, eq. 7)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ...maths.posterior import q_posterior
from ._diagnosis import _OFF_BY_ONE_MINUS, _OFF_BY_ONE_PLUS, _a, _ab, _abp, _b, _GlobalVariant, _shift, _Spec, _Tables, _Term, _Variant
from ._engine import CheckResult, _run, _uniform_cases


# posterior mean: tilde-mu = sqrt(alpha_bar_{t-1}) beta_t / (1 - alpha_bar_t) x0 + sqrt(alpha_t)(1 - alpha_bar_{t-1})/(1 - alpha_bar_t) x_t
def _pm_x0(tab: _Tables, c: dict) -> torch.Tensor:
    t = c["t"]
    return tab.at(tab.alpha_bar_prev, t).sqrt() * tab.at(tab.beta, t) / (1 - tab.at(tab.alpha_bar, t))


def _pm_xt(tab: _Tables, c: dict) -> torch.Tensor:
    t = c["t"]
    return tab.at(tab.alpha, t).sqrt() * (1 - tab.at(tab.alpha_bar_prev, t)) / (1 - tab.at(tab.alpha_bar, t))


_POSTERIOR_MEAN = _Spec(
    name="posterior_mean",
    signature="fn(schedule, x0, x_t, t) -> tilde-mu_t",
    terms=(
        _Term("x0", "sqrt(alpha_bar_{t-1}) beta_t / (1 - alpha_bar_t)", _pm_x0, (
            _Variant("alpha_bar_for_alpha_bar_prev", "sqrt(alpha_bar_t) where sqrt(alpha_bar_{t-1}) belongs "
                     "(use schedule.alpha_bar_prev).", lambda tab, c: _ab(tab, c).sqrt() * _b(tab, c) / (1 - _ab(tab, c))),
            _Variant("missing_sqrt", "alpha_bar_{t-1} where sqrt(alpha_bar_{t-1}) belongs (a missing square root).",
                     lambda tab, c: _abp(tab, c) * _b(tab, c) / (1 - _ab(tab, c))),
            _Variant("std_for_variance", "sqrt(1 - alpha_bar_t) in the denominator where 1 - alpha_bar_t belongs.",
                     lambda tab, c: _abp(tab, c).sqrt() * _b(tab, c) / (1 - _ab(tab, c)).sqrt()),
            _Variant("alpha_for_alpha_bar", "1 - alpha_t where 1 - alpha_bar_t belongs in the denominator.",
                     lambda tab, c: _abp(tab, c).sqrt() * _b(tab, c) / (1 - _a(tab, c))),
            _Variant("swapped_arguments", "this is the coefficient of x_t: x0 and x_t are swapped.", _pm_xt),
        )),
        _Term("x_t", "sqrt(alpha_t) (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t)", _pm_xt, (
            _Variant("alpha_bar_for_alpha", "sqrt(alpha_bar_t) where sqrt(alpha_t) belongs: the factor comes from "
                     "q(x_t | x_{t-1}) = N(sqrt(alpha_t) x_{t-1}, beta_t I), one step, not from q(x_t | x_0).",
                     lambda tab, c: _ab(tab, c).sqrt() * (1 - _abp(tab, c)) / (1 - _ab(tab, c))),
            _Variant("missing_sqrt", "alpha_t where sqrt(alpha_t) belongs (a missing square root).",
                     lambda tab, c: _a(tab, c) * (1 - _abp(tab, c)) / (1 - _ab(tab, c))),
            _Variant("alpha_bar_for_alpha_bar_prev", "1 - alpha_bar_t where 1 - alpha_bar_{t-1} belongs in the numerator "
                     "(use schedule.alpha_bar_prev).", lambda tab, c: _a(tab, c).sqrt()),
            _Variant("std_for_variance", "sqrt(1 - alpha_bar_t) in the denominator where 1 - alpha_bar_t belongs.",
                     lambda tab, c: _a(tab, c).sqrt() * (1 - _abp(tab, c)) / (1 - _ab(tab, c)).sqrt()),
            _Variant("swapped_arguments", "this is the coefficient of x0: x0 and x_t are swapped.", _pm_x0),
        )),
    ),
    global_variants=(
        _GlobalVariant("swapped_arguments", "x0 and x_t are swapped: the signature is fn(schedule, x0, x_t, t), and "
                       "sqrt(alpha_bar_{t-1}) beta_t / (1 - alpha_bar_t) multiplies x0.",
                       lambda tab, c: {"x0": _pm_xt(tab, c), "x_t": _pm_x0(tab, c)}),
        _GlobalVariant("off_by_one", _OFF_BY_ONE_MINUS, lambda tab, c: {"x0": _pm_x0(tab, _shift(c, -1)), "x_t": _pm_xt(tab, _shift(c, -1))}),
        _GlobalVariant("off_by_one", _OFF_BY_ONE_PLUS, lambda tab, c: {"x0": _pm_x0(tab, _shift(c, 1)), "x_t": _pm_xt(tab, _shift(c, 1))}),
    ),
    call=lambda fn, s, x, c: fn(s, x["x0"], x["x_t"], c["t"]),
    reference=lambda s, x, c: q_posterior(s, x["x0"], x["x_t"], c["t"])[0],
    cases=_uniform_cases,
)


def check_posterior_mean(fn: Callable, *, quiet: bool = False) -> CheckResult:
    """Check ``fn(schedule, x0, x_t, t) -> tilde-mu_t(x_t, x0)``, the mean of q(x_{t-1} | x_t, x_0) (Ho et al. 2020, eq. 7),
    against :func:`~diffusion_course.posterior.q_posterior`; print the report and return it."""
    return _run(_POSTERIOR_MEAN, fn, quiet)
