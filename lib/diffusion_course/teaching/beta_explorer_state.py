"""Chapter 2's beta_t explorer, its numbers: what the explorer shows for a setting of its controls, as a pure function.

:func:`beta_explorer_state` takes the control values (schedule kind, T, beta_1, beta_T, t, the comparison) and returns
a :class:`BetaExplorerState`: the schedule's curves, the read-out at t, the data noised to t, the notes and, for an
invalid schedule, the error text. No widgets, no figure: the tests check it against independent formulas, and the
explorer (``teaching.beta_explorer``) only draws it (``teaching.beta_explorer_figure``).
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass

import numpy as np
import torch

from .._internal.validate import check_choice, check_positive_int
from ..maths.forward import q_sample
from ..maths.schedules import SCHEDULE_KINDS, NoiseSchedule, make_betas

__all__ = ["beta_explorer_state", "BetaExplorerState", "ScheduleAtT", "T_RANGE", "BETA_RANGE", "COMPARE_CHOICES"]

T_RANGE = (10, 2000)  # the T slider's range
BETA_RANGE = (1e-6, 1.0)  # the beta_1 / beta_T sliders' range (log scale); beta = 1 is allowed on the slider but
# rejected by the schedule (beta must lie in the open interval (0, 1)), which the explorer reports in words

_COSINE_NOTE = (
    "cosine: alpha_bar(t) = cos^2(((t/T + s)/(1 + s)) pi/2) with s = 0.008, beta clipped at 0.999 "
    "(Nichol & Dhariwal 2021); it ignores the beta_1 and beta_T sliders."
)
COMPARE_CHOICES = ("none", *SCHEDULE_KINDS)  # the "compare with" dropdown
WEAK_ALPHA_BAR_T = 1e-2  # above this alpha_bar_T the explorer warns that x_T is not close to N(0, I)


def _snr_db(snr: float) -> str:
    return "-inf dB" if snr <= 0 else f"{10 * math.log10(snr):+.1f} dB"


@dataclass(frozen=True)
class ScheduleAtT:
    """One schedule as the explorer shows it: its curves over t = 0 .. T-1 (float64, shape (T,)) and its numbers at t."""

    kind: str
    schedule: NoiseSchedule  # the lib's schedule (float32), used for the noised data
    beta: np.ndarray
    alpha_bar: np.ndarray  # cumprod(1 - beta) in float64
    snr: np.ndarray  # alpha_bar / (1 - alpha_bar)
    t: int
    beta_t: float
    alpha_bar_t: float
    sqrt_alpha_bar_t: float  # the signal coefficient of q(x_t | x_0)
    sqrt_one_minus_alpha_bar_t: float  # the noise coefficient (standard deviation)
    snr_t: float
    snr_below_1_from: int | None  # the first t with SNR < 1 (None if SNR stays >= 1)
    points: np.ndarray  # (N, 2): the swiss roll noised to t with q_sample
    images: np.ndarray  # (n, 1, 8, 8): the digits noised to t with q_sample


@dataclass(frozen=True)
class BetaExplorerState:
    """Everything the beta_t explorer shows, computed without any widget or figure by :func:`beta_explorer_state`."""

    kind: str
    T: int
    beta_1: float
    beta_T: float
    t: int
    compare_kind: str | None
    main: ScheduleAtT | None  # None when the controls describe no valid schedule
    compare: ScheduleAtT | None  # None unless a comparison is asked for (and valid)
    notes: tuple[str, ...]  # plain-text notes (cosine ignores the sliders, decreasing betas, x_T far from noise)
    error: str | None  # plain-text reason why no schedule could be built, else None

    @property
    def rows(self) -> tuple[ScheduleAtT, ...]:
        return tuple(r for r in (self.main, self.compare) if r is not None)


def _schedule_at_t(kind: str, betas: torch.Tensor, t: int, points0, points_eps, images0, images_eps) -> ScheduleAtT:
    schedule = NoiseSchedule.from_betas(betas)
    beta = betas.double().numpy()
    alpha_bar = np.cumprod(1.0 - beta)
    snr = alpha_bar / (1.0 - alpha_bar)
    below = np.nonzero(snr < 1)[0]
    a = float(alpha_bar[t])

    def noised(x0: torch.Tensor | None, eps: torch.Tensor | None, shape: tuple[int, ...]) -> np.ndarray:
        if x0 is None:
            return np.zeros(shape, dtype=np.float32)
        return q_sample(schedule, x0, torch.full((x0.shape[0],), t, dtype=torch.long), eps=eps).numpy()

    return ScheduleAtT(
        kind=kind, schedule=schedule, beta=beta, alpha_bar=alpha_bar, snr=snr, t=t, beta_t=float(beta[t]), alpha_bar_t=a,
        sqrt_alpha_bar_t=math.sqrt(a), sqrt_one_minus_alpha_bar_t=math.sqrt(1.0 - a), snr_t=float(snr[t]),
        snr_below_1_from=int(below[0]) if below.size else None,
        points=noised(points0, points_eps, (0, 2)), images=noised(images0, images_eps, (0, 1, 8, 8)),
    )


def beta_explorer_state(
    kind: str,
    T: int,
    beta_1: float,
    beta_T: float,
    t: int,
    *,
    compare: str | None = None,
    points0: torch.Tensor | None = None,
    points_eps: torch.Tensor | None = None,
    images0: torch.Tensor | None = None,
    images_eps: torch.Tensor | None = None,
) -> BetaExplorerState:
    """What the beta_t explorer shows for these control values: the schedule's curves, the read-out at t (alpha_bar_t,
    sqrt(alpha_bar_t), sqrt(1 - alpha_bar_t), SNR), the swiss roll ``points0`` and digits ``images0`` noised to t with
    the fixed noises ``points_eps`` / ``images_eps`` (Ho et al. 2020, eq. 4), the notes and, if the betas are invalid
    (e.g. beta_T = 1), the error text instead of a schedule. ``compare`` ("linear", "cosine", ... or None / "none")
    adds a second schedule of the same T and betas. Pure: no widgets, no figure; the explorer only draws the result.
    """
    check_choice(kind, SCHEDULE_KINDS, "kind")
    compare = None if compare in (None, "none") else check_choice(compare, COMPARE_CHOICES, "compare")
    check_positive_int(T, "T", T_RANGE[0], T_RANGE[1])
    check_positive_int(t, "t", 0, T - 1)
    beta_1, beta_T = float(beta_1), float(beta_T)
    data = (points0, points_eps, images0, images_eps)
    rows: dict[str, ScheduleAtT] = {}
    for role, k in (("main", kind), ("compare", compare)):
        if k is None:
            continue
        try:
            betas = make_betas(k, T, beta_1, beta_T)
            rows[role] = _schedule_at_t(k, betas, t, *data)
        except ValueError as err:
            which = f"{k} (the comparison)" if role == "compare" else k
            return BetaExplorerState(kind, T, beta_1, beta_T, t, compare, None, None, (),
                                     f"Cannot build the {which} schedule: {err}")
    notes = []
    if "cosine" in (kind, compare):
        notes.append(_COSINE_NOTE)
    if beta_1 > beta_T and any(k != "cosine" for k in (kind, compare) if k):
        notes.append("beta_1 > beta_T: the noise per step decreases along the chain. Allowed, but unusual: the early "
                     "steps then destroy most of the signal.")
    for row in rows.values():
        ab_T = float(row.alpha_bar[-1])
        if ab_T > WEAK_ALPHA_BAR_T:
            notes.append(f"{row.kind}: alpha_bar_T = {ab_T:.3g}, so x_T still holds a visible part of x_0 and is not close "
                         "to N(0, I); sampling from pure noise will not match. Raise beta_T or T.")
    return BetaExplorerState(kind, T, beta_1, beta_T, t, compare, rows["main"], rows.get("compare"), tuple(notes), None)


def readout_html(state: BetaExplorerState, large: bool) -> str:
    """The read-out as a small table: one row per schedule; every value in its own cell, so nothing wraps mid-number.
    Numbers in monospace, headers in the page's (narrower) font: at 1280 x 720 with JupyterLab's file browser open the
    table fits the 844 px output area with room to spare (about 770 px; the full names sit in the headers' tooltips)."""
    size = "1.3em" if large else "0.95em"
    head = ("schedule", "t (paper t)", "alpha_bar_t", "sqrt(alpha_bar_t)", "sqrt(1-alpha_bar_t)", "SNR_t", "SNR<1 from t")
    tips = ("solid: the schedule; dashed: the comparison", "code index t (the paper's t + 1)", "alpha_bar_t = prod_s (1 - beta_s)",
            "the signal coefficient of q(x_t | x_0)", "the noise standard deviation of q(x_t | x_0)",
            "signal-to-noise ratio alpha_bar_t / (1 - alpha_bar_t), in dB in brackets", "the first t with SNR_t < 1")
    cell = "padding:1px 7px 1px 0; white-space:nowrap; text-align:left"
    rows = []
    for i, r in enumerate((state.main, state.compare)):
        if r is None:
            name = "(no schedule)" if i == 0 else ""
            values = [name] + [""] * (len(head) - 1) if (i == 0 or state.compare_kind) else [""] * len(head)
            if i == 1 and state.compare_kind and state.error:
                values[0] = f"{state.compare_kind} (dashed)"
        else:
            values = [
                r.kind + (" (dashed)" if i == 1 else ""), f"{r.t} ({r.t + 1})", f"{r.alpha_bar_t:.4g}", f"{r.sqrt_alpha_bar_t:.4g}",
                f"{r.sqrt_one_minus_alpha_bar_t:.4g}", f"{r.snr_t:.4g} ({_snr_db(r.snr_t)})",
                "never" if r.snr_below_1_from is None else str(r.snr_below_1_from),
            ]
        rows.append("<tr class='be-row'>" + "".join(f"<td style='{cell}'>{html.escape(v) or '&nbsp;'}</td>" for v in values) + "</tr>")
    header = "<tr>" + "".join(f"<th title='{html.escape(tip)}' style='{cell}; font-weight:600; font-family:var(--jp-ui-font-family, sans-serif)'>"
                              f"{html.escape(h)}</th>" for h, tip in zip(head, tips)) + "</tr>"
    return (f"<table class='beta-explorer-readout' style='font-family:monospace; font-size:{size}; line-height:1.35; border-collapse:collapse'>"
            f"{header}{''.join(rows)}</table>")


def message_html(state: BetaExplorerState) -> str:
    """The message under the read-out: the one error in red, else the notes one per line (empty when there are none)."""
    if state.error:
        return f"<div style='line-height:1.35'><b style='color:#b00'>{html.escape(state.error)}</b></div>"
    notes = "<br>".join(html.escape(n) for n in state.notes)
    return f"<div style='line-height:1.35'>{notes}</div>" if notes else ""
