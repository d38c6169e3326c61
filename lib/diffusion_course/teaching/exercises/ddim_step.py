"""Chapter 8's exercise: one DDIM step (Song et al. 2021, eq. 12)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ...maths.samplers import ddim_step
from ._diagnosis import COEF_ATOL, _GlobalVariant, _Spec, _Tables, _Term, _Variant
from ._engine import CheckResult, _run


# DDIM: x_prev = sqrt(ab_prev) x0_hat + sqrt(1 - ab_prev - sigma^2) eps_hat + sigma z,  x0_hat = (x_t - sqrt(1-ab_t) eps_hat)/sqrt(ab_t)
def _dd_parts(tab: _Tables, c: dict, *, ab_prev_fn: Callable | None = None, use_alpha: bool = False):
    t, tp, eta = c["t"], c["t_prev"], float(c["eta"])
    if use_alpha:
        ab_t = tab.at(tab.alpha, t)
        ab_p = torch.where(tp < 0, torch.ones_like(tp, dtype=torch.float64), tab.at(tab.alpha, tp.clamp(min=0)))
    else:
        ab_t = tab.at(tab.alpha_bar, t)
        ab_p = ab_prev_fn(tab, tp) if ab_prev_fn else tab.ab_or_one(tp)
    sigma = eta * ((1 - ab_p) / (1 - ab_t) * (1 - ab_t / ab_p)).clamp(min=0).sqrt()
    return ab_t, ab_p, sigma


def _dd_coefs(tab: _Tables, c: dict, **kw) -> dict[str, torch.Tensor]:
    ab_t, ab_p, sigma = _dd_parts(tab, c, **kw)
    return {
        "x_t": ab_p.sqrt() / ab_t.sqrt(),
        "eps_hat": -ab_p.sqrt() * (1 - ab_t).sqrt() / ab_t.sqrt() + (1 - ab_p - sigma**2).clamp(min=0).sqrt(),
        "z": sigma,
    }


def _wrapped(tab: _Tables, tp: torch.Tensor) -> torch.Tensor:
    return tab.at(tab.alpha_bar, tp)  # alpha_bar[-1]: the last entry, nearly 0, instead of 1


_T_PREV_WRAPPED = ("t_prev = -1 (the clean data) read as alpha_bar[-1], which is Python's last entry alpha_bar_{T-1} "
                   "(nearly 0), where alpha_bar_prev = 1 belongs. Treat t_prev = -1 separately.")
_DDIM_ALPHA = "alpha_t where alpha_bar_t belongs: DDIM jumps between levels of q(x_t | x_0), which use alpha_bar."


def _ddim_cases(tabs: list[_Tables]) -> list[dict]:
    cases = []
    for tab in tabs:
        T = tab.T
        pairs = [(T - 1, T - 1 - max(T // 50, 1)), (T // 2, T // 2 - max(T // 50, 1)), (max(T // 50, 1), 0), (0, -1), (T - 1, -1)]
        for shape in ((5, 2), (4, 1, 3, 3)):
            for eta in (0.0, 0.5, 1.0):
                for t, tp in pairs:
                    B = shape[0]
                    cases.append({"tab": tab, "shape": shape, "t": torch.full((B,), t, dtype=torch.long),
                                  "t_prev": torch.full((B,), tp, dtype=torch.long), "eta": eta})
    return cases


def _ddim_term(name: str, formula: str, key: str) -> _Term:
    def right(tab: _Tables, c: dict) -> torch.Tensor:
        return _dd_coefs(tab, c)[key]

    variants = [
        _Variant("t_prev_wrapped", _T_PREV_WRAPPED, lambda tab, c: _dd_coefs(tab, c, ab_prev_fn=_wrapped)[key]),
        _Variant("alpha_for_alpha_bar", _DDIM_ALPHA, lambda tab, c: _dd_coefs(tab, c, use_alpha=True)[key]),
    ]
    if key == "z":
        variants.insert(0, _Variant("variance_for_std", "sigma^2 where sigma belongs: sigma_t(eta) = eta sqrt((1 - alpha_bar_prev)"
                                    " / (1 - alpha_bar_t)) sqrt(1 - alpha_bar_t / alpha_bar_prev) is already a standard deviation "
                                    "(Song et al. 2021, eq. 16).", lambda tab, c: _dd_coefs(tab, c)["z"] ** 2))
    if key == "eps_hat":
        def no_sigma(tab: _Tables, c: dict) -> torch.Tensor:
            ab_t, ab_p, _ = _dd_parts(tab, c)
            return -ab_p.sqrt() * (1 - ab_t).sqrt() / ab_t.sqrt() + (1 - ab_p).sqrt()

        def variance_dir(tab: _Tables, c: dict) -> torch.Tensor:
            ab_t, ab_p, sigma = _dd_parts(tab, c)
            return -ab_p.sqrt() * (1 - ab_t).sqrt() / ab_t.sqrt() + (1 - ab_p - sigma**2).clamp(min=0)

        variants.insert(0, _Variant("sigma_missing_from_direction", "the direction term uses sqrt(1 - alpha_bar_prev) where "
                                    "sqrt(1 - alpha_bar_prev - sigma^2) belongs: with eta > 0 part of the noise budget goes to "
                                    "the fresh noise sigma z.", no_sigma))
        variants.insert(1, _Variant("variance_for_std", "the direction term uses (1 - alpha_bar_prev - sigma^2) where its square "
                                    "root belongs.", variance_dir))
    return _Term(name, formula, right, tuple(variants),
                 sign_note=" (For z this does not change the distribution, but eq. 12 adds sigma z.)" if key == "z" else "",
                 atol=5e-4 if key == "eps_hat" else COEF_ATOL)


_DDIM = _Spec(
    name="ddim_step",
    signature="fn(schedule, x_t, t, t_prev, eps_hat, eta, z) -> x_{t_prev}",
    terms=(
        _ddim_term("x_t", "sqrt(alpha_bar_prev) / sqrt(alpha_bar_t)", "x_t"),
        _ddim_term("eps_hat", "-sqrt(alpha_bar_prev) sqrt(1 - alpha_bar_t) / sqrt(alpha_bar_t) + sqrt(1 - alpha_bar_prev - sigma^2)",
                   "eps_hat"),
        _ddim_term("z", "sigma = eta sqrt((1 - alpha_bar_prev) / (1 - alpha_bar_t)) sqrt(1 - alpha_bar_t / alpha_bar_prev)", "z"),
    ),
    global_variants=(
        _GlobalVariant("t_prev_wrapped", _T_PREV_WRAPPED, lambda tab, c: _dd_coefs(tab, c, ab_prev_fn=_wrapped)),
        _GlobalVariant("alpha_for_alpha_bar", _DDIM_ALPHA, lambda tab, c: _dd_coefs(tab, c, use_alpha=True)),
    ),
    call=lambda fn, s, x, c: fn(s, x["x_t"], c["t"], c["t_prev"], x["eps_hat"], c["eta"], x["z"]),
    reference=lambda s, x, c: ddim_step(s, x["x_t"], c["t"], c["t_prev"], x["eps_hat"], eta=c["eta"], noise=x["z"]),
    cases=_ddim_cases,
)


def check_ddim_step(fn: Callable, *, quiet: bool = False) -> CheckResult:
    """Check one DDIM step ``fn(schedule, x_t, t, t_prev, eps_hat, eta, z) -> x_{t_prev}`` (Song et al. 2021, eq. 12), with
    t_prev = -1 meaning the clean data (alpha_bar = 1), against :func:`~diffusion_course.samplers.ddim_step`."""
    return _run(_DDIM, fn, quiet)
