"""Chapter 2's exercise: ``fn(schedule, x0, t, eps) -> x_t`` (Ho et al. 2020, eq. 4)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ...maths.forward import q_sample
from ._diagnosis import _OFF_BY_ONE_MINUS, _OFF_BY_ONE_PLUS, _GlobalVariant, _shift, _Spec, _Tables, _Term, _term_with_shift, _Variant
from ._engine import CheckResult, _run, _uniform_cases


# q_sample: x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps
def _qs_x0(tab: _Tables, case: dict) -> torch.Tensor:
    return tab.at(tab.alpha_bar, case["t"]).sqrt()


def _qs_eps(tab: _Tables, case: dict) -> torch.Tensor:
    return (1 - tab.at(tab.alpha_bar, case["t"])).sqrt()


_Q_SAMPLE = _Spec(
    name="q_sample",
    signature="fn(schedule, x0, t, eps) -> x_t",
    terms=(
        _Term("x0", "sqrt(alpha_bar_t)", _qs_x0, (
            _Variant("missing_sqrt", "alpha_bar_t where sqrt(alpha_bar_t) belongs (a missing square root).",
                     lambda tab, c: tab.at(tab.alpha_bar, c["t"])),
            _Variant("alpha_for_alpha_bar", "sqrt(alpha_t) (one step's coefficient) where sqrt(alpha_bar_t), the product "
                     "over all steps up to t, belongs.", lambda tab, c: tab.at(tab.alpha, c["t"]).sqrt()),
            _Variant("off_by_one", _OFF_BY_ONE_MINUS, _term_with_shift(_qs_x0, -1)),
            _Variant("off_by_one", _OFF_BY_ONE_PLUS, _term_with_shift(_qs_x0, +1)),
            _Variant("swapped", "sqrt(1 - alpha_bar_t), the noise coefficient, multiplies x0: the two coefficients are swapped.",
                     _qs_eps),
        )),
        _Term("eps", "sqrt(1 - alpha_bar_t)", _qs_eps, (
            _Variant("variance_for_std", "the variance 1 - alpha_bar_t where the standard deviation sqrt(1 - alpha_bar_t) "
                     "belongs (eps ~ N(0, I) must be scaled by a standard deviation).",
                     lambda tab, c: 1 - tab.at(tab.alpha_bar, c["t"])),
            _Variant("alpha_for_alpha_bar", "sqrt(1 - alpha_t) = sqrt(beta_t) (one step's noise) where sqrt(1 - alpha_bar_t), "
                     "the noise accumulated over all steps up to t, belongs.",
                     lambda tab, c: (1 - tab.at(tab.alpha, c["t"])).sqrt()),
            _Variant("off_by_one", _OFF_BY_ONE_MINUS, _term_with_shift(_qs_eps, -1)),
            _Variant("off_by_one", _OFF_BY_ONE_PLUS, _term_with_shift(_qs_eps, +1)),
            _Variant("swapped", "sqrt(alpha_bar_t), the signal coefficient, multiplies eps: the two coefficients are swapped.",
                     _qs_x0),
        )),
    ),
    global_variants=(
        _GlobalVariant("off_by_one", _OFF_BY_ONE_MINUS, lambda tab, c: {"x0": _qs_x0(tab, _shift(c, -1)), "eps": _qs_eps(tab, _shift(c, -1))}),
        _GlobalVariant("off_by_one", _OFF_BY_ONE_PLUS, lambda tab, c: {"x0": _qs_x0(tab, _shift(c, 1)), "eps": _qs_eps(tab, _shift(c, 1))}),
        _GlobalVariant("alpha_for_alpha_bar", "alpha_t where alpha_bar_t belongs in both coefficients: that is one forward "
                       "step from x0, not t+1 steps (alpha_bar_t = alpha_0 * ... * alpha_t).",
                       lambda tab, c: {"x0": tab.at(tab.alpha, c["t"]).sqrt(), "eps": (1 - tab.at(tab.alpha, c["t"])).sqrt()}),
        _GlobalVariant("swapped", "the two coefficients are swapped: sqrt(alpha_bar_t) belongs to x0 and sqrt(1 - alpha_bar_t) "
                       "to eps (or x0 and eps were swapped in the signature fn(schedule, x0, t, eps)).",
                       lambda tab, c: {"x0": _qs_eps(tab, c), "eps": _qs_x0(tab, c)}),
    ),
    call=lambda fn, s, x, c: fn(s, x["x0"], c["t"], x["eps"]),
    reference=lambda s, x, c: q_sample(s, x["x0"], c["t"], eps=x["eps"]),
    cases=_uniform_cases,
)


def check_q_sample(fn: Callable, *, quiet: bool = False) -> CheckResult:
    """Check ``fn(schedule, x0, t, eps) -> x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps`` (Ho et al. 2020, eq. 4)
    against :func:`~diffusion_course.forward.q_sample`; print the report and return it."""
    return _run(_Q_SAMPLE, fn, quiet)
