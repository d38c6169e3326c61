"""Chapter 2's beta_t explorer: sliders for a noise schedule and live plots of what it does to data.

The numbers it shows come from one pure function, :func:`~diffusion_course.teaching.beta_explorer_state.beta_explorer_state`
(no widgets, no figure; ``teaching.beta_explorer_state``), which the tests check against independent formulas. The view
(``teaching.beta_explorer_figure``) draws that state into one matplotlib figure in one ``ipywidgets.Output``: every
change of a control updates the artists of that same figure in place and replaces the Output's single PNG, so nothing
stacks up and nothing flickers; moving t redraws only the t-dependent artists over a cached background. This module
holds the controls and their wiring. It runs without a browser too: set ``explorer.kind.value = "cosine"`` or
``explorer.t.value = 500`` from Python and read ``explorer.state`` or the plotted numbers (:meth:`BetaExplorer.plotted`).

    from diffusion_course import beta_explorer
    explorer = beta_explorer()              # builds and displays it; keep the name to drive it from code
    explorer = beta_explorer(large_fonts=True)   # for a projector
"""

from __future__ import annotations

import base64
import math
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

from .._internal.validate import check_choice, check_positive_int
from ..data.sets import digits, swiss_roll
from ..maths.schedules import SCHEDULE_KINDS, NoiseSchedule
from . import beta_explorer_figure as _figure
from .beta_explorer_state import BETA_RANGE, COMPARE_CHOICES, T_RANGE, BetaExplorerState, beta_explorer_state, message_html, readout_html
from .explorer_display import explorer_bundle, show_explorer

__all__ = ["BetaExplorer", "beta_explorer"]


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
        dpi: int = 96,
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
        self._t_anchor = (t, T)  # the learner's t and the T it was set under: T changes rescale from it, never from a rescaled t
        self._rescaling = False  # True while a T change moves t (so that move is not taken as the learner's)
        self._png_bytes: bytes | None = None

        # Fixed data and fixed noise: moving t only changes the mixing coefficients.
        g = torch.Generator().manual_seed(seed)
        self.points0 = swiss_roll(n_points, seed=seed)  # (N, 2)
        self.points_eps = torch.randn(self.points0.shape, generator=g)
        images, labels = digits()
        idx = [int(torch.nonzero(labels == d)[0]) for d in (0, 3, 5, 8)]
        self.images0 = images[idx]  # (4, 1, 8, 8) in [-1, 1]
        self.images_eps = torch.randn(self.images0.shape, generator=g)

        self._build_controls(w, kind, compare, T, beta_1, beta_T, t, continuous_t)
        self._build_figure()
        for control in (self.kind, self.compare, self.beta_1, self.beta_T):
            control.observe(self._on_schedule_change, names="value")
        self.T.observe(self._on_T_change, names="value")
        self.t.observe(self._on_t_change, names="value")
        self._on_schedule_change()

    def _build_controls(self, w, kind: str, compare: str, T: int, beta_1: float, beta_T: float, t: int, continuous_t: bool) -> None:
        """The controls, the read-outs, the one Output and the box that holds them (``widget``); ``w`` is ipywidgets."""
        desc = {"description_width": "initial"}
        # Two rows of controls that fit JupyterLab's 844 px output area at 1280 x 720 with the file browser open.
        half = lambda: w.Layout(width="400px", max_width="100%")  # noqa: E731
        self.kind = w.Dropdown(options=list(SCHEDULE_KINDS), value=kind, description="schedule", style=desc,
                               layout=w.Layout(width="180px"))
        self.compare = w.Dropdown(options=list(COMPARE_CHOICES), value=compare, description="compare with (dashed)", style=desc,
                                  layout=w.Layout(width="240px"))
        self.T = w.IntSlider(value=T, min=T_RANGE[0], max=T_RANGE[1], step=10, description="T (steps)",
                             continuous_update=False, style=desc, layout=half())
        exp_lo, exp_hi = math.log10(BETA_RANGE[0]), math.log10(BETA_RANGE[1])
        self.beta_1 = w.FloatLogSlider(value=beta_1, base=10, min=exp_lo, max=exp_hi, step=0.05, readout_format=".3e",
                                       description="beta_1 (first step)", continuous_update=False, style=desc, layout=half())
        self.beta_T = w.FloatLogSlider(value=beta_T, base=10, min=exp_lo, max=exp_hi, step=0.05, readout_format=".3e",
                                       description="beta_T (last step)", continuous_update=False, style=desc, layout=half())
        # The t slider takes the width it is given (never more than 900 px), so its number stays on screen.
        self.t = w.IntSlider(value=t, min=0, max=T - 1, description="t (code index; paper t+1)",
                             continuous_update=continuous_t, style=desc, layout=w.Layout(width="99%", max_width="900px"))
        # Fixed heights: notes and read-out rows coming and going never move the figure.
        # (ipywidgets gives HTML a 28 px line height; the content sets its own, so these heights hold three rows / lines)
        self.message = w.HTML(layout=w.Layout(height="6.4em" if self.large_fonts else "3.0em", overflow="auto"))  # two lines, then it scrolls
        self.readout = w.HTML(layout=w.Layout(height="6.4em" if self.large_fonts else "4.6em", overflow="auto"))
        self.out = w.Output()
        wrap = lambda: w.Layout(flex_flow="row wrap", width="100%")  # noqa: E731
        self.widget = w.VBox([w.HBox([self.kind, self.compare, self.T], layout=wrap()), w.HBox([self.beta_1, self.beta_T], layout=wrap()),
                              self.t, self.readout, self.message, self.out], layout=w.Layout(width="100%"))
        self.widget.add_class("beta-explorer")  # a stable hook for the browser test and for custom CSS

    # ----------------------------------------------------------------- figure
    def _build_figure(self) -> None:
        """The one Figure and every artist, once (``teaching.beta_explorer_figure.build_figure``)."""
        _figure.build_figure(self)

    def _draw(self, state: BetaExplorerState, full: bool) -> None:
        self._png_bytes = _figure.draw(self, state, full)
        if full:
            self.n_full_draws += 1
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
        """Keep t at the fraction of the chain the learner chose. It is rescaled from the learner's own (t, T), not from
        the t of the previous T: rescaling a rounded t again drifts (T 1000 -> 980 -> 1000 took t = 275 to 274)."""
        new_T = self.T.value
        t0, T0 = self._t_anchor
        self._hold += 1  # the t slider's own observer must not redraw with a stale schedule
        self._rescaling = True
        try:
            with self.t.hold_sync():  # max and value reach the page in one message
                self.t.max = new_T - 1
                self.t.value = min(int(round(t0 * (new_T - 1) / max(T0 - 1, 1))), new_T - 1)
        finally:
            self._hold -= 1
            self._rescaling = False
        self._on_schedule_change()

    def _key(self) -> tuple:
        return (self.kind.value, self.compare.value, self.T.value, float(self.beta_1.value), float(self.beta_T.value))

    def _on_schedule_change(self, change: dict | None = None) -> None:
        if self._hold:
            return
        self._update(full=True)

    def _on_t_change(self, change: dict | None = None) -> None:
        if not self._rescaling:  # the learner (or code) moved t: T changes now keep this t
            self._t_anchor = (self.t.value, self.T.value)
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
        self.message.value = message_html(state)
        self.readout.value = readout_html(state, self.large_fonts)
        self._draw(state, full=full)
        self._drawn_key = self._key()
        self._show()

    # ---------------------------------------------------------------- reading
    def plotted(self) -> dict[str, np.ndarray | float | int]:
        """The data currently drawn, read back from the matplotlib artists (curves, markers, points, image); in compare
        mode also ``compare_beta``, ``compare_alpha_bar``, ``compare_snr`` and ``compare_points``."""
        return _figure.plotted(self)

    def _repr_mimebundle_(self, **kwargs):
        return explorer_bundle(self)  # the widget, and a PNG of the figure for pages that cannot run it


def beta_explorer(**kwargs) -> BetaExplorer:
    """Build a :class:`BetaExplorer` (keyword arguments as its constructor), display it, and return it.

    Assign the result (``explorer = beta_explorer()``) to drive the controls from code; as a cell's last bare
    expression it would be displayed a second time.
    """
    return show_explorer(BetaExplorer(**kwargs))
