"""Chapter 4's exercise: the whole DDPM sampling loop (Ho et al. 2020, Algorithm 2).

The learner writes ``fn(model, schedule, shape, generator) -> x_0``: draw ``x_T = torch.randn(shape,
generator=generator)``; for code t = T-1, ..., 0 (the paper's T, ..., 1) call ``eps_hat = model(x, t)`` with t a
LongTensor of shape (B,), draw ``z = torch.randn(shape, generator=generator)`` except at t = 0, and take the step
x <- (x - beta_t / sqrt(1 - alpha_bar_t) eps_hat) / sqrt(alpha_t) + sigma_t z with sigma_t^2 = beta_t (no noise at t = 0).

The checker hands the function a tiny deterministic eps-model that records every call and a seeded generator, and
compares with :func:`~diffusion_course.samplers.ddpm_sample` run on the same model and seed. It compares the sequence
of model calls (how many, which t, in which order), then the input of each call, and diagnoses the first step whose
result differs: it recomputes that step from the learner's own input with the known wrong forms (noise at t = 0, the
variance where the standard deviation belongs, alpha_bar for alpha, the shortcut step, ...) and names the one that
matches.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ...maths.samplers import ddpm_sample
from ...maths.schedules import NoiseSchedule
from ._diagnosis import _learner_line
from ._engine import CheckResult, _is_stub_output, _reporter

NAME = "sampling_loop"
SIGNATURE = "fn(model, schedule, shape, generator) -> x_0"


class _TinyEpsModel(nn.Module):
    """eps_theta(x, t) = 0.6 tanh(x) + 0.3 (t + 1) / T: deterministic, cheap, depends on x and t; records every call."""

    def __init__(self, T: int) -> None:
        super().__init__()
        self.T = T
        self.scale = nn.Parameter(torch.tensor(1.0), requires_grad=False)
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def eps(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        tt = t.to(x.dtype).reshape(-1, *([1] * (x.ndim - 1))) if t.ndim == 1 else t.to(x.dtype)
        return self.scale * (0.6 * torch.tanh(x) + 0.3 * (tt + 1) / self.T)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t)
        self.calls.append((x.detach().clone(), t.detach().clone()))
        return self.eps(x, t)


def _cases() -> list[dict]:
    return [
        {"label": "a short steep schedule (linear, T = 10, beta 0.05 .. 0.5), 2-D points of shape (6, 2)",
         "schedule": NoiseSchedule.linear(10, 0.05, 0.5), "shape": (6, 2), "seed": 3},
        {"label": "a linear schedule with T = 50 (beta 1e-3 .. 0.2), images of shape (3, 1, 4, 4)",
         "schedule": NoiseSchedule.linear(50, 1e-3, 0.2), "shape": (3, 1, 4, 4), "seed": 4},
    ]


def _step_variants(s: NoiseSchedule, x: torch.Tensor, t: int, eps_hat: torch.Tensor, z: torch.Tensor | None
                   ) -> list[tuple[str, str, torch.Tensor]]:
    """The right step (key "correct") and known wrong ones, from input x at code t with model output eps_hat."""
    b, a, ab = (float(v.double()[t]) for v in (s.beta, s.alpha, s.alpha_bar))
    pv = float(s.posterior_variance.double()[t])
    x, e = x.double(), eps_hat.double()
    zz = torch.zeros_like(x) if z is None else z.double()
    mean = (x - b / (1 - ab) ** 0.5 * e) / a**0.5
    last = t == 0
    sigma = 0.0 if last else b**0.5
    out = [("correct", "", mean + sigma * zz)]
    if last and z is not None:
        out.append(("noise_at_t0", "noise added at the last step (code t = 0, the paper's t = 1): Algorithm 2 sets z = 0 "
                    "there, so x_0 is the mean itself. Draw and add z only while t > 0.", mean + b**0.5 * zz))
    if not last:
        out += [
            ("variance_for_std", "sigma_t^2 = beta_t multiplies z where sigma_t = sqrt(beta_t) belongs: z ~ N(0, I) is "
             "scaled by a standard deviation.", mean + b * zz),
            ("posterior_variance", "sigma_t = sqrt(tilde-beta_t), the posterior's, where this exercise asks for "
             "sigma_t^2 = beta_t (both are valid in Ho et al. 2020, section 3.2; the reference uses beta_t).",
             mean + pv**0.5 * zz),
            ("no_noise", "no noise added: each step must add sigma_t z with fresh z ~ N(0, I) (except at t = 0); without "
             "it the samples collapse, as section 8 showed.", mean),
        ]
    out += [
        ("alpha_bar_for_alpha", "1 / sqrt(alpha_bar_t) where 1 / sqrt(alpha_t) belongs: one reverse step undoes one "
         "forward step's scaling.", (x - b / (1 - ab) ** 0.5 * e) / ab**0.5 + sigma * zz),
        ("simplified_step", "sqrt(beta_t) in place of beta_t / sqrt(1 - alpha_bar_t) in front of eps_hat: the shortcut "
         "of section 8, which removes far too much noise per step.", (x - b**0.5 * e) / a**0.5 + sigma * zz),
        ("variance_for_std", "1 - alpha_bar_t where sqrt(1 - alpha_bar_t) belongs in the denominator of the eps_hat term.",
         (x - b / (1 - ab) * e) / a**0.5 + sigma * zz),
        ("missing_sqrt", "1 / alpha_t where 1 / sqrt(alpha_t) belongs.", (x - b / (1 - ab) ** 0.5 * e) / a + sigma * zz),
    ]
    for shift in (-1, 1):
        u = t + shift
        if 0 <= u < s.T:
            bs, as_, abs_ = (float(v.double()[u]) for v in (s.beta, s.alpha, s.alpha_bar))
            out.append(("off_by_one", f"the coefficients of code t{shift:+d} were used for the model's t = {t}: index the "
                        "tables with the same t you give the model.",
                        (x - bs / (1 - abs_) ** 0.5 * e) / as_**0.5 + (0.0 if last else bs**0.5) * zz))
    return out


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and bool(((a.double() - b.double()).abs() <= 1e-4 * (1 + b.double().abs())).all())


def _raised(err: Exception, model: _TinyEpsModel, T: int, where: str, n: int, done: Callable[..., CheckResult]) -> CheckResult:
    """The report of a loop that raised: a timestep past T-1, or a tensor compared with 0."""
    text = f"{type(err).__name__}: {err}"
    lines = [f"{NAME}: your function raised {text}{_learner_line(err)}", f"  on {where}."]
    keys: tuple[str, ...] = ("error",)
    ts = [int(c[1].reshape(-1)[0]) for c in model.calls]
    if ("out of bounds" in text or "out of range" in text or "must lie in" in text) and ts and max(ts) >= T:
        lines.append(f"  The model was called with t = {max(ts)}: code timesteps run T-1..0 (the paper's T..1); "
                     "loop over reversed(range(schedule.T)).")
        keys = ("off_by_one", "error")
    elif "ambiguous" in text:
        lines.append("  t is a LongTensor of shape (B,); compare the loop's integer i with 0 (`if i > 0:`), not the tensor.")
    return done("error", "\n".join(lines), keys, n)


def _wrong_calls(calls: list[tuple[torch.Tensor, torch.Tensor]], shape: tuple[int, ...], T: int, lines: list[str], n: int,
                 failure: dict, done: Callable[..., CheckResult]) -> CheckResult | None:
    """The report of model calls with a t of the wrong form or the wrong sequence of t (order, count, numbering), or None."""
    ts = []
    for _x_in, t in calls:
        if t.ndim != 1 or t.shape[0] != shape[0] or t.dtype != torch.long:
            lines.append(f"  The model got t of shape {tuple(t.shape)} and dtype {t.dtype}; pass a LongTensor of shape "
                         f"(B,) = ({shape[0]},): torch.full((B,), i, dtype=torch.long).")
            return done("wrong", "\n".join(lines), ("t_shape",), n, failure)
        ts.append(int(t[0]))
    want_ts = list(range(T - 1, -1, -1))
    if ts == want_ts:
        return None
    if ts == list(range(T)):
        text, key = (f"the loop runs forward, t = 0, 1, ..., {T - 1}. Algorithm 2 runs backwards, from code t = {T - 1} "
                     "(pure noise) down to 0: for i in reversed(range(schedule.T))."), "loop_order"
    elif ts == list(range(T, 0, -1)):
        text, key = (f"the model was called with t = {T}, ..., 1, the paper's numbering; code timesteps run {T - 1}, "
                     "..., 0."), "off_by_one"
    elif ts == want_ts[:-1]:
        text, key = ("the loop stops before code t = 0 (the paper's t = 1), so the last step is missing: e.g. "
                     "range(T - 1, 0, -1) where range(T - 1, -1, -1) belongs."), "off_by_one"
    elif ts == want_ts[1:]:
        text, key = f"the loop starts at t = {T - 2}, one step late: the first step is at code t = {T - 1}.", "off_by_one"
    elif len(ts) != T:
        text, key = f"the model was called {len(ts)} times; Algorithm 2 calls it T = {T} times, once per step.", "step_count"
    else:
        text, key = f"the model was called with t = {ts[:4]}...; expected {want_ts[:4]}... ({T - 1} down to 0).", "t_sequence"
    lines.append(f"  It looks like: {text}")
    return done("wrong", "\n".join(lines), (key,), n, failure)


def _wrong_step(case: dict, model: _TinyEpsModel, out: torch.Tensor, lines: list[str], n: int, failure: dict,
                done: Callable[..., CheckResult]) -> CheckResult:
    """With the right model calls: replay the reference's random numbers, find the first step whose result differs and
    name the known wrong form it matches."""
    s, shape, T = case["schedule"], case["shape"], case["schedule"].T
    calls = model.calls
    want_ts = list(range(T - 1, -1, -1))
    g = torch.Generator().manual_seed(case["seed"])
    x_T = torch.randn(shape, generator=g)
    zs = [torch.randn(shape, generator=g) if i > 0 else None for i in want_ts]
    z_extra = torch.randn(shape, generator=g)  # what a loop that also draws at t = 0 would get there
    if not _close(calls[0][0], x_T):
        lines.append("  The first model input is not x_T = torch.randn(shape, generator=generator): draw x_T first, "
                     "from N(0, I), with `generator` (not torch.rand, and not without the generator).")
        return done("wrong", "\n".join(lines), ("x_T_draw",), n, failure)
    outputs = [c[0] for c in calls[1:]] + [out]
    for k, i in enumerate(want_ts):
        x_in, x_out = calls[k][0], outputs[k]
        eps_hat = model.eps(x_in, torch.full((shape[0],), i, dtype=torch.long))
        variants = _step_variants(s, x_in, i, eps_hat, zs[k] if i > 0 else z_extra)
        if _close(x_out, variants[0][2]):
            continue
        lines.append(f"  The first step that differs is code t = {i} (the paper's t = {i + 1}), step {k + 1} of {T}.")
        failure["t"] = i
        for key, text, value in variants[1:]:
            if _close(x_out, value):
                lines.append(f"  It looks like: {text}")
                return done("wrong", "\n".join(lines), (key,), n, failure)
        if i > 0:
            mean = variants[0][2] - (s.beta.double()[i] ** 0.5) * zs[k].double()
            resid = x_out.double() - mean
            if float(resid.std()) > 0.2 * float(s.beta.double()[i] ** 0.5):
                lines.append("  The mean looks right but the noise is not the reference's: draw z = torch.randn(shape, "
                             "generator=generator) once per step, after x_T, only while t > 0.")
                return done("wrong", "\n".join(lines), ("noise_draw",), n, failure)
        lines.append("  It matches none of the usual mistakes; compare the step term by term with Algorithm 2, line 4.")
        return done("wrong", "\n".join(lines), (), n, failure)
    lines.append("  Every step matches, but the returned tensor is not the last x: return x after the loop.")
    return done("wrong", "\n".join(lines), ("return_value",), n, failure)


def check_sampling_loop(fn: Callable, *, quiet: bool = False) -> CheckResult:
    """Check a DDPM sampling loop ``fn(model, schedule, shape, generator) -> x_0`` (Ho et al. 2020, Algorithm 2, with
    sigma_t^2 = beta_t) against :func:`~diffusion_course.samplers.ddpm_sample` on a tiny deterministic eps-model and the
    same seeded generator; print the report and return it."""

    done = _reporter(NAME, quiet)

    if not callable(fn):
        return done("error", f"{NAME}: expected a function {SIGNATURE}; got {type(fn).__name__}.", ("not_callable",))
    cases = _cases()
    for n, case in enumerate(cases, 1):
        s, shape, T = case["schedule"], case["shape"], case["schedule"].T
        ref = _TinyEpsModel(T)
        want = ddpm_sample(ref, s, shape, generator=torch.Generator().manual_seed(case["seed"]))
        model = _TinyEpsModel(T)
        where = f"case {n} ({case['label']})"
        try:
            with torch.no_grad():
                out = fn(model, s, shape, torch.Generator().manual_seed(case["seed"]))
        except NotImplementedError:
            return done("not written yet", f"{NAME}: not written yet. Replace the `raise NotImplementedError` with your code, "
                                           "then run this cell again.")
        except Exception as err:  # noqa: BLE001 - report any learner error in words
            return _raised(err, model, T, where, n, done)
        if _is_stub_output(out):
            return done("not written yet", f"{NAME}: not written yet (it returned {out!r}). End the function with `return x`.")
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != tuple(shape):
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            return done("wrong", f"{NAME}: expected x_0 of shape {tuple(shape)}; got {got} on {where}.", ("shape",), n)
        if _close(out, want):
            continue
        lines = [f"{NAME}: not right yet.", f"  First difference: {where}: x_0 differs from ddpm_sample's (first element: "
                                            f"expected {float(want.reshape(-1)[0]):.6g}, got {float(out.reshape(-1)[0]):.6g})."]
        failure = {"case": n}
        verdict = _wrong_calls(model.calls, shape, T, lines, n, failure, done)
        if verdict is not None:
            return verdict
        return _wrong_step(case, model, out, lines, n, failure, done)
    return done("correct", f"{NAME}: correct. It matched ddpm_sample (same model calls, t = T-1 down to 0, same x at every "
                           f"step) on {len(cases)} cases: " + "; ".join(c["label"] for c in cases) + ".", (), len(cases))
