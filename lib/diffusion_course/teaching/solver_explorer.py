"""Chapter 12's solver explorer: DDIM, DPM-Solver++(2M), Heun or Euler on the shipped MNIST U-Net at a chosen number of
network calls, one new grid of samples from one fixed x_T per change.

The knob is the number of network calls, the cost that matters, not the number of steps: each sampler runs the
largest ``steps`` whose :func:`~diffusion_course.maths.solvers.network_calls` fits in the calls asked for (Heun pays two
calls per interval but the last, so an even number of calls leaves one unused). The settings are the card's:
DDIM (eta = 0) on uniform timesteps, DPM-Solver++(2M) on trailing ones, Heun and Euler on Karras' sigmas.
"""

from __future__ import annotations

import time

import torch

from .._internal.validate import check_choice, check_positive_int
from ..maths.samplers import ddim_sample
from ..maths.schedules import NoiseSchedule
from ..maths.solvers import SAMPLER_NAMES, dpm_solver_sample, euler_sample, heun_sample, network_calls
from .explorer_display import check_threads, compute_threads, explorer_bundle, png_bytes, show_explorer
from .viz import image_grid

__all__ = ["SOLVER_LABELS", "steps_for_calls", "solver_view", "SolverExplorer", "solver_explorer"]

SOLVER_LABELS = {  # what each sampler runs in the explorer (and in the card's rows)
    "ddim": "DDIM, eta = 0 (uniform timesteps)",
    "dpm_solver": "DPM-Solver++(2M) (trailing timesteps)",
    "heun": "Heun (Karras sigmas)",
    "euler": "Euler (Karras sigmas)",
}


def steps_for_calls(sampler: str, calls: int) -> int:
    """The largest ``steps`` whose network calls (:func:`network_calls`) fit in ``calls``: ``calls`` itself for DDIM,
    DPM-Solver++ and Euler (one call per step), (calls + 1) // 2 for Heun (2 steps - 1 calls)."""
    check_choice(sampler, SAMPLER_NAMES, "sampler")
    check_positive_int(calls, "calls", 1)
    return (calls + 1) // 2 if sampler == "heun" else calls


def _sample(model, schedule: NoiseSchedule, sampler: str, steps: int, clip_x0: float | None, x_T: torch.Tensor) -> torch.Tensor:
    """The sampler call behind the explorer (the same arguments a notebook would pass by hand)."""
    if sampler == "ddim":
        return ddim_sample(model, schedule, x_T.shape, steps=steps, eta=0.0, spacing="uniform", clip_x0=clip_x0, x_T=x_T)
    if sampler == "dpm_solver":
        return dpm_solver_sample(model, schedule, x_T.shape, steps=steps, order=min(2, steps), spacing="trailing", clip_x0=clip_x0, x_T=x_T)
    run = heun_sample if sampler == "heun" else euler_sample
    return run(model, schedule, x_T.shape, steps=steps, sigmas="karras", clip_x0=clip_x0, x_T=x_T)


def solver_view(model: torch.nn.Module, schedule: NoiseSchedule, *, sampler: str = "dpm_solver", calls: int = 10, clip: bool = True,
                seed: int = 0, n: int = 16, item_shape: tuple[int, ...] = (1, 28, 28)) -> dict:
    """What the solver explorer shows (chapter 12), without any widget: ``n`` samples of ``sampler`` (one of
    SOLVER_LABELS) at the largest ``steps`` that fits in ``calls`` network calls, from the x_T of ``seed`` (the same x_T
    whatever the sampler, so a change shows what the solver does to the same noises), x0_hat clipped to [-1, 1] when
    ``clip``. Returns {"samples", "x_T", "sampler", "steps", "calls" (made), "seconds"}."""
    check_choice(sampler, tuple(SOLVER_LABELS), "sampler")
    check_positive_int(calls, "calls", 1, schedule.T)
    check_positive_int(n, "n", 1, 256)
    steps = steps_for_calls(sampler, calls)
    x_T = torch.randn((n, *item_shape), generator=torch.Generator().manual_seed(seed))
    t0 = time.perf_counter()
    with torch.inference_mode():
        x = _sample(model, schedule, sampler, steps, 1.0 if clip else None, x_T)
    return {"samples": x.cpu(), "x_T": x_T, "sampler": sampler, "steps": steps, "calls": network_calls(sampler, steps),
            "seconds": time.perf_counter() - t0}


class SolverExplorer:
    """Fast samplers live (chapter 12): sampler, network calls, clipping and seed controls over a noise predictor.
    Shows ``n`` samples from one seeded x_T. Results are cached per setting; ``last`` holds the last
    :func:`solver_view` result (with its "png"). ``threads`` (default 1; None = torch's own setting) is how many CPU
    threads torch uses while a setting is computed: one thread keeps a busy 2-core machine responsive."""

    def __init__(self, model: torch.nn.Module, schedule: NoiseSchedule, *, sampler: str = "dpm_solver", calls: int = 10,
                 max_calls: int = 12, clip: bool = True, seed: int = 0, n: int = 16, scale: int = 3, threads: int | None = 1) -> None:
        import ipywidgets as widgets

        check_choice(sampler, tuple(SOLVER_LABELS), "sampler")
        check_positive_int(max_calls, "max_calls", 1, min(100, schedule.T))
        check_positive_int(calls, "calls", 1, max_calls)
        check_positive_int(n, "n", 1, 64)
        check_positive_int(scale, "scale", 1, 16)
        self.model, self.schedule, self.n, self.scale, self.threads = model, schedule, n, scale, check_threads(threads)
        self._cache: dict[tuple, dict] = {}
        self.n_computed = 0
        desc = {"description_width": "initial"}
        self.sampler = widgets.Dropdown(options=[(label, key) for key, label in SOLVER_LABELS.items()], value=sampler, description="sampler",
                                        style=desc, layout=widgets.Layout(width="360px"))
        self.calls = widgets.IntSlider(value=calls, min=1, max=max_calls, description="network calls", continuous_update=False, style=desc)
        self.clip = widgets.Checkbox(value=clip, description="clip x0_hat", indent=False, layout=widgets.Layout(width="110px"))
        self.seed = widgets.IntText(value=seed, description="seed", style=desc, layout=widgets.Layout(width="130px"))
        self.readout = widgets.HTML()
        # at its own size (crisp scale x scale pixel blocks), not stretched to the width of the output area
        self.image = widgets.Image(format="png", layout=widgets.Layout(align_self="flex-start", max_width="100%"))
        self.widget = widgets.VBox([widgets.HBox([self.sampler, self.calls]), widgets.HBox([self.clip, self.seed]), self.readout, self.image])
        self.widget.add_class("solver-explorer")  # a stable hook for a browser test and for custom CSS
        for c in (self.sampler, self.calls, self.clip, self.seed):
            c.observe(self._update, names="value")
        self._update()

    def _update(self, change: dict | None = None) -> None:
        key = (self.sampler.value, int(self.calls.value), bool(self.clip.value), int(self.seed.value))
        if key not in self._cache:
            with compute_threads(self.threads):
                res = solver_view(self.model, self.schedule, sampler=key[0], calls=key[1], clip=key[2], seed=key[3], n=self.n)
            res["png"] = png_bytes(image_grid(res["samples"], nrow=min(self.n, 8)), self.scale)
            self._cache[key] = res
            self.n_computed += 1
        self.last = res = self._cache[key]
        unused = key[1] - res["calls"]
        self.readout.value = (f"{SOLVER_LABELS[key[0]]}: {res['steps']} steps = {res['calls']} network calls"
                              + (f" ({unused} of the {key[1]} asked for left unused)" if unused else "")
                              + f", {'clipped' if key[2] else 'no clipping'}, seed {key[3]}: {self.n} samples in {res['seconds']:.2f} s.")
        self.image.value = res["png"]  # after the read-out: a new image means its numbers are already shown

    def png(self) -> bytes:
        """The picture the explorer shows now, as PNG bytes (also the static copy shown where the widget cannot run)."""
        return self.image.value

    def _repr_mimebundle_(self, **kwargs):
        return explorer_bundle(self)  # the widget, and a PNG of its picture for pages that cannot run it


def solver_explorer(model: torch.nn.Module, schedule: NoiseSchedule, **kwargs) -> SolverExplorer:
    """Build a :class:`SolverExplorer` (arguments as its constructor), display it, and return it."""
    return show_explorer(SolverExplorer(model, schedule, **kwargs))
