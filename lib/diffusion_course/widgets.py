"""The course's explorers: the beta_t explorer (chapter 2), the DDIM explorer (chapter 8) and the guidance explorer
(chapter 11). The beta_t explorer: sliders for a noise schedule and live plots of what it does to data.

One matplotlib figure is drawn into one ``ipywidgets.Output``. Every change of a control recomputes the schedule
(if needed), updates the artists of that same figure in place (``set_data`` / ``set_offsets``) and replaces the
Output's single PNG, so nothing stacks up and nothing flickers. The logic runs without a browser: set
``explorer.kind.value = "cosine"`` or ``explorer.t.value = 500`` from Python and read the plotted numbers back with
:meth:`BetaExplorer.plotted` (tests do exactly that).

    from diffusion_course.widgets import beta_explorer
    explorer = beta_explorer()              # builds and displays it; keep the name to drive it from code
    explorer = beta_explorer(large_fonts=True)   # for a projector
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Iterator
from contextlib import contextmanager

import matplotlib
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

from ._validate import check_choice, check_positive_int
from .data import digits, swiss_roll
from .forward import q_sample
from .schedules import SCHEDULE_KINDS, NoiseSchedule, make_betas
from .viz import image_grid

__all__ = [
    "BetaExplorer", "beta_explorer", "GuidanceExplorer", "guidance_explorer", "DDIMExplorer", "ddim_explorer", "ddim_view",
    "T_RANGE", "BETA_RANGE", "W_RANGE",
]

T_RANGE = (10, 2000)  # the T slider's range
BETA_RANGE = (1e-6, 1.0)  # the beta_1 / beta_T sliders' range (log scale); beta = 1 is allowed on the slider but
# rejected by the schedule (beta must lie in the open interval (0, 1)), which the explorer reports in words

_COSINE_NOTE = (
    "cosine: alpha_bar(t) = cos^2(((t/T + s)/(1 + s)) pi/2) with s = 0.008, beta clipped at 0.999 "
    "(Nichol &amp; Dhariwal 2021). The beta_1 and beta_T sliders are ignored."
)


W_RANGE = (0.0, 8.0)  # the guidance explorer's w slider


def _snr_db(snr: float) -> str:
    return "-inf dB" if snr <= 0 else f"{10 * math.log10(snr):+.1f} dB"


class BetaExplorer:
    """Interactive view of a beta schedule: beta_t, alpha_bar_t and SNR curves with a marker at t, and the swiss roll
    and four 8x8 digits noised to t with :func:`~diffusion_course.forward.q_sample` (Ho et al. 2020, eq. 4).

    Controls (ipywidgets, public attributes): ``kind``, ``beta_1``, ``beta_T``, ``T``, ``t``. Read-outs: ``readout``
    (alpha_bar_t, sqrt(alpha_bar_t), sqrt(1 - alpha_bar_t), SNR at t), ``message`` (notes and errors), ``out`` (the one
    Output holding the figure), ``figure`` (the one matplotlib Figure), ``schedule`` (the current NoiseSchedule,
    or None while the controls describe an invalid schedule), ``widget`` (the whole box, to display).
    The noise is drawn once (seeded), so moving t moves the points smoothly instead of re-sampling them.
    """

    def __init__(
        self,
        *,
        kind: str = "linear",
        T: int = 1000,
        beta_1: float = 1e-4,
        beta_T: float = 0.02,
        t: int | None = None,
        n_points: int = 1000,
        seed: int = 0,
        large_fonts: bool = False,
        continuous_t: bool = True,
        dpi: int = 80,
    ) -> None:
        import ipywidgets as w

        check_choice(kind, SCHEDULE_KINDS, "kind")
        check_positive_int(T, "T", T_RANGE[0], T_RANGE[1])
        check_positive_int(n_points, "n_points", 1)
        check_positive_int(dpi, "dpi", 20, 300)
        t = T // 4 if t is None else t
        check_positive_int(t, "t", 0, T - 1)

        self.large_fonts = large_fonts
        self.font_size = 15 if large_fonts else 10
        self.dpi = dpi
        self.n_draws = 0  # how many times the figure was redrawn (tests and curiosity)
        self.schedule: NoiseSchedule | None = None
        self._hold = 0  # > 0 while several controls change together: redraw once at the end

        # Fixed data and fixed noise: moving t only changes the mixing coefficients.
        g = torch.Generator().manual_seed(seed)
        self.points0 = swiss_roll(n_points, seed=seed)  # (N, 2)
        self.points_eps = torch.randn(self.points0.shape, generator=g)
        images, labels = digits()
        idx = [int(torch.nonzero(labels == d)[0]) for d in (0, 3, 5, 8)]
        self.images0 = images[idx]  # (4, 1, 8, 8) in [-1, 1]
        self.images_eps = torch.randn(self.images0.shape, generator=g)

        desc = {"description_width": "initial"}
        wide = w.Layout(width="460px")
        self.kind = w.Dropdown(options=list(SCHEDULE_KINDS), value=kind, description="schedule", style=desc)
        self.T = w.IntSlider(value=T, min=T_RANGE[0], max=T_RANGE[1], step=10, description="T (steps)",
                             continuous_update=False, style=desc, layout=wide)
        exp_lo, exp_hi = math.log10(BETA_RANGE[0]), math.log10(BETA_RANGE[1])
        self.beta_1 = w.FloatLogSlider(value=beta_1, base=10, min=exp_lo, max=exp_hi, step=0.05, readout_format=".2e",
                                       description="beta_1 (first step)", continuous_update=False, style=desc, layout=wide)
        self.beta_T = w.FloatLogSlider(value=beta_T, base=10, min=exp_lo, max=exp_hi, step=0.05, readout_format=".2e",
                                       description="beta_T (last step)", continuous_update=False, style=desc, layout=wide)
        self.t = w.IntSlider(value=t, min=0, max=T - 1, description="t (code index; paper t+1)",
                             continuous_update=continuous_t, style=desc, layout=w.Layout(width="940px"))
        self.message = w.HTML()
        self.readout = w.HTML()
        self.out = w.Output()
        self.widget = w.VBox([w.HBox([self.kind, self.T]), w.HBox([self.beta_1, self.beta_T]), self.t,
                              self.readout, self.message, self.out])

        self._build_figure()
        for control in (self.kind, self.beta_1, self.beta_T):
            control.observe(self._on_schedule_change, names="value")
        self.T.observe(self._on_T_change, names="value")
        self.t.observe(self._on_t_change, names="value")
        self._on_schedule_change()

    # ----------------------------------------------------------------- figure
    @contextmanager
    def _fonts(self) -> Iterator[None]:
        size = self.font_size
        with matplotlib.rc_context({"font.size": size, "axes.titlesize": size, "axes.labelsize": size,
                                    "xtick.labelsize": size - 1, "ytick.labelsize": size - 1, "legend.fontsize": size - 2}):
            yield

    def _build_figure(self) -> None:
        """Create the one Figure (not through pyplot, so no backend shows or keeps it) and every artist once."""
        scale = 1.45 if self.large_fonts else 1.0
        with self._fonts():
            # A fixed layout (no constrained layout) and no mathtext: a redraw then costs one text layout pass.
            self.figure = fig = Figure(figsize=(12.5 * scale, 7.4 * scale), dpi=self.dpi)
            grid = fig.add_gridspec(2, 6, left=0.065, right=0.985, bottom=0.075, top=0.89, wspace=1.1, hspace=0.42)
            ax_beta = fig.add_subplot(grid[0, 0:2])
            ax_ab = fig.add_subplot(grid[0, 2:4])
            ax_snr = fig.add_subplot(grid[0, 4:6])
            ax_pts = fig.add_subplot(grid[1, 0:3])
            ax_img = fig.add_subplot(grid[1, 3:6])
            self.axes = {"beta": ax_beta, "alpha_bar": ax_ab, "snr": ax_snr, "points": ax_pts, "images": ax_img}

            (self._beta_line,) = ax_beta.plot([], [], lw=1.8, label="beta_t")
            (self._beta_dot,) = ax_beta.plot([], [], "o", color="C3", ms=7, label="at t")
            self._beta_vline = ax_beta.axvline(0, color="C3", lw=0.8, ls=":")
            ax_beta.set_title("beta_t: noise variance added at step t")
            ax_beta.set_xlabel("timestep t")
            ax_beta.set_ylabel("beta_t")

            (self._ab_line,) = ax_ab.plot([], [], lw=1.8, label="alpha_bar_t")
            (self._sab_line,) = ax_ab.plot([], [], lw=1.0, ls="--", label="sqrt(alpha_bar_t) (signal)")
            (self._s1ab_line,) = ax_ab.plot([], [], lw=1.0, ls="--", label="sqrt(1-alpha_bar_t) (noise)")
            (self._ab_dot,) = ax_ab.plot([], [], "o", color="C3", ms=7)
            self._ab_vline = ax_ab.axvline(0, color="C3", lw=0.8, ls=":")
            ax_ab.set_ylim(-0.03, 1.03)
            ax_ab.set_title("alpha_bar_t: share of x_0's variance left")
            ax_ab.set_xlabel("timestep t")
            ax_ab.set_ylabel("coefficient")
            ax_ab.legend(loc="center left", framealpha=0.75)

            (self._snr_line,) = ax_snr.plot([], [], lw=1.8)
            (self._snr_dot,) = ax_snr.plot([], [], "o", color="C3", ms=7)
            self._snr_vline = ax_snr.axvline(0, color="C3", lw=0.8, ls=":")
            ax_snr.axhline(1.0, color="0.5", lw=0.8, ls="--")
            ax_snr.set_yscale("log")
            ax_snr.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax_snr.yaxis.set_minor_formatter(NullFormatter())
            ax_snr.set_title("SNR_t = alpha_bar_t / (1 - alpha_bar_t)")
            ax_snr.set_xlabel("timestep t")
            ax_snr.set_ylabel("SNR (log scale; dashed: SNR = 1)")

            p0 = self.points0.numpy()
            ax_pts.scatter(p0[:, 0], p0[:, 1], s=2, color="0.8", label="x_0 (clean)")
            self._points = ax_pts.scatter(p0[:, 0], p0[:, 1], s=3, color="C0", alpha=0.6, label="x_t")
            ax_pts.set_xlim(-3.5, 3.5)
            ax_pts.set_ylim(-3.5, 3.5)
            ax_pts.set_aspect("equal")
            ax_pts.set_xlabel("x1")
            ax_pts.set_ylabel("x2")
            ax_pts.legend(loc="upper right", markerscale=3)

            grid0 = image_grid(torch.cat([self.images0, self.images0]), nrow=4)
            self._image = ax_img.imshow(grid0, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax_img.set_xticks([])
            ax_img.set_yticks([])
            ax_img.set_xlabel("top: clean x_0; bottom: x_t (shown clipped to [-1, 1])")

    def _render_png(self) -> bytes:
        with self._fonts():
            buf = io.BytesIO()
            self.figure.savefig(buf, format="png", dpi=self.dpi)
        return buf.getvalue()

    def png(self) -> bytes:
        """The figure as it is now, as PNG bytes: a static copy for readers without a live kernel."""
        return self._render_png()

    def _show(self) -> None:
        """Replace the Output's content with one PNG of the figure: one atomic update, no stacking, no flicker."""
        png = base64.b64encode(self._render_png()).decode("ascii")
        self.out.outputs = (
            {"output_type": "display_data", "data": {"image/png": png, "text/plain": "<beta_t explorer figure>"}, "metadata": {}},
        )

    def _show_error(self, text: str) -> None:
        self.message.value = f"<b style='color:#b00'>Cannot build this schedule:</b> {html.escape(text)}"
        self.readout.value = ""
        self.out.outputs = (
            {"output_type": "stream", "name": "stdout", "text": f"Cannot build this schedule: {text}\n"},
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

    def _on_schedule_change(self, change: dict | None = None) -> None:
        if self._hold:
            return
        cosine = self.kind.value == "cosine"
        self.beta_1.disabled = cosine
        self.beta_T.disabled = cosine
        try:
            betas = make_betas(self.kind.value, self.T.value, self.beta_1.value, self.beta_T.value)
            self.schedule = NoiseSchedule.from_betas(betas)
        except ValueError as err:
            self.schedule = None
            self._show_error(str(err))
            return
        notes = []
        if cosine:
            notes.append(_COSINE_NOTE)
        elif self.beta_1.value > self.beta_T.value:
            notes.append("beta_1 &gt; beta_T: the noise per step <i>decreases</i> along the chain. Allowed, but unusual: "
                         "the early steps then destroy most of the signal.")
        ab_T = float(self.schedule.alpha_bar[-1])
        if ab_T > 1e-2:
            notes.append(f"alpha_bar_T = {ab_T:.3g}: x_T still holds a visible part of x_0, so x_T is not close to "
                         "N(0, I) and sampling from pure noise will not match. Raise beta_T or T.")
        self.message.value = "<br>".join(notes)
        self._redraw()

    def _on_t_change(self, change: dict | None = None) -> None:
        if self._hold or self.schedule is None:
            return
        self._redraw()

    def _redraw(self) -> None:
        with self._fonts():  # titles take their font size from rcParams when they are set
            self._update_artists()
        self.n_draws += 1
        self._show()

    def _update_artists(self) -> None:
        s = self.schedule
        assert s is not None
        T, t = s.T, self.t.value
        steps = np.arange(T)
        beta = s.beta.double().numpy()
        ab = s.alpha_bar.double().numpy()
        snr = s.snr().double().numpy()

        self._beta_line.set_data(steps, beta)
        self._ab_line.set_data(steps, ab)
        self._sab_line.set_data(steps, np.sqrt(ab))
        self._s1ab_line.set_data(steps, np.sqrt(1 - ab))
        self._snr_line.set_data(steps, snr)
        for dot, vline, values in ((self._beta_dot, self._beta_vline, beta), (self._ab_dot, self._ab_vline, ab),
                                   (self._snr_dot, self._snr_vline, snr)):
            dot.set_data([t], [values[t]])
            vline.set_xdata([t, t])
        for ax in (self.axes["beta"], self.axes["alpha_bar"], self.axes["snr"]):
            ax.set_xlim(-0.02 * T, 1.02 * T)
        ax_beta = self.axes["beta"]
        lo, hi = float(beta.min()), float(beta.max())
        pad = 0.05 * (hi - lo) if hi > lo else 0.05 * hi
        ax_beta.set_ylim(lo - pad, hi + pad)
        positive = snr[snr > 0]
        if positive.size:
            self.axes["snr"].set_ylim(positive.min() / 2, positive.max() * 2)

        t_vec = torch.full((self.points0.shape[0],), t, dtype=torch.long)
        pts = q_sample(s, self.points0, t_vec, eps=self.points_eps)
        self._points.set_offsets(pts.numpy())
        t_img = torch.full((self.images0.shape[0],), t, dtype=torch.long)
        imgs = q_sample(s, self.images0, t_img, eps=self.images_eps)
        self._image.set_data(image_grid(torch.cat([self.images0, imgs]), nrow=4))

        a, snr_t = float(ab[t]), float(snr[t])
        label = f"{self.kind.value}, T = {T}"
        self.axes["points"].set_title(f"swiss roll noised to t = {t} ({label})")
        self.axes["images"].set_title(f"8x8 digits noised to t = {t}")
        self.figure.suptitle(
            f"t = {t} (paper t = {t + 1}):  alpha_bar_t = {a:.4g},  sqrt(alpha_bar_t) = {math.sqrt(a):.4g},  "
            f"sqrt(1 - alpha_bar_t) = {math.sqrt(1 - a):.4g},  SNR = {snr_t:.4g} ({_snr_db(snr_t)})"
        )
        self.readout.value = (
            f"<span style='font-size:{'1.4em' if self.large_fonts else '1em'}; font-family:monospace'>"
            f"t = {t} (paper t = {t + 1}) &nbsp; alpha_bar_t = {a:.4g} &nbsp; sqrt(alpha_bar_t) = {math.sqrt(a):.4g} "
            f"&nbsp; sqrt(1 - alpha_bar_t) = {math.sqrt(1 - a):.4g} &nbsp; SNR = {snr_t:.4g} ({_snr_db(snr_t)})</span>"
        )

    # ---------------------------------------------------------------- reading
    def plotted(self) -> dict[str, np.ndarray | float | int]:
        """The data currently drawn, read back from the matplotlib artists (curves, markers, points, image)."""
        return {
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


def _display(explorer):
    """Display an explorer's widget and return the explorer (to drive it from code)."""
    from IPython.display import display

    display(explorer.widget)
    return explorer


def _png(grid: np.ndarray, scale: int) -> bytes:
    """An image grid in [0, 1] as PNG bytes, each pixel a scale x scale block (crisp on a projector)."""
    from PIL import Image

    pixels = (grid * 255).round().astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).resize((pixels.shape[1] * scale, pixels.shape[0] * scale), Image.NEAREST).save(buf, format="png")
    return buf.getvalue()


class GuidanceExplorer:
    """Classifier-free guidance live (chapter 11): pick a digit and a guidance scale w and see ``n`` samples of the
    class-conditional U-Net, all from the same seeded x_T, with how the course's classifier reads them.

    Controls: ``digit`` (0-9), ``w`` (0 = the conditional model, larger = stronger guidance), ``steps`` (DDIM steps;
    fewer is faster), ``seed`` (another set of x_T). Read-outs: ``readout`` (time and classifier counts), ``image``
    (the samples, one PNG). Results are cached per (digit, w, steps, seed), so going back to a setting is instant.
    ``last`` holds the last result of :func:`~diffusion_course.guidance.guided_grid` (samples, seconds, counts).
    """

    def __init__(self, model: torch.nn.Module, schedule: NoiseSchedule, *, classifier: torch.nn.Module | None = None, digit: int = 3,
                 w: float = 3.0, steps: int = 20, n: int = 16, seed: int = 0, scale: int = 4) -> None:
        import ipywidgets as widgets

        from .guidance import _null_label

        null = _null_label(model)
        check_positive_int(digit, "digit", 0, null - 1)
        if not W_RANGE[0] <= w <= W_RANGE[1]:
            raise ValueError(f"w must lie in [{W_RANGE[0]}, {W_RANGE[1]}]; got {w}")
        check_positive_int(steps, "steps", 1, 100)
        check_positive_int(n, "n", 1, 64)
        check_positive_int(scale, "scale", 1, 16)
        self.model, self.schedule, self.classifier, self.n, self.scale = model, schedule, classifier, n, scale
        self._cache: dict[tuple, dict] = {}
        self.n_computed = 0  # samplings actually run (cache misses)
        desc = {"description_width": "initial"}
        self.digit = widgets.ToggleButtons(options=list(range(null)), value=digit, description="digit", style={**desc, "button_width": "34px"})
        self.w = widgets.FloatSlider(value=w, min=W_RANGE[0], max=W_RANGE[1], step=0.5, description="guidance w", continuous_update=False,
                                     style=desc)
        self.steps = widgets.IntSlider(value=steps, min=5, max=50, step=5, description="DDIM steps", continuous_update=False, style=desc)
        self.seed = widgets.IntText(value=seed, description="seed", style=desc, layout=widgets.Layout(width="140px"))
        self.readout = widgets.HTML()
        self.image = widgets.Image(format="png")
        self.widget = widgets.VBox([self.digit, widgets.HBox([self.w, self.steps, self.seed]), self.readout, self.image])
        for c in (self.digit, self.w, self.steps, self.seed):
            c.observe(self._update, names="value")
        self._update()

    def _update(self, change: dict | None = None) -> None:
        from .guidance import guided_grid

        key = (self.digit.value, float(self.w.value), self.steps.value, self.seed.value)
        if key not in self._cache:
            res = guided_grid(self.model, self.schedule, key[0], key[1], n=self.n, steps=key[2], seed=key[3], classifier=self.classifier)
            res["png"] = _png(image_grid(res["samples"], nrow=min(self.n, 8)), self.scale)
            self._cache[key] = res
            self.n_computed += 1
        self.last = res = self._cache[key]
        self.image.value = res["png"]
        read = ""
        if "read_as_digit" in res:
            read = (f"; the classifier reads {res['read_as_digit']}/{self.n} as a {key[0]} "
                    f"({res['confident']}/{self.n} with p &gt; 0.9)")
        self.readout.value = f"digit {key[0]}, w = {key[1]:g}, {key[2]} DDIM steps: {self.n} samples in {res['seconds']:.2f} s{read}"

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


def guidance_explorer(model: torch.nn.Module, schedule: NoiseSchedule, **kwargs) -> GuidanceExplorer:
    """Build a :class:`GuidanceExplorer` (arguments as its constructor), display it, and return it."""
    return _display(GuidanceExplorer(model, schedule, **kwargs))


def ddim_view(model: torch.nn.Module, schedule: NoiseSchedule, *, steps: int = 20, eta: float = 0.0, spacing: str = "uniform",
              clip: bool = True, seed: int = 0, n: int = 16, item_shape: tuple[int, ...] = (1, 28, 28)) -> dict:
    """What the DDIM explorer shows (chapter 8), without any widget: ``n`` DDIM samples from the x_T of ``seed`` (the same
    x_T whatever the other settings, so changes show what the sampler does to the same noises), the trajectory of all
    of them (steps + 1 frames, CPU) and the seconds it took. Returns {"samples", "trajectory", "timesteps", "seconds"}."""
    import time

    from .samplers import DDIM_SPACINGS, ddim_sample, ddim_timesteps

    check_positive_int(steps, "steps", 1, schedule.T)
    check_choice(spacing, DDIM_SPACINGS, "spacing")
    check_positive_int(n, "n", 1, 256)
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta must lie in [0, 1]; got {eta}")
    x_T = torch.randn((n, *item_shape), generator=torch.Generator().manual_seed(seed))
    g = torch.Generator().manual_seed(seed + 1)  # the eta > 0 noise: also fixed by the seed
    t0 = time.perf_counter()
    with torch.inference_mode():
        x, traj = ddim_sample(model, schedule, x_T.shape, steps=steps, eta=eta, spacing=spacing, clip_x0=1.0 if clip else None,
                              generator=g, x_T=x_T, return_trajectory=True)
    return {"samples": x.cpu(), "trajectory": traj, "timesteps": ddim_timesteps(schedule.T, steps, spacing).tolist(),
            "seconds": time.perf_counter() - t0}


class DDIMExplorer:
    """DDIM live (chapter 8): steps, eta, spacing, clipping and seed controls over a noise predictor. Shows ``n``
    samples from one seeded x_T and, under them, the trajectory of the first four (x_t at 8 points of the chain, x_T on
    the left). Results are cached per setting; ``last`` holds the last :func:`ddim_view` result."""

    def __init__(self, model: torch.nn.Module, schedule: NoiseSchedule, *, steps: int = 20, eta: float = 0.0, spacing: str = "uniform",
                 clip: bool = True, seed: int = 0, n: int = 16, scale: int = 3) -> None:
        import ipywidgets as widgets

        from .samplers import DDIM_SPACINGS

        check_positive_int(steps, "steps", 1, 100)
        check_choice(spacing, DDIM_SPACINGS, "spacing")
        check_positive_int(n, "n", 4, 64)
        check_positive_int(scale, "scale", 1, 16)
        if not 0.0 <= eta <= 1.0:
            raise ValueError(f"eta must lie in [0, 1]; got {eta}")
        self.model, self.schedule, self.n, self.scale = model, schedule, n, scale
        self._cache: dict[tuple, dict] = {}
        self.n_computed = 0
        desc = {"description_width": "initial"}
        self.steps = widgets.IntSlider(value=steps, min=1, max=100, description="steps S", continuous_update=False, style=desc)
        self.eta = widgets.FloatSlider(value=eta, min=0.0, max=1.0, step=0.1, description="eta", continuous_update=False, style=desc)
        self.spacing = widgets.Dropdown(options=list(DDIM_SPACINGS), value=spacing, description="spacing", style=desc,
                                        layout=widgets.Layout(width="200px"))
        self.clip = widgets.Checkbox(value=clip, description="clip x0_hat", indent=False, layout=widgets.Layout(width="110px"))
        self.seed = widgets.IntText(value=seed, description="seed", style=desc, layout=widgets.Layout(width="130px"))
        self.readout = widgets.HTML()
        self.image = widgets.Image(format="png")
        self.widget = widgets.VBox([widgets.HBox([self.steps, self.eta]), widgets.HBox([self.spacing, self.clip, self.seed]), self.readout,
                                    self.image])
        for c in (self.steps, self.eta, self.spacing, self.clip, self.seed):
            c.observe(self._update, names="value")
        self._update()

    def _update(self, change: dict | None = None) -> None:
        key = (self.steps.value, round(float(self.eta.value), 3), self.spacing.value, bool(self.clip.value), self.seed.value)
        if key not in self._cache:
            res = ddim_view(self.model, self.schedule, steps=key[0], eta=key[1], spacing=key[2], clip=key[3], seed=key[4], n=self.n)
            traj = res["trajectory"]
            frames = [round(i * (len(traj) - 1) / 7) for i in range(8)]
            strip = torch.cat([traj[f, :4] for f in frames]).reshape(8, 4, *traj.shape[2:]).transpose(0, 1).reshape(32, *traj.shape[2:])
            top = image_grid(res["samples"], nrow=min(self.n, 8))
            bottom = image_grid(strip, nrow=8)
            width = max(top.shape[1], bottom.shape[1])
            pad = lambda a: np.pad(a, ((0, 0), (0, width - a.shape[1])) + ((0, 0),) * (a.ndim - 2), constant_values=1.0)  # noqa: E731
            both = np.concatenate([pad(top), np.ones((6, width) + top.shape[2:], dtype=top.dtype), pad(bottom)])
            res["png"] = _png(both, self.scale)
            res["out_of_range"] = float((res["samples"].abs() > 1).float().mean())
            self._cache[key] = res
            self.n_computed += 1
        self.last = res = self._cache[key]
        self.image.value = res["png"]
        ts = res["timesteps"]
        shown = ", ".join(map(str, ts[::-1][:4])) + (", ..." if len(ts) > 4 else "")
        self.readout.value = (f"{key[0]} steps, eta = {key[1]:g}, {key[2]} spacing ({shown}), {'clipped' if key[3] else 'no clipping'}: "
                              f"{self.n} samples in {res['seconds']:.2f} s; pixels outside [-1, 1]: {res['out_of_range']:.1%}. "
                              "Below: the first 4 samples' trajectories, x_T on the left.")

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


def ddim_explorer(model: torch.nn.Module, schedule: NoiseSchedule, **kwargs) -> DDIMExplorer:
    """Build a :class:`DDIMExplorer` (arguments as its constructor), display it, and return it."""
    return _display(DDIMExplorer(model, schedule, **kwargs))
