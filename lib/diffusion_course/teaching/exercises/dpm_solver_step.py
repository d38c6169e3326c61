"""Chapter 12's exercise: one DPM-Solver++(2M) update (Lu et al. 2022, Algorithm 2), in the data prediction x0_hat.

The learner's ``fn(schedule, x_t, t, t_prev, x0_hat, t_last, x0_hat_last)`` steps from the kept timestep t to the next
one, t_prev < t, using this step's prediction x0_hat (made at t) and the one before, x0_hat_last (made at t_last > t).
With alpha_u = sqrt(alpha_bar_u), sigma_u = sqrt(1 - alpha_bar_u) and lambda_u = log(alpha_u / sigma_u):

    h = lambda_{t_prev} - lambda_t,   r = (lambda_t - lambda_{t_last}) / h,
    D = (1 + 1/(2r)) x0_hat - 1/(2r) x0_hat_last,
    x_{t_prev} = (sigma_{t_prev} / sigma_t) x_t + alpha_{t_prev} (1 - e^{-h}) D.

At fixed timesteps this is linear in x_t, x0_hat and x0_hat_last, so on a difference the checker measures the three
weights (a one in one input, zeros in the others) and names the slip they match. The first step (no earlier
prediction) and the last (into the clean data, where h is infinite) are first order, DDIM's step, and not part of it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ...maths.schedules import NoiseSchedule
from ._diagnosis import _close, _learner_line
from ._engine import CheckResult, _first_difference, _is_stub_output, _reporter

Weights = tuple[float, float, float]  # of x_t, x0_hat, x0_hat_last


def _levels(schedule: NoiseSchedule, u: int, *, squared: bool = False) -> tuple[float, float]:
    """(alpha_u, sigma_u) in float64; with ``squared`` the slip (alpha_bar_u, 1 - alpha_bar_u)."""
    a = float(schedule.sqrt_alpha_bar.double()[u])
    s = float(schedule.sqrt_one_minus_alpha_bar.double()[u])
    return (a * a, s * s) if squared else (a, s)


def _weights(schedule: NoiseSchedule, t: int, tp: int, tl: int, slip: str | None = None) -> Weights:
    """The weights of (x_t, x0_hat, x0_hat_last) in the 2M update, right (``slip`` None) or with one known slip."""
    sq = slip == "alpha_bar_for_alpha"
    (a_t, s_t), (a_p, s_p), (a_l, s_l) = (_levels(schedule, u, squared=sq) for u in (t, tp, tl))
    lam = lambda a, s: math.log(a / s)  # noqa: E731
    h = lam(a_p, s_p) - lam(a_t, s_t)
    r = (lam(a_t, s_t) - lam(a_l, s_l)) / h
    if slip == "log_snr_for_lambda":
        h = 2 * h  # r is a ratio of two such differences: unchanged
    if slip == "r_inverted":
        r = 1 / r
    front = (a_t if slip == "alpha_of_t" else a_p) * -math.expm1(-h)  # alpha (1 - e^-h)
    cx = s_t / s_p if slip == "sigma_ratio_inverted" else s_p / s_t
    if slip == "first_order":
        return cx, front, 0.0
    if slip == "no_half":
        return cx, front * (1 + 1 / r), -front / r
    if slip == "taylor_variant":  # diffusers' solver_type="heun": D0 = x0_hat, D1 = (x0_hat - x0_hat_last) / r
        b = a_p * (1 + math.expm1(-h) / h)
        return cx, front + b / r, -b / r
    w0, w1 = front * (1 + 0.5 / r), -front * 0.5 / r
    if slip == "sign_of_d":
        return cx, -w0, -w1
    if slip == "swapped_predictions":
        return cx, w1, w0
    return cx, w0, w1


_SLIPS = (
    ("first_order", "x0_hat_last is not used: that is the first-order step (DDIM with eta = 0). The 2M update extrapolates "
     "D = (1 + 1/(2r)) x0_hat - 1/(2r) x0_hat_last from the two latest predictions."),
    ("no_half", "D = x0_hat + (x0_hat - x0_hat_last) / r extrapolates the line through the two predictions to the end of "
     "the step; Algorithm 2 reads that line at the middle of the step, 1/(2r) (the midpoint rule for the integral of "
     "e^lambda x0_hat over the step)."),
    ("r_inverted", "r is inverted: r = h_last / h = (lambda_t - lambda_{t_last}) / (lambda_{t_prev} - lambda_t), the last "
     "step's length over this one's."),
    ("log_snr_for_lambda", "lambda = log(alpha_bar / (1 - alpha_bar)) is the log-SNR, twice DPM-Solver's lambda = "
     "log(alpha / sigma) with alpha = sqrt(alpha_bar), sigma = sqrt(1 - alpha_bar): h comes out doubled."),
    ("alpha_bar_for_alpha", "alpha_bar and 1 - alpha_bar where alpha = sqrt(alpha_bar) and sigma = sqrt(1 - alpha_bar) "
     "belong: DPM-Solver writes x_t = alpha_t x_0 + sigma_t eps."),
    ("alpha_of_t", "alpha_t where alpha_{t_prev} belongs: the exact solution is x_{t_prev} = (sigma_{t_prev}/sigma_t) x_t + "
     "sigma_{t_prev} * integral of e^lambda x0_hat d lambda, and sigma_{t_prev} e^lambda_{t_prev} = alpha_{t_prev}."),
    ("sigma_ratio_inverted", "the weight of x_t is sigma_t / sigma_{t_prev}; it is sigma_{t_prev} / sigma_t (below 1: the "
     "noise shrinks)."),
    ("sign_of_d", "the sign of the x0_hat terms is flipped: the paper writes -alpha_{t_prev} (e^{-h} - 1) D, which is "
     "+alpha_{t_prev} (1 - e^{-h}) D."),
    ("swapped_predictions", "x0_hat and x0_hat_last are swapped: the newest prediction (made at t) gets the weight "
     "1 + 1/(2r), the older one -1/(2r)."),
    ("taylor_variant", "this is the other second-order multistep formula (diffusers' solver_type=\"heun\": "
     "+alpha (1 - (1 - e^{-h})/h) (x0_hat - x0_hat_last)/r), of the same order but not Algorithm 2's midpoint rule: "
     "use D = (1 + 1/(2r)) x0_hat - 1/(2r) x0_hat_last."),
)


def _cases() -> list[tuple[str, NoiseSchedule, tuple[int, int, int]]]:
    """(schedule name, schedule, (t_last, t, t_prev)): unequal steps in lambda (r far from 1), t_prev = 0 included."""
    ddpm, cosine, short = NoiseSchedule.linear(1000), NoiseSchedule.cosine(1000), NoiseSchedule.linear(10, 0.05, 0.5)
    out = [("the DDPM schedule (linear, T = 1000)", ddpm, triple) for triple in ((999, 899, 799), (899, 600, 99), (299, 199, 0), (40, 20, 10))]
    out += [("the cosine schedule (T = 1000)", cosine, triple) for triple in ((999, 666, 333), (200, 100, 0))]
    out += [("a short steep schedule (linear, T = 10, beta 0.05 .. 0.5)", short, triple) for triple in ((9, 6, 2), (5, 3, 0))]
    return out


def _where(name: str, tl: int, t: int, tp: int, shape: tuple[int, ...]) -> str:
    return f"{name}, t_last = {tl}, t = {t}, t_prev = {tp}, inputs of shape {shape}"


def _measure(fn: Callable, schedule: NoiseSchedule, t: int, tp: int, tl: int) -> Weights | None:
    """The learner's three weights at these timesteps (a one in one input, zeros in the others), or None if it fails
    or is not one weight per input (e.g. it clips or squares)."""
    one, zero = torch.ones(2, 3), torch.zeros(2, 3)
    try:
        with torch.no_grad():
            ws = [fn(schedule, *args) for args in ((one, t, tp, zero, tl, zero), (zero, t, tp, one, tl, zero), (zero, t, tp, zero, tl, one))]
            g = torch.Generator().manual_seed(5)
            x, m0, m1 = (torch.randn(2, 3, generator=g) for _ in range(3))
            mixed = fn(schedule, x, t, tp, m0, tl, m1)
    except Exception:  # noqa: BLE001 - unmeasurable: no diagnosis
        return None
    if not all(isinstance(w, torch.Tensor) and w.shape == (2, 3) for w in (*ws, mixed)):
        return None
    c = tuple(float(w.double().mean()) for w in ws)
    pred = c[0] * x.double() + c[1] * m0.double() + c[2] * m1.double()
    scale = abs(c[0]) * x.double().abs() + abs(c[1]) * m0.double().abs() + abs(c[2]) * m1.double().abs()
    if not all(torch.allclose(w.double(), torch.full_like(w.double(), ci), rtol=1e-4, atol=1e-6) for w, ci in zip(ws, c)):
        return None
    return c if bool(_close(mixed.double(), pred, scale).all()) else None


def _diagnosis(fn: Callable) -> tuple[list[str], tuple[str, ...]]:
    """Measured weights on every case, compared with the right ones and with each known slip."""
    measured = []
    for name, schedule, (tl, t, tp) in _cases():
        c = _measure(fn, schedule, t, tp, tl)
        if c is None:
            return (["  Your output is not a fixed multiple of each input (x_t, x0_hat, x0_hat_last) at given timesteps, as the "
                     "update is (no clipping, squares or products of inputs here: the sampler clips x0_hat before the step), so "
                     "I cannot split it term by term."], ())
        measured.append((name, schedule, (tl, t, tp), c))
    wrong_cases = [m for m in measured if not _same(m[3], _weights(m[1], m[2][1], m[2][2], m[2][0]))]
    name, schedule, (tl, t, tp), c = (wrong_cases or measured)[0]
    right = _weights(schedule, t, tp, tl)
    lines = [f"  Measured weights of (x_t, x0_hat, x0_hat_last) at {name}, t_last = {tl}, t = {t}, t_prev = {tp}: "
             f"({c[0]:.6g}, {c[1]:.6g}, {c[2]:.6g}); expected ({right[0]:.6g}, {right[1]:.6g}, {right[2]:.6g})."]
    for key, text in _SLIPS:
        if all(_same(got, _weights(s, k[1], k[2], k[0], key)) for _, s, k, got in measured):
            return lines + [f"  Diagnosis: {text}"], (key,)
    wrong = [label for label, got, want in zip(("x_t", "x0_hat", "x0_hat_last"), c, right) if not _same((got,), (want,))]
    return lines + [f"  The weight of {' and of '.join(wrong)} is off, and matches none of the slips I know; compare it with "
                    "the formula above the exercise."], ()


def _same(got: tuple[float, ...], want: tuple[float, ...]) -> bool:
    return all(abs(g - w) <= 1e-6 + 2e-3 * abs(w) for g, w in zip(got, want))


def _reference(schedule: NoiseSchedule, x: torch.Tensor, t: int, tp: int, m0: torch.Tensor, tl: int, m1: torch.Tensor):
    """The update in float64, and the size of its terms (for the tolerance)."""
    w = _weights(schedule, t, tp, tl)
    terms = [wi * v.double() for wi, v in zip(w, (x, m0, m1))]
    return terms[0] + terms[1] + terms[2], sum(term.abs() for term in terms)


def check_dpm_solver_step(fn: Callable, *, quiet: bool = False) -> CheckResult:
    """Check one DPM-Solver++(2M) update ``fn(schedule, x_t, t, t_prev, x0_hat, t_last, x0_hat_last) -> x_{t_prev}``
    (Lu et al. 2022, Algorithm 2; timesteps are ints, t_last > t > t_prev >= 0) on three schedules, 2-D points and
    images, steps of unequal length; print the report and return it."""
    name = "dpm_solver_step"
    done = _reporter(name, quiet)
    if not callable(fn):
        return done("error", f"{name}: expected a function fn(schedule, x_t, t, t_prev, x0_hat, t_last, x0_hat_last) -> x_t_prev; "
                             f"got {type(fn).__name__}.", ("not_callable",))
    g = torch.Generator().manual_seed(12)
    n = 0
    for where, schedule, (tl, t, tp) in _cases():
        for shape in ((5, 2), (3, 1, 4, 4)):
            n += 1
            x, m0, m1 = (torch.randn(shape, generator=g) for _ in range(3))
            originals = (x.clone(), m0.clone(), m1.clone())
            at = _where(where, tl, t, tp, shape)
            try:
                with torch.no_grad():
                    out = fn(schedule, x, t, tp, m0, tl, m1)
            except NotImplementedError:
                return done("not written yet", f"{name}: not written yet. Replace the `raise NotImplementedError` with your code, "
                                               "then run this cell again.")
            except Exception as err:  # noqa: BLE001 - report any learner error in words
                return done("error", f"{name}: your function raised {type(err).__name__}: {err}{_learner_line(err)}\n  on: {at}.", ("error",), n)
            if _is_stub_output(out):
                return done("not written yet", f"{name}: not written yet (it returned {out!r}). If you did write it, check that "
                                               "the function ends with a `return` of the result.")
            if not isinstance(out, torch.Tensor) or tuple(out.shape) != shape:
                got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                return done("wrong", f"{name}: expected a tensor of x_t's shape {shape}; got {got} (on: {at}).", ("shape",), n)
            if not all(torch.equal(a, b) for a, b in zip((x, m0, m1), originals)):
                return done("wrong", f"{name}: your function changed x_t, x0_hat or x0_hat_last in place; compute a new tensor instead.",
                            ("in_place",), n)
            want, scale = _reference(schedule, originals[0], t, tp, originals[1], tl, originals[2])
            got = out.detach().double()
            if not torch.isfinite(got).all():
                lines, found = _diagnosis(fn)
                return done("wrong", "\n".join([f"{name}: your output contains NaN or inf (on: {at}). A division by h = 0 or by "
                                                "r = 0 (two equal timesteps), or the log of a negative number, are the usual causes."]
                                               + (lines if found else [])), found or ("nonfinite",), n)
            if not _close(got, want, scale).all():
                idx, ev, gv = _first_difference(got, want, scale)
                lines, found = _diagnosis(fn)
                head = [f"{name}: not right yet.", f"  First difference: {at}, element {list(idx)}: expected {ev:.6g}, got {gv:.6g}."]
                return done("wrong", "\n".join(head + lines), found, n, {"kind": "mismatch", "where": at, "index": idx, "expected": ev, "got": gv})
    return done("correct", f"{name}: correct. It matched Algorithm 2's update on {n} cases: the DDPM, cosine and a short steep "
                           "schedule, 2-D points and images, steps of unequal length in lambda, t_prev = 0 among the targets.", (), n)
