"""Checkers for the exercises: run a learner's function against the lib and explain the first difference in words.

Each checker calls the learner's function on random inputs (2-D points and 4-D images, several timesteps including
0 and T-1, two schedules, a seeded generator), compares with the lib, and prints one report:

- "correct", with what was tested;
- "not written yet" for a stub (raises NotImplementedError, or returns None / Ellipsis); the notebook keeps running;
- otherwise the first difference (which case, which element, expected vs got), then a term-by-term diagnosis: every
  function checked here is, at a fixed timestep, a linear combination of its tensor inputs, so the checker measures
  each coefficient (by feeding a one in that input and zeros in the others) and compares it with the right one and with
  known wrong ones: a variance where the standard deviation belongs, alpha where alpha_bar belongs, an off-by-one t,
  a missing square root, noise added at t = 0, a flipped sign, swapped arguments.

Learner signatures (t and t_prev are LongTensors of shape (B,), one timestep per example, code index 0..T-1):

====================  ===============================================  ==================================================
checker               your function                                    returns
====================  ===============================================  ==================================================
check_q_sample        fn(schedule, x0, t, eps)                         x_t (Ho et al. 2020, eq. 4)
check_posterior_mean  fn(schedule, x0, x_t, t)                         tilde-mu_t (Ho et al. 2020, eq. 7)
check_reverse_step    fn(schedule, x_t, t, eps_hat, z)                 x_{t-1} (Ho et al. 2020, Algorithm 2, line 4)
check_ddim_step       fn(schedule, x_t, t, t_prev, eps_hat, eta, z)    x_{t_prev} (Song et al. 2021, eq. 12)
check_channel_scaling fn(x, lo, hi), fn(y, lo, hi)                       per-channel scaling to [-1, 1] and back (chapter 10)
check_guidance        fn(eps_cond, eps_uncond, w)                      (1 + w) eps_cond - w eps_uncond (Ho & Salimans 2022, eq. 6)
====================  ===============================================  ==================================================

Each checker returns a :class:`CheckResult`, true when the function is correct.
"""

from __future__ import annotations

import math
import os
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from ._validate import check_choice
from .forward import q_sample
from .posterior import q_posterior
from .samplers import ddim_step, ddpm_step
from .schedules import NoiseSchedule

__all__ = ["CheckResult", "check_q_sample", "check_posterior_mean", "check_reverse_step", "check_ddim_step"]

# Tolerances. A learner's function computes in float32 from the schedule's float32 tables, and 1 - alpha_bar_t near
# t = 0 loses most of its digits there (1 - 0.9999 in float32 is off by up to 6e-4 relative). So outputs are compared
# relative to the size of the terms that make them up, and every mistake the checker names differs by far more than this
# on at least one case (the short steep schedule makes every coefficient differ by percents).
RTOL = 2e-3  # relative tolerance: of a coefficient, or of sum_i |coef_i * input_i| for an output
ATOL = 1e-5  # absolute tolerance of an output element
COEF_ATOL = 1e-6  # absolute tolerance of a measured coefficient (a term may widen it, see _Term.atol)


@dataclass
class CheckResult:
    """What a checker found. ``bool(result)`` is True only when the function is correct.

    ``status``: "correct", "not written yet", "wrong" or "error" (the function raised). ``mistakes``: keys of the
    known mistakes the function matches (e.g. "variance_for_std", "alpha_for_alpha_bar", "off_by_one",
    "noise_at_t0"), first the most likely. ``message``: the printed report.
    """

    name: str
    status: str
    message: str
    mistakes: tuple[str, ...] = ()
    cases_run: int = 0
    first_failure: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def passed(self) -> bool:
        """True when the function matched the lib on every case."""
        return self.status == "correct"

    @property
    def mistake(self) -> str | None:
        """The most likely known mistake, or None."""
        return self.mistakes[0] if self.mistakes else None

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        return self.message


# --------------------------------------------------------------------------------------------------------- tables
class _Tables:
    """float64 copies of a schedule's coefficients, indexed like a learner's code would index them."""

    def __init__(self, name: str, schedule: NoiseSchedule) -> None:
        self.name = name
        self.schedule = schedule
        self.T = schedule.T
        self.beta = schedule.beta.double()
        self.alpha = schedule.alpha.double()
        self.alpha_bar = schedule.alpha_bar.double()
        self.alpha_bar_prev = schedule.alpha_bar_prev.double()
        self.posterior_variance = schedule.posterior_variance.double()

    def at(self, table: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """table[t] with Python's wrap-around for negative t (as ``alpha_bar[t - 1]`` does at t = 0) and NaN past T-1."""
        out = torch.full(t.shape, math.nan, dtype=torch.float64)
        ok = t < self.T
        out[ok] = table[t[ok]]  # negative indices wrap, like the learner's tensor indexing
        return out

    def ab_or_one(self, t: torch.Tensor) -> torch.Tensor:
        """alpha_bar at t, and 1 (clean data) at t = -1: the DDIM convention for t_prev."""
        return torch.where(t < 0, torch.ones_like(t, dtype=torch.float64), self.at(self.alpha_bar, t.clamp(min=0)))


Coef = Callable[[_Tables, dict], torch.Tensor]  # (tables, case) -> (B,) coefficient per example


@dataclass(frozen=True)
class _Variant:
    key: str
    text: str
    coef: Coef


@dataclass(frozen=True)
class _Term:
    name: str  # the input it multiplies
    formula: str  # the right coefficient, in words
    coef: Coef
    variants: tuple[_Variant, ...] = ()
    sign_note: str = ""
    atol: float = COEF_ATOL  # wider where float32 cancellation is unavoidable (DDIM's sqrt(1 - alpha_bar_prev - sigma^2))


@dataclass(frozen=True)
class _GlobalVariant:
    key: str
    text: str
    coefs: Callable[[_Tables, dict], dict[str, torch.Tensor]]


@dataclass
class _Spec:
    name: str  # e.g. "q_sample"
    signature: str
    terms: tuple[_Term, ...]
    global_variants: tuple[_GlobalVariant, ...]
    call: Callable[[Callable, NoiseSchedule, dict, dict], Any]  # (fn, schedule, inputs, case) -> output
    reference: Callable[[NoiseSchedule, dict, dict], torch.Tensor]
    cases: Callable[[list[_Tables]], list[dict]]  # case dicts: t (B,), maybe t_prev, eta; plus "shape"


# ------------------------------------------------------------------------------------------------- case helpers
def _schedules() -> list[_Tables]:
    return [
        _Tables("the DDPM schedule (linear, T = 1000)", NoiseSchedule.linear(1000)),
        _Tables("a short steep schedule (linear, T = 10, beta 0.05 .. 0.5)", NoiseSchedule.linear(10, 0.05, 0.5)),
    ]


def _t_values(T: int) -> list[int]:
    return sorted({T - 1, T // 2, 1, 0}, reverse=True)


def _uniform_cases(tabs: list[_Tables], extra: dict | None = None) -> list[dict]:
    """Per schedule: 2-D points at each t, then 4-D images at each t, then one 2-D batch of mixed t."""
    cases = []
    for tab in tabs:
        T = tab.T
        for shape in ((5, 2), (4, 1, 3, 3)):
            for t in _t_values(T):
                cases.append({"tab": tab, "shape": shape, "t": torch.full((shape[0],), t, dtype=torch.long), **(extra or {})})
        mixed = torch.tensor([0, 1, T // 2, T - 2, T - 1], dtype=torch.long)
        cases.append({"tab": tab, "shape": (5, 2), "t": mixed, "mixed": True, **(extra or {})})
    return cases


def _describe_t(t: int) -> str:
    return f"t = {t} (paper t = {t + 1})"


def _describe_case(case: dict, b: int | None = None, with_shape: bool = True) -> str:
    t = case["t"]
    if b is None:
        tt = "t = " + ", ".join(str(int(v)) for v in t) + " (one per example)" if case.get("mixed") else _describe_t(int(t[0]))
    else:
        tt = _describe_t(int(t[b]))
    parts = [case["tab"].name] + ([f"inputs of shape {tuple(case['shape'])}"] if with_shape else []) + [tt]
    if "t_prev" in case:
        tp = int(case["t_prev"][0 if b is None else b])
        parts.append(f"t_prev = {tp}" + (" (the clean data)" if tp == -1 else ""))
    if "eta" in case:
        parts.append(f"eta = {case['eta']:g}")
    return ", ".join(parts)


# ------------------------------------------------------------------------------------------------------ engine
class _Failure(Exception):
    pass


def _is_stub_output(out: Any) -> bool:
    return out is None or out is Ellipsis


def _call(spec: _Spec, fn: Callable, case: dict, inputs: dict[str, torch.Tensor]) -> Any:
    with torch.no_grad():
        return spec.call(fn, case["tab"].schedule, {k: v.clone() for k, v in inputs.items()}, case)


def _draw_inputs(spec: _Spec, case: dict, g: torch.Generator) -> dict[str, torch.Tensor]:
    return {term.name: torch.randn(case["shape"], generator=g) for term in spec.terms}


def _linear_output(spec: _Spec, case: dict, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """sum_i coef_i * input_i with the right coefficients (float64)."""
    out = 0
    for term in spec.terms:
        c = term.coef(case["tab"], case).reshape(-1, *([1] * (len(case["shape"]) - 1)))
        out = out + c * inputs[term.name].double()
    return out


def _close(a: torch.Tensor, b: torch.Tensor, scale: torch.Tensor | None = None, atol: float = ATOL) -> torch.Tensor:
    """|a - b| <= atol + RTOL * scale elementwise (scale defaults to |b|)."""
    return (a - b).abs() <= atol + RTOL * (b.abs() if scale is None else scale)


def _scale(spec: _Spec, case: dict, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """sum_i |coef_i| |input_i| with the right coefficients: the size of the terms an output element is made of."""
    out = 0
    for term in spec.terms:
        c = term.coef(case["tab"], case).abs().reshape(-1, *([1] * (len(case["shape"]) - 1)))
        out = out + c * inputs[term.name].double().abs()
    return out


def _first_difference(got: torch.Tensor, want: torch.Tensor, scale: torch.Tensor) -> tuple[tuple[int, ...], float, float]:
    bad = ~_close(got.double(), want.double(), scale)
    idx = tuple(int(i) for i in torch.nonzero(bad)[0])
    return idx, float(want[idx]), float(got[idx])


def _error_hints(err: BaseException, case: dict, passed_2d: bool) -> list[str]:
    text = f"{type(err).__name__}: {err}"
    hints = []
    t_max = int(case["t"].max())
    if ("out of bounds" in text or "out of range" in text) and t_max == case["tab"].T - 1:
        hints.append("It failed at the last timestep t = T-1. Code timesteps run 0..T-1 (the paper's 1..T), so an index "
                     "like t+1 (the paper's t) runs past the end of the table.")
    if "must lie in" in text and int(case["t"].min()) == 0:
        hints.append("It failed at t = 0: an index t-1 (the paper's t-1) becomes -1 there. Code t already stands for the "
                     "paper's t+1, so index the tables with t itself.")
    if "t_prev" in case and int(case["t_prev"].min()) == -1 and ("must lie in" in text or "out of" in text):
        hints.append("t_prev = -1 stands for the clean data, where alpha_bar = 1; no table has an entry for it. Handle it "
                     "separately, e.g. index torch.cat([torch.ones(1), schedule.alpha_bar]) with t_prev + 1.")
    if "ambiguous" in text:
        hints.append("t is a LongTensor of shape (B,) with one timestep per example, so `if t == 0:` is ambiguous. Use a "
                     "mask such as (t > 0), reshaped to broadcast, to switch a term off where t == 0.")
    if len(case["shape"]) > 2 and passed_2d and ("size of tensor" in text or "broadcast" in text):
        hints.append("It works on 2-D points (B, 2) but not on images (B, C, H, W): a coefficient of shape (B,) was reshaped "
                     "for 2-D only (e.g. .reshape(-1, 1)). Reshape it to (B, 1, ..., 1) for any rank: "
                     "`extract(values, t, x)` from diffusion_course.schedules does that.")
    if case.get("mixed") and not hints:
        hints.append("It works when every example has the same t but not for a batch of different timesteps (as in "
                     "training). Index the tables with the whole t tensor, one value per example.")
    return hints


def _learner_line(err: BaseException) -> str:
    """The last line of the traceback that is the learner's own code (not this package, not torch), quoted."""
    frames = [f for f in traceback.extract_tb(err.__traceback__)
              if "diffusion_course" not in f.filename and f"{os.sep}torch{os.sep}" not in f.filename]
    return f" (in your line `{frames[-1].line}`)" if frames and frames[-1].line else ""


def _measure(spec: _Spec, fn: Callable, probes: list[dict]) -> tuple[dict[str, torch.Tensor], bool]:
    """Measure each term's coefficient per probe example by feeding a one in that input and zeros elsewhere.

    Returns the coefficients per term (concatenated over probes, NaN where the function failed) and whether the
    function behaved linearly (one scalar per example and term, and f(inputs) = sum of coefficient * input).
    """
    coefs: dict[str, list[torch.Tensor]] = {term.name: [] for term in spec.terms}
    linear = True
    g = torch.Generator().manual_seed(7)
    for case in probes:
        shape = case["shape"]
        measured: dict[str, torch.Tensor] = {}
        for term in spec.terms:
            inputs = {other.name: torch.zeros(shape) for other in spec.terms}
            inputs[term.name] = torch.ones(shape)
            try:
                out = _call(spec, fn, case, inputs)
                out = out.detach().double().reshape(shape[0], -1)
            except Exception:  # noqa: BLE001 - any failure just leaves this probe unmeasured
                out = torch.full((shape[0], 1), math.nan, dtype=torch.float64)
            per_example = out[:, 0]
            if torch.isfinite(out).all() and not torch.allclose(out, per_example[:, None].expand_as(out), rtol=RTOL, atol=ATOL):
                linear = False  # not one scalar per example: e.g. a coefficient broadcast along the wrong axis
            measured[term.name] = per_example
            coefs[term.name].append(per_example)
        # linearity on random inputs: f(x) == sum_i c_i x_i ?
        inputs = {term.name: torch.randn(shape, generator=g, dtype=torch.float32) for term in spec.terms}
        try:
            out = _call(spec, fn, case, inputs).detach().double()
            pred, scale = 0, 0
            for term in spec.terms:
                c = measured[term.name].reshape(-1, *([1] * (len(shape) - 1)))
                pred = pred + c * inputs[term.name].double()
                scale = scale + c.abs() * inputs[term.name].double().abs()
            finite = torch.isfinite(pred) & torch.isfinite(out)
            if finite.any() and not _close(out[finite], pred[finite], scale[finite]).all():
                linear = False
        except Exception:  # noqa: BLE001
            pass
    return {k: torch.cat(v) for k, v in coefs.items()}, linear


def _stack(probes: list[dict], fn: Coef) -> torch.Tensor:
    return torch.cat([fn(case["tab"], case).double() for case in probes])


def _matches(got: torch.Tensor, want: torch.Tensor, atol: float = COEF_ATOL) -> bool:
    both = torch.isfinite(got) & torch.isfinite(want)
    if not both.any():
        return False
    if (torch.isfinite(got) & ~torch.isfinite(want)).any():
        return False
    return bool(_close(got[both], want[both], atol=atol).all())


def _diagnose(spec: _Spec, fn: Callable, probes: list[dict]) -> tuple[list[str], list[str]]:
    """Term-by-term diagnosis: (lines of the report, keys of matched mistakes)."""
    coefs, linear = _measure(spec, fn, probes)
    names = " and ".join(term.name for term in spec.terms)
    if not linear:
        return ([f"  Your output is not a fixed multiple of each input ({names}) at a given t, as the formula is (no squares, "
                 "products of inputs, clipping or per-element coefficients), so I cannot split it term by term. "
                 "Compare your formula with the one above the exercise."], [])
    if all(not torch.isfinite(c).any() for c in coefs.values()):
        return ([], [])
    lines = [f"  Term by term (at a fixed t your function is linear in {names}, so each coefficient was measured):"]
    for gv in spec.global_variants:
        want = {term.name: torch.cat([gv.coefs(case["tab"], case)[term.name].double() for case in probes]) for term in spec.terms}
        if all(_matches(coefs[term.name], want[term.name], term.atol) for term in spec.terms):
            right = {term.name: _stack(probes, term.coef) for term in spec.terms}
            if all(_matches(coefs[term.name], right[term.name], term.atol) for term in spec.terms):
                continue  # the variant coincides with the right answer on the measured probes
            lines.append(f"    This matches a known mistake: {gv.text}")
            return lines, [gv.key]
    keys: list[str] = []
    for term in spec.terms:
        got = coefs[term.name]
        right = _stack(probes, term.coef)
        if _matches(got, right, term.atol):
            lines.append(f"    coefficient of {term.name}: correct, {term.formula}")
            continue
        both = torch.isfinite(got) & torch.isfinite(right)
        bad = torch.nonzero(both & ~_close(got, right.nan_to_num(), atol=term.atol))
        if len(bad):
            i = int(bad[0])
            case, b = _locate(probes, i)
            lines.append(f"    coefficient of {term.name}: wrong. At {_describe_case(case, b, with_shape=False)}: expected {float(right[i]):.6g} "
                         f"= {term.formula}, got {float(got[i]):.6g}.")
        else:
            lines.append(f"    coefficient of {term.name}: could not be measured everywhere (your function failed on some probes).")
        variants = list(term.variants) + [_Variant("wrong_sign", "the sign of this term is flipped." + term.sign_note,
                                                   lambda tab, case, c=term.coef: -c(tab, case))]
        found = False
        for v in variants:
            if _matches(got, _stack(probes, v.coef), term.atol):
                lines.append(f"      This matches a known mistake: {v.text}")
                keys.append(v.key)
                found = True
                break
        if not found:
            lines.append("      It matches none of the mistakes I know; compare this coefficient with the formula.")
    return lines, keys


def _locate(probes: list[dict], i: int) -> tuple[dict, int]:
    for case in probes:
        B = case["shape"][0]
        if i < B:
            return case, i
        i -= B
    raise IndexError(i)


def _probes(spec: _Spec, tabs: list[_Tables]) -> list[dict]:
    """Small 2-D cases (B = 3, so a (B,) coefficient never broadcasts by accident against 2 features)."""
    out = []
    for case in spec.cases(tabs):
        if case.get("mixed") or len(case["shape"]) != 2:
            continue
        B = 3
        probe = dict(case, shape=(B, 2), t=case["t"][:1].expand(B).clone())
        if "t_prev" in case:
            probe["t_prev"] = case["t_prev"][:1].expand(B).clone()
        out.append(probe)
    return out


def _run(spec: _Spec, fn: Callable, quiet: bool) -> CheckResult:
    def done(status: str, message: str, mistakes: tuple[str, ...] = (), cases: int = 0, failure: dict | None = None) -> CheckResult:
        result = CheckResult(spec.name, status, message, tuple(dict.fromkeys(mistakes)), cases, failure)
        if not quiet:
            print(message)
        return result

    if not callable(fn):
        return done("error", f"{spec.name}: expected a function {spec.signature}; got {type(fn).__name__}.", ("not_callable",))
    tabs = _schedules()
    cases = spec.cases(tabs)
    g = torch.Generator().manual_seed(1234)
    passed_2d = False
    failure: dict | None = None
    for n, case in enumerate(cases):
        inputs = _draw_inputs(spec, case, g)
        originals = {k: v.clone() for k, v in inputs.items()}
        try:
            with torch.no_grad():
                out = spec.call(fn, case["tab"].schedule, inputs, case)
        except NotImplementedError:
            return done("not written yet", f"{spec.name}: not written yet. Replace the `raise NotImplementedError` with your "
                                           f"code, then run this cell again.")
        except Exception as err:  # noqa: BLE001 - report any learner error in words, never raise
            failure = {"case": n, "kind": "error", "error": err, "where": _describe_case(case)}
            hints = _error_hints(err, case, passed_2d)
            line = _learner_line(err)
            lines = [f"{spec.name}: your function raised {type(err).__name__}: {err}{line}", f"  on: {_describe_case(case)}."]
            lines += [f"  Hint: {h}" for h in hints]
            keys = ["error"]
            if "ambiguous" in str(err):
                keys.append("scalar_t")
            if any("2-D only" in h for h in hints):
                keys.append("broadcast_2d_only")
            if any("t+1" in h for h in hints):
                keys.append("off_by_one")
            diag, found = _diagnose(spec, fn, _probes(spec, tabs))
            if found:
                lines.append("  On the timesteps where it ran:")
                lines += diag
                keys = found + keys
            return done("error", "\n".join(lines), tuple(keys), n + 1, failure)
        if _is_stub_output(out):
            return done("not written yet", f"{spec.name}: not written yet (it returned {out!r}). If you did write it, check "
                                           "that the function ends with a `return` of the result.")
        if not isinstance(out, torch.Tensor):
            return done("error", f"{spec.name}: your function returned a {type(out).__name__}; it should return a torch.Tensor "
                                 f"of shape {tuple(case['shape'])}.", ("not_a_tensor",), n + 1)
        for k, v in inputs.items():
            if not torch.equal(v, originals[k]):
                return done("wrong", f"{spec.name}: your function changed its input `{k}` in place (e.g. with `+=` or `.mul_`). "
                                     "Compute a new tensor instead; the caller still needs the original.", ("in_place",), n + 1)
        if n == 0:
            again = _call(spec, fn, case, originals)
            if isinstance(again, torch.Tensor) and again.shape == out.shape and not torch.equal(again, out):
                return done("wrong", f"{spec.name}: your function returns different results for the same inputs, so it draws "
                                     "its own random numbers. Use the noise passed in as an argument instead "
                                     "(torch.randn inside the function makes the result impossible to check and to reproduce).",
                            ("random",), n + 1)
        want = spec.reference(case["tab"].schedule, originals, case).double()
        if tuple(out.shape) != tuple(want.shape):
            hint = ""
            if out.ndim > want.ndim or (out.ndim == want.ndim and out.numel() > want.numel()):
                hint = (" A coefficient of shape (B,) was probably broadcast against the wrong axis: reshape it to "
                        "(B, 1, ..., 1) (`extract(values, t, x)` does it).")
            return done("wrong", f"{spec.name}: your function returned shape {tuple(out.shape)}, expected {tuple(want.shape)} "
                                 f"(on: {_describe_case(case)}).{hint}", ("shape",), n + 1)
        got = out.detach().double()
        if not torch.isfinite(got).all():
            idx = tuple(int(i) for i in torch.nonzero(~torch.isfinite(got))[0])
            failure = {"case": n, "kind": "nonfinite", "where": _describe_case(case), "index": idx}
            lines = [f"{spec.name}: your output contains NaN or inf at element {list(idx)} (on: {_describe_case(case, idx[0])}).",
                     "  A division by zero (e.g. by sqrt(1 - alpha_bar) where alpha_bar = 1) or a square root of a negative "
                     "number are the usual causes."]
            diag, found = _diagnose(spec, fn, _probes(spec, tabs))
            return done("wrong", "\n".join(lines + diag), tuple(found or ["nonfinite"]), n + 1, failure)
        scale = _scale(spec, case, originals)
        if not _close(got, want, scale).all():
            idx, w, gv = _first_difference(got, want, scale)
            failure = {"case": n, "kind": "mismatch", "where": _describe_case(case, idx[0]), "index": idx, "expected": w, "got": gv}
            lines = [f"{spec.name}: not right yet.",
                     f"  First difference: {_describe_case(case, idx[0])}, element {list(idx)}: expected {w:.6g}, got {gv:.6g}."]
            if case.get("mixed"):
                lines.append("  (Every case with one t for the whole batch passed; this batch mixes timesteps, as training does.)")
            diag, found = _diagnose(spec, fn, _probes(spec, tabs))
            return done("wrong", "\n".join(lines + diag), tuple(found), n + 1, failure)
        if len(case["shape"]) == 2:
            passed_2d = True
    ts = sorted({int(v) for c in cases for v in c["t"]})
    summary = (f"{spec.name}: correct. It matched the lib on {len(cases)} cases: {len(tabs)} schedules "
               f"({'; '.join(t.name for t in tabs)}), 2-D points and 4-D images, timesteps t in {{{', '.join(map(str, ts))}}}")
    if any(c.get("mixed") for c in cases):
        summary += ", and batches that mix timesteps"
    if any("eta" in c for c in cases):
        summary += ", eta in {0, 0.5, 1}, t_prev = -1 (the clean data) among the targets"
    return done("correct", summary + ".", (), len(cases))


# ---------------------------------------------------------------------------------------------- the four specs
def _shift(case: dict, k: int) -> dict:
    return dict(case, t=case["t"] + k)


def _term_with_shift(coef: Coef, k: int) -> Coef:
    return lambda tab, case: coef(tab, _shift(case, k))


# q_sample: x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps
def _qs_x0(tab: _Tables, case: dict) -> torch.Tensor:
    return tab.at(tab.alpha_bar, case["t"]).sqrt()


def _qs_eps(tab: _Tables, case: dict) -> torch.Tensor:
    return (1 - tab.at(tab.alpha_bar, case["t"])).sqrt()


_OFF_BY_ONE_MINUS = ("off by one: you used t-1 (treating the code index as the paper's). Code t runs 0..T-1 and already "
                     "stands for the paper's t+1, so index the tables with t itself (at t = 0, a plain index [t-1] even wraps "
                     "round to the last entry).")
_OFF_BY_ONE_PLUS = "off by one: you used t+1. Code t runs 0..T-1 and stands for the paper's t+1; index the tables with t."

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


# posterior mean: tilde-mu = sqrt(alpha_bar_{t-1}) beta_t / (1 - alpha_bar_t) x0 + sqrt(alpha_t)(1 - alpha_bar_{t-1})/(1 - alpha_bar_t) x_t
def _pm_x0(tab: _Tables, c: dict) -> torch.Tensor:
    t = c["t"]
    return tab.at(tab.alpha_bar_prev, t).sqrt() * tab.at(tab.beta, t) / (1 - tab.at(tab.alpha_bar, t))


def _pm_xt(tab: _Tables, c: dict) -> torch.Tensor:
    t = c["t"]
    return tab.at(tab.alpha, t).sqrt() * (1 - tab.at(tab.alpha_bar_prev, t)) / (1 - tab.at(tab.alpha_bar, t))


def _ab(tab: _Tables, c: dict) -> torch.Tensor:
    return tab.at(tab.alpha_bar, c["t"])


def _abp(tab: _Tables, c: dict) -> torch.Tensor:
    return tab.at(tab.alpha_bar_prev, c["t"])


def _b(tab: _Tables, c: dict) -> torch.Tensor:
    return tab.at(tab.beta, c["t"])


def _a(tab: _Tables, c: dict) -> torch.Tensor:
    return tab.at(tab.alpha, c["t"])


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


# ------------------------------------------------------------------------------------------------------ public
def check_q_sample(fn: Callable, *, quiet: bool = False) -> CheckResult:
    """Check ``fn(schedule, x0, t, eps) -> x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps`` (Ho et al. 2020, eq. 4)
    against :func:`~diffusion_course.forward.q_sample`; print the report and return it."""
    return _run(_Q_SAMPLE, fn, quiet)


def check_posterior_mean(fn: Callable, *, quiet: bool = False) -> CheckResult:
    """Check ``fn(schedule, x0, x_t, t) -> tilde-mu_t(x_t, x0)``, the mean of q(x_{t-1} | x_t, x_0) (Ho et al. 2020, eq. 7),
    against :func:`~diffusion_course.posterior.q_posterior`; print the report and return it."""
    return _run(_POSTERIOR_MEAN, fn, quiet)


def check_reverse_step(fn: Callable, *, variance: str = "beta", quiet: bool = False) -> CheckResult:
    """Check one DDPM reverse step ``fn(schedule, x_t, t, eps_hat, z) -> x_{t-1}`` (Ho et al. 2020, Algorithm 2, line 4):
    (x_t - beta_t / sqrt(1 - alpha_bar_t) eps_hat) / sqrt(alpha_t) + sigma_t z, with no noise at code t = 0.

    ``variance`` picks sigma_t^2: "beta" (beta_t, the default) or "posterior" (tilde-beta_t). Compared against
    :func:`~diffusion_course.samplers.ddpm_step`; prints the report and returns it.
    """
    check_choice(variance, ("beta", "posterior"), "variance")
    return _run(_reverse_spec(variance), fn, quiet)


def check_ddim_step(fn: Callable, *, quiet: bool = False) -> CheckResult:
    """Check one DDIM step ``fn(schedule, x_t, t, t_prev, eps_hat, eta, z) -> x_{t_prev}`` (Song et al. 2021, eq. 12), with
    t_prev = -1 meaning the clean data (alpha_bar = 1), against :func:`~diffusion_course.samplers.ddim_step`."""
    return _run(_DDIM, fn, quiet)


# ------------------------------------------------------------------------------- chapter 10: per-channel scaling
# The learner's fn(x, lo, hi) maps RGB images (N, 3, H, W) in pixel units to [-1, 1] channel by channel, with lo and hi
# of shape (3,) the per-channel range of the training data; the inverse fn(y, lo, hi) maps back to pixel units.
# Probes use channel ranges that differ a lot (so global and per-channel scaling disagree), an image width of 3 (so a
# (3,) range broadcast against the last axis silently gives wrong numbers instead of an error), and a batch that does
# not span the range (so statistics taken from the batch instead of lo and hi show).

__all__ += ["check_channel_scaling"]


def _cs_ref(x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    return 2 * (x - lo.reshape(1, 3, 1, 1)) / (hi - lo).reshape(1, 3, 1, 1) - 1


def _cs_inv(y: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    return lo.reshape(1, 3, 1, 1) + (y + 1) / 2 * (hi - lo).reshape(1, 3, 1, 1)


def _cs_channel_minmax(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    flat = x.transpose(0, 1).reshape(3, -1)
    return flat.amin(1), flat.amax(1)


# (key, explanation, wrong forward map) for the scaling; each is a mistake a learner makes.
_CS_SCALE_MISTAKES: tuple[tuple[str, str, Callable], ...] = (
    ("global_range", "one range for all three channels (lo.min() .. hi.max()) where each channel needs its own "
     "lo_c .. hi_c: a channel with a narrow range then never reaches -1 or 1. Index lo and hi per channel, shaped "
     "(1, 3, 1, 1).", lambda x, lo, hi: _cs_ref(x, lo.min().expand(3), hi.max().expand(3))),
    ("wrong_axis", "lo and hi of shape (3,) were broadcast against the last axis (the image width), not the channels: "
     "with a width of 3 PyTorch does this silently. Reshape them to (1, 3, 1, 1) (or lo[:, None, None]).",
     lambda x, lo, hi: 2 * (x - lo) / (hi - lo) - 1 if x.shape[-1] == 3 else None),
    ("unit_range", "the result lies in [0, 1]: (x - lo) / (hi - lo) still has to be mapped to [-1, 1] with 2 u - 1. "
     "The forward process mixes x0 with N(0, 1) noise, which is centred on 0.", lambda x, lo, hi: (_cs_ref(x, lo, hi) + 1) / 2),
    ("missing_minus_one", "2 (x - lo) / (hi - lo) lies in [0, 2]: subtract 1.", lambda x, lo, hi: _cs_ref(x, lo, hi) + 1),
    ("fixed_8bit", "x / 127.5 - 1, the fixed 8-bit scaling, ignores lo and hi: use the per-channel range you were given.",
     lambda x, lo, hi: x / 127.5 - 1),
    ("batch_range", "the range was taken from the batch x itself instead of the lo and hi passed in: the same pixel value "
     "would then scale differently in every batch (and in samples vs training data). Use lo and hi.",
     lambda x, lo, hi: _cs_ref(x, *_cs_channel_minmax(x))),
    ("batch_standardised", "(x - mean) / std of the batch is standardisation, not scaling to [-1, 1]: its values are not "
     "bounded (and x0 is clipped to [-1, 1] when sampling). Use lo and hi.",
     lambda x, lo, hi: (x - x.mean((0, 2, 3), keepdim=True)) / x.std((0, 2, 3), keepdim=True)),
    ("flipped", "the sign is flipped (lo maps to 1 and hi to -1): lo and hi swapped?", lambda x, lo, hi: -_cs_ref(x, lo, hi)),
)

_CS_UNSCALE_MISTAKES: tuple[tuple[str, str, Callable], ...] = (
    ("no_inverse", "the function returns its input unchanged (or only clamped): the inverse was forgotten. Without it "
     "samples are drawn in the model's units and their colours come out wrong.", lambda y, lo, hi: y),
    ("global_range", "one range for all three channels where each channel needs its own lo_c .. hi_c.",
     lambda y, lo, hi: _cs_inv(y, lo.min().expand(3), hi.max().expand(3))),
    ("wrong_axis", "lo and hi of shape (3,) were broadcast against the image width, not the channels: reshape them to (1, 3, 1, 1).",
     lambda y, lo, hi: lo + (y + 1) / 2 * (hi - lo) if y.shape[-1] == 3 else None),
    ("missing_half", "lo + (y + 1) (hi - lo) forgets the / 2: y + 1 runs over [0, 2], not [0, 1].",
     lambda y, lo, hi: _cs_inv(2 * y + 1, lo, hi)),
    ("unit_inverse", "lo + y (hi - lo) inverts a scaling to [0, 1], not to [-1, 1]: use (y + 1) / 2 first.",
     lambda y, lo, hi: lo.reshape(1, 3, 1, 1) + y * (hi - lo).reshape(1, 3, 1, 1)),
    ("fixed_8bit", "(y + 1) * 127.5 inverts the fixed 8-bit scaling, not the per-channel one: use lo and hi.",
     lambda y, lo, hi: (y + 1) * 127.5),
)


def _cs_cases() -> list[dict]:
    g = torch.Generator().manual_seed(10)
    wide = (torch.tensor([10.0, 60.0, 5.0]), torch.tensor([200.0, 120.0, 240.0]))  # lo.min()..hi.max() is not 0..255
    full = (torch.zeros(3), torch.full((3,), 255.0))
    cases = []
    for name, (lo, hi), shape, band in [
        ("channels with different ranges", wide, (4, 3, 5, 6), (0.0, 1.0)),
        ("an image width of 3", wide, (2, 3, 4, 3), (0.0, 1.0)),
        ("a batch that does not span lo..hi", wide, (3, 3, 4, 5), (0.3, 0.6)),
        ("the full 0..255 range in every channel", full, (2, 3, 4, 4), (0.0, 1.0)),
    ]:
        u = band[0] + (band[1] - band[0]) * torch.rand(shape, generator=g, dtype=torch.float64)
        x = lo.double().reshape(1, 3, 1, 1) + u * (hi - lo).double().reshape(1, 3, 1, 1)
        cases.append({"name": name, "x": x.float(), "lo": lo, "hi": hi})
    return cases


def _cs_call(fn: Callable, x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> Any:
    args = [x.clone(), lo.clone(), hi.clone()]
    with torch.no_grad():
        out = fn(*args)
    changed = [n for n, a, b in zip(("x", "lo", "hi"), args, (x, lo, hi)) if not torch.equal(a, b)]
    return out, changed


def _cs_check_one(label: str, fn: Callable, ref: Callable, mistakes: tuple, cases: list[dict], inverse: bool) -> tuple[str, str, tuple, int]:
    """Run ``fn`` on the cases against ``ref``; return (status, message, mistakes, cases_run)."""
    arg = "y" if inverse else "x"
    for n, case in enumerate(cases):
        x = _cs_ref(case["x"], case["lo"], case["hi"]) if inverse else case["x"]
        where = f"case {n + 1} ({case['name']}: {arg} of shape {tuple(x.shape)}, lo={case['lo'].tolist()}, hi={case['hi'].tolist()})"
        try:
            out, changed = _cs_call(fn, x, case["lo"], case["hi"])
        except NotImplementedError:
            return "not written yet", f"{label}: not written yet. Replace the `raise NotImplementedError` with your code, then run this cell again.", (), n
        except Exception as err:  # noqa: BLE001 - report any learner error in words, never raise
            hint = ""
            if "size of tensor" in str(err) or "must match" in str(err):
                hint = "\n  Hint: lo and hi have shape (3,); reshape them to (1, 3, 1, 1) so they line up with the channel axis."
            return "error", f"{label}: your function raised {type(err).__name__}: {err}{_learner_line(err)}\n  on {where}.{hint}", ("error",), n + 1
        if _is_stub_output(out):
            return "not written yet", f"{label}: not written yet (it returned {out!r}). End the function with `return` of the result.", (), n + 1
        if changed:
            return "wrong", (f"{label}: your function changed its input `{changed[0]}` in place (e.g. with `-=`); compute a new tensor "
                             "instead."), ("in_place",), n + 1
        if not isinstance(out, torch.Tensor):
            return "error", f"{label}: your function returned a {type(out).__name__}; it should return a torch.Tensor.", ("not_a_tensor",), n + 1
        want = ref(x, case["lo"], case["hi"]).double()
        if tuple(out.shape) != tuple(want.shape):
            return "wrong", (f"{label}: your function returned shape {tuple(out.shape)}, expected {tuple(want.shape)} on {where}. "
                             "lo and hi of shape (3,) must be reshaped to (1, 3, 1, 1), not broadcast as they come."), ("shape",), n + 1
        got = out.detach().double()
        tol = 1e-4 * (1 + want.abs())
        bad = ~((got - want).abs() <= tol)
        if bool(bad.any()):
            idx = tuple(int(i) for i in torch.nonzero(bad)[0])
            lines = [f"{label}: not right yet.",
                     f"  First difference: {where}, element {list(idx)} (image {idx[0]}, channel {'RGB'[idx[1]]}): "
                     f"input {float(x[idx]):.4g}, expected {float(want[idx]):.6g}, got {float(got[idx]):.6g}."]
            found = []
            for key, why, wrong in mistakes:
                w = wrong(x.double(), case["lo"].double(), case["hi"].double())
                if w is not None and w.shape == got.shape and bool(((got - w).abs() <= 1e-4 * (1 + w.abs())).all()):
                    found.append(key)
                    lines.append(f"  It looks like: {why}")
                    break
            if not found:
                lines.append("  It matches none of the usual mistakes; check the formula term by term: "
                             + ("x = lo_c + (y + 1) / 2 (hi_c - lo_c)." if inverse else "y = 2 (x - lo_c) / (hi_c - lo_c) - 1."))
            return "wrong", "\n".join(lines), tuple(found), n + 1
    return "correct", "", (), len(cases)


def check_channel_scaling(scale_fn: Callable, unscale_fn: Callable | None = None, *, quiet: bool = False) -> CheckResult:
    """Check ``scale_fn(x, lo, hi) -> y``, per-channel scaling of RGB images (N, 3, H, W) from [lo_c, hi_c] to [-1, 1]
    (y = 2 (x - lo_c) / (hi_c - lo_c) - 1), against :func:`~diffusion_course.colour.scale_per_channel`; with
    ``unscale_fn(y, lo, hi) -> x`` also its inverse and the round trip. Prints the report and returns it."""
    cases = _cs_cases()
    name = "channel_scaling"

    def done(status: str, message: str, mistakes: tuple = (), n: int = 0) -> CheckResult:
        result = CheckResult(name, status, message, tuple(dict.fromkeys(mistakes)), n)
        if not quiet:
            print(message)
        return result

    for label, fn in (("scale", scale_fn), ("unscale", unscale_fn)):
        if fn is not None and not callable(fn):
            return done("error", f"{name}: {label}_fn must be a function fn(x, lo, hi); got {type(fn).__name__}.", ("not_callable",))
    status, message, mistakes, n = _cs_check_one("scale", scale_fn, _cs_ref, _CS_SCALE_MISTAKES, cases, inverse=False)
    if status != "correct":
        return done(status, message, mistakes, n)
    runs = n
    what = (f"scale: correct on {n} cases (channels with different ranges, an image width of 3, a batch that does not "
            "span lo..hi, the full 0..255 range)")
    if unscale_fn is None:
        return done("correct", f"{name}: {what}. Write the inverse too and pass it as the second argument.", (), runs)
    status, message, mistakes, n = _cs_check_one("unscale", unscale_fn, _cs_inv, _CS_UNSCALE_MISTAKES, cases, inverse=True)
    runs += n
    if status != "correct":
        return done(status, f"{what}.\n{message}", mistakes, runs)
    for case in cases:
        out, _ = _cs_call(unscale_fn, _cs_call(scale_fn, case["x"], case["lo"], case["hi"])[0], case["lo"], case["hi"])
        if not torch.allclose(out.double(), case["x"].double(), rtol=1e-4, atol=1e-3):
            return done("wrong", f"{name}: each function matched the lib, but unscale(scale(x)) does not give x back on "
                                 f"{case['name']}.", ("round_trip",), runs)
    return done("correct", f"{name}: {what}; unscale: correct on the same cases, and unscale(scale(x)) gives x back.", (), runs)


# ------------------------------------------------------------------------ chapter 11: classifier-free guidance
# The learner's fn(eps_cond, eps_uncond, w) combines the two predictions of a class-conditional model into the guided
# one, (1 + w) eps_cond - w eps_uncond (Ho & Salimans 2022, eq. 6). It is linear in the two predictions, so the checker
# measures both coefficients at several w (a one in one input, zeros in the other) and names the convention or slip
# they match.
_CFG_WS = (0.0, 0.5, 1.0, 3.0, 7.5)
_CFG_MISTAKES = (
    ("diffusers_scale", lambda w: (w, 1 - w),
     "you wrote eps_uncond + w (eps_cond - eps_uncond): that is diffusers' `guidance_scale` convention, where the scale s "
     "is 1 + w. In this course (and in Ho & Salimans' paper) w = 0 must give the conditional model itself, so the "
     "difference is multiplied by 1 + w."),
    ("swapped", lambda w: (-w, 1 + w),
     "eps_cond and eps_uncond are swapped: guidance pushes away from the unconditional prediction, towards the conditional one."),
    ("sign", lambda w: (1 + w, w),
     "the unconditional prediction is added where it must be subtracted: (1 + w) eps_cond - w eps_uncond."),
    ("no_one_plus", lambda w: (1.0, -w),
     "the conditional prediction is not scaled by 1 + w: the weights of the two predictions must sum to 1 (an "
     "affine combination), otherwise eps_tilde grows with w even where both predictions agree."),
)


def check_guidance(fn: Callable, *, quiet: bool = False) -> CheckResult:
    """Check ``fn(eps_cond, eps_uncond, w) -> eps_tilde = (1 + w) eps_cond - w eps_uncond`` (Ho & Salimans 2022, eq. 6)
    on random predictions of shape (4, 1, 5, 5) and (6, 2) at w in {0, 0.5, 1, 3, 7.5}; print the report and return it."""
    name = "guidance"

    def done(status: str, message: str, mistakes: tuple[str, ...] = (), cases: int = 0, failure: dict | None = None) -> CheckResult:
        result = CheckResult(name, status, message, mistakes, cases, failure)
        if not quiet:
            print(message)
        return result

    if not callable(fn):
        return done("error", f"{name}: expected a function fn(eps_cond, eps_uncond, w) -> eps_tilde; got {type(fn).__name__}.",
                    ("not_callable",))
    g = torch.Generator().manual_seed(11)
    n = 0
    for shape in ((4, 1, 5, 5), (6, 2)):
        for w in _CFG_WS:
            n += 1
            c, u = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
            c0, u0 = c.clone(), u.clone()
            try:
                with torch.no_grad():
                    out = fn(c, u, w)
            except NotImplementedError:
                return done("not written yet", f"{name}: not written yet. Replace the `raise NotImplementedError` with your code, "
                                               "then run this cell again.")
            except Exception as err:  # noqa: BLE001 - report any learner error in words
                return done("error", f"{name}: your function raised {type(err).__name__}: {err}{_learner_line(err)}\n"
                                     f"  on: predictions of shape {shape}, w = {w:g}.", ("error",), n)
            if _is_stub_output(out):
                return done("not written yet", f"{name}: not written yet (it returned {out!r}). If you did write it, check that "
                                               "the function ends with a `return` of the result.")
            if not isinstance(out, torch.Tensor) or tuple(out.shape) != shape:
                got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                return done("wrong", f"{name}: expected a tensor of the predictions' shape {shape}; got {got} (w = {w:g}).", ("shape",), n)
            if not (torch.equal(c, c0) and torch.equal(u, u0)):
                return done("wrong", f"{name}: your function changed eps_cond or eps_uncond in place; compute a new tensor instead.",
                            ("in_place",), n)
            want = (1 + w) * c0.double() - w * u0.double()
            scale = (1 + w) * c0.double().abs() + w * u0.double().abs()
            if not _close(out.double(), want, scale).all():
                idx, ev, gv = _first_difference(out.double(), want, scale)
                lines = [f"{name}: not right yet.", f"  First difference: predictions of shape {shape}, w = {w:g}, element "
                                                    f"{list(idx)}: expected {ev:.6g}, got {gv:.6g}."]
                found = []
                coefs = {}
                for ww in _CFG_WS:  # measure the two coefficients at every w
                    one, zero = torch.ones(1, 3), torch.zeros(1, 3)
                    try:
                        with torch.no_grad():
                            a = float(fn(one, zero, ww).double().mean())
                            b = float(fn(zero, one, ww).double().mean())
                    except Exception:  # noqa: BLE001
                        coefs = {}
                        break
                    coefs[ww] = (a, b)
                if coefs:
                    lines.append("  Measured weights (of eps_cond, of eps_uncond) per w: "
                                 + "; ".join(f"w = {ww:g}: ({a:.4g}, {b:.4g})" for ww, (a, b) in coefs.items())
                                 + ". Expected: " + "; ".join(f"w = {ww:g}: ({1 + ww:g}, {0.0 - ww:g})" for ww in coefs) + ".")
                    for key, rule, text in _CFG_MISTAKES:
                        if all(abs(a - rule(ww)[0]) < 1e-4 and abs(b - rule(ww)[1]) < 1e-4 for ww, (a, b) in coefs.items()):
                            lines.append(f"  Diagnosis: {text}")
                            found.append(key)
                            break
                return done("wrong", "\n".join(lines), tuple(found), n, {"kind": "mismatch", "w": w, "index": idx, "expected": ev, "got": gv})
    return done("correct", f"{name}: correct. It matched (1 + w) eps_cond - w eps_uncond on {n} cases: predictions of shape "
                           f"(4, 1, 5, 5) and (6, 2), w in {{{', '.join(f'{w:g}' for w in _CFG_WS)}}}.", (), n)


__all__ += ["check_guidance"]
