"""Chapter 4's exercise: one training step of DDPM (Ho et al. 2020, Algorithm 1).

The learner writes ``fn(model, schedule, x0, generator) -> loss``: draw one code timestep per example,
``t = torch.randint(0, schedule.T, (B,), generator=generator)``, then the noise ``eps = torch.randn(x0.shape,
generator=generator)``, form ``x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps`` (eq. 4), call ``model(x_t, t)``
and return the mean squared error between its output and ``eps`` (eq. 14) as a scalar tensor.

The checker hands the function a small recording model (it stores the x_t and t it is called with) and a seeded
generator, and compares with :func:`~diffusion_course.losses.simple_loss`, which draws t and eps in that order. When the
loss differs it follows the computation stage by stage (the timesteps, the noise, x_t, the loss) and names the first
stage that differs and the known mistake it matches.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ...maths.losses import simple_loss
from ...maths.schedules import NoiseSchedule
from ._diagnosis import _learner_line
from ._engine import CheckResult, _is_stub_output, _reporter

NAME = "training_step"
SIGNATURE = "fn(model, schedule, x0, generator) -> loss"


class _RecordingModel(nn.Module):
    """eps_theta(x_t, t) = w * x_t + b * (t + 1) / T: deterministic, differentiable, and it stores every call."""

    def __init__(self, T: int) -> None:
        super().__init__()
        self.T = T
        self.w = nn.Parameter(torch.tensor(0.7))
        self.b = nn.Parameter(torch.tensor(0.4))
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t)
        self.calls.append((x_t.detach().clone(), t.detach().clone()))
        tt = t.to(x_t.dtype).reshape(-1, *([1] * (x_t.ndim - 1))) if t.ndim == 1 and t.shape[0] == x_t.shape[0] else t.to(x_t.dtype)
        return self.w * x_t + self.b * (tt + 1) / self.T


def _cases() -> list[dict]:
    g = torch.Generator().manual_seed(40)
    return [
        {"label": "2-D points (64, 2), the DDPM schedule (linear, T = 1000)", "schedule": NoiseSchedule.linear(1000),
         "x0": torch.randn(64, 2, generator=g), "seed": 1},
        {"label": "images (16, 1, 4, 4), a short steep schedule (linear, T = 10, beta 0.05 .. 0.5)",
         "schedule": NoiseSchedule.linear(10, 0.05, 0.5), "x0": torch.randn(16, 1, 4, 4, generator=g), "seed": 2},
    ]


def _draws(case: dict, t_first: bool = True, low: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The t and eps a learner draws from the case's seeded generator, in either order, t from [low, T + low)."""
    g = torch.Generator().manual_seed(case["seed"])
    x0, T = case["x0"], case["schedule"].T
    if t_first:
        t = torch.randint(low, T + low, (x0.shape[0],), generator=g)
        eps = torch.randn(x0.shape, generator=g)
    else:
        eps = torch.randn(x0.shape, generator=g)
        t = torch.randint(low, T + low, (x0.shape[0],), generator=g)
    return t, eps


def _fit_coefficients(x_t: torch.Tensor, x0: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Per example, the a and b of x_t ~ a x0 + b eps (least squares), and the largest residual."""
    B = x0.shape[0]
    A = torch.stack([x0.reshape(B, -1).double(), eps.reshape(B, -1).double()], dim=2)  # (B, D, 2)
    y = x_t.reshape(B, -1, 1).double()
    sol = torch.linalg.lstsq(A, y).solution  # (B, 2, 1)
    resid = float((A @ sol - y).abs().max())
    return sol[:, 0, 0], sol[:, 1, 0], resid


def _xt_mistakes(s: NoiseSchedule, t: torch.Tensor) -> list[tuple[str, str, torch.Tensor, torch.Tensor]]:
    """(key, text, coefficient of x0, coefficient of eps) for the known wrong forms of eq. 4 at code timesteps t."""
    ab, a = s.alpha_bar.double()[t], s.alpha.double()[t]
    return [
        ("alpha_for_alpha_bar", "alpha_t where alpha_bar_t belongs: x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps "
         "jumps over all t steps at once, so it needs the product alpha_bar_t = alpha_1 ... alpha_t, not one step's alpha_t.",
         a.sqrt(), (1 - a).sqrt()),
        ("missing_sqrt", "alpha_bar_t and 1 - alpha_bar_t where their square roots belong (they are variances; x0 and eps "
         "are scaled by standard deviations).", ab, 1 - ab),
        ("missing_sqrt", "1 - alpha_bar_t where sqrt(1 - alpha_bar_t) belongs in front of eps (a variance where the standard "
         "deviation belongs).", ab.sqrt(), 1 - ab),
        ("missing_sqrt", "alpha_bar_t where sqrt(alpha_bar_t) belongs in front of x0.", ab, (1 - ab).sqrt()),
        ("swapped_coefficients", "the two coefficients are swapped: x0 gets sqrt(alpha_bar_t) and eps gets sqrt(1 - alpha_bar_t).",
         (1 - ab).sqrt(), ab.sqrt()),
    ]


def _loss_mistakes(eps_hat: torch.Tensor, eps: torch.Tensor, x0: torch.Tensor, x_t: torch.Tensor) -> list[tuple[str, str, float]]:
    d = (eps_hat.double() - eps.double())
    B = x0.shape[0]
    return [
        ("predicts_x0", "the loss compares the model's output with x0: this exercise (and Algorithm 1) trains the model to "
         "predict the noise eps, so the target is eps.", float(((eps_hat.double() - x0.double()) ** 2).mean())),
        ("target_x_t", "the loss compares the model's output with x_t; the target is the noise eps that was mixed in.",
         float(((eps_hat.double() - x_t.double()) ** 2).mean())),
        ("sum_for_mean", "the squared errors are summed where they are averaged: use .mean() (a sum grows with the batch "
         "and the image size, and with it the effective learning rate).", float((d**2).sum())),
        ("sum_for_mean", "the squared errors are summed over each example's coordinates and averaged over the batch; the "
         "reference (and simple_loss) averages over every element.", float((d**2).sum() / B)),
        ("absolute_error", "the absolute error |eps_hat - eps| where the squared error belongs (eq. 14 is a squared norm).",
         float(d.abs().mean())),
        ("not_squared", "the error is averaged without squaring it (positive and negative errors cancel).", float(d.mean())),
        ("root_mean", "the square root of the mean squared error: return the mean squared error itself.", float((d**2).mean().sqrt())),
    ]


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-4 * (1 + abs(b))


def _raised(err: Exception, model: _RecordingModel, T: int, where: str, n: int, done: Callable[..., CheckResult]) -> CheckResult:
    """The report of a training step that raised: a timestep that reached T, or a coefficient that does not broadcast."""
    text = f"{type(err).__name__}: {err}"
    lines = [f"{NAME}: your function raised {text}{_learner_line(err)}", f"  on {where}."]
    keys: tuple[str, ...] = ("error",)
    recorded = [c[1] for c in model.calls]
    if ("must lie in" in text or "out of bounds" in text or "out of range" in text) and (
            not recorded or int(recorded[-1].max()) >= T):
        lines.append(f"  A timestep reached T = {T}: code timesteps run 0..T-1 (the paper's 1..T). Draw them with "
                     "torch.randint(0, schedule.T, (B,), generator=generator).")
        keys = ("t_from_one", "error")
    elif "size of tensor" in text or "broadcast" in text:
        lines.append("  A coefficient of shape (B,) must be reshaped to (B, 1, ..., 1) to meet x0: "
                     "`extract(schedule.alpha_bar, t, x0)` does that for any rank.")
    return done("error", "\n".join(lines), keys, n)


def _misformed(out: object, model: _RecordingModel, n: int, done: Callable[..., CheckResult]) -> CheckResult | None:
    """The report of a result that is no loss (a stub's None, not a tensor, not one number) or of a step that never
    called the model, or None."""
    if _is_stub_output(out):
        return done("not written yet", f"{NAME}: not written yet (it returned {out!r}). End the function with "
                                       "`return loss`.")
    if not isinstance(out, torch.Tensor):
        hint = (" (.item() or float() turns the loss into a number, and training cannot call .backward() on it)"
                if isinstance(out, float) else "")
        return done("wrong", f"{NAME}: your function returned a {type(out).__name__}; return the loss as a torch.Tensor{hint}.",
                    ("not_a_tensor",), n)
    if out.numel() != 1:
        return done("wrong", f"{NAME}: the loss has shape {tuple(out.shape)}; it must be one number (a 0-d tensor): "
                             "average the squared errors with .mean().", ("no_reduction",), n)
    if not model.calls:
        return done("wrong", f"{NAME}: your function never called `model(x_t, t)`; the loss compares the model's "
                             "prediction with eps.", ("no_model_call",), n)
    return None


def _wrong_timesteps(case: dict, t: torch.Tensor, t_ref: torch.Tensor, lines: list[str], n: int, failure: dict,
                     done: Callable[..., CheckResult]) -> CheckResult | None:
    """The report of timesteps that differ from the reference's (shape, one t for the batch, 1..T, draw order), or None."""
    x0 = case["x0"]
    if t.shape != t_ref.shape:
        if t.numel() == 1:
            return done("wrong", "\n".join(lines + [
                f"  The model got one timestep (t of shape {tuple(t.shape)}) for a batch of {x0.shape[0]}: every example "
                "needs its own t, drawn with torch.randint(0, schedule.T, (B,), generator=generator), so that one "
                "batch trains the model at many noise levels."]), ("one_t_for_batch",), n, failure)
        return done("wrong", "\n".join(lines + [f"  The model got t of shape {tuple(t.shape)}; expected (B,) = "
                                                f"({x0.shape[0]},), one code timestep per example."]), ("t_shape",), n, failure)
    if x0.shape[0] > 1 and bool((t == t[0]).all()):
        return done("wrong", "\n".join(lines + [
            f"  All {x0.shape[0]} examples got the same timestep t = {int(t[0])}: one t was drawn for the whole batch. Draw "
            "one per example, t = torch.randint(0, schedule.T, (B,), generator=generator)."]), ("one_t_for_batch",), n, failure)
    if torch.equal(t, t_ref + 1):
        lines.append(f"  The timesteps are the reference's plus one (values {int(t.min())}..{int(t.max())}): they were "
                     f"drawn from 1..T, the paper's numbering. Code timesteps run 0..T-1: "
                     "torch.randint(0, schedule.T, (B,), generator=generator).")
        return done("wrong", "\n".join(lines), ("t_from_one",), n, failure)
    if not torch.equal(t, t_ref):
        t_swapped, eps_swapped = _draws(case, t_first=False)
        if torch.equal(t, t_swapped):
            lines.append("  eps was drawn before t. Both are right in distribution, but to compare with the reference "
                         "draw t first, then eps, both with `generator`.")
            return done("wrong", "\n".join(lines), ("draw_order",), n, failure)
        lines.append(f"  The timesteps differ from the reference's (first example: expected t = {int(t_ref[0])}, got "
                     f"{int(t[0])}). Draw them first, with torch.randint(0, schedule.T, (B,), generator=generator).")
        return done("wrong", "\n".join(lines), ("t_draw",), n, failure)
    return None


def _wrong_x_t(case: dict, x_t: torch.Tensor, t: torch.Tensor, eps_used: torch.Tensor, lines: list[str], n: int,
               failure: dict, done: Callable[..., CheckResult]) -> CheckResult | None:
    """With the right timesteps: the report of an x_t that is not sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps for the
    reference's eps (the noise, or the measured coefficients and the known wrong form they match), or None."""
    s, x0, T = case["schedule"], case["x0"], case["schedule"].T
    t_idx = t
    a, b, resid = _fit_coefficients(x_t, x0, eps_used)
    scale = float(x_t.abs().max()) + 1
    want_a, want_b = case["schedule"].sqrt_alpha_bar.double()[t_idx], case["schedule"].sqrt_one_minus_alpha_bar.double()[t_idx]
    if resid > 1e-4 * scale:
        _, eps_swapped = _draws(case, t_first=False)
        if torch.allclose(x_t.double(), (want_a.reshape(-1, *[1] * (x0.ndim - 1)) * x0.double()
                                         + want_b.reshape(-1, *[1] * (x0.ndim - 1)) * eps_swapped.double()), atol=1e-4):
            lines.append("  eps was drawn before t. Draw t first, then eps, both with `generator`.")
            return done("wrong", "\n".join(lines), ("draw_order",), n, failure)
        lines.append("  The model's input x_t is not sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps for the eps the "
                     "reference drew: draw eps with torch.randn(x0.shape, generator=generator), right after t, and mix "
                     "it with x0 (not with fresh noise, and not noise of another shape).")
        return done("wrong", "\n".join(lines), ("eps_draw",), n, failure)
    ok_a = torch.allclose(a, want_a, rtol=1e-3, atol=1e-5)
    ok_b = torch.allclose(b, want_b, rtol=1e-3, atol=1e-5)
    if ok_a and ok_b:
        return None
    k = int(torch.nonzero(~(torch.isclose(a, want_a, rtol=1e-3, atol=1e-5) & torch.isclose(b, want_b, rtol=1e-3, atol=1e-5)))[0])
    lines.append(f"  x_t differs. Measured x_t = a x0 + b eps; at example {k} (code t = {int(t[k])}, paper t = "
                 f"{int(t[k]) + 1}): expected a = {float(want_a[k]):.5g}, b = {float(want_b[k]):.5g}; got a = "
                 f"{float(a[k]):.5g}, b = {float(b[k]):.5g}.")
    for key, text, ma, mb in _xt_mistakes(s, t_idx):
        if torch.allclose(a, ma, rtol=1e-3, atol=1e-5) and torch.allclose(b, mb, rtol=1e-3, atol=1e-5):
            lines.append(f"  It looks like: {text}")
            return done("wrong", "\n".join(lines), (key,), n, failure)
    for shift in (-1, 1):
        ts = t_idx + shift
        if int(ts.min()) >= 0 and int(ts.max()) < T:
            if torch.allclose(a, s.sqrt_alpha_bar.double()[ts], rtol=1e-3) and torch.allclose(b, s.sqrt_one_minus_alpha_bar.double()[ts], rtol=1e-3):
                lines.append(f"  It looks like: the tables were indexed with t{shift:+d}; the model got t, so index "
                             "alpha_bar with the same t.")
                return done("wrong", "\n".join(lines), ("off_by_one",), n, failure)
    lines.append("  It matches none of the usual mistakes; compare term by term with eq. 4.")
    return done("wrong", "\n".join(lines), (), n, failure)


def _wrong_stage(case: dict, model: _RecordingModel, ref_model: _RecordingModel, got: float, want: float, where: str,
                 n: int, done: Callable[..., CheckResult]) -> CheckResult:
    """Follow the computation stage by stage (t, eps and x_t, the loss) and report the first stage that differs."""
    lines = [f"{NAME}: not right yet.", f"  On {where}: expected loss {want:.6g}, got {got:.6g}"
                                        + ("" if not _close(got, want) else " (close, but the model was called with other inputs)") + "."]
    x_t, t = model.calls[-1]
    t_ref, eps_ref = _draws(case)
    t = torch.as_tensor(t)
    failure = {"case": n, "expected": want, "got": got}
    verdict = _wrong_timesteps(case, t, t_ref, lines, n, failure, done)
    if verdict is None:
        verdict = _wrong_x_t(case, x_t, t, eps_ref, lines, n, failure, done)
    if verdict is not None:
        return verdict
    # x_t and t are right: the loss
    eps_hat = ref_model(x_t, t).detach()
    for key, text, value in _loss_mistakes(eps_hat, eps_ref, case["x0"], x_t):
        if _close(got, value):
            lines.append(f"  t, eps and x_t are right; the loss is not. It looks like: {text}")
            return done("wrong", "\n".join(lines), (key,), n, failure)
    lines.append("  t, eps and x_t are right; the loss is not the mean of (model(x_t, t) - eps)^2 over every element.")
    return done("wrong", "\n".join(lines), (), n, failure)


def check_training_step(fn: Callable, *, quiet: bool = False) -> CheckResult:
    """Check one DDPM training step ``fn(model, schedule, x0, generator) -> loss`` (Ho et al. 2020, Algorithm 1) against
    :func:`~diffusion_course.losses.simple_loss` with the same seeded generator; print the report and return it."""

    done = _reporter(NAME, quiet)

    if not callable(fn):
        return done("error", f"{NAME}: expected a function {SIGNATURE}; got {type(fn).__name__}.", ("not_callable",))
    cases = _cases()
    for n, case in enumerate(cases, 1):
        s, x0, T = case["schedule"], case["x0"], case["schedule"].T
        ref_model = _RecordingModel(T)
        want = float(simple_loss(ref_model, s, x0.clone(), generator=torch.Generator().manual_seed(case["seed"])).detach())
        model = _RecordingModel(T)
        where = f"case {n} ({case['label']})"
        try:
            out = fn(model, s, x0.clone(), torch.Generator().manual_seed(case["seed"]))
        except NotImplementedError:
            return done("not written yet", f"{NAME}: not written yet. Replace the `raise NotImplementedError` with your code, "
                                           "then run this cell again.")
        except Exception as err:  # noqa: BLE001 - any learner error is reported in words
            return _raised(err, model, T, where, n, done)
        verdict = _misformed(out, model, n, done)
        if verdict is not None:
            return verdict
        got = float(out.detach())
        ref_x_t, ref_t = ref_model.calls[-1]
        last_x_t, last_t = model.calls[-1]
        same_inputs = (torch.as_tensor(last_t).shape == ref_t.shape and torch.equal(torch.as_tensor(last_t), ref_t)
                       and last_x_t.shape == ref_x_t.shape and torch.allclose(last_x_t, ref_x_t, rtol=1e-4, atol=1e-5))
        if _close(got, want) and same_inputs:
            if not out.requires_grad:
                return done("wrong", f"{NAME}: the loss has the right value on {where} but carries no gradient (computed "
                                     "under torch.no_grad() or detached?); training calls loss.backward() on it.",
                            ("no_grad",), n)
            continue
        return _wrong_stage(case, model, ref_model, got, want, where, n, done)
    return done("correct", f"{NAME}: correct. It matched simple_loss (same t, eps and x_t, same loss, with a gradient) on "
                           f"{len(cases)} cases: " + "; ".join(c["label"] for c in cases) + ".", (), len(cases))
