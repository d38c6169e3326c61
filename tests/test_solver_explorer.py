"""Chapter 12's solver explorer: its grid is the sampler called directly on the same x_T, the network calls it reports
are the calls the model received (and network_calls' count), and the widget redraws, caches and refuses bad input."""

from __future__ import annotations

import pytest
import torch

from diffusion_course.maths.samplers import ddim_sample
from diffusion_course.maths.schedules import NoiseSchedule, make_betas
from diffusion_course.maths.solvers import SAMPLER_NAMES, dpm_solver_sample, euler_sample, heun_sample, network_calls
from diffusion_course.models.unet import UNet, UNetConfig
from diffusion_course.teaching.solver_explorer import SOLVER_LABELS, SolverExplorer, solver_view, steps_for_calls

pytestmark = pytest.mark.usefixtures("one_thread")

SCHEDULE = NoiseSchedule.from_betas(make_betas("linear", 100, 1e-4, 0.02))


def _unet() -> UNet:
    """A tiny U-Net with random weights, pushed away from its near-zero initial output so the samplers differ."""
    torch.manual_seed(0)
    model = UNet(UNetConfig(base_channels=8, channel_mults=(1, 2), num_res_blocks=1, attention_levels=(), mid_attention=False,
                            norm_groups=4, dropout=0.0)).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    return model


MODEL = _unet()


class _Counting(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model, self.calls = model, 0

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.model(x, t)


def _direct(sampler: str, steps: int, x_T: torch.Tensor, clip: float | None) -> torch.Tensor:
    """Each sampler called by hand with the settings SOLVER_LABELS names (the card's)."""
    if sampler == "ddim":
        return ddim_sample(MODEL, SCHEDULE, x_T.shape, steps=steps, eta=0.0, spacing="uniform", clip_x0=clip, x_T=x_T)
    if sampler == "dpm_solver":
        return dpm_solver_sample(MODEL, SCHEDULE, x_T.shape, steps=steps, order=min(2, steps), spacing="trailing", clip_x0=clip, x_T=x_T)
    run = heun_sample if sampler == "heun" else euler_sample
    return run(MODEL, SCHEDULE, x_T.shape, steps=steps, sigmas="karras", clip_x0=clip, x_T=x_T)


def test_the_labels_are_the_samplers_network_calls_knows():
    assert set(SOLVER_LABELS) == set(SAMPLER_NAMES)


@pytest.mark.parametrize("sampler", sorted(SOLVER_LABELS))
def test_the_view_is_the_sampler_called_directly_and_counts_its_calls(sampler):
    for calls in (1, 2, 5, 8):
        for clip in (True, False):
            counting = _Counting(MODEL)
            view = solver_view(counting, SCHEDULE, sampler=sampler, calls=calls, clip=clip, seed=3, n=4)
            x_T = torch.randn((4, 1, 28, 28), generator=torch.Generator().manual_seed(3))
            assert torch.equal(view["x_T"], x_T)
            want = _direct(sampler, view["steps"], x_T, 1.0 if clip else None)
            assert torch.equal(view["samples"], want), (sampler, calls, clip)
            assert counting.calls == view["calls"] == network_calls(sampler, view["steps"]) <= calls
            assert network_calls(sampler, view["steps"] + 1) > calls  # the most steps that fit
            assert view["seconds"] > 0


def test_steps_for_calls():
    assert [steps_for_calls("heun", c) for c in range(1, 8)] == [1, 1, 2, 2, 3, 3, 4]
    assert [network_calls("heun", steps_for_calls("heun", c)) for c in range(1, 8)] == [1, 1, 3, 3, 5, 5, 7]
    for sampler in ("ddim", "dpm_solver", "euler"):
        assert [steps_for_calls(sampler, c) for c in (1, 7, 20)] == [1, 7, 20]


def test_the_same_seed_gives_the_same_noise_for_every_sampler():
    views = [solver_view(MODEL, SCHEDULE, sampler=s, calls=3, seed=7, n=2) for s in SOLVER_LABELS]
    assert all(torch.equal(v["x_T"], views[0]["x_T"]) for v in views)
    assert not torch.equal(views[0]["samples"], views[1]["samples"])  # DDIM and DPM-Solver++ differ at 3 calls


def test_the_explorer_redraws_caches_and_reports_the_calls():
    pytest.importorskip("ipywidgets")
    ex = SolverExplorer(MODEL, SCHEDULE, sampler="dpm_solver", calls=4, max_calls=6, n=4)
    first = ex.image.value
    assert first[:4] == b"\x89PNG" and ex.n_computed == 1
    assert ex.readout.value.startswith("DPM-Solver++(2M) (trailing timesteps): 4 steps = 4 network calls, clipped, seed 0: 4 samples in")
    want = _direct("dpm_solver", 4, torch.randn((4, 1, 28, 28), generator=torch.Generator().manual_seed(0)), 1.0)
    assert torch.equal(ex.last["samples"], want)
    ex.sampler.value = "heun"
    assert "Heun (Karras sigmas): 2 steps = 3 network calls (1 of the 4 asked for left unused)" in ex.readout.value
    assert ex.image.value != first and ex.n_computed == 2
    ex.calls.value = 5
    assert "3 steps = 5 network calls" in ex.readout.value and ex.n_computed == 3
    ex.clip.value = False
    assert "no clipping" in ex.readout.value and ex.n_computed == 4
    ex.clip.value, ex.calls.value, ex.sampler.value = True, 4, "dpm_solver"  # back to the first setting: from the cache
    assert ex.image.value == first and ex.n_computed == 4
    ex.seed.value = 1
    assert ex.n_computed == 5 and "seed 1" in ex.readout.value and ex.calls.max == 6


def test_bad_input_names_the_argument():
    pytest.importorskip("ipywidgets")
    with pytest.raises(ValueError, match=r"sampler must be one of"):
        solver_view(MODEL, SCHEDULE, sampler="ddpm")
    with pytest.raises(ValueError, match=r"calls must lie in \[1, 100\]"):
        solver_view(MODEL, SCHEDULE, calls=0)
    with pytest.raises(ValueError, match=r"calls must lie in \[1, 6\]"):
        SolverExplorer(MODEL, SCHEDULE, calls=7, max_calls=6)
    with pytest.raises(ValueError, match=r"max_calls must lie in \[1, 100\]"):
        SolverExplorer(MODEL, SCHEDULE, max_calls=200)
    with pytest.raises(ValueError, match=r"sampler must be one of"):
        steps_for_calls("ddpm", 3)
