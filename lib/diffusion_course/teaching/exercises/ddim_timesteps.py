"""Chapter 8's exercise: the kept timesteps of a DDIM sampler (the lib's ``samplers.ddim_timesteps``).

The learner writes ``fn(T, S, spacing) -> LongTensor (S,)``, ascending tau_1 < ... < tau_S in 0..T-1, for the four
spacings of :func:`diffusion_course.samplers.ddim_timesteps`:

- "uniform":   floor(linspace(0, T-1, S)), always 0 and T-1 (S = 1: just T-1);
- "leading":   k (T // S) for k = 0..S-1 (the DDIM paper's code);
- "trailing":  round(T - k T / S) - 1 for k = 0..S-1, sorted ascending (Lin et al. 2024); always T-1;
- "quadratic": floor(linspace(0, sqrt(0.8 T), S)^2), each entry raised to at least one more than the one before it
  (the DDIM paper's CIFAR-10 choice; the raw squares repeat small values).

The checker compares with the lib for many (T, S) and, on a difference, names the mistake: a float result, the wrong
length, descending order (the sampling order rather than the list), repeated entries, values outside 0..T-1, or a
known wrong rule (paper indices 1..T, rounding where the lib floors, no -1 in "trailing", diffusers' steps_offset in
"leading", a float stride T / S in "leading", the full range sqrt(T) in "quadratic", floating-point arange in
"trailing" that returns one entry too many).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ...maths.samplers import DDIM_SPACINGS
from ...maths.samplers import ddim_timesteps as _lib_ddim_timesteps
from ._diagnosis import _learner_line
from ._engine import CheckResult, _is_stub_output, _reporter

NAME = "ddim_timesteps"
_TS = (1000, 100, 50, 10, 250)  # typical sizes first: the first difference is then one a learner recognises
_SS = (10, 50, 7, 3, 2, 16, 61, 100, 333, 999, 1000, 1)


def _cases() -> list[tuple[int, int, str]]:
    out = []
    for spacing in DDIM_SPACINGS:
        for T in _TS:
            for S in _SS:
                if S <= T:
                    out.append((T, S, spacing))
    return out


def _np(a) -> np.ndarray:
    return np.asarray(a, dtype=np.int64)


# Known wrong rules per spacing: (key, explanation, rule (T, S) -> array, possibly descending or with repeats).
def _uniform_paper(T: int, S: int) -> np.ndarray:
    return _np(np.floor(np.linspace(1, T, S))) if S > 1 else _np([T])


def _uniform_to_T(T: int, S: int) -> np.ndarray:
    return _np(np.floor(np.linspace(0, T, S))) if S > 1 else _np([T])


def _uniform_round(T: int, S: int) -> np.ndarray:
    return _np(np.round(np.linspace(0, T - 1, S))) if S > 1 else _np([T - 1])


def _trailing_no_minus_one(T: int, S: int) -> np.ndarray:
    return _np(np.round(T - np.arange(S) * (T / S)))[::-1]


def _trailing_arange(T: int, S: int) -> np.ndarray:
    return (_np(np.round(np.arange(T, 0, -T / S))) - 1)[::-1]


def _leading_offset(T: int, S: int) -> np.ndarray:
    return _np(np.arange(S) * (T // S)) + 1


def _leading_float(T: int, S: int) -> np.ndarray:
    return _np(np.floor(np.arange(S) * (T / S)))


def _quadratic_raw(T: int, S: int) -> np.ndarray:
    return _np(np.floor(np.linspace(0, np.sqrt(T * 0.8), S) ** 2))


def _quadratic_full(T: int, S: int) -> np.ndarray:
    ts = _np(np.floor(np.linspace(0, np.sqrt(T), S) ** 2))
    for i in range(1, len(ts)):
        ts[i] = max(ts[i], ts[i - 1] + 1)
    return ts


_OFF_BY_ONE = "off by one at the ends"
_MISTAKES: dict[str, tuple[tuple[str, str, Callable[[int, int], np.ndarray]], ...]] = {
    "uniform": (
        ("off_by_one", f"{_OFF_BY_ONE}: you used the paper's indices 1..T (linspace(1, T, S)). Code timesteps run 0..T-1, "
                       "so the list runs from 0 to T-1.", _uniform_paper),
        ("off_by_one", f"{_OFF_BY_ONE}: linspace(0, T, S) ends at T, one past the last timestep T-1 (there is no "
                       "alpha_bar[T]). Use linspace(0, T - 1, S).", _uniform_to_T),
        ("round_not_floor", "you rounded linspace(0, T-1, S) where this course takes the floor (diffusers' "
                            "\"linspace\" spacing rounds, so its list differs from this one at some entries). Use np.floor "
                            "(or .floor() / .long() on a tensor of non-negative values).", _uniform_round),
    ),
    "trailing": (
        ("off_by_one", f"{_OFF_BY_ONE}: round(T - k T/S) runs from T down; subtract 1 so the first kept timestep is T-1, "
                       "the last code index.", _trailing_no_minus_one),
        ("wrong_length", "np.arange(T, 0, -T / S) can return S + 1 entries (the last one -1 after subtracting 1) when T / S "
                         "is not exact in floating point, e.g. T = 1000, S = 61. Build k = 0..S-1 from an integer range: "
                         "round(T - k * T / S) - 1.", _trailing_arange),
    ),
    "leading": (
        ("off_by_one", f"{_OFF_BY_ONE}: every entry is one too large, as with diffusers' `steps_offset=1`. This course's "
                       "\"leading\" is k (T // S) for k = 0..S-1, starting at 0.", _leading_offset),
        ("float_stride", "the stride is T / S in floating point; \"leading\" uses the integer stride T // S (the DDIM "
                         "paper's code: range(0, T, T // S)), so it never reaches T-1 when S does not divide T.",
         _leading_float),
    ),
    "quadratic": (
        ("duplicates", "the squares of small numbers repeat (floor(0.3^2) = floor(0.6^2) = 0): raise each entry to at "
                       "least one more than the one before it, ts[i] = max(ts[i], ts[i-1] + 1), so no step is taken twice.",
         _quadratic_raw),
        ("quadratic_range", "the quadratic spacing stops at 0.8 T (the DDIM paper's choice): linspace(0, sqrt(0.8 T), S)^2, "
                            "not sqrt(T).", _quadratic_full),
    ),
}


def _matching_rule(g: np.ndarray, T: int, S: int, spacing: str) -> tuple[str, str] | None:
    """(key, explanation) of the first known wrong rule of ``spacing`` whose list holds the values of ``g`` (1-D, in
    any order), or None."""
    for key, text, rule in _MISTAKES.get(spacing, ()):
        if g.ndim == 1 and np.array_equal(np.sort(g), np.sort(rule(T, S))):
            return key, text
    return None


def _wrong_type_or_length(got: torch.Tensor, want: torch.Tensor, T: int, S: int, spacing: str, where: str, n: int,
                          done: Callable[..., CheckResult]) -> CheckResult | None:
    """The report of float values or a list of the wrong length, or None."""
    if got.dtype.is_floating_point or got.dtype == torch.bool:
        same = got.ndim == 1 and got.numel() == S and torch.equal(got.double(), want.double())
        return done("wrong", f"{NAME}: your function returned {got.dtype} values (on: {where}); timesteps index the "
                             "schedule's tables, so they must be integers: end with `.long()` (torch) or "
                             "`.astype(np.int64)` (NumPy)" + (" (the values themselves are right)." if same else "."),
                    ("float",), n)
    got = got.long()
    if got.ndim != 1 or got.numel() != S:
        mistakes, lines = ["wrong_length"], [f"{NAME}: expected {S} timesteps (shape ({S},)); got shape {tuple(got.shape)} "
                                              f"(on: {where})."]
        match = _matching_rule(got.numpy(), T, S, spacing)
        if match is not None:
            key, text = match
            lines.append(f"  Diagnosis: {text}")
            mistakes = [key] + mistakes if key != "wrong_length" else mistakes
        return done("wrong", "\n".join(lines), tuple(mistakes), n)
    return None


def _wrong_order(g: np.ndarray, want: torch.Tensor, T: int, S: int, spacing: str, where: str, n: int,
                 done: Callable[..., CheckResult]) -> CheckResult | None:
    """The report of a list that is not strictly increasing (descending, repeated or shuffled entries), or None."""
    if S > 1 and np.array_equal(g[::-1], want.numpy()):
        return done("wrong", f"{NAME}: the right timesteps in descending order (on: {where}). Return them ascending, "
                             "tau_1 < ... < tau_S, as the lib does; the sampler walks the list backwards itself.",
                    ("descending",), n)
    if S > 1 and not (np.diff(g) > 0).all():
        dup = bool((np.diff(g) == 0).any())
        lines = [f"{NAME}: the timesteps are not strictly increasing (on: {where}): "
                 f"{g[: min(8, S)].tolist()}{' ...' if S > 8 else ''}."]
        keys = ["duplicates" if dup else "not_increasing"]
        sorted_ok = np.array_equal(np.sort(g), want.numpy())
        if not dup and sorted_ok:
            lines.append("  They are the right values in the wrong order: return them ascending.")
        match = _matching_rule(g, T, S, spacing)
        if match is not None:
            key, text = match
            lines.append(f"  Diagnosis: {text}")
            keys = [key] + keys
        elif dup:
            lines.append("  A repeated timestep makes the sampler take a step of zero length there and one step "
                         "fewer elsewhere.")
        return done("wrong", "\n".join(lines), tuple(keys), n)
    return None


def _wrong_values(g: np.ndarray, want: torch.Tensor, T: int, S: int, spacing: str, where: str, n: int,
                  done: Callable[..., CheckResult]) -> CheckResult | None:
    """The report of values outside 0..T-1 or different from the lib's (the first difference and its diagnosis), or None."""
    keys, lines = [], []
    if int(g.min()) < 0 or int(g.max()) > T - 1:
        lines.append(f"{NAME}: timesteps outside 0..T-1 = 0..{T - 1} (on: {where}): got values in "
                     f"[{int(g.min())}, {int(g.max())}].")
        keys.append("out_of_range")
    if not np.array_equal(g, want.numpy()):
        if not lines:
            i = int(np.nonzero(g != want.numpy())[0][0])
            lines.append(f"{NAME}: not right yet.")
            lines.append(f"  First difference: {where}, entry {i} (of {S}): expected {int(want[i])}, got {int(g[i])}.")
        match = _matching_rule(g, T, S, spacing)
        if match is not None:
            key, text = match
            lines.append(f"  Diagnosis: {text}")
            keys = [key] + keys
        else:
            d = g - want.numpy()
            if set(np.unique(d).tolist()) <= {-1, 0, 1} and (d[0] != 0 or d[-1] != 0):
                lines.append(f"  Diagnosis: {_OFF_BY_ONE}: the first and last entries must be "
                             f"{int(want[0])} and {int(want[-1])} here.")
                keys = ["off_by_one"] + keys
            else:
                lines.append(f"  It matches none of the mistakes I know; the lib's list here starts "
                             f"{want[: min(6, S)].tolist()}{' ...' if S > 6 else ''}.")
        return done("wrong", "\n".join(lines), tuple(keys), n,
                    {"kind": "mismatch", "T": T, "S": S, "spacing": spacing})
    if lines:  # out of range but equal to the lib cannot happen; kept for safety
        return done("wrong", "\n".join(lines), tuple(keys), n)
    return None


def check_ddim_timesteps(fn: Callable, *, quiet: bool = False) -> CheckResult:
    """Check ``fn(T, S, spacing)`` against :func:`diffusion_course.samplers.ddim_timesteps` for the four spacings at
    T in {10, 50, 100, 250, 1000} and S from 1 to T; print the report and return it."""
    done = _reporter(NAME, quiet)

    if not callable(fn):
        return done("error", f"{NAME}: expected a function fn(T, S, spacing) -> LongTensor; got {type(fn).__name__}.",
                    ("not_callable",))
    cases = _cases()
    for n, (T, S, spacing) in enumerate(cases, start=1):
        where = f"T = {T}, S = {S}, spacing = {spacing!r}"
        try:
            out = fn(T, S, spacing)
        except NotImplementedError:
            return done("not written yet", f"{NAME}: not written yet. Replace the `raise NotImplementedError` with your code, "
                                           "then run this cell again.")
        except Exception as err:  # noqa: BLE001 - report any learner error in words, never raise
            return done("error", f"{NAME}: your function raised {type(err).__name__}: {err}{_learner_line(err)}\n  on: {where}.",
                        ("error",), n)
        if _is_stub_output(out):
            return done("not written yet", f"{NAME}: not written yet (it returned {out!r}). If you did write it, check that the "
                                           "function ends with a `return` of the list.")
        try:
            got = torch.as_tensor(np.asarray(out)) if not isinstance(out, torch.Tensor) else out.detach().cpu()
        except Exception:  # noqa: BLE001
            return done("error", f"{NAME}: expected a LongTensor of shape ({S},); got {type(out).__name__} (on: {where}).",
                        ("not_a_tensor",), n)
        want = _lib_ddim_timesteps(T, S, spacing)
        verdict = _wrong_type_or_length(got, want, T, S, spacing, where, n, done)
        if verdict is None:
            g = got.long().numpy()
            verdict = _wrong_order(g, want, T, S, spacing, where, n, done)
            if verdict is None:  # (a CheckResult that is not "correct" is falsy: test for None, never `or`)
                verdict = _wrong_values(g, want, T, S, spacing, where, n, done)
        if verdict is not None:
            return verdict
    return done("correct", f"{NAME}: correct. It matched the lib on {len(cases)} cases: the four spacings "
                           f"({', '.join(DDIM_SPACINGS)}), T in {{{', '.join(map(str, sorted(_TS)))}}} and S from 1 to T "
                           f"({', '.join(map(str, sorted(_SS)))}).", (), len(cases))
