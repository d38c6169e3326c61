"""Chapter 11's guidance explorer: a digit and a guidance scale w, the same noises sampled again at each w and read by the classifier."""

from __future__ import annotations

import time

import torch
from torch import nn

from .._internal.validate import check_positive_int
from ..maths.guidance import guided_sample
from ..maths.losses import null_label
from ..maths.schedules import NoiseSchedule
from ..scoring.quality import CONFIDENT, classifier_outputs
from .explorer_display import check_threads, compute_threads, explorer_bundle, png_bytes, show_explorer
from .viz import image_grid

__all__ = ["W_RANGE", "GuidanceExplorer", "guidance_explorer", "guided_grid"]

W_RANGE = (0.0, 8.0)  # the guidance explorer's w slider


class GuidanceExplorer:
    """Classifier-free guidance live (chapter 11): pick a digit and a guidance scale w and see ``n`` samples of the
    class-conditional U-Net, all from the same seeded x_T, with how the course's classifier reads them.

    Controls: ``digit`` (0-9), ``w`` (0 = the conditional model, larger = stronger guidance), ``steps`` (DDIM steps;
    fewer is faster), ``seed`` (another set of x_T). Read-outs: ``readout`` (time and classifier counts), ``image``
    (the samples, one PNG). Results are cached per (digit, w, steps, seed), so going back to a setting is instant.
    ``last`` holds the last result of :func:`~diffusion_course.guidance.guided_grid` (samples, seconds, counts).

    The defaults (``n = 8`` samples, 10 DDIM steps: 10 calls of batch 2 x 8, the conditional and unconditional halves
    in one call) give a new setting within 1 s on a busy 2-core machine (``benchmarks/explorer_latency.py --busy 1``);
    16 samples at 20 steps take about four times as long. ``threads`` (default 1; None = torch's own setting) is how
    many CPU threads torch uses while a setting is computed: one thread keeps a busy 2-core machine responsive.
    """

    def __init__(self, model: torch.nn.Module, schedule: NoiseSchedule, *, classifier: torch.nn.Module | None = None, digit: int = 3,
                 w: float = 3.0, steps: int = 10, n: int = 8, seed: int = 0, scale: int = 3, threads: int | None = 1) -> None:
        import ipywidgets as widgets

        null = null_label(model)
        check_positive_int(digit, "digit", 0, null - 1)
        if not W_RANGE[0] <= w <= W_RANGE[1]:
            raise ValueError(f"w must lie in [{W_RANGE[0]}, {W_RANGE[1]}]; got {w}")
        check_positive_int(steps, "steps", 1, 100)
        check_positive_int(n, "n", 1, 64)
        check_positive_int(scale, "scale", 1, 16)
        self.model, self.schedule, self.classifier, self.n, self.scale = model, schedule, classifier, n, scale
        self.threads = check_threads(threads)
        self._cache: dict[tuple, dict] = {}
        self.n_computed = 0  # samplings actually run (cache misses)
        desc = {"description_width": "initial"}
        self.digit = widgets.ToggleButtons(options=list(range(null)), value=digit, description="digit", style={**desc, "button_width": "34px"})
        self.w = widgets.FloatSlider(value=w, min=W_RANGE[0], max=W_RANGE[1], step=0.5, description="guidance w", continuous_update=False,
                                     style=desc)
        self.steps = widgets.IntSlider(value=steps, min=5, max=50, step=5, description="DDIM steps", continuous_update=False, style=desc)
        self.seed = widgets.IntText(value=seed, description="seed", style=desc, layout=widgets.Layout(width="140px"))
        self.readout = widgets.HTML()
        # at its own size (crisp scale x scale pixel blocks), not stretched to the width of the output area
        self.image = widgets.Image(format="png", layout=widgets.Layout(align_self="flex-start", max_width="100%"))
        self.widget = widgets.VBox([self.digit, widgets.HBox([self.w, self.steps, self.seed]), self.readout, self.image])
        self.widget.add_class("guidance-explorer")  # a stable hook for the browser test and for custom CSS
        for c in (self.digit, self.w, self.steps, self.seed):
            c.observe(self._update, names="value")
        self._update()

    def _update(self, change: dict | None = None) -> None:
        key = (self.digit.value, float(self.w.value), self.steps.value, self.seed.value)
        if key not in self._cache:
            with compute_threads(self.threads):
                res = guided_grid(self.model, self.schedule, key[0], key[1], n=self.n, steps=key[2], seed=key[3], classifier=self.classifier)
            res["png"] = png_bytes(image_grid(res["samples"], nrow=min(self.n, 8)), self.scale)
            self._cache[key] = res
            self.n_computed += 1
        self.last = res = self._cache[key]
        read = ""
        if "read_as_digit" in res:
            read = (f"; the classifier reads {res['read_as_digit']}/{self.n} as a {key[0]} "
                    f"({res['confident']}/{self.n} with p &gt; 0.9)")
        self.readout.value = f"digit {key[0]}, w = {key[1]:g}, {key[2]} DDIM steps: {self.n} samples in {res['seconds']:.2f} s{read}"
        self.image.value = res["png"]  # after the read-out: a new image means its numbers are already shown

    def png(self) -> bytes:
        """The picture the explorer shows now, as PNG bytes (also the static copy shown where the widget cannot run)."""
        return self.image.value

    def _repr_mimebundle_(self, **kwargs):
        return explorer_bundle(self)  # the widget, and a PNG of its picture for pages that cannot run it


def guidance_explorer(model: torch.nn.Module, schedule: NoiseSchedule, **kwargs) -> GuidanceExplorer:
    """Build a :class:`GuidanceExplorer` (arguments as its constructor), display it, and return it."""
    return show_explorer(GuidanceExplorer(model, schedule, **kwargs))


def guided_grid(model: nn.Module, schedule: NoiseSchedule, digit: int, w: float, *, n: int = 16, steps: int = 20, seed: int = 0,
                classifier: nn.Module | None = None) -> dict:
    """What the guidance explorer shows: ``n`` DDIM samples (eta = 0, leading spacing, x0 clipped) of ``digit`` at
    guidance scale ``w`` from the same seeded x_T whatever w is (so changing w changes the same noises), and how the
    classifier reads them. Returns {"samples", "seconds", "read_as_digit", "confident"} (counts out of n)."""
    null = null_label(model)
    check_positive_int(digit, "digit", 0, null - 1)
    check_positive_int(n, "n", 1)
    check_positive_int(steps, "steps", 1, schedule.T)
    dev = next(model.parameters()).device
    x_T = torch.randn((n, 1, 28, 28), generator=torch.Generator().manual_seed(seed)).to(dev)
    t0 = time.perf_counter()
    with torch.inference_mode():
        x = guided_sample(model, schedule, torch.full((n,), digit), w=w, steps=steps, x_T=x_T).cpu()
    seconds = time.perf_counter() - t0
    out = {"samples": x, "seconds": seconds}
    if classifier is not None:
        _, p = classifier_outputs(classifier, x)
        conf, pred = p.max(1)
        out["read_as_digit"] = int((pred == digit).sum())
        out["confident"] = int(((pred == digit) & (conf > CONFIDENT)).sum())
    return out
