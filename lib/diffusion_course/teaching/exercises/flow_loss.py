"""Chapter 13's exercise: the conditional flow-matching loss on the straight path (Lipman et al. 2023; Liu et al. 2022).

The learner writes ``fn(model, x0, generator) -> loss``: draw one time per example, ``t = torch.rand(B,
generator=generator)`` (uniform on [0, 1); t = 0 is data, t = 1 pure noise), then the noise ``eps = torch.randn(x0.shape,
generator=generator)``, form x_t = (1 - t) x0 + t eps, call ``model(x_t, t)`` with t of shape (B,) and return the mean
squared error between its output and the path's velocity v = eps - x0, as a scalar tensor.

The checker hands the function a small recording model (it stores the x_t and t it is called with) and a seeded
generator, and compares with :func:`~diffusion_course.maths.flow.flow_matching_loss`, which draws t and eps in that
order. When the loss differs it follows the computation stage by stage: the times the model got (shape, range, draw
order), x_t (matched, element by element, against the straight path and the known wrong paths: the ends swapped,
DDPM's square roots), then the target (the loss recomputed from the recorded prediction against each known wrong
target: the sign of v, eps or x0 alone) and the reduction, and names the first stage that differs.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ...maths.flow import flow_matching_loss
from ._diagnosis import _learner_line
from ._engine import CheckResult, _is_stub_output, _reporter

NAME = "flow_matching_loss"
SIGNATURE = "fn(model, x0, generator) -> loss"
Coefs = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]  # t (B, 1, ...) -> the weights of x0 and eps in x_t


class _RecordingModel(nn.Module):
    """v_theta(x_t, t) = w * x_t + c * t: deterministic, differentiable, and it stores every call (t as given)."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(0.6))
        self.c = nn.Parameter(torch.tensor(-0.8))
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t)
        self.calls.append((x_t.detach().clone(), t.detach().clone()))
        B = x_t.shape[0]
        tt = t.to(x_t.dtype).reshape(B, *([1] * (x_t.ndim - 1))) if t.numel() == B else t.to(x_t.dtype).reshape(-1)[0]
        return self.w * x_t + self.c * tt


def _cases() -> list[dict]:
    g = torch.Generator().manual_seed(13)
    return [
        {"label": "2-D points (64, 2)", "x0": 0.7 + 1.5 * torch.randn(64, 2, generator=g), "seed": 1},
        {"label": "images (16, 1, 4, 4)", "x0": torch.rand(16, 1, 4, 4, generator=g) * 2 - 1, "seed": 2},
    ]


def _draws(case: dict, t_first: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """The t and eps a learner draws from the case's seeded generator, t first (the reference) or eps first."""
    g = torch.Generator().manual_seed(case["seed"])
    x0 = case["x0"]
    if t_first:
        t = torch.rand(x0.shape[0], generator=g)
        return t, torch.randn(x0.shape, generator=g)
    eps = torch.randn(x0.shape, generator=g)
    return torch.rand(x0.shape[0], generator=g), eps


# (key, description, weights of x0 and eps in x_t as functions of t): the known wrong forms of the straight path
_PATH_SLIPS: tuple[tuple[str, str, Coefs], ...] = (
    ("swapped_ends", "x_t = t x0 + (1 - t) eps: the two ends are swapped. In this course (and in SD3 and diffusers' "
     "FlowMatchEulerDiscreteScheduler) t = 0 is the data and t = 1 is pure noise, so x0 gets 1 - t and eps gets t.",
     lambda t: (t, 1 - t)),
    ("ddpm_square_roots", "x_t = sqrt(1 - t) x0 + sqrt(t) eps: that is a variance-preserving (DDPM-like) mix. The straight "
     "path mixes with the weights themselves, (1 - t) x0 + t eps, so that x_t moves along a line at constant speed.",
     lambda t: ((1 - t).sqrt(), t.sqrt())),
    ("x0_not_scaled", "x_t = x0 + t eps: x0 is not scaled down by 1 - t, so at t = 1 the point is x0 + eps, not pure noise.",
     lambda t: (torch.ones_like(t), t)),
    ("eps_not_scaled", "x_t = (1 - t) x0 + eps: the noise is not scaled by t, so at t = 0 the point is x0 + eps, not the data.",
     lambda t: (1 - t, torch.ones_like(t))),
)


def _target_slips(v_hat: torch.Tensor, x0: torch.Tensor, eps: torch.Tensor) -> list[tuple[str, str, float]]:
    """(key, description, the loss that slip gives) for the known wrong targets and reductions, from the prediction v_hat."""
    v, x0, eps, v_hat = eps.double() - x0.double(), x0.double(), eps.double(), v_hat.double()
    d = v_hat - v
    B = x0.shape[0]
    return [
        ("sign_of_v", "the target is x0 - eps: the velocity of x_t = (1 - t) x0 + t eps is its derivative in t, "
         "d x_t / dt = eps - x0 (it points from the data towards the noise; the sampler walks it backwards).",
         float((v_hat + v).pow(2).mean())),
        ("target_eps", "the target is eps, DDPM's noise prediction. A flow-matching network predicts the velocity "
         "v = eps - x0.", float((v_hat - eps).pow(2).mean())),
        ("target_x0", "the target is x0; a flow-matching network predicts the velocity v = eps - x0.", float((v_hat - x0).pow(2).mean())),
        ("sum_for_mean", "the squared errors are summed where they are averaged: use .mean() over every element.", float(d.pow(2).sum())),
        ("sum_for_mean", "the squared errors are summed over each example's coordinates and averaged over the batch; the "
         "reference (and flow_matching_loss) averages over every element.", float(d.pow(2).sum() / B)),
        ("absolute_error", "the absolute error where the squared error belongs.", float(d.abs().mean())),
        ("not_squared", "the error is averaged without squaring it (positive and negative errors cancel).", float(d.mean())),
        ("root_mean", "the square root of the mean squared error: return the mean squared error itself.", float(d.pow(2).mean().sqrt())),
    ]


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-4 * (1 + abs(b))


def _misformed(out: object, model: _RecordingModel, n: int, done: Callable[..., CheckResult]) -> CheckResult | None:
    """The report of a result that is no loss (a stub's None, not a tensor, not one number) or of a loss computed
    without calling the model, or None."""
    if _is_stub_output(out):
        return done("not written yet", f"{NAME}: not written yet (it returned {out!r}). End the function with `return loss`.")
    if not isinstance(out, torch.Tensor):
        hint = " (.item() or float() turns the loss into a number, and training cannot call .backward() on it)" if isinstance(out, float) else ""
        return done("wrong", f"{NAME}: your function returned a {type(out).__name__}; return the loss as a torch.Tensor{hint}.",
                    ("not_a_tensor",), n)
    if out.numel() != 1:
        return done("wrong", f"{NAME}: the loss has shape {tuple(out.shape)}; it must be one number (a 0-d tensor): average the "
                             "squared errors with .mean().", ("no_reduction",), n)
    if not model.calls:
        return done("wrong", f"{NAME}: your function never called `model(x_t, t)`; the loss compares the model's prediction "
                             "with the velocity eps - x0.", ("no_model_call",), n)
    return None


def _wrong_times(case: dict, t: torch.Tensor, t_ref: torch.Tensor) -> tuple[str, str] | None:
    """(key, explanation) when the times the model got are not the reference's, or None."""
    B = case["x0"].shape[0]
    if t.numel() == 1 or (B > 1 and t.numel() == B and bool((t == t.reshape(-1)[0]).all())):
        return "one_t_for_batch", (f"all {B} examples got the same time: draw one per example, t = torch.rand(B, "
                                   "generator=generator), so one batch trains the model all along the path.")
    if t.shape != (B,):
        return "t_shape", (f"the model got t of shape {tuple(t.shape)}; pass t of shape (B,) = ({B},), one time per example "
                           "(reshape a copy to (B, 1, ...) for mixing x0 and eps, and hand the model the flat one).")
    if not torch.is_floating_point(t):
        return "integer_t", (f"the model got integer times ({t.dtype}, values {int(t.min())}..{int(t.max())}): flow matching's "
                             "time is continuous, t = torch.rand(B, generator=generator) in [0, 1).")
    if torch.allclose(t.double(), 1000 * t_ref.double(), rtol=1e-5):
        return "t_scaled", ("the model got 1000 t. Hand it t itself, in [0, 1]; a network that wants another scale rescales "
                            "inside its wrapper (FlowTime does it for the U-Net).")
    if torch.allclose(t.double(), 1 - t_ref.double(), atol=1e-6):
        return "t_flipped", "the model got 1 - t: call it at the time of the path's own clock, t (0 = data, 1 = noise)."
    g = torch.Generator().manual_seed(case["seed"])
    if torch.allclose(t, torch.sigmoid(torch.randn(B, generator=g)), atol=1e-6):
        return "logit_normal_t", ("the times are logit-normal, sigmoid of a normal draw: that is SD3's choice (the chapter's section "
                                  "on SD3) and a fine loss, but this exercise compares with the uniform draw, t = torch.rand(B, "
                                  "generator=generator).")
    if not torch.equal(t, t_ref):
        if torch.equal(t, _draws(case, t_first=False)[0]):
            return "draw_order", ("eps was drawn before t. Both are right in distribution, but to compare with the reference "
                                  "draw t first, then eps, both with `generator`.")
        return "t_draw", (f"the times differ from the reference's (first example: expected {float(t_ref[0]):.5f}, got "
                          f"{float(t.reshape(-1)[0]):.5f}). Draw them first, with t = torch.rand(B, generator=generator).")
    return None


def _wrong_path(case: dict, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> tuple[str, str] | None:
    """With the right times: (key, explanation) when x_t is not (1 - t) x0 + t eps for the reference's eps, or None."""
    x0 = case["x0"].double()
    tb = t.double().reshape(-1, *([1] * (x0.ndim - 1)))
    if x_t.shape != x0.shape:
        return "x_t_shape", f"x_t has shape {tuple(x_t.shape)}; it must have x0's shape {tuple(x0.shape)} (reshape t to (B, 1, ...))."

    def matches(coefs: Coefs, noise: torch.Tensor) -> bool:
        a, b = coefs(tb)
        return torch.allclose(x_t.double(), a * x0 + b * noise.double(), rtol=1e-4, atol=1e-5)

    if matches(lambda s: (1 - s, s), eps):
        return None
    for key, text, coefs in _PATH_SLIPS:
        if matches(coefs, eps):
            return key, text
    if matches(lambda s: (1 - s, s), _draws(case, t_first=False)[1]):
        return "draw_order", "eps was drawn before t. Draw t first, then eps, both with `generator`."
    return "x_t", ("x_t is not (1 - t) x0 + t eps for the eps the reference drew: draw eps with torch.randn(x0.shape, "
                   "generator=generator) right after t, and mix it with x0 (t reshaped to (B, 1, ...) to meet x0).")


def _diagnose(case: dict, model: _RecordingModel, got: float, want: float, where: str, n: int,
              done: Callable[..., CheckResult]) -> CheckResult:
    """Follow the computation stage by stage (the times, x_t, the target and the reduction); report the first that differs."""
    lines = [f"{NAME}: not right yet.", f"  On {where}: expected loss {want:.6g}, got {got:.6g}"
             + (" (close, but the model was called with other inputs)" if _close(got, want) else "") + "."]
    failure = {"case": n, "expected": want, "got": got}
    x_t, t = model.calls[-1]
    t_ref, eps_ref = _draws(case)
    found = _wrong_times(case, t, t_ref)
    if found is None:
        found = _wrong_path(case, x_t, t, eps_ref)
    if found is not None:
        return done("wrong", "\n".join(lines + [f"  It looks like: {found[1]}"]), (found[0],), n, failure)
    with torch.no_grad():
        v_hat = model.w * x_t + model.c * t.reshape(-1, *([1] * (x_t.ndim - 1)))
    for key, text, value in _target_slips(v_hat, case["x0"], eps_ref):
        if _close(got, value):
            lines.append(f"  t, eps and x_t are right; the loss is not. It looks like: {text}")
            return done("wrong", "\n".join(lines), (key,), n, failure)
    lines.append("  t, eps and x_t are right; the loss is not the mean over every element of (model(x_t, t) - (eps - x0))^2.")
    return done("wrong", "\n".join(lines), (), n, failure)


def _raised(err: Exception, where: str, n: int, done: Callable[..., CheckResult]) -> CheckResult:
    text = f"{type(err).__name__}: {err}"
    lines = [f"{NAME}: your function raised {text}{_learner_line(err)}", f"  on {where}."]
    if "size of tensor" in text or "broadcast" in text:
        lines.append("  t of shape (B,) must be reshaped to (B, 1, ..., 1) to meet x0 (for points (B, 1), for images "
                     "(B, 1, 1, 1)): t.view(-1, *[1] * (x0.ndim - 1)).")
    return done("error", "\n".join(lines), ("error",), n)


def check_flow_matching_loss(fn: Callable, *, quiet: bool = False) -> CheckResult:
    """Check the flow-matching loss ``fn(model, x0, generator) -> loss`` (uniform t drawn first, then eps; x_t = (1 - t)
    x0 + t eps; target eps - x0) against :func:`~diffusion_course.maths.flow.flow_matching_loss` with the same seeded
    generator, on 2-D points and images; print the report and return it."""
    done = _reporter(NAME, quiet)
    if not callable(fn):
        return done("error", f"{NAME}: expected a function {SIGNATURE}; got {type(fn).__name__}.", ("not_callable",))
    cases = _cases()
    for n, case in enumerate(cases, 1):
        x0 = case["x0"]
        ref_model = _RecordingModel()
        want = float(flow_matching_loss(ref_model, x0.clone(), generator=torch.Generator().manual_seed(case["seed"])).detach())
        model, where = _RecordingModel(), f"case {n} ({case['label']})"
        try:
            out = fn(model, x0.clone(), torch.Generator().manual_seed(case["seed"]))
        except NotImplementedError:
            return done("not written yet", f"{NAME}: not written yet. Replace the `raise NotImplementedError` with your code, "
                                           "then run this cell again.")
        except Exception as err:  # noqa: BLE001 - any learner error is reported in words
            return _raised(err, where, n, done)
        verdict = _misformed(out, model, n, done)
        if verdict is not None:
            return verdict
        got = float(out.detach())
        (ref_x_t, ref_t), (x_t, t) = ref_model.calls[-1], model.calls[-1]
        same_inputs = t.shape == ref_t.shape and torch.allclose(t.double(), ref_t.double()) and x_t.shape == ref_x_t.shape \
            and torch.allclose(x_t, ref_x_t, rtol=1e-4, atol=1e-5)
        if not (_close(got, want) and same_inputs):
            return _diagnose(case, model, got, want, where, n, done)
        if not out.requires_grad:
            return done("wrong", f"{NAME}: the loss has the right value on {where} but carries no gradient (computed under "
                                 "torch.no_grad() or detached?); training calls loss.backward() on it.", ("no_grad",), n)
    return done("correct", f"{NAME}: correct. It matched flow_matching_loss (same t, eps and x_t, same loss, with a gradient) on "
                           f"{len(cases)} cases: " + "; ".join(c["label"] for c in cases) + ".", (), len(cases))
