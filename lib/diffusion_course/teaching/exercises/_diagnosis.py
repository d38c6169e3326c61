"""The linear exercises' model of a learner's function, and the catalogue of known slips.

An exercise such as q_sample, the posterior mean, the reverse step or the DDIM step is, at a fixed timestep, a linear
combination of its tensor inputs. A :class:`_Spec` describes it: its terms (one coefficient per tensor input, read from
float64 copies of the schedule's tables, :class:`_Tables`), the known wrong variants of each term and of the whole
formula, how to call the learner's function and the lib's reference. Here live the tolerances, the coefficient
measurement (a one in that input, zeros in the others), the term-by-term diagnosis that names the slip a function
matches, the hints for a learner's error and the helpers the specs share (the off-by-one texts, t shifted by one).
:mod:`._engine` runs the probes and the comparison and calls :func:`_diagnose` on a difference; this module imports
nothing from it.
"""

from __future__ import annotations

import math
import os
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ...maths.schedules import NoiseSchedule

# Tolerances. A learner's function computes in float32 from the schedule's float32 tables, and 1 - alpha_bar_t near
# t = 0 loses most of its digits there (1 - 0.9999 in float32 is off by up to 6e-4 relative). So outputs are compared
# relative to the size of the terms that make them up, and every mistake the checker names differs by far more than this
# on at least one case (the short steep schedule makes every coefficient differ by percents).
RTOL = 2e-3  # relative tolerance: of a coefficient, or of sum_i |coef_i * input_i| for an output
ATOL = 1e-5  # absolute tolerance of an output element
COEF_ATOL = 1e-6  # absolute tolerance of a measured coefficient (a term may widen it, see _Term.atol)


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


# --------------------------------------------------------------------------------------------- case descriptions
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


# ------------------------------------------------------------------------------------------- calls and tolerance
def _call(spec: _Spec, fn: Callable, case: dict, inputs: dict[str, torch.Tensor]) -> Any:
    with torch.no_grad():
        return spec.call(fn, case["tab"].schedule, {k: v.clone() for k, v in inputs.items()}, case)


def _close(a: torch.Tensor, b: torch.Tensor, scale: torch.Tensor | None = None, atol: float = ATOL) -> torch.Tensor:
    """|a - b| <= atol + RTOL * scale elementwise (scale defaults to |b|)."""
    return (a - b).abs() <= atol + RTOL * (b.abs() if scale is None else scale)


# --------------------------------------------------------------------------------------------- a learner's error
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


# -------------------------------------------------------------------------------------- measurement and diagnosis
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


# ------------------------------------------------------------------------------- helpers shared by the specs
def _shift(case: dict, k: int) -> dict:
    return dict(case, t=case["t"] + k)


def _term_with_shift(coef: Coef, k: int) -> Coef:
    return lambda tab, case: coef(tab, _shift(case, k))


_OFF_BY_ONE_MINUS = ("off by one: you used t-1 (treating the code index as the paper's). Code t runs 0..T-1 and already "
                     "stands for the paper's t+1, so index the tables with t itself (at t = 0, a plain index [t-1] even wraps "
                     "round to the last entry).")
_OFF_BY_ONE_PLUS = "off by one: you used t+1. Code t runs 0..T-1 and stands for the paper's t+1; index the tables with t."


def _ab(tab: _Tables, c: dict) -> torch.Tensor:
    return tab.at(tab.alpha_bar, c["t"])


def _abp(tab: _Tables, c: dict) -> torch.Tensor:
    return tab.at(tab.alpha_bar_prev, c["t"])


def _b(tab: _Tables, c: dict) -> torch.Tensor:
    return tab.at(tab.beta, c["t"])


def _a(tab: _Tables, c: dict) -> torch.Tensor:
    return tab.at(tab.alpha, c["t"])
