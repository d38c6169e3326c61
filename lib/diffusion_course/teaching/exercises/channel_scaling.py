"""Chapter 10's exercise: per-channel scaling of RGB images to [-1, 1] and back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ._diagnosis import _learner_line
from ._engine import CheckResult, _is_stub_output, _reporter

# The learner's fn(x, lo, hi) maps RGB images (N, 3, H, W) in pixel units to [-1, 1] channel by channel, with lo and hi
# of shape (3,) the per-channel range of the training data; the inverse fn(y, lo, hi) maps back to pixel units.
# Probes use channel ranges that differ a lot (so global and per-channel scaling disagree), an image width of 3 (so a
# (3,) range broadcast against the last axis silently gives wrong numbers instead of an error), and a batch that does
# not span the range (so statistics taken from the batch instead of lo and hi show).


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
    (y = 2 (x - lo_c) / (hi_c - lo_c) - 1), against :func:`~diffusion_course.data.photos.scale_per_channel`; with
    ``unscale_fn(y, lo, hi) -> x`` also its inverse and the round trip. Prints the report and returns it."""
    cases = _cs_cases()
    name = "channel_scaling"

    done = _reporter(name, quiet)

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
