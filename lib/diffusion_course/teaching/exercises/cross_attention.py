"""Chapter 15's exercise: the attention of a cross-attention layer (Vaswani et al. 2017, eq. 1, as Stable Diffusion's
U-Net uses it to read its text tokens; Rombach et al. 2022, section 3.3).

The learner writes ``fn(q, k, v) -> out`` with queries q (B, heads, N, d) from the N pixels of a feature map, keys
k and values v (B, heads, M, d) from the M context tokens, and returns softmax(q k^T / sqrt(d)) v of shape
(B, heads, N, d): each pixel's mix of the token values, weighted by how well its query matches each key.

The checker compares with ``torch.nn.functional.scaled_dot_product_attention`` on random inputs (one and several
heads, N != M so that axes cannot be confused silently) and, when the result differs, recomputes the known slips —
no 1/sqrt(d), 1/d for 1/sqrt(d), the softmax over the queries instead of the keys, no softmax, the keys used as
values — and names the one the learner's output matches."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from ._diagnosis import _learner_line
from ._engine import CheckResult, _is_stub_output, _reporter

NAME = "cross_attention"


def _cases() -> list[tuple[str, torch.Tensor, torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(15)
    out = []
    for label, (B, h, N, M, d) in (("one head: 49 pixels, 4 tokens, d = 8", (2, 1, 49, 4, 8)),
                                   ("two heads: 9 pixels, 6 tokens, d = 16", (3, 2, 9, 6, 16))):
        out.append((label, torch.randn(B, h, N, d, generator=g), torch.randn(B, h, M, d, generator=g) * 1.5,
                    torch.randn(B, h, M, d, generator=g)))
    return out


def _slips(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> list[tuple[str, str, torch.Tensor]]:
    d = q.shape[-1]
    s = q @ k.transpose(-1, -2)  # (B, h, N, M)
    return [
        ("no_scale", "the scores q k^T are not divided by sqrt(d): with d-dimensional queries and keys their spread grows like "
         "sqrt(d), and the softmax saturates (Vaswani et al. 2017, section 3.2.1).", torch.softmax(s, -1) @ v),
        ("scale_d", "the scores are divided by d; the scale is 1 / sqrt(d).", torch.softmax(s / d, -1) @ v),
        ("softmax_queries", "the softmax runs over the queries (dim=-2); it must run over the keys (dim=-1), so that each "
         "pixel's weights over the context tokens sum to 1.", torch.softmax(s / math.sqrt(d), -2) @ v),
        ("no_softmax", "the scores are used without a softmax: the weights must be positive and sum to 1 over the tokens.",
         (s / math.sqrt(d)) @ v),
        ("keys_as_values", "the keys are mixed where the values belong: softmax(q k^T / sqrt(d)) v.", torch.softmax(s / math.sqrt(d), -1) @ k),
    ]


def check_cross_attention(fn: Callable, *, quiet: bool = False) -> CheckResult:
    """Check ``fn(q, k, v) -> softmax(q k^T / sqrt(d)) v`` for q (B, heads, N, d) and k, v (B, heads, M, d) against
    torch's scaled_dot_product_attention on two cases; print the report and return it."""
    done = _reporter(NAME, quiet)
    if not callable(fn):
        return done("error", f"{NAME}: expected a function fn(q, k, v) -> out; got {type(fn).__name__}.", ("not_callable",))
    n = 0
    for label, q, k, v in _cases():
        n += 1
        originals = (q.clone(), k.clone(), v.clone())
        try:
            with torch.no_grad():
                out = fn(q, k, v)
        except NotImplementedError:
            return done("not written yet", f"{NAME}: not written yet. Replace the `raise NotImplementedError` with your code, then run "
                                           "this cell again.")
        except Exception as err:  # noqa: BLE001 - report any learner error in words
            hint = (" (k must be transposed on its last two axes: q @ k.transpose(-1, -2) has shape (B, heads, N, M))"
                    if isinstance(err, RuntimeError) else "")
            return done("error", f"{NAME}: your function raised {type(err).__name__}: {err}{_learner_line(err)}{hint}\n  on: {label}.",
                        ("error",), n)
        if _is_stub_output(out):
            return done("not written yet", f"{NAME}: not written yet (it returned {out!r}). End the function with `return out`.")
        want = F.scaled_dot_product_attention(q, k, v)
        if not isinstance(out, torch.Tensor) or out.shape != want.shape:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            return done("wrong", f"{NAME}: expected shape {tuple(want.shape)} (B, heads, N, d) on {label}; got {got}.", ("shape",), n)
        if not all(torch.equal(a, b) for a, b in zip((q, k, v), originals)):
            return done("wrong", f"{NAME}: your function changed q, k or v in place; compute new tensors instead.", ("in_place",), n)
        if not torch.allclose(out.float(), want, atol=1e-5, rtol=1e-4):
            err = float((out.float() - want).abs().max())
            lines = [f"{NAME}: not right yet.", f"  On {label}: the largest difference from softmax(q k^T / sqrt(d)) v is {err:.3g}."]
            found = [key for key, _, alt in _slips(q, k, v) if torch.allclose(out.float(), alt, atol=1e-5, rtol=1e-4)]
            for key, text, _ in _slips(q, k, v):
                if key in found:
                    lines.append(f"  Diagnosis: {text}")
            if not found:
                w = out.float().sum(-1)
                lines.append(f"  Hint: check the three steps in order (scores, softmax over the tokens, the mix of v); the rows of "
                             f"your output sum to {float(w.mean()):.3g} on average.")
            return done("wrong", "\n".join(lines), tuple(found), n)
    return done("correct", f"{NAME}: correct. It matched softmax(q k^T / sqrt(d)) v (torch's scaled_dot_product_attention) on "
                           f"{n} cases: one head with 49 pixels and 4 tokens, two heads with 9 pixels and 6 tokens.", (), n)
