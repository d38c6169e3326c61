"""The course's explorers: the beta_t explorer (chapter 2), the DDIM explorer (chapter 8) and the guidance explorer
(chapter 11). The beta_t explorer: sliders for a noise schedule and live plots of what it does to data.

The numbers it shows come from one pure function, :func:`beta_explorer_state` (no widgets, no figure), which the tests
check against independent formulas. The view draws that state into one matplotlib figure in one ``ipywidgets.Output``:
every change of a control updates the artists of that same figure in place and replaces the Output's single PNG, so
nothing stacks up and nothing flickers; moving t redraws only the t-dependent artists over a cached background. It
runs without a browser too: set ``explorer.kind.value = "cosine"`` or ``explorer.t.value = 500`` from Python and read
``explorer.state`` or the plotted numbers (:meth:`BetaExplorer.plotted`).

    from diffusion_course.widgets import beta_explorer
    explorer = beta_explorer()              # builds and displays it; keep the name to drive it from code
    explorer = beta_explorer(large_fonts=True)   # for a projector
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import matplotlib
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

from .._internal.validate import check_choice, check_positive_int
from ..data.sets import digits, swiss_roll
from ..maths.forward import q_sample
from ..maths.schedules import SCHEDULE_KINDS, NoiseSchedule, make_betas
from .viz import image_grid

__all__ = ["BetaExplorer", "beta_explorer", "beta_explorer_state", "BetaExplorerState", "ScheduleAtT", "T_RANGE", "BETA_RANGE", "COMPARE_CHOICES"]

T_RANGE = (10, 2000)  # the T slider's range
BETA_RANGE = (1e-6, 1.0)  # the beta_1 / beta_T sliders' range (log scale); beta = 1 is allowed on the slider but
# rejected by the schedule (beta must lie in the open interval (0, 1)), which the explorer reports in words

_COSINE_NOTE = (
    "cosine: alpha_bar(t) = cos^2(((t/T + s)/(1 + s)) pi/2) with s = 0.008, beta clipped at 0.999 "
    "(Nichol & Dhariwal 2021); it ignores the beta_1 and beta_T sliders."
)
COMPARE_CHOICES = ("none", *SCHEDULE_KINDS)  # the "compare with" dropdown
WEAK_ALPHA_BAR_T = 1e-2  # above this alpha_bar_T the explorer warns that x_T is not close to N(0, I)


BETA_YLIM = (3e-7, 2.0)  # the explorer's fixed y ranges: every beta the sliders allow (log scale) ...
SNR_YLIM = (1e-10, 1e7)  # ... and SNR from 10^-10 (x_T is noise) to 10^7 (x_1 is data); curves beyond are clipped


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


def _readout_html(state: BetaExplorerState, large: bool) -> str:
    """The read-out as a small table: one row per schedule; every value in its own cell, so nothing wraps mid-number."""
    size = "1.3em" if large else "0.95em"
    head = ("schedule", "t (paper t)", "alpha_bar_t", "sqrt(alpha_bar_t)", "sqrt(1 - alpha_bar_t)", "SNR_t", "SNR < 1 from t")
    cell = "padding:1px 10px 1px 0; white-space:nowrap; text-align:left"
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
    header = "<tr>" + "".join(f"<th style='{cell}; font-weight:600'>{h}</th>" for h in head) + "</tr>"
    return (f"<table class='beta-explorer-readout' style='font-family:monospace; font-size:{size}; line-height:1.35; border-collapse:collapse'>"
            f"{header}{''.join(rows)}</table>")


class BetaExplorer:
    """Interactive view of a beta schedule: beta_t, alpha_bar_t and SNR curves with a marker at t, and the swiss roll
    and four 8x8 digits noised to t with :func:`~diffusion_course.forward.q_sample` (Ho et al. 2020, eq. 4). A second
    schedule can be overlaid (dashed) with the ``compare`` dropdown.

    Controls (ipywidgets, public attributes): ``kind``, ``compare``, ``beta_1``, ``beta_T``, ``T``, ``t``. Read-outs:
    ``readout`` (a table: alpha_bar_t, sqrt(alpha_bar_t), sqrt(1 - alpha_bar_t), SNR at t per schedule), ``message``
    (notes and the one error message), ``out`` (the one Output holding the figure), ``figure`` (the one matplotlib
    Figure), ``schedule`` (the current NoiseSchedule, or None while the controls describe an invalid schedule),
    ``state`` (the last :class:`BetaExplorerState`), ``widget`` (the whole box, to display).

    The numbers come from :func:`beta_explorer_state`; this class only draws them. Moving t redraws only what depends
    on t (markers, points, digits) over a cached background, so it costs a few tens of milliseconds; a schedule change
    redraws the whole figure. The noise is drawn once (seeded), so moving t moves the points smoothly.
    """

    def __init__(
        self,
        *,
        kind: str = "linear",
        T: int = 1000,
        beta_1: float = 1e-4,
        beta_T: float = 0.02,
        t: int | None = None,
        compare: str | None = None,
        n_points: int = 1000,
        seed: int = 0,
        large_fonts: bool = False,
        continuous_t: bool = True,
        dpi: int = 80,
    ) -> None:
        import ipywidgets as w

        check_choice(kind, SCHEDULE_KINDS, "kind")
        compare = "none" if compare is None else check_choice(compare, COMPARE_CHOICES, "compare")
        check_positive_int(T, "T", T_RANGE[0], T_RANGE[1])
        check_positive_int(n_points, "n_points", 1)
        check_positive_int(dpi, "dpi", 20, 300)
        t = T // 4 if t is None else t
        check_positive_int(t, "t", 0, T - 1)

        self.large_fonts = large_fonts
        self.font_size = 15 if large_fonts else 9
        self.dpi = dpi
        self.n_draws = 0  # how many times the figure was redrawn (tests and curiosity)
        self.n_full_draws = 0  # of which full redraws (schedule changes); the rest only redrew what depends on t
        self.schedule: NoiseSchedule | None = None
        self.state: BetaExplorerState | None = None
        self._hold = 0  # > 0 while several controls change together: redraw once at the end
        self._drawn_key: tuple | None = None  # the schedule settings the cached background shows
        self._png_bytes: bytes | None = None

        # Fixed data and fixed noise: moving t only changes the mixing coefficients.
        g = torch.Generator().manual_seed(seed)
        self.points0 = swiss_roll(n_points, seed=seed)  # (N, 2)
        self.points_eps = torch.randn(self.points0.shape, generator=g)
        images, labels = digits()
        idx = [int(torch.nonzero(labels == d)[0]) for d in (0, 3, 5, 8)]
        self.images0 = images[idx]  # (4, 1, 8, 8) in [-1, 1]
        self.images_eps = torch.randn(self.images0.shape, generator=g)

        desc = {"description_width": "initial"}
        half = lambda: w.Layout(width="440px", max_width="100%")  # noqa: E731
        self.kind = w.Dropdown(options=list(SCHEDULE_KINDS), value=kind, description="schedule", style=desc,
                               layout=w.Layout(width="200px"))
        self.compare = w.Dropdown(options=list(COMPARE_CHOICES), value=compare, description="compare with (dashed)", style=desc,
                                  layout=w.Layout(width="250px"))
        self.T = w.IntSlider(value=T, min=T_RANGE[0], max=T_RANGE[1], step=10, description="T (steps)",
                             continuous_update=False, style=desc, layout=half())
        exp_lo, exp_hi = math.log10(BETA_RANGE[0]), math.log10(BETA_RANGE[1])
        self.beta_1 = w.FloatLogSlider(value=beta_1, base=10, min=exp_lo, max=exp_hi, step=0.05, readout_format=".3e",
                                       description="beta_1 (first step)", continuous_update=False, style=desc, layout=half())
        self.beta_T = w.FloatLogSlider(value=beta_T, base=10, min=exp_lo, max=exp_hi, step=0.05, readout_format=".3e",
                                       description="beta_T (last step)", continuous_update=False, style=desc, layout=half())
        # The t slider takes the width it is given (never more than 900 px), so its number stays on screen.
        self.t = w.IntSlider(value=t, min=0, max=T - 1, description="t (code index; paper t+1)",
                             continuous_update=continuous_t, style=desc, layout=w.Layout(width="100%", max_width="900px"))
        # Fixed heights: notes and read-out rows coming and going never move the figure.
        # (ipywidgets gives HTML a 28 px line height; the content sets its own, so these heights hold three rows / lines)
        self.message = w.HTML(layout=w.Layout(height="6.4em" if large_fonts else "4.4em", overflow="auto"))
        self.readout = w.HTML(layout=w.Layout(height="6.4em" if large_fonts else "4.6em", overflow="auto"))
        self.out = w.Output()
        wrap = lambda: w.Layout(flex_flow="row wrap", width="100%")  # noqa: E731
        self.widget = w.VBox([w.HBox([self.kind, self.compare, self.T], layout=wrap()), w.HBox([self.beta_1, self.beta_T], layout=wrap()),
                              self.t, self.readout, self.message, self.out], layout=w.Layout(width="100%"))
        self.widget.add_class("beta-explorer")  # a stable hook for the browser test and for custom CSS

        self._build_figure()
        for control in (self.kind, self.compare, self.beta_1, self.beta_T):
            control.observe(self._on_schedule_change, names="value")
        self.T.observe(self._on_T_change, names="value")
        self.t.observe(self._on_t_change, names="value")
        self._on_schedule_change()

    # ----------------------------------------------------------------- figure
    @contextmanager
    def _fonts(self) -> Iterator[None]:
        size = self.font_size
        with matplotlib.rc_context({"font.size": size, "axes.titlesize": size, "axes.labelsize": size,
                                    "xtick.labelsize": size - 1, "ytick.labelsize": size - 1, "legend.fontsize": size - 1}):
            yield

    def _build_figure(self) -> None:
        """Create the one Figure (not through pyplot, so no backend shows or keeps it) and every artist once.

        Artists that depend on t are "animated": a full draw leaves them out, the result is kept as the background, and
        a change of t restores that background and draws only them."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.lines import Line2D
        from matplotlib.patches import Rectangle
        from matplotlib.transforms import Bbox, TransformedBbox

        scale = 1.45 if self.large_fonts else 1.0
        with self._fonts():
            self.figure = fig = Figure(figsize=(10.5 * scale, 6.0 * scale), dpi=self.dpi)
            self._canvas = FigureCanvasAgg(fig)
            grid = fig.add_gridspec(2, 6, left=0.07, right=0.985, bottom=0.085, top=0.80, wspace=1.2, hspace=0.56)
            ax_beta = fig.add_subplot(grid[0, 0:2])
            ax_ab = fig.add_subplot(grid[0, 2:4])
            ax_snr = fig.add_subplot(grid[0, 4:6])
            ax_pts = fig.add_subplot(grid[1, 0:3])
            ax_img = fig.add_subplot(grid[1, 3:6])
            self.axes = {"beta": ax_beta, "alpha_bar": ax_ab, "snr": ax_snr, "points": ax_pts, "images": ax_img}
            self._dynamic: list = []

            def dyn(artist):
                artist.set_animated(True)
                self._dynamic.append(artist)
                return artist

            self._curves: dict[str, dict[str, Line2D]] = {}
            self._dots: dict[str, dict[str, Line2D]] = {}
            for role, ls in (("main", "-"), ("compare", "--")):
                self._curves[role] = {  # drawn over the cached frame after a schedule change (set_animated below)
                    "beta": ax_beta.plot([], [], lw=1.6, ls=ls, color="C0")[0],
                    "alpha_bar": ax_ab.plot([], [], lw=1.6, ls=ls, color="C0")[0],
                    "sqrt_alpha_bar": ax_ab.plot([], [], lw=1.0, ls=ls, color="C1")[0],
                    "sqrt_one_minus": ax_ab.plot([], [], lw=1.0, ls=ls, color="C2")[0],
                    "snr": ax_snr.plot([], [], lw=1.6, ls=ls, color="C0")[0],
                }
                marker = "o" if role == "main" else "D"
                self._dots[role] = {name: dyn(ax.plot([], [], marker, color="C3", ms=6, mfc="C3" if role == "main" else "none")[0])
                                    for name, ax in (("beta", ax_beta), ("alpha_bar", ax_ab), ("snr", ax_snr))}
            self._curve_artists = [line for c in self._curves.values() for line in c.values()]
            for line in self._curve_artists:
                line.set_animated(True)
            self._vlines = [dyn(ax.axvline(0, color="C3", lw=0.8, ls=":")) for ax in (ax_beta, ax_ab, ax_snr)]
            self._beta_line = self._curves["main"]["beta"]  # (names kept for plotted())
            self._ab_line, self._snr_line = self._curves["main"]["alpha_bar"], self._curves["main"]["snr"]
            self._beta_dot, self._ab_dot, self._snr_dot = (self._dots["main"][k] for k in ("beta", "alpha_bar", "snr"))

            # Fixed y ranges (log scales for beta and SNR): schedules compare at a glance, and a schedule change redraws
            # only the curves, never the axes.
            ax_beta.set_yscale("log")
            ax_beta.set_ylim(*BETA_YLIM)
            ax_beta.set_title("beta_t: noise variance added at step t")
            ax_beta.set_xlabel("timestep t")
            ax_beta.set_ylabel("beta_t (log scale)")
            ax_ab.set_ylim(-0.03, 1.03)
            ax_ab.set_title("alpha_bar_t and the coefficients")
            ax_ab.set_xlabel("timestep t")
            ax_ab.set_ylabel("coefficient")
            ax_snr.axhline(1.0, color="0.5", lw=0.8, ls="-.")
            ax_snr.set_yscale("log")
            ax_snr.set_ylim(*SNR_YLIM)
            for ax, n in ((ax_beta, 5), (ax_snr, 7)):
                ax.yaxis.set_major_locator(LogLocator(numticks=n))
                ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: "1" if v == 1 else f"1e{round(math.log10(v))}"))
                ax.yaxis.set_minor_locator(NullLocator())
            ax_snr.set_title("SNR_t = alpha_bar_t / (1 - alpha_bar_t)")
            ax_snr.set_xlabel("timestep t")
            ax_snr.set_ylabel("SNR (log scale; dash-dot: SNR = 1)")
            # One legend for the three curve panels, above them: it never covers a curve.
            self._legend_handles = {
                "main": Line2D([], [], color="C0", lw=1.6, ls="-"),
                "compare": Line2D([], [], color="C0", lw=1.6, ls="--"),
                "sqrt_ab": Line2D([], [], color="C1", lw=1.0),
                "sqrt_1mab": Line2D([], [], color="C2", lw=1.0),
                "t": Line2D([], [], color="C3", marker="o", ls=":", lw=0.8, ms=6),
            }
            self._legend = None

            p0 = self.points0.numpy()
            ax_pts.scatter(p0[:, 0], p0[:, 1], s=2, color="0.8", label="x_0 (clean)")
            self._points = dyn(ax_pts.scatter(p0[:, 0], p0[:, 1], s=3, color="C0", alpha=0.6, label="x_t"))
            self._points_cmp = dyn(ax_pts.scatter(p0[:0, 0], p0[:0, 1], s=3, color="C1", alpha=0.5, label="x_t (comparison)"))
            ax_pts.set_xlim(-3.5, 3.5)
            ax_pts.set_ylim(-3.5, 3.5)
            ax_pts.set_aspect("equal")
            ax_pts.set_anchor("W")  # the free space of the equal-aspect box goes to the right, where the legend sits
            ax_pts.set_title("swiss roll noised to t")
            ax_pts.set_xlabel("x1")
            ax_pts.set_ylabel("x2")

            self._image = dyn(ax_img.imshow(np.ones((9, 33)), cmap="gray", vmin=0, vmax=1, interpolation="nearest"))
            ax_img.set_xticks([])
            for spine in ax_img.spines.values():
                spine.set_visible(False)
            ax_img.set_title("8x8 digits noised to t (clipped to [-1, 1])")
            self._t_text = dyn(fig.text(0.985, 0.01, "", ha="right", va="bottom"))
            # Fixed title and axis-label positions: matplotlib then skips measuring every tick label on each redraw.
            for ax in self.axes.values():
                ax.title.set_y(1.03)
                ax._autotitlepos = False
                ax.xaxis.set_label_coords(0.5, -0.2 if ax is not ax_img else -0.05)
            for ax in (ax_beta, ax_ab, ax_snr, ax_pts):
                ax.yaxis.set_label_coords(-0.2, 0.5)
            ax_img.yaxis.set_label_coords(-0.02, 0.5)
            # Three regions redrawn separately: the header (title, legend), the curve panels, the data panels.
            bands = {"header": (0.87, 1.0), "curves": (0.43, 0.87), "data": (0.0, 0.43)}
            self._regions = {}
            for name, (lo, hi) in bands.items():
                eraser = Rectangle((0, lo), 1, hi - lo, transform=fig.transFigure, facecolor="white", edgecolor="none")
                eraser.set_figure(fig)
                self._regions[name] = (eraser, TransformedBbox(Bbox([[0, lo], [1, hi]]), fig.transFigure))
            self._background = None
            self._frame = None  # everything but the curves and the t-dependent artists
            self._region_keys: dict[str, tuple] = {}
            # The pixels of each region for its last few keys: going back to a schedule or a T seen before is a copy.
            self._region_cache: dict[str, OrderedDict] = {name: OrderedDict() for name in bands}

    def _region_artists(self, region: str) -> list:
        a = self.axes
        if region == "header":
            return [x for x in (self.figure._suptitle, self._legend) if x is not None]
        return [a["beta"], a["alpha_bar"], a["snr"]] if region == "curves" else [a["points"], a["images"]]

    def _layout_for(self, state: BetaExplorerState) -> None:
        """Everything that depends on the schedule settings but not on t: curves, limits, titles, legends."""
        T = state.T
        steps = np.arange(T)
        for role in ("main", "compare"):
            r = getattr(state, role)
            c = self._curves[role]
            if r is None:
                for line in c.values():
                    line.set_data([], [])
                continue
            c["beta"].set_data(steps, r.beta)
            c["alpha_bar"].set_data(steps, r.alpha_bar)
            c["sqrt_alpha_bar"].set_data(steps, np.sqrt(r.alpha_bar))
            c["sqrt_one_minus"].set_data(steps, np.sqrt(1 - r.alpha_bar))
            c["snr"].set_data(steps, r.snr)
        for ax in (self.axes["beta"], self.axes["alpha_bar"], self.axes["snr"]):
            ax.set_xlim(-0.02 * T, 1.02 * T)
        rows = state.rows
        h = self._legend_handles
        names = {"main": state.kind, "compare": state.compare_kind}
        handles, labels = [h["main"]], [f"{names['main']}: beta_t, alpha_bar_t, SNR_t"]  # the header: redrawn only when these change
        if state.compare_kind:
            handles.append(h["compare"])
            labels.append(f"{names['compare']} (dashed)")
        handles += [h["sqrt_ab"], h["sqrt_1mab"], h["t"]]
        labels += ["sqrt(alpha_bar_t): signal coefficient", "sqrt(1 - alpha_bar_t): noise std", "t"]
        if self._legend is not None:
            self._legend.remove()
        self._legend = self.figure.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.935), ncol=len(handles),
                                          frameon=False, handlelength=2.2, columnspacing=1.4)
        ax_pts = self.axes["points"]
        if ax_pts.get_legend() is not None:
            ax_pts.get_legend().remove()
        pts_handles = ax_pts.collections[:2] + ([self._points_cmp] if state.compare else [])
        ax_pts.legend(pts_handles, ["x_0 (clean)", "x_t (solid schedule)"] + (["x_t (dashed schedule)"] if state.compare else []),
                      loc="upper left", bbox_to_anchor=(1.02, 1.0), markerscale=3, frameon=False, borderaxespad=0)
        if state.error:
            title = f"No {state.kind} schedule for these settings: see the message above"
        else:
            title = f"beta_t explorer: the {state.kind} schedule" + (f" (solid) and the {state.compare_kind} schedule (dashed)" if state.compare_kind else "")
        self.figure.suptitle(title, y=0.99)
        n_rows = 1 + len(rows)
        ax_img = self.axes["images"]
        self._image.set_data(np.ones((n_rows * 9 + 1, 4 * 9 + 1)))
        self._image.set_extent((-0.5, 4 * 9 + 0.5, n_rows * 9 + 0.5, -0.5))
        ax_img.set_xlim(-0.5, 4 * 9 + 0.5)
        ax_img.set_ylim(n_rows * 9 + 0.5, -0.5)
        ax_img.set_yticks([5 + 9 * i for i in range(n_rows)], ["x_0", "x_t solid", "x_t dashed"][:n_rows])
        ax_img.tick_params(axis="y", length=0)

    def _update_dynamic(self, state: BetaExplorerState) -> None:
        """The artists that depend on t: markers, the t lines, the noised points and digits, the t label."""
        t = state.t
        for role in ("main", "compare"):
            r = getattr(state, role)
            for name, dot in self._dots[role].items():
                dot.set_data(([t], [getattr(r, name)[t]]) if r is not None else ([], []))
        for vline in self._vlines:
            vline.set_xdata([t, t])
            vline.set_visible(state.main is not None)
        self._points.set_offsets(state.main.points if state.main is not None else np.zeros((0, 2)))
        self._points_cmp.set_offsets(state.compare.points if state.compare is not None else np.zeros((0, 2)))
        rows = [torch.as_tensor(self.images0)] + [torch.as_tensor(r.images) for r in state.rows]
        self._image.set_data(image_grid(torch.cat(rows), nrow=4))
        self._t_text.set_text(f"t = {t} (paper t = {t + 1})" if state.main is not None else "")

    def _draw(self, state: BetaExplorerState, full: bool) -> None:
        canvas = self._canvas
        with self._fonts():  # titles and tick labels take their font size from rcParams when drawn
            renderer = canvas.get_renderer()
            if full:
                # The frame (axes, ticks, titles, legends) depends on these only; the curves are drawn over it.
                region_keys = {"header": (state.kind, state.compare_kind, state.error is None), "curves": (state.T,),
                               "data": (state.compare is not None, state.error is None)}
                self._layout_for(state)
                if self._frame is None:
                    canvas.draw()  # everything but the animated artists (curves and the t-dependent ones)
                    changed = list(self._regions)
                else:  # redraw only the regions whose content changed (or copy them from the cache)
                    canvas.restore_region(self._frame)
                    changed = [r for r in self._regions if region_keys[r] != self._region_keys.get(r)]
                for region in changed:
                    (eraser, bbox), cache, key = self._regions[region], self._region_cache[region], region_keys[region]
                    if self._frame is not None:
                        if key in cache:
                            canvas.restore_region(cache[key])
                            cache.move_to_end(key)
                            for ax in self._region_artists(region):  # positions the t-dependent artists are drawn at
                                if hasattr(ax, "apply_aspect"):
                                    ax.apply_aspect()
                            continue
                        eraser.draw(renderer)
                        for artist in self._region_artists(region):
                            artist.draw(renderer)
                    cache[key] = canvas.copy_from_bbox(bbox)
                    while len(cache) > 24:
                        cache.popitem(last=False)
                self._region_keys = region_keys
                self._frame = canvas.copy_from_bbox(self.figure.bbox)
                for line in self._curve_artists:
                    line.draw(renderer)
                self._background = canvas.copy_from_bbox(self.figure.bbox)
                self.n_full_draws += 1
            else:
                canvas.restore_region(self._background)
            self._update_dynamic(state)
            for artist in self._dynamic:
                if artist.get_visible():
                    artist.draw(renderer)
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3]).save(buf, format="png", compress_level=1)
        self._png_bytes = buf.getvalue()
        self.n_draws += 1

    def png(self) -> bytes:
        """The figure as it is now, as PNG bytes: a static copy for readers without a live kernel."""
        if self._png_bytes is None:
            self._on_schedule_change()
        return self._png_bytes

    def _show(self) -> None:
        """Replace the Output's content with one PNG of the figure: one atomic update, no stacking, no flicker."""
        png = base64.b64encode(self._png_bytes).decode("ascii")
        self.out.outputs = (
            {"output_type": "display_data", "data": {"image/png": png, "text/plain": "<beta_t explorer figure>"}, "metadata": {}},
        )

    # --------------------------------------------------------------- updates
    @contextmanager
    def hold(self) -> Iterator[None]:
        """Change several controls and redraw once: ``with explorer.hold(): explorer.T.value = 500; explorer.t.value = 10``."""
        self._hold += 1
        try:
            yield
        finally:
            self._hold -= 1
        if self._hold == 0:
            self._on_schedule_change()

    def _on_T_change(self, change: dict | None = None) -> None:
        old_T = change["old"] if change else self.T.value
        new_T = self.T.value
        frac = self.t.value / max(old_T - 1, 1)
        self._hold += 1  # the t slider's own observer must not redraw with a stale schedule
        try:
            self.t.max = new_T - 1
            self.t.value = int(round(frac * (new_T - 1)))  # keep t at the same fraction of the chain
        finally:
            self._hold -= 1
        self._on_schedule_change()

    def _key(self) -> tuple:
        return (self.kind.value, self.compare.value, self.T.value, float(self.beta_1.value), float(self.beta_T.value))

    def _on_schedule_change(self, change: dict | None = None) -> None:
        if self._hold:
            return
        self._update(full=True)

    def _on_t_change(self, change: dict | None = None) -> None:
        if self._hold or self.schedule is None:
            return
        self._update(full=self._key() != self._drawn_key)

    def _update(self, full: bool) -> None:
        cosine = self.kind.value == "cosine" and self.compare.value in ("none", "cosine")
        self.beta_1.disabled = cosine
        self.beta_T.disabled = cosine
        state = beta_explorer_state(self.kind.value, self.T.value, self.beta_1.value, self.beta_T.value, self.t.value,
                                    compare=self.compare.value, points0=self.points0, points_eps=self.points_eps,
                                    images0=self.images0, images_eps=self.images_eps)
        self.state = state
        self.schedule = state.main.schedule if state.main is not None else None
        if state.error:
            self.message.value = f"<div style='line-height:1.35'><b style='color:#b00'>{html.escape(state.error)}</b></div>"
        else:
            notes = "<br>".join(html.escape(n) for n in state.notes)
            self.message.value = f"<div style='line-height:1.35'>{notes}</div>" if notes else ""
        self.readout.value = _readout_html(state, self.large_fonts)
        self._draw(state, full=full)
        self._drawn_key = self._key()
        self._show()

    # ---------------------------------------------------------------- reading
    def plotted(self) -> dict[str, np.ndarray | float | int]:
        """The data currently drawn, read back from the matplotlib artists (curves, markers, points, image); in compare
        mode also ``compare_beta``, ``compare_alpha_bar``, ``compare_snr`` and ``compare_points``."""
        d = {
            "steps": np.asarray(self._beta_line.get_xdata()),
            "beta": np.asarray(self._beta_line.get_ydata()),
            "alpha_bar": np.asarray(self._ab_line.get_ydata()),
            "snr": np.asarray(self._snr_line.get_ydata()),
            "marker_t": int(np.asarray(self._beta_dot.get_xdata())[0]),
            "marker_beta": float(np.asarray(self._beta_dot.get_ydata())[0]),
            "marker_alpha_bar": float(np.asarray(self._ab_dot.get_ydata())[0]),
            "marker_snr": float(np.asarray(self._snr_dot.get_ydata())[0]),
            "points": np.asarray(self._points.get_offsets()),
            "image": np.asarray(self._image.get_array()),
        }
        cmp = self._curves["compare"]
        if len(cmp["beta"].get_xdata()):
            d.update(compare_beta=np.asarray(cmp["beta"].get_ydata()), compare_alpha_bar=np.asarray(cmp["alpha_bar"].get_ydata()),
                     compare_snr=np.asarray(cmp["snr"].get_ydata()), compare_points=np.asarray(self._points_cmp.get_offsets()))
        return d

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


def beta_explorer(**kwargs) -> BetaExplorer:
    """Build a :class:`BetaExplorer` (keyword arguments as its constructor), display it, and return it.

    Assign the result (``explorer = beta_explorer()``) to drive the controls from code; as a cell's last bare
    expression it would be displayed a second time.
    """
    from IPython.display import display

    explorer = BetaExplorer(**kwargs)
    display(explorer.widget)
    return explorer














