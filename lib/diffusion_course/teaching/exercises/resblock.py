"""Chapter 5's exercise: the forward pass of a time-conditioned residual block (Ho et al. 2020, Appendix B).

The learner completes ``forward(x, temb)`` of a block class built like :class:`~diffusion_course.models.unet.ResBlock`
with ``time_conditioning="add"``: attributes ``norm1, conv1, time_proj, norm2, dropout, conv2, skip, act`` and::

    h = conv1(act(norm1(x)))                          # (B, out_ch, H, W)
    h = h + time_proj(act(temb))[:, :, None, None]    # one offset per channel, the same at every pixel
    h = conv2(dropout(act(norm2(h))))
    return skip(x) + h                                # skip is a 1x1 conv when in_ch != out_ch, else the identity

The checker builds the learner's block and the lib's ``ResBlock`` with the same sizes, loads the lib block's (random)
weights into the learner's, compares the outputs, and when they differ recomputes the block from the same weights with
the known mistakes (time embedding not broadcast over H and W, skip missing, norm and activation in the wrong order,
time added after the norm, the 1x1 projection of the skip missing, ...) and names the one that matches.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ...models.unet import ResBlock
from ._diagnosis import _learner_line
from ._engine import CheckResult, _is_stub_output, _reporter

NAME = "resblock"
SIGNATURE = "MyResBlock(in_ch, out_ch, temb_dim, groups=8, dropout=0.0) with forward(x, temb) -> (B, out_ch, H, W)"


def _cases() -> list[dict]:
    return [
        {"label": "16 -> 32 channels (the skip needs a 1x1 conv), x (2, 16, 6, 5), temb (2, 24)",
         "in_ch": 16, "out_ch": 32, "temb_dim": 24, "x": (2, 16, 6, 5)},
        {"label": "16 -> 16 channels (the skip is the identity), x (3, 16, 4, 7), temb (3, 24)",
         "in_ch": 16, "out_ch": 16, "temb_dim": 24, "x": (3, 16, 4, 7)},
    ]


def _variants(r: ResBlock, x: torch.Tensor, temb: torch.Tensor) -> list[tuple[str, str, Callable[[], torch.Tensor]]]:
    """(key, explanation, thunk computing the block with that mistake) from the reference block's own layers."""
    act = F.silu

    def proj(with_act: bool = True) -> torch.Tensor:
        return r.time_proj(act(temb) if with_act else temb)[:, :, None, None]

    def tail(h: torch.Tensor) -> torch.Tensor:
        return r.conv2(act(r.norm2(h)))

    h1 = lambda: r.conv1(act(r.norm1(x)))  # noqa: E731 - the first half, right
    return [
        ("no_skip", "the skip path is missing: the block returns only the residual branch. Return skip(x) + h, so that "
         "the block starts near the identity and gradients reach early layers directly.", lambda: tail(h1() + proj())),
        ("skip_without_projection", "x is added directly where its width differs from the output's: when in_ch != out_ch, "
         "send x through self.skip (a 1x1 conv) first.", lambda: x + tail(h1() + proj())),
        ("no_time", "the time embedding is not used: add time_proj(act(temb)), reshaped to (B, C, 1, 1), to h.",
         lambda: r.skip(x) + tail(h1())),
        ("time_without_act", "time_proj is applied to temb itself; the reference applies SiLU first: "
         "time_proj(act(temb)).", lambda: r.skip(x) + tail(h1() + proj(False))),
        ("time_after_norm", "the time embedding is added after the second GroupNorm; with additive conditioning it is added "
         "before it: norm2(h + time).", lambda: r.skip(x) + r.conv2(act(r.norm2(h1()) + proj()))),
        ("time_before_conv1", "the time embedding is added before conv1 (to the block's input); it belongs after conv1, "
         "where h has out_ch channels.", lambda: r.skip(x) + tail(r.conv1(act(r.norm1(x + proj()))))),
        ("norm_act_order", "SiLU before GroupNorm: the order is norm, then activation, then conv (pre-activation).",
         lambda: r.skip(x) + r.conv2(r.norm2(act(r.conv1(r.norm1(act(x))) + proj())))),
        ("norm_act_order", "SiLU before GroupNorm in the first half: conv1(act(norm1(x))), norm first.",
         lambda: r.skip(x) + tail(r.conv1(r.norm1(act(x))) + proj())),
        ("norm_act_order", "SiLU before GroupNorm in the second half: conv2(act(norm2(h))), norm first.",
         lambda: r.skip(x) + r.conv2(r.norm2(act(h1() + proj())))),
        ("conv_first", "conv before norm and activation (the post-activation order of the original ResNet); this block "
         "normalises and activates first: conv1(act(norm1(x))).",
         lambda: r.skip(x) + r.conv2(act(r.norm2(act(r.norm1(r.conv1(x))) + proj())))),
        ("missing_act", "an activation is missing: SiLU comes after each GroupNorm, before each conv.",
         lambda: r.skip(x) + r.conv2(r.norm2(h1() + proj()))),
        ("missing_act", "an activation is missing: SiLU comes after each GroupNorm, before each conv.",
         lambda: r.skip(x) + tail(r.conv1(r.norm1(x)) + proj())),
        ("missing_norm", "a GroupNorm is missing: norm1 before the first SiLU and conv, norm2 before the second.",
         lambda: r.skip(x) + r.conv2(act(h1() + proj()))),
        ("missing_norm", "a GroupNorm is missing: norm1 before the first SiLU and conv, norm2 before the second.",
         lambda: r.skip(x) + tail(r.conv1(act(x)) + proj())),
    ]


def _random_reference(case: dict, seed: int) -> ResBlock:
    torch.manual_seed(seed)
    r = ResBlock(case["in_ch"], case["out_ch"], case["temb_dim"], groups=8, dropout=0.0, time_conditioning="add").eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in r.parameters():  # conv2 starts at zero; random weights make every term count
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return r


def _build(block_cls: Callable, case: dict, r: ResBlock, where: str, n: int,
           done: Callable[..., CheckResult]) -> tuple[nn.Module | None, CheckResult | None]:
    """The learner's block with the reference block's weights loaded, or the report of why it could not be built."""
    try:
        mine = block_cls(case["in_ch"], case["out_ch"], case["temb_dim"], groups=8, dropout=0.0)
    except NotImplementedError:
        return None, done("not written yet", f"{NAME}: not written yet. Replace the `raise NotImplementedError` with your code, "
                                             "then run this cell again.")
    except Exception as err:  # noqa: BLE001
        return None, done("error", f"{NAME}: building your block raised {type(err).__name__}: {err}{_learner_line(err)}\n"
                                   f"  on {where}. Keep the signature {SIGNATURE}.", ("error",), n)
    if not isinstance(mine, nn.Module):
        return None, done("error", f"{NAME}: {block_cls!r} did not build an nn.Module.", ("not_a_module",), n)
    try:
        mine.load_state_dict(r.state_dict())
    except RuntimeError as err:
        return None, done("error", f"{NAME}: the lib block's weights do not fit your block (keep the layers and names of the "
                                   f"given __init__): {str(err).splitlines()[0]} ...", ("state_dict",), n)
    mine.eval()
    return mine, None


def _forward_raised(err: Exception, case: dict, r: ResBlock, x: torch.Tensor, where: str, n: int,
                    done: Callable[..., CheckResult]) -> CheckResult:
    """The report of a forward pass that raised: a skip or a time embedding that does not fit, or a layer order."""
    text = f"{type(err).__name__}: {err}"
    lines = [f"{NAME}: your forward raised {text}{_learner_line(err)}", f"  on {where}."]
    keys: tuple[str, ...] = ("error",)
    if "size of tensor" in text or "broadcast" in text or "must match" in text:
        try:
            x + r.conv2(F.silu(r.norm2(r.conv1(F.silu(r.norm1(x))))))
            skip_fails = False
        except RuntimeError:
            skip_fails = True
        if skip_fails and f"({case['in_ch']})" in text and f"({case['out_ch']})" in text:
            lines.append(f"  x has {case['in_ch']} channels and h has {case['out_ch']}: when the width changes, "
                         "the skip path is a 1x1 conv, self.skip(x), not x itself.")
            keys = ("skip_without_projection", "error")
        else:
            lines.append("  time_proj(act(temb)) has shape (B, C); to add it to h of shape (B, C, H, W) it must "
                         "be broadcast over H and W: reshape it to (B, C, 1, 1), e.g. [:, :, None, None].")
            keys = ("temb_not_broadcast", "error")
    elif "expected input" in text and "channels" in text:
        lines.append("  A layer got the wrong number of channels: norm1 and conv1 take x (in_ch channels), "
                     "norm2 and conv2 take h (out_ch channels); the time is added after conv1.")
        keys = ("layer_order", "error")
    return done("error", "\n".join(lines), keys, n)


def _mismatch(r: ResBlock, x: torch.Tensor, temb: torch.Tensor, out: torch.Tensor, want: torch.Tensor, where: str, n: int,
              done: Callable[..., CheckResult]) -> CheckResult:
    """The report of an output that differs from the lib block's: the first difference and the known mistake it matches."""
    idx = tuple(int(i) for i in torch.nonzero(~((out - want).abs() <= 1e-4 * (1 + want.abs())))[0])
    lines = [f"{NAME}: not right yet.", f"  First difference: {where}, element {list(idx)}: expected "
                                        f"{float(want[idx]):.6g}, got {float(out[idx]):.6g}."]
    with torch.no_grad():
        for key, text, thunk in _variants(r, x, temb):
            try:
                value = thunk()
            except RuntimeError:
                continue
            if value is not None and value.shape == out.shape and bool(((out - value).abs() <= 1e-4 * (1 + value.abs())).all()):
                lines.append(f"  It looks like: {text}")
                return done("wrong", "\n".join(lines), (key,), n)
    lines.append("  It matches none of the usual mistakes; compare with h = conv1(act(norm1(x))); h = h + time; "
                 "h = conv2(dropout(act(norm2(h)))); return skip(x) + h.")
    return done("wrong", "\n".join(lines), (), n)


def check_resblock(block_cls: Callable, *, quiet: bool = False) -> CheckResult:
    """Check a residual block class ``block_cls(in_ch, out_ch, temb_dim, groups=8, dropout=0.0)`` whose forward(x, temb)
    should equal :class:`~diffusion_course.models.unet.ResBlock` with ``time_conditioning="add"`` on the same weights;
    print the report and return it."""

    done = _reporter(NAME, quiet)

    if not callable(block_cls):
        return done("error", f"{NAME}: expected a class {SIGNATURE}; got {type(block_cls).__name__}.", ("not_callable",))
    cases = _cases()
    for n, case in enumerate(cases, 1):
        where = f"case {n} ({case['label']})"
        r = _random_reference(case, 50 + n)
        mine, verdict = _build(block_cls, case, r, where, n, done)
        if verdict is not None:
            return verdict
        g = torch.Generator().manual_seed(60 + n)
        x, temb = torch.randn(case["x"], generator=g), torch.randn(case["x"][0], case["temb_dim"], generator=g)
        with torch.no_grad():
            want = r(x, temb)
            try:
                out = mine(x.clone(), temb.clone())
            except NotImplementedError:
                return done("not written yet", f"{NAME}: not written yet. Replace the `raise NotImplementedError` in forward "
                                               "with your code, then run this cell again.")
            except Exception as err:  # noqa: BLE001 - any learner error is reported in words
                return _forward_raised(err, case, r, x, where, n, done)
        if _is_stub_output(out):
            return done("not written yet", f"{NAME}: not written yet (forward returned {out!r}). End forward with `return`.")
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != tuple(want.shape):
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            lines = [f"{NAME}: expected an output of shape {tuple(want.shape)}; got {got} on {where}."]
            key = "shape"
            if isinstance(out, torch.Tensor) and out.ndim == 4 and out.shape[-1] == case["out_ch"]:
                lines.append("  The time embedding was broadcast along the wrong axis: reshape time_proj(act(temb)) to "
                             "(B, C, 1, 1) so that it adds one number per channel, the same at every pixel.")
                key = "temb_not_broadcast"
            return done("wrong", "\n".join(lines), (key,), n)
        if bool(((out - want).abs() <= 1e-4 * (1 + want.abs())).all()):
            continue
        return _mismatch(r, x, temb, out, want, where, n, done)
    return done("correct", f"{NAME}: correct. With the lib ResBlock's weights loaded, your block matched it on {len(cases)} "
                           "cases: " + "; ".join(c["label"] for c in cases) + ".", (), len(cases))
