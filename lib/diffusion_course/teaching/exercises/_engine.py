"""The checkers' engine: random probes, the comparison with the lib, and the report of the first difference.

Every checker of a linear exercise (q_sample, the posterior mean, the reverse step, the DDIM step) is a :class:`_Spec`
(see :mod:`._diagnosis`): its terms (one coefficient per tensor input), the known wrong variants of each term, how to
call the learner's function and the lib's reference. :func:`_run` draws the probes, compares, and on a difference lets
:func:`._diagnosis._diagnose` measure each coefficient (a one in that input, zeros in the others) and name the mistake
it matches. The other checkers (per-channel scaling, guidance, and the chapter exercises with a structure of their own)
reuse :class:`CheckResult`, :func:`_reporter` and the stub detection here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from ...maths.schedules import NoiseSchedule
from ._diagnosis import _call, _close, _describe_case, _diagnose, _error_hints, _learner_line, _Spec, _Tables


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


# ------------------------------------------------------------------------------------------------------ engine
class _Failure(Exception):
    pass


def _is_stub_output(out: Any) -> bool:
    return out is None or out is Ellipsis


def _draw_inputs(spec: _Spec, case: dict, g: torch.Generator) -> dict[str, torch.Tensor]:
    return {term.name: torch.randn(case["shape"], generator=g) for term in spec.terms}


def _linear_output(spec: _Spec, case: dict, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """sum_i coef_i * input_i with the right coefficients (float64)."""
    out = 0
    for term in spec.terms:
        c = term.coef(case["tab"], case).reshape(-1, *([1] * (len(case["shape"]) - 1)))
        out = out + c * inputs[term.name].double()
    return out


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



def _reporter(name: str, quiet: bool) -> Callable[..., CheckResult]:
    """The ``done(status, message, mistakes=(), cases=0, failure=None)`` every checker ends with: builds the
    :class:`CheckResult` (each mistake named once), prints its message unless ``quiet``, and returns it."""

    def done(status: str, message: str, mistakes: tuple[str, ...] = (), cases: int = 0, failure: dict | None = None) -> CheckResult:
        result = CheckResult(name, status, message, tuple(dict.fromkeys(mistakes)), cases, failure)
        if not quiet:
            print(message)
        return result

    return done


def _raised(spec: _Spec, fn: Callable, case: dict, n: int, err: Exception, passed_2d: bool, tabs: list[_Tables],
            done: Callable[..., CheckResult]) -> CheckResult:
    """The report of a learner's function that raised on case ``n``: the error, hints, and where it ran, the diagnosis."""
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


def _misbehaved(spec: _Spec, fn: Callable, case: dict, n: int, out: Any, inputs: dict[str, torch.Tensor],
                originals: dict[str, torch.Tensor], done: Callable[..., CheckResult]) -> CheckResult | None:
    """The report of an output that is no answer (a stub's None, not a tensor, inputs changed in place, a result that
    changes from call to call), or None when the output can be compared with the lib's."""
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
    return None


def _differs(spec: _Spec, fn: Callable, case: dict, n: int, out: torch.Tensor, originals: dict[str, torch.Tensor],
             tabs: list[_Tables], done: Callable[..., CheckResult]) -> CheckResult | None:
    """The report of an output that differs from the lib's on case ``n`` (shape, NaN or inf, or the first differing
    element, then the diagnosis), or None when it matches."""
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
    return None


def _summary(spec: _Spec, tabs: list[_Tables], cases: list[dict]) -> str:
    """The report of a function that matched the lib on every case: what was tested."""
    ts = sorted({int(v) for c in cases for v in c["t"]})
    summary = (f"{spec.name}: correct. It matched the lib on {len(cases)} cases: {len(tabs)} schedules "
               f"({'; '.join(t.name for t in tabs)}), 2-D points and 4-D images, timesteps t in {{{', '.join(map(str, ts))}}}")
    if any(c.get("mixed") for c in cases):
        summary += ", and batches that mix timesteps"
    if any("eta" in c for c in cases):
        summary += ", eta in {0, 0.5, 1}, t_prev = -1 (the clean data) among the targets"
    return summary + "."


def _run(spec: _Spec, fn: Callable, quiet: bool) -> CheckResult:
    """Check ``fn`` against ``spec`` on every case (seeded inputs); print the report of the first difference and return it."""
    done = _reporter(spec.name, quiet)

    if not callable(fn):
        return done("error", f"{spec.name}: expected a function {spec.signature}; got {type(fn).__name__}.", ("not_callable",))
    tabs = _schedules()
    cases = spec.cases(tabs)
    g = torch.Generator().manual_seed(1234)
    passed_2d = False
    for n, case in enumerate(cases):
        inputs = _draw_inputs(spec, case, g)
        originals = {k: v.clone() for k, v in inputs.items()}
        try:
            with torch.no_grad():
                out = spec.call(fn, case["tab"].schedule, inputs, case)
        except NotImplementedError:
            return done("not written yet", f"{spec.name}: not written yet. Replace the `raise NotImplementedError` with your "
                                           "code, then run this cell again.")
        except Exception as err:  # noqa: BLE001 - report any learner error in words, never raise
            return _raised(spec, fn, case, n, err, passed_2d, tabs, done)
        verdict = _misbehaved(spec, fn, case, n, out, inputs, originals, done)
        if verdict is None:
            verdict = _differs(spec, fn, case, n, out, originals, tabs, done)
        if verdict is not None:
            return verdict
        if len(case["shape"]) == 2:
            passed_2d = True
    return done("correct", _summary(spec, tabs, cases), (), len(cases))
