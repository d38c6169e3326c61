"""The beta_t explorer, headless: change every control from Python and check the plotted data follows."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from diffusion_course.forward import q_sample  # noqa: E402
from diffusion_course.schedules import NoiseSchedule, make_betas  # noqa: E402
from diffusion_course.viz import image_grid  # noqa: E402
from diffusion_course.widgets import BetaExplorer  # noqa: E402


@pytest.fixture(scope="module")
def explorer() -> BetaExplorer:
    return BetaExplorer(n_points=300, dpi=40)


def _expected_points(e: BetaExplorer, t: int) -> np.ndarray:
    s = NoiseSchedule.from_betas(make_betas(e.kind.value, e.T.value, e.beta_1.value, e.beta_T.value))
    tt = torch.full((e.points0.shape[0],), t, dtype=torch.long)
    return q_sample(s, e.points0, tt, eps=e.points_eps).numpy()


def test_initial_state_is_the_ddpm_schedule(explorer):
    d = explorer.plotted()
    ref = NoiseSchedule.linear(1000)
    assert explorer.schedule is not None and explorer.schedule.T == 1000
    np.testing.assert_allclose(d["beta"], ref.beta.double().numpy(), rtol=1e-6)
    np.testing.assert_allclose(d["alpha_bar"], ref.alpha_bar.double().numpy(), rtol=1e-6)
    np.testing.assert_allclose(d["snr"], ref.snr().double().numpy(), rtol=1e-5)
    assert d["marker_t"] == explorer.t.value == 250
    assert explorer.t.max == 999
    assert len(explorer.out.outputs) == 1 and "image/png" in explorer.out.outputs[0]["data"]


@pytest.mark.parametrize("kind", ["cosine", "quadratic", "sigmoid", "linear"])
def test_kind_changes_the_curves(explorer, kind):
    explorer.kind.value = kind
    d = explorer.plotted()
    want = make_betas(kind, explorer.T.value, explorer.beta_1.value, explorer.beta_T.value)
    np.testing.assert_allclose(d["beta"], want.to(torch.float32).double().numpy(), rtol=1e-6)
    np.testing.assert_allclose(d["alpha_bar"], torch.cumprod(1 - want, 0).numpy(), rtol=1e-4)
    np.testing.assert_allclose(d["points"], _expected_points(explorer, explorer.t.value), atol=1e-6)
    assert explorer.beta_1.disabled == explorer.beta_T.disabled == (kind == "cosine")
    assert ("cosine" in explorer.message.value) == (kind == "cosine")


def test_t_moves_marker_points_and_image(explorer):
    explorer.kind.value = "linear"
    before = explorer.plotted()
    explorer.t.value = 500
    d = explorer.plotted()
    s = explorer.schedule
    assert d["marker_t"] == 500
    assert d["marker_beta"] == pytest.approx(float(s.beta[500]))
    assert d["marker_alpha_bar"] == pytest.approx(float(s.alpha_bar[500]))
    assert d["marker_snr"] == pytest.approx(float(s.snr()[500]), rel=1e-5)
    np.testing.assert_allclose(d["points"], _expected_points(explorer, 500), atol=1e-6)
    assert not np.allclose(d["points"], before["points"])
    imgs = q_sample(s, explorer.images0, torch.full((4,), 500, dtype=torch.long), eps=explorer.images_eps)
    np.testing.assert_allclose(d["image"], image_grid(torch.cat([explorer.images0, imgs]), nrow=4), atol=1e-6)
    np.testing.assert_array_equal(d["beta"], before["beta"])  # moving t leaves the schedule alone
    assert "alpha_bar_t = " in explorer.readout.value and f"{float(s.alpha_bar[500]):.4g}" in explorer.readout.value
    assert "t = 500" in explorer.figure._suptitle.get_text()


def test_fixed_noise_makes_t_smooth(explorer):
    explorer.t.value = 100
    a = explorer.plotted()["points"]
    explorer.t.value = 101
    b = explorer.plotted()["points"]
    assert np.abs(a - b).max() < 0.05  # one step moves points a little: the same noise, not a fresh draw


def test_T_changes_length_and_t_range(explorer):
    explorer.t.value = 500  # half-way through T = 1000
    explorer.T.value = 200
    d = explorer.plotted()
    assert len(d["beta"]) == len(d["steps"]) == 200
    assert explorer.t.max == 199
    assert explorer.t.value == round(500 / 999 * 199)  # t keeps its place along the chain
    assert d["marker_t"] == explorer.t.value
    np.testing.assert_allclose(d["beta"], make_betas("linear", 200).to(torch.float32).double().numpy(), rtol=1e-6)
    explorer.T.value = 1000
    assert len(explorer.plotted()["beta"]) == 1000 and explorer.t.max == 999


def test_beta_sliders_change_the_linear_schedule(explorer):
    explorer.kind.value = "linear"
    explorer.beta_1.value = 1e-3
    explorer.beta_T.value = 0.05
    d = explorer.plotted()
    assert d["beta"][0] == pytest.approx(explorer.beta_1.value, rel=1e-6)
    assert d["beta"][-1] == pytest.approx(explorer.beta_T.value, rel=1e-6)
    explorer.beta_1.value, explorer.beta_T.value = 1e-4, 0.02


def test_bad_values_show_a_message_not_a_traceback(explorer):
    explorer.kind.value = "linear"
    draws = explorer.n_draws
    explorer.beta_T.value = 1.0  # the slider reaches 1, which is outside (0, 1)
    assert explorer.schedule is None
    assert "Cannot build this schedule" in explorer.message.value and "beta_T" in explorer.message.value
    assert len(explorer.out.outputs) == 1 and "beta_T must lie in" in explorer.out.outputs[0]["text"]
    explorer.t.value = 10  # moving t while the schedule is invalid must not crash either
    assert explorer.n_draws == draws
    explorer.beta_T.value = 0.02
    assert explorer.schedule is not None and "image/png" in explorer.out.outputs[0]["data"]
    assert explorer.message.value == ""


def test_decreasing_and_weak_schedules_get_a_note(explorer):
    with explorer.hold():
        explorer.beta_1.value = 0.02
        explorer.beta_T.value = 1e-4
    assert "decreases" in explorer.message.value
    with explorer.hold():
        explorer.beta_1.value, explorer.beta_T.value = 1e-5, 1e-4
    assert "alpha_bar_T" in explorer.message.value  # x_T far from N(0, I)
    with explorer.hold():
        explorer.beta_1.value, explorer.beta_T.value = 1e-4, 0.02
    assert explorer.message.value == ""


def test_hold_redraws_once(explorer):
    draws = explorer.n_draws
    with explorer.hold():
        explorer.kind.value = "quadratic"
        explorer.T.value = 500
        explorer.t.value = 42
    assert explorer.n_draws == draws + 1
    d = explorer.plotted()
    assert d["marker_t"] == 42 and len(d["beta"]) == 500
    with explorer.hold():
        explorer.kind.value, explorer.T.value = "linear", 1000


def test_one_figure_one_output_after_many_updates(explorer):
    figs_before = plt.get_fignums()
    fig, out = explorer.figure, explorer.out
    n_axes = len(fig.axes)
    n_lines = len(explorer.axes["beta"].lines)
    for t in (1, 50, 300, 999):
        explorer.t.value = t
    for kind in ("cosine", "linear"):
        explorer.kind.value = kind
    explorer.T.value = 300
    explorer.T.value = 1000
    assert explorer.figure is fig and explorer.out is out
    assert len(fig.axes) == n_axes and len(explorer.axes["beta"].lines) == n_lines  # artists updated, not added
    assert len(out.outputs) == 1  # the PNG is replaced, never appended
    assert plt.get_fignums() == figs_before  # never registered with pyplot, so no stray figure is shown
    outputs = [c for c in explorer.widget.children if type(c).__name__ == "Output"]
    assert outputs == [out]


def test_large_fonts_and_constructor_validation():
    big = BetaExplorer(n_points=50, dpi=30, large_fonts=True, T=100, t=99, kind="cosine")
    assert big.font_size > 10 and big.plotted()["marker_t"] == 99
    assert big.axes["beta"].title.get_fontsize() >= 15
    with pytest.raises(ValueError, match="kind"):
        BetaExplorer(kind="exponential")
    with pytest.raises(ValueError, match="t must lie"):
        BetaExplorer(T=100, t=100)
    with pytest.raises(ValueError, match="T must lie"):
        BetaExplorer(T=5)


def test_guidance_explorer_updates_caches_and_reads_the_digit():
    from diffusion_course.models.unet import UNet, UNetConfig
    from diffusion_course.schedules import NoiseSchedule, make_betas
    from diffusion_course.widgets import GuidanceExplorer

    torch.manual_seed(0)
    model = UNet(UNetConfig(base_channels=8, channel_mults=(1, 2), num_res_blocks=1, attention_levels=(), mid_attention=False,
                            norm_groups=4, dropout=0.0, num_classes=10)).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    schedule = NoiseSchedule.from_betas(make_betas("linear", 100, 1e-4, 0.02))
    from diffusion_course.pretrained import load_classifier

    ex = GuidanceExplorer(model, schedule, n=4, steps=5, w=1.0, classifier=load_classifier()[0])
    first = ex.image.value
    assert first[:4] == b"\x89PNG" and "digit 3, w = 1" in ex.readout.value and ex.n_computed == 1
    n_read = ex.last["read_as_digit"]
    assert 0 <= ex.last["confident"] <= n_read <= 4 and f"reads {n_read}/4 as a 3" in ex.readout.value
    ex.w.value = 4.0
    assert ex.image.value != first and "w = 4" in ex.readout.value and ex.n_computed == 2
    ex.digit.value = 7
    assert "digit 7" in ex.readout.value and ex.n_computed == 3
    ex.digit.value = 3  # (3, w = 4) was computed before
    ex.w.value = 1.0  # back to the first setting: from the cache, nothing sampled again
    assert ex.image.value == first and ex.n_computed == 3
    assert tuple(ex.last["samples"].shape) == (4, 1, 28, 28)
    with pytest.raises(ValueError, match="w must lie in"):
        GuidanceExplorer(model, schedule, w=9.0)
    with pytest.raises(ValueError, match="digit"):
        GuidanceExplorer(model, schedule, digit=10)


def test_ddim_explorer_redraws_caches_and_matches_ddim_sample():
    from diffusion_course.models.unet import UNet, UNetConfig
    from diffusion_course.samplers import ddim_sample
    from diffusion_course.schedules import NoiseSchedule, make_betas
    from diffusion_course.widgets import DDIMExplorer, ddim_view

    torch.manual_seed(0)
    model = UNet(UNetConfig(base_channels=8, channel_mults=(1, 2), num_res_blocks=1, attention_levels=(), mid_attention=False,
                            norm_groups=4, dropout=0.0)).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    schedule = NoiseSchedule.from_betas(make_betas("linear", 100, 1e-4, 0.02))
    view = ddim_view(model, schedule, steps=5, eta=0.0, spacing="trailing", n=4)
    x_T = torch.randn((4, 1, 28, 28), generator=torch.Generator().manual_seed(0))
    want = ddim_sample(model, schedule, x_T.shape, steps=5, eta=0.0, spacing="trailing", clip_x0=1.0, x_T=x_T)
    assert torch.allclose(view["samples"], want) and view["trajectory"].shape == (6, 4, 1, 28, 28)
    ex = DDIMExplorer(model, schedule, steps=5, n=4)
    first = ex.image.value
    assert first[:4] == b"\x89PNG" and "5 steps, eta = 0" in ex.readout.value and ex.n_computed == 1
    ex.eta.value = 1.0
    assert ex.image.value != first and "eta = 1" in ex.readout.value and ex.n_computed == 2
    ex.spacing.value = "leading"
    assert "leading spacing (80, 60, 40, 20, ...)" in ex.readout.value
    ex.spacing.value, ex.eta.value = "uniform", 0.0
    assert ex.image.value == first and ex.n_computed == 3  # back to the first setting: from the cache
    with pytest.raises(ValueError, match="eta must lie in"):
        DDIMExplorer(model, schedule, eta=2.0)
    with pytest.raises(ValueError, match="spacing"):
        ddim_view(model, schedule, spacing="random")
