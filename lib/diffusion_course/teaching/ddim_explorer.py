"""Chapter 8's DDIM explorer: steps, eta, spacing, clipping and seed of DDIM on the shipped MNIST U-Net, one new grid of samples per change."""

from __future__ import annotations

import time

import numpy as np
import torch

from .._internal.validate import check_choice, check_positive_int
from ..maths.samplers import DDIM_SPACINGS, ddim_sample, ddim_timesteps
from ..maths.schedules import NoiseSchedule
from .explorer_display import check_threads, compute_threads, explorer_bundle, png_bytes, show_explorer
from .viz import image_grid

__all__ = ["DDIMExplorer", "ddim_explorer", "ddim_view"]

# The steps slider's stops, about 25% apart: a drag of 60 px moves it a few stops (20 -> 12), never from 20 to 1
STEP_CHOICES = (1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 70, 100)


def ddim_view(model: torch.nn.Module, schedule: NoiseSchedule, *, steps: int = 20, eta: float = 0.0, spacing: str = "uniform",
              clip: bool = True, seed: int = 0, n: int = 16, item_shape: tuple[int, ...] = (1, 28, 28)) -> dict:
    """What the DDIM explorer shows (chapter 8), without any widget: ``n`` DDIM samples from the x_T of ``seed`` (the same
    x_T whatever the other settings, so changes show what the sampler does to the same noises), the trajectory of all
    of them (steps + 1 frames, CPU) and the seconds it took. Returns {"samples", "trajectory", "timesteps", "seconds"}."""

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
    the left). Results are cached per setting; ``last`` holds the last :func:`ddim_view` result.

    The steps slider stops at useful step counts (``STEP_CHOICES``, about 25% apart, plus the ``steps`` given), so a
    drag moves it a few stops. The defaults, ``n = 8`` samples and 10 steps (10 calls of batch 8), keep a new setting
    within 1 s on a busy 2-core machine (``benchmarks/explorer_latency.py --busy 1``); the time grows with the steps
    chosen (20 steps: about twice as long). ``threads`` (default 1; None = torch's own setting) is how many CPU
    threads torch uses while a setting is computed: one thread keeps a busy 2-core machine responsive."""

    def __init__(self, model: torch.nn.Module, schedule: NoiseSchedule, *, steps: int = 10, eta: float = 0.0, spacing: str = "uniform",
                 clip: bool = True, seed: int = 0, n: int = 8, scale: int = 3, threads: int | None = 1) -> None:
        import ipywidgets as widgets

        check_positive_int(steps, "steps", 1, 100)
        check_choice(spacing, DDIM_SPACINGS, "spacing")
        check_positive_int(n, "n", 4, 64)
        check_positive_int(scale, "scale", 1, 16)
        if not 0.0 <= eta <= 1.0:
            raise ValueError(f"eta must lie in [0, 1]; got {eta}")
        self.model, self.schedule, self.n, self.scale, self.threads = model, schedule, n, scale, check_threads(threads)
        self._cache: dict[tuple, dict] = {}
        self.n_computed = 0
        desc = {"description_width": "initial"}
        stops = sorted({*STEP_CHOICES, steps})  # the given steps is always a stop
        self.steps = widgets.SelectionSlider(options=stops, value=steps, description="steps S", continuous_update=False, style=desc,
                                             layout=widgets.Layout(width="420px", max_width="100%"))
        self.eta = widgets.FloatSlider(value=eta, min=0.0, max=1.0, step=0.1, description="eta", continuous_update=False, style=desc)
        self.spacing = widgets.Dropdown(options=list(DDIM_SPACINGS), value=spacing, description="spacing", style=desc,
                                        layout=widgets.Layout(width="200px"))
        self.clip = widgets.Checkbox(value=clip, description="clip x0_hat", indent=False, layout=widgets.Layout(width="110px"))
        self.seed = widgets.IntText(value=seed, description="seed", style=desc, layout=widgets.Layout(width="130px"))
        self.readout = widgets.HTML()
        # at its own size (crisp scale x scale pixel blocks), not stretched to the width of the output area
        self.image = widgets.Image(format="png", layout=widgets.Layout(align_self="flex-start", max_width="100%"))
        self.widget = widgets.VBox([widgets.HBox([self.steps, self.eta]), widgets.HBox([self.spacing, self.clip, self.seed]), self.readout,
                                    self.image])
        self.widget.add_class("ddim-explorer")  # a stable hook for the browser test and for custom CSS
        for c in (self.steps, self.eta, self.spacing, self.clip, self.seed):
            c.observe(self._update, names="value")
        self._update()

    def _update(self, change: dict | None = None) -> None:
        key = (self.steps.value, round(float(self.eta.value), 3), self.spacing.value, bool(self.clip.value), self.seed.value)
        if key not in self._cache:
            with compute_threads(self.threads):
                res = ddim_view(self.model, self.schedule, steps=key[0], eta=key[1], spacing=key[2], clip=key[3], seed=key[4], n=self.n)
            traj = res["trajectory"]
            frames = [round(i * (len(traj) - 1) / 7) for i in range(8)]
            strip = torch.cat([traj[f, :4] for f in frames]).reshape(8, 4, *traj.shape[2:]).transpose(0, 1).reshape(32, *traj.shape[2:])
            top = image_grid(res["samples"], nrow=min(self.n, 8))
            bottom = image_grid(strip, nrow=8)
            width = max(top.shape[1], bottom.shape[1])
            pad = lambda a: np.pad(a, ((0, 0), (0, width - a.shape[1])) + ((0, 0),) * (a.ndim - 2), constant_values=1.0)  # noqa: E731
            both = np.concatenate([pad(top), np.ones((6, width) + top.shape[2:], dtype=top.dtype), pad(bottom)])
            res["png"] = png_bytes(both, self.scale)
            res["out_of_range"] = float((res["samples"].abs() > 1).float().mean())
            self._cache[key] = res
            self.n_computed += 1
        self.last = res = self._cache[key]
        ts = res["timesteps"]
        shown = ", ".join(map(str, ts[::-1][:4])) + (", ..." if len(ts) > 4 else "")
        self.readout.value = (f"{key[0]} steps, eta = {key[1]:g}, {key[2]} spacing ({shown}), {'clipped' if key[3] else 'no clipping'}: "
                              f"{self.n} samples in {res['seconds']:.2f} s; pixels outside [-1, 1]: {res['out_of_range']:.1%}. "
                              "Below: the first 4 samples' trajectories, x_T on the left.")
        self.image.value = res["png"]  # after the read-out: a new image means its numbers are already shown

    def png(self) -> bytes:
        """The picture the explorer shows now, as PNG bytes (also the static copy shown where the widget cannot run)."""
        return self.image.value

    def _repr_mimebundle_(self, **kwargs):
        return explorer_bundle(self)  # the widget, and a PNG of its picture for pages that cannot run it


def ddim_explorer(model: torch.nn.Module, schedule: NoiseSchedule, **kwargs) -> DDIMExplorer:
    """Build a :class:`DDIMExplorer` (arguments as its constructor), display it, and return it."""
    return show_explorer(DDIMExplorer(model, schedule, **kwargs))
