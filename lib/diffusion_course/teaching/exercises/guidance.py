"""Chapter 11's exercise: classifier-free guidance (Ho & Salimans 2022, eq. 6)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ._diagnosis import _close, _learner_line
from ._engine import CheckResult, _first_difference, _is_stub_output, _reporter

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

    done = _reporter(name, quiet)

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
