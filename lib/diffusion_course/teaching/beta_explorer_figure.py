"""Chapter 2's beta_t explorer, its figure: the one matplotlib figure drawn from a :class:`BetaExplorerState`.

Five panels: beta_t, alpha_bar_t with the two coefficients, and SNR_t over t (top), the swiss roll and four 8x8 digits
noised to t (bottom). The figure is built once and its artists are updated in place. Artists that depend on t are
"animated": a full draw leaves them out, the result is kept as the background, and a change of t restores that
background and draws only them. A schedule change redraws only the figure's regions (header, curves, data) whose
content changed, or copies them from a small cache of the pixels of recent settings.

Every function takes the explorer (``view``, a :class:`~diffusion_course.teaching.beta_explorer.BetaExplorer`) and
keeps the figure and its artists on it (``view.figure``, ``view.axes``, ``view._curves``, ...); none touches a widget.
"""

from __future__ import annotations

import io
import math
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

import matplotlib
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

from .beta_explorer_state import BetaExplorerState
from .viz import image_grid

__all__ = ["build_figure", "layout_for", "update_dynamic", "draw", "plotted"]

BETA_YLIM = (3e-7, 2.0)  # the explorer's fixed y ranges: every beta the sliders allow (log scale) ...
SNR_YLIM = (1e-10, 1e7)  # ... and SNR from 10^-10 (x_T is noise) to 10^7 (x_1 is data); curves beyond are clipped
_BANDS = {"header": (0.83, 1.0), "curves": (0.44, 0.83), "data": (0.0, 0.44)}  # the regions, in figure coordinates
_CACHED_PER_REGION = 24  # how many settings' pixels each region keeps
# 826 x 384 px at the default 96 dpi: it fits JupyterLab's 844 px output area at 1280 x 720 with the file browser open,
# under the controls, without scrolling (the notebook shows 599 px), and every text is 9 pt = 12 px
FIGSIZE = (8.6, 4.0)


@contextmanager
def _fonts(size: int) -> Iterator[None]:
    """Titles and tick labels take their font size from rcParams when drawn, so every draw runs inside this."""
    with matplotlib.rc_context({"font.size": size, "axes.titlesize": size, "axes.labelsize": size,
                                "xtick.labelsize": size, "ytick.labelsize": size, "legend.fontsize": size}):
        yield


# ------------------------------------------------------------------------------------------------------ building
def build_figure(view) -> None:
    """Create the one Figure (not through pyplot, so no backend shows or keeps it) and every artist once."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    scale = 1.45 if view.large_fonts else 1.0
    with _fonts(view.font_size):
        view.figure = fig = Figure(figsize=(FIGSIZE[0] * scale, FIGSIZE[1] * scale), dpi=view.dpi)
        view._canvas = FigureCanvasAgg(fig)
        grid = fig.add_gridspec(2, 6, left=0.075, right=0.99, bottom=0.1, top=0.765, wspace=1.45, hspace=0.8, height_ratios=(1, 1.25))
        view.axes = {"beta": fig.add_subplot(grid[0, 0:2]), "alpha_bar": fig.add_subplot(grid[0, 2:4]),
                     "snr": fig.add_subplot(grid[0, 4:6]), "points": fig.add_subplot(grid[1, 0:3]),
                     "images": fig.add_subplot(grid[1, 3:6])}
        view._dynamic = []
        _curve_artists(view)
        _curve_axes(view.axes)
        _legend_handles(view)
        _points_panel(view)
        _images_panel(view)
        view._t_text = _dynamic(view, fig.text(0.985, 0.01, "", ha="right", va="bottom"))
        _fix_label_positions(view.axes, view.font_size)
        _regions(view)


def _dynamic(view, artist):
    """Mark an artist as depending on t: left out of full draws, drawn over the cached background."""
    artist.set_animated(True)
    view._dynamic.append(artist)
    return artist


def _curve_artists(view) -> None:
    """The curves of both schedules (solid and dashed), their markers at t and the t lines of the three top panels."""
    from matplotlib.lines import Line2D

    ax_beta, ax_ab, ax_snr = (view.axes[k] for k in ("beta", "alpha_bar", "snr"))
    view._curves: dict[str, dict[str, Line2D]] = {}
    view._dots: dict[str, dict[str, Line2D]] = {}
    for role, ls in (("main", "-"), ("compare", "--")):
        view._curves[role] = {  # drawn over the cached frame after a schedule change (set_animated below)
            "beta": ax_beta.plot([], [], lw=1.6, ls=ls, color="C0")[0],
            "alpha_bar": ax_ab.plot([], [], lw=1.6, ls=ls, color="C0")[0],
            "sqrt_alpha_bar": ax_ab.plot([], [], lw=1.0, ls=ls, color="C1")[0],
            "sqrt_one_minus": ax_ab.plot([], [], lw=1.0, ls=ls, color="C2")[0],
            "snr": ax_snr.plot([], [], lw=1.6, ls=ls, color="C0")[0],
        }
        marker = "o" if role == "main" else "D"
        view._dots[role] = {name: _dynamic(view, ax.plot([], [], marker, color="C3", ms=6, mfc="C3" if role == "main" else "none")[0])
                            for name, ax in (("beta", ax_beta), ("alpha_bar", ax_ab), ("snr", ax_snr))}
    view._curve_artists = [line for c in view._curves.values() for line in c.values()]
    for line in view._curve_artists:
        line.set_animated(True)
    view._vlines = [_dynamic(view, ax.axvline(0, color="C3", lw=0.8, ls=":")) for ax in (ax_beta, ax_ab, ax_snr)]
    view._beta_line = view._curves["main"]["beta"]  # (names kept for plotted())
    view._ab_line, view._snr_line = view._curves["main"]["alpha_bar"], view._curves["main"]["snr"]
    view._beta_dot, view._ab_dot, view._snr_dot = (view._dots["main"][k] for k in ("beta", "alpha_bar", "snr"))


def _curve_axes(axes: dict) -> None:
    """Fixed y ranges (log scales for beta and SNR): schedules compare at a glance, and a schedule change redraws only
    the curves, never the axes."""
    ax_beta, ax_ab, ax_snr = axes["beta"], axes["alpha_bar"], axes["snr"]
    ax_beta.set_yscale("log")
    ax_beta.set_ylim(*BETA_YLIM)
    ax_beta.set_title("beta_t: noise added at step t")
    ax_beta.set_xlabel("timestep t")
    ax_beta.set_ylabel("beta_t (log scale)")
    ax_ab.set_ylim(-0.03, 1.03)
    ax_ab.set_title("alpha_bar_t, the coefficients")
    ax_ab.set_xlabel("timestep t")
    ax_ab.set_ylabel("coefficient")
    ax_snr.axhline(1.0, color="0.5", lw=0.8, ls="-.")
    ax_snr.set_yscale("log")
    ax_snr.set_ylim(*SNR_YLIM)
    for ax, n in ((ax_beta, 5), (ax_snr, 7)):
        ax.yaxis.set_major_locator(LogLocator(numticks=n))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: "1" if v == 1 else f"1e{round(math.log10(v))}"))
        ax.yaxis.set_minor_locator(NullLocator())
    ax_snr.set_title("SNR_t = alpha_bar_t / (1 - alpha_bar_t)", loc="right")
    ax_snr.set_xlabel("timestep t")
    ax_snr.set_ylabel("SNR_t (log scale)")


def _legend_handles(view) -> None:
    """One legend for the three curve panels, above them: it never covers a curve (made in :func:`layout_for`)."""
    from matplotlib.lines import Line2D

    view._legend_handles = {
        "main": Line2D([], [], color="C0", lw=1.6, ls="-"),
        "compare": Line2D([], [], color="C0", lw=1.6, ls="--"),
        "sqrt_ab": Line2D([], [], color="C1", lw=1.0),
        "sqrt_1mab": Line2D([], [], color="C2", lw=1.0),
        "t": Line2D([], [], color="C3", marker="o", ls=":", lw=0.8, ms=6),
        "snr_1": Line2D([], [], color="0.5", lw=0.8, ls="-."),
    }
    view._legend = None


def _points_panel(view) -> None:
    """The swiss roll: x_0 in grey, x_t of each schedule over it."""
    ax_pts = view.axes["points"]
    p0 = view.points0.numpy()
    ax_pts.scatter(p0[:, 0], p0[:, 1], s=2, color="0.8", label="x_0 (clean)")
    view._points = _dynamic(view, ax_pts.scatter(p0[:, 0], p0[:, 1], s=3, color="C0", alpha=0.6, label="x_t"))
    view._points_cmp = _dynamic(view, ax_pts.scatter(p0[:0, 0], p0[:0, 1], s=3, color="C1", alpha=0.5, label="x_t (comparison)"))
    ax_pts.set_xlim(-3.5, 3.5)
    ax_pts.set_ylim(-3.5, 3.5)
    ax_pts.set_aspect("equal")
    ax_pts.set_anchor("W")  # the free space of the equal-aspect box goes to the right, where the legend sits
    ax_pts.set_title("swiss roll noised to t")
    ax_pts.set_xlabel("x1")
    ax_pts.set_ylabel("x2")


def _images_panel(view) -> None:
    """The digits: one row for x_0 and one for x_t of each schedule."""
    ax_img = view.axes["images"]
    view._image = _dynamic(view, ax_img.imshow(np.ones((9, 33)), cmap="gray", vmin=0, vmax=1, interpolation="nearest"))
    ax_img.set_xticks([])
    for spine in ax_img.spines.values():
        spine.set_visible(False)
    ax_img.set_title("8x8 digits noised to t (shown clipped to [-1, 1])")


def _fix_label_positions(axes: dict, size: float) -> None:
    """Fixed title and axis-label positions (a few font sizes from the axes, in points, so they clear the tick labels at
    any figure size): matplotlib then skips measuring every tick label on each redraw."""
    from matplotlib.transforms import ScaledTranslation

    ax_img = axes["images"]
    for ax in axes.values():
        ax.title.set_y(1.03)
        ax._autotitlepos = False
        shift = ScaledTranslation(0, -(0.6 if ax is ax_img else 2.3) * size / 72, ax.figure.dpi_scale_trans)
        ax.xaxis.set_label_coords(0.5, 0, transform=ax.transAxes + shift)
    for ax in (axes["beta"], axes["alpha_bar"], axes["snr"], axes["points"]):
        ax.yaxis.set_label_coords(0, 0.5, transform=ax.transAxes + ScaledTranslation(-3.9 * size / 72, 0, ax.figure.dpi_scale_trans))
    ax_img.yaxis.set_label_coords(-0.02, 0.5)


def _regions(view) -> None:
    """Three regions redrawn separately: the header (title, legend), the curve panels, the data panels."""
    from matplotlib.patches import Rectangle
    from matplotlib.transforms import Bbox, TransformedBbox

    fig = view.figure
    view._regions = {}
    for name, (lo, hi) in _BANDS.items():
        eraser = Rectangle((0, lo), 1, hi - lo, transform=fig.transFigure, facecolor="white", edgecolor="none")
        eraser.set_figure(fig)
        view._regions[name] = (eraser, TransformedBbox(Bbox([[0, lo], [1, hi]]), fig.transFigure))
    view._background = None
    view._frame = None  # everything but the curves and the t-dependent artists
    view._region_keys = {}
    # The pixels of each region for its last few keys: going back to a schedule or a T seen before is a copy.
    view._region_cache = {name: OrderedDict() for name in _BANDS}


def _region_artists(view, region: str) -> list:
    a = view.axes
    if region == "header":
        return [x for x in (view.figure._suptitle, view._legend) if x is not None]
    return [a["beta"], a["alpha_bar"], a["snr"]] if region == "curves" else [a["points"], a["images"]]


# ------------------------------------------------------------------------------------------------------ updating
def layout_for(view, state: BetaExplorerState) -> None:
    """Everything that depends on the schedule settings but not on t: curves, limits, titles, legends."""
    T = state.T
    steps = np.arange(T)
    for role in ("main", "compare"):
        r = getattr(state, role)
        c = view._curves[role]
        if r is None:
            for line in c.values():
                line.set_data([], [])
            continue
        c["beta"].set_data(steps, r.beta)
        c["alpha_bar"].set_data(steps, r.alpha_bar)
        c["sqrt_alpha_bar"].set_data(steps, np.sqrt(r.alpha_bar))
        c["sqrt_one_minus"].set_data(steps, np.sqrt(1 - r.alpha_bar))
        c["snr"].set_data(steps, r.snr)
    for ax in (view.axes["beta"], view.axes["alpha_bar"], view.axes["snr"]):
        ax.set_xlim(-0.02 * T, 1.02 * T)
    _legends(view, state)
    if state.error:
        title = f"No {state.kind} schedule for these settings: see the message above"
    else:
        title = f"beta_t explorer: the {state.kind} schedule" + (f" (solid) and the {state.compare_kind} schedule (dashed)" if state.compare_kind else "")
    view.figure.suptitle(title, y=0.99)
    n_rows = 1 + len(state.rows)
    ax_img = view.axes["images"]
    view._image.set_data(np.ones((n_rows * 9 + 1, 4 * 9 + 1)))
    view._image.set_extent((-0.5, 4 * 9 + 0.5, n_rows * 9 + 0.5, -0.5))
    ax_img.set_xlim(-0.5, 4 * 9 + 0.5)
    ax_img.set_ylim(n_rows * 9 + 0.5, -0.5)
    ax_img.set_yticks([5 + 9 * i for i in range(n_rows)], ["x_0", "x_t solid", "x_t dashed"][:n_rows])
    ax_img.tick_params(axis="y", length=0)


def _legends(view, state: BetaExplorerState) -> None:
    """The header's legend (redrawn only when its labels change) and the swiss roll panel's."""
    h = view._legend_handles
    names = {"main": state.kind, "compare": state.compare_kind}
    handles, labels = [h["main"]], [f"{names['main']}: beta_t, alpha_bar_t, SNR_t"]
    if state.compare_kind:
        handles.append(h["compare"])
        labels.append(f"{names['compare']} (dashed)")
    handles += [h["sqrt_ab"], h["sqrt_1mab"], h["t"], h["snr_1"]]
    labels += ["sqrt(alpha_bar_t): signal coefficient", "sqrt(1 - alpha_bar_t): noise std", "t", "SNR = 1"]
    if view._legend is not None:
        view._legend.remove()
    view._legend = view.figure.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.955), ncol=3,
                                      frameon=False, handlelength=2.2, columnspacing=1.4, borderaxespad=0, labelspacing=0.25)
    ax_pts = view.axes["points"]
    if ax_pts.get_legend() is not None:
        ax_pts.get_legend().remove()
    pts_handles = ax_pts.collections[:2] + ([view._points_cmp] if state.compare else [])
    ax_pts.legend(pts_handles, ["x_0 (clean)", "x_t (solid schedule)"] + (["x_t (dashed schedule)"] if state.compare else []),
                  loc="upper left", bbox_to_anchor=(1.02, 1.0), markerscale=3, frameon=False, borderaxespad=0)


def update_dynamic(view, state: BetaExplorerState) -> None:
    """The artists that depend on t: markers, the t lines, the noised points and digits, the t label."""
    t = state.t
    for role in ("main", "compare"):
        r = getattr(state, role)
        for name, dot in view._dots[role].items():
            dot.set_data(([t], [getattr(r, name)[t]]) if r is not None else ([], []))
    for vline in view._vlines:
        vline.set_xdata([t, t])
        vline.set_visible(state.main is not None)
    view._points.set_offsets(state.main.points if state.main is not None else np.zeros((0, 2)))
    view._points_cmp.set_offsets(state.compare.points if state.compare is not None else np.zeros((0, 2)))
    rows = [torch.as_tensor(view.images0)] + [torch.as_tensor(r.images) for r in state.rows]
    view._image.set_data(image_grid(torch.cat(rows), nrow=4))
    view._t_text.set_text(f"t = {t} (paper t = {t + 1})" if state.main is not None else "")


# ------------------------------------------------------------------------------------------------------ drawing
def draw(view, state: BetaExplorerState, full: bool) -> bytes:
    """Draw ``state`` and return the figure as PNG bytes. ``full``: the schedule settings changed, so the frame and
    the curves are redrawn first (only the regions whose content changed); otherwise only the t-dependent artists are
    drawn over the cached background."""
    canvas = view._canvas
    with _fonts(view.font_size):
        renderer = canvas.get_renderer()
        if full:
            layout_for(view, state)
            _draw_frame(view, state, renderer)
            for line in view._curve_artists:
                line.draw(renderer)
            view._background = canvas.copy_from_bbox(view.figure.bbox)
        else:
            canvas.restore_region(view._background)
        update_dynamic(view, state)
        for artist in view._dynamic:
            if artist.get_visible():
                artist.draw(renderer)
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3]).save(buf, format="png", compress_level=1)
    return buf.getvalue()


def _draw_frame(view, state: BetaExplorerState, renderer) -> None:
    """The frame (axes, ticks, titles, legends): it depends on these keys only; the curves are drawn over it."""
    canvas = view._canvas
    region_keys = {"header": (state.kind, state.compare_kind, state.error is None), "curves": (state.T,),
                   "data": (state.compare is not None, state.error is None)}
    if view._frame is None:
        canvas.draw()  # everything but the animated artists (curves and the t-dependent ones)
        changed = list(view._regions)
    else:  # redraw only the regions whose content changed (or copy them from the cache)
        canvas.restore_region(view._frame)
        changed = [r for r in view._regions if region_keys[r] != view._region_keys.get(r)]
    for region in changed:
        (eraser, bbox), cache, key = view._regions[region], view._region_cache[region], region_keys[region]
        if view._frame is not None:
            if key in cache:
                canvas.restore_region(cache[key])
                cache.move_to_end(key)
                for ax in _region_artists(view, region):  # positions the t-dependent artists are drawn at
                    if hasattr(ax, "apply_aspect"):
                        ax.apply_aspect()
                continue
            eraser.draw(renderer)
            for artist in _region_artists(view, region):
                artist.draw(renderer)
        cache[key] = canvas.copy_from_bbox(bbox)
        while len(cache) > _CACHED_PER_REGION:
            cache.popitem(last=False)
    view._region_keys = region_keys
    view._frame = canvas.copy_from_bbox(view.figure.bbox)


# ------------------------------------------------------------------------------------------------------ reading
def plotted(view) -> dict[str, np.ndarray | float | int]:
    """The data currently drawn, read back from the matplotlib artists (see :meth:`BetaExplorer.plotted`)."""
    d = {
        "steps": np.asarray(view._beta_line.get_xdata()),
        "beta": np.asarray(view._beta_line.get_ydata()),
        "alpha_bar": np.asarray(view._ab_line.get_ydata()),
        "snr": np.asarray(view._snr_line.get_ydata()),
        "marker_t": int(np.asarray(view._beta_dot.get_xdata())[0]),
        "marker_beta": float(np.asarray(view._beta_dot.get_ydata())[0]),
        "marker_alpha_bar": float(np.asarray(view._ab_dot.get_ydata())[0]),
        "marker_snr": float(np.asarray(view._snr_dot.get_ydata())[0]),
        "points": np.asarray(view._points.get_offsets()),
        "image": np.asarray(view._image.get_array()),
    }
    cmp = view._curves["compare"]
    if len(cmp["beta"].get_xdata()):
        d.update(compare_beta=np.asarray(cmp["beta"].get_ydata()), compare_alpha_bar=np.asarray(cmp["alpha_bar"].get_ydata()),
                 compare_snr=np.asarray(cmp["snr"].get_ydata()), compare_points=np.asarray(view._points_cmp.get_offsets()))
    return d
