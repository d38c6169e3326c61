"""Chapter 14's exercise: one step of inpainting by replacement (Lugmayr et al. 2022, eq. 8a-8c; Algorithm 1, lines 4-8).

The learner's ``fn(schedule, x_t, t, eps_hat, known, mask, z, z_known)`` returns x_{t-1}:

    x_unknown = (x_t - beta_t / sqrt(1 - alpha_bar_t) eps_hat) / sqrt(alpha_t) + sigma_t z     (DDPM's step, sigma_t^2 = beta_t, no z at t = 0)
    x_known   = sqrt(alpha_bar_{t-1}) known + sqrt(1 - alpha_bar_{t-1}) z_known             (a sample of q(x_{t-1} | known))
    x_{t-1}   = mask * x_known + (1 - mask) * x_unknown                                      (mask: 1 = known, 0 = fill in)

with alpha_bar_{t-1} = ``schedule.alpha_bar_prev[t]`` (1 at t = 0, where x_known is ``known`` itself). The checker
compares with :func:`~diffusion_course.maths.editing.inpaint_step` on random inputs and masks (2-D points and images,
t from T-1 down to 0, two schedules). On a difference it says which pixels differ (the known ones, the unknown ones or
both) and tries a catalogue of known slips on every case; a slip that reproduces the learner's output everywhere is named.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ...maths.editing import inpaint_step
from ...maths.schedules import NoiseSchedule
from ._diagnosis import _close, _learner_line
from ._engine import CheckResult, _first_difference, _is_stub_output, _reporter

NAME = "inpaint_step"
SIGNATURE = "fn(schedule, x_t, t, eps_hat, known, mask, z, z_known) -> x_t_minus_1"
INPUTS = ("x_t", "eps_hat", "known", "mask", "z", "z_known")


def _cases() -> list[dict]:
    """Per schedule: 2-D points and images at t = T-1, T//2, 1, 0, then one batch of points with mixed t."""
    g = torch.Generator().manual_seed(14)
    cases = []
    for label, schedule in (("the DDPM schedule (linear, T = 1000)", NoiseSchedule.linear(1000)),
                            ("a short steep schedule (linear, T = 10, beta 0.05 .. 0.5)", NoiseSchedule.linear(10, 0.05, 0.5))):
        T = schedule.T
        for shape in ((6, 2), (4, 1, 3, 3)):
            for t in sorted({T - 1, T // 2, 1, 0}, reverse=True):
                cases.append({"label": label, "schedule": schedule, "shape": shape, "t": torch.full((shape[0],), t, dtype=torch.long)})
        cases.append({"label": label, "schedule": schedule, "shape": (5, 2), "t": torch.tensor([0, 1, T // 2, T - 2, T - 1]), "mixed": True})
    for case in cases:
        x = {k: torch.randn(case["shape"], generator=g) for k in INPUTS if k != "mask"}
        mask = (torch.rand(case["shape"], generator=g) < 0.5).float()
        mask.view(-1)[:2] = torch.tensor([0.0, 1.0])  # both kinds of pixel in every case
        case["inputs"] = {**x, "mask": mask}
    return cases


def _where(case: dict) -> str:
    t = case["t"]
    tt = "t = " + ", ".join(str(int(v)) for v in t) + " (one per example)" if case.get("mixed") else f"t = {int(t[0])}"
    return f"{case['label']}, inputs of shape {case['shape']}, {tt}"


def _tables(schedule: NoiseSchedule, t: torch.Tensor, ndim: int) -> dict[str, torch.Tensor]:
    """float64 coefficients at t, shaped (B, 1, ...); the level t-1 read from alpha_bar_prev (1 at t = 0)."""
    shape = (t.shape[0], *([1] * (ndim - 1)))
    pick = lambda v: v.double()[t].reshape(shape)  # noqa: E731
    one_minus = (1 - pick(schedule.alpha_bar_prev)).clamp(min=0)
    return {"beta": pick(schedule.beta), "alpha": pick(schedule.alpha), "ab": pick(schedule.alpha_bar), "ab_prev": pick(schedule.alpha_bar_prev),
            "one_minus_ab": pick(schedule.sqrt_one_minus_alpha_bar) ** 2, "one_minus_ab_prev": one_minus,
            "post_var": pick(schedule.posterior_variance), "not_last": (t > 0).double().reshape(shape)}


def _formula(case: dict, slip: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The step in float64, right (``slip`` None) or with one known slip, and the size of its terms (the tolerance)."""
    c, x = _tables(case["schedule"], case["t"], len(case["shape"])), {k: v.double() for k, v in case["inputs"].items()}
    sigma = (c["post_var"] if slip == "posterior_variance" else c["beta"]).sqrt()
    z_step, z_known = (x["z_known"], x["z"]) if slip == "noises_swapped" else (x["z"], x["z"] if slip == "z_for_known" else x["z_known"])
    noise_on = torch.ones_like(c["not_last"]) if slip == "noise_at_t0" else c["not_last"]
    mean_terms = (x["x_t"] / c["alpha"].sqrt(), -c["beta"] / (c["alpha"].sqrt() * c["one_minus_ab"].sqrt()) * x["eps_hat"])
    unknown_terms = (x["x_t"],) if slip == "no_reverse_step" else (*mean_terms, noise_on * sigma * z_step)
    ab, one_minus = (c["ab"], c["one_minus_ab"]) if slip == "known_at_t" else (c["ab_prev"], c["one_minus_ab_prev"])
    known_terms = (ab.sqrt() * x["known"], {"variance_for_std": one_minus, "known_clean": 0 * one_minus}.get(slip, one_minus.sqrt()) * z_known)
    if slip == "alpha_bar_for_sqrt":
        known_terms = (ab * x["known"], known_terms[1])
    m = 1 - x["mask"] if slip == "mask_inverted" else x["mask"]
    value = m * sum(known_terms) + (1 - m) * sum(unknown_terms)
    scale = x["mask"] * sum(v.abs() for v in known_terms) + (1 - x["mask"]) * sum(v.abs() for v in unknown_terms)
    return value, scale


_SLIPS = (
    ("mask_inverted", "the mask is read the wrong way round: mask == 1 marks the known pixels, which get x_known; the "
     "pixels to fill in (mask == 0) get the model's step."),
    ("known_at_t", "the known pixels are noised to level t; the step produces x_{t-1}, so they must be noised to level t-1: "
     "sqrt(alpha_bar_prev[t]) known + sqrt(1 - alpha_bar_prev[t]) z_known (at t = 0 that is known itself)."),
    ("known_clean", "the known pixels are pasted without noise: every other pixel of x_{t-1} carries the noise of level "
     "t-1, so the pasted ones must too, sqrt(alpha_bar_{t-1}) known + sqrt(1 - alpha_bar_{t-1}) z_known."),
    ("variance_for_std", "the noise of the known pixels is scaled by the variance 1 - alpha_bar_{t-1}; q(x_{t-1} | known) "
     "has standard deviation sqrt(1 - alpha_bar_{t-1})."),
    ("alpha_bar_for_sqrt", "known is scaled by alpha_bar_{t-1}; the mean of q(x_{t-1} | known) is sqrt(alpha_bar_{t-1}) known."),
    ("z_for_known", "the known pixels use z, the step's noise. In distribution that is fine (each pixel reads only one of the "
     "two parts, and the package shares one draw), but this exercise hands you z_known for them: use it."),
    ("noises_swapped", "z and z_known are swapped: z belongs to the model's reverse step, z_known to the noised known pixels."),
    ("noise_at_t0", "noise is added at t = 0: the last step returns the mean (Ho et al. 2020, Algorithm 2: z = 0 when t = 1 in "
     "the paper's counting, code t = 0)."),
    ("posterior_variance", "sigma_t^2 is the posterior variance tilde-beta_t; this step uses sigma_t^2 = beta_t (ddpm_step's default)."),
    ("no_reverse_step", "the pixels to fill in are x_t itself: they must take the model's reverse step from x_t to x_{t-1}."),
)


def _region(got: torch.Tensor, want: torch.Tensor, scale: torch.Tensor, mask: torch.Tensor) -> str:
    bad = ~_close(got, want, scale)
    in_known, in_unknown = bool((bad & (mask == 1)).any()), bool((bad & (mask == 0)).any())
    if in_known and in_unknown:
        return "  Both the known pixels (mask == 1) and the pixels to fill in (mask == 0) differ."
    if in_known:
        return ("  Only the known pixels (mask == 1) differ: they should be sqrt(alpha_bar_{t-1}) known + sqrt(1 - "
                "alpha_bar_{t-1}) z_known. The pixels to fill in are right.")
    return ("  Only the pixels to fill in (mask == 0) differ: they should be DDPM's reverse step from x_t with eps_hat and z "
            "(ddpm_step(schedule, x_t, t, eps_hat, noise=z) computes it). The known pixels are right.")


def _diagnosis(fn: Callable, cases: list[dict]) -> tuple[list[str], tuple[str, ...]]:
    """The slip that reproduces the learner's output on every case, if one does."""
    outputs = []
    for case in cases:
        try:
            with torch.no_grad():
                x = {k: v.clone() for k, v in case["inputs"].items()}
                out = fn(case["schedule"], x["x_t"], case["t"].clone(), x["eps_hat"], x["known"], x["mask"], x["z"], x["z_known"])
        except Exception:  # noqa: BLE001 - no diagnosis where it fails
            return [], ()
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != case["shape"]:
            return [], ()
        outputs.append(out.detach().double())
    for key, text in _SLIPS:
        if all(bool(_close(o, *_formula(c, key)).all()) for o, c in zip(outputs, cases)):
            return [f"  Diagnosis: {text}"], (key,)
    return [], ()


def _reference(case: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """The package's step on float64 copies of the inputs, and the size of its terms."""
    x = {k: v.double() for k, v in case["inputs"].items()}
    want = inpaint_step(case["schedule"], x["x_t"], case["t"], x["eps_hat"], x["known"], x["mask"], noise=x["z"], known_noise=x["z_known"])
    return want, _formula(case)[1]


def check_inpaint_step(fn: Callable, *, quiet: bool = False) -> CheckResult:
    """Check one replacement-inpainting step ``fn(schedule, x_t, t, eps_hat, known, mask, z, z_known) -> x_{t-1}``
    (t a LongTensor (B,), mask of 0s and 1s shaped like x_t) against :func:`~diffusion_course.maths.editing.inpaint_step`
    on two schedules, 2-D points and images, t from T-1 to 0 and a batch of mixed t; print the report and return it."""
    done = _reporter(NAME, quiet)
    if not callable(fn):
        return done("error", f"{NAME}: expected a function {SIGNATURE}; got {type(fn).__name__}.", ("not_callable",))
    cases = _cases()
    for n, case in enumerate(cases, 1):
        originals = {k: v.clone() for k, v in case["inputs"].items()}
        args = {k: v.clone() for k, v in originals.items()}
        at = _where(case)
        try:
            with torch.no_grad():
                out = fn(case["schedule"], args["x_t"], case["t"].clone(), args["eps_hat"], args["known"], args["mask"], args["z"], args["z_known"])
        except NotImplementedError:
            return done("not written yet", f"{NAME}: not written yet. Replace the `raise NotImplementedError` with your code, then run "
                                           "this cell again.")
        except Exception as err:  # noqa: BLE001 - any learner error is reported in words
            hint = ""
            if "size of tensor" in str(err) or "broadcast" in str(err):
                hint = "\n  Hint: a coefficient read at t has shape (B,); reshape it to (B, 1, ..., 1) to meet x_t (view(-1, *[1] * (x_t.ndim - 1)))."
            return done("error", f"{NAME}: your function raised {type(err).__name__}: {err}{_learner_line(err)}\n  on: {at}.{hint}", ("error",), n)
        if _is_stub_output(out):
            return done("not written yet", f"{NAME}: not written yet (it returned {out!r}). If you did write it, check that the function "
                                           "ends with a `return` of the result.")
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != case["shape"]:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            return done("wrong", f"{NAME}: expected a tensor of x_t's shape {case['shape']}; got {got} (on: {at}).", ("shape",), n)
        if not all(torch.equal(args[k], originals[k]) for k in INPUTS):
            changed = [k for k in INPUTS if not torch.equal(args[k], originals[k])]
            return done("wrong", f"{NAME}: your function changed {', '.join(changed)} in place; compute a new tensor instead.", ("in_place",), n)
        want, scale = _reference(case)
        got = out.detach().double()
        if not torch.isfinite(got).all():
            return done("wrong", f"{NAME}: your output contains NaN or inf (on: {at}); a division by sqrt(1 - alpha_bar) = 0 or the "
                                 "square root of a negative number are the usual causes.", ("nonfinite",), n)
        if not _close(got, want, scale).all():
            idx, ev, gv = _first_difference(got, want, scale)
            kind = "known" if float(case["inputs"]["mask"][idx]) == 1 else "to fill in"
            lines = [f"{NAME}: not right yet.", f"  First difference: {at}, element {list(idx)} (a pixel {kind}): expected {ev:.6g}, got {gv:.6g}.",
                     _region(got, want, scale, case["inputs"]["mask"].double())]
            diag, found = _diagnosis(fn, cases)
            return done("wrong", "\n".join(lines + diag), found, n, {"kind": "mismatch", "where": at, "index": idx, "expected": ev, "got": gv})
    return done("correct", f"{NAME}: correct. It matched inpaint_step on {len(cases)} cases: the DDPM schedule and a short steep one, 2-D "
                           "points and images, t from T-1 down to 0 (where the known pixels are known itself) and a batch of mixed t.",
                (), len(cases))
