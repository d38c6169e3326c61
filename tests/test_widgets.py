"""The explorers. The beta_t explorer's numbers come from the pure function beta_explorer_state, checked here against
independent float64 formulas; one test checks that the view draws that state (and only redraws what it must)."""

from __future__ import annotations

import math
import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from diffusion_course.data.sets import digits, swiss_roll
from diffusion_course.teaching.beta_explorer import BetaExplorer
from diffusion_course.teaching.beta_explorer_state import beta_explorer_state


def _oracle_betas(kind: str, T: int, b1: float, bT: float) -> np.ndarray:
    """The four schedules written out again in numpy float64 from their definitions (not through the lib)."""
    if kind == "linear":
        return np.linspace(b1, bT, T)
    if kind == "quadratic":
        return np.linspace(math.sqrt(b1), math.sqrt(bT), T) ** 2
    if kind == "sigmoid":
        return b1 + (bT - b1) / (1 + np.exp(-np.linspace(-6, 6, T)))
    f = np.cos((np.arange(T + 1) / T + 0.008) / 1.008 * np.pi / 2) ** 2  # cosine, Nichol & Dhariwal eq. 17
    return np.minimum(1 - f[1:] / f[:-1], 0.999)


@pytest.mark.parametrize("kind", ["linear", "cosine", "quadratic", "sigmoid"])
@pytest.mark.parametrize("T,t", [(1000, 0), (1000, 250), (200, 199), (37, 18)])
def test_state_matches_the_formulas(kind, T, t):
    b1, bT = 2e-4, 0.03
    s = beta_explorer_state(kind, T, b1, bT, t)
    beta = _oracle_betas(kind, T, b1, bT)
    ab = np.cumprod(1 - beta)
    assert s.error is None and s.main is not None and s.compare is None and s.t == t
    np.testing.assert_allclose(s.main.beta, beta, rtol=1e-9)
    np.testing.assert_allclose(s.main.alpha_bar, ab, rtol=1e-9)
    np.testing.assert_allclose(s.main.snr, ab / (1 - ab), rtol=1e-9)
    assert s.main.alpha_bar_t == pytest.approx(ab[t], rel=1e-9)
    assert s.main.sqrt_alpha_bar_t == pytest.approx(math.sqrt(ab[t]), rel=1e-9)
    assert s.main.sqrt_one_minus_alpha_bar_t == pytest.approx(math.sqrt(1 - ab[t]), rel=1e-9)
    assert s.main.snr_t == pytest.approx(ab[t] / (1 - ab[t]), rel=1e-9)
    below = np.nonzero(ab / (1 - ab) < 1)[0]
    assert s.main.snr_below_1_from == (int(below[0]) if below.size else None)
    assert ("cosine" in " ".join(s.notes)) == (kind == "cosine")


def test_noised_data_is_q_sample_with_the_fixed_noise():
    """Points and digits: x_t = sqrt(ab_t) x_0 + sqrt(1 - ab_t) eps with the given eps, and over many points the
    moments of q(x_t | x_0) (mean sqrt(ab_t) x_0, variance 1 - ab_t) within their standard errors."""
    g = torch.Generator().manual_seed(0)
    x0 = swiss_roll(400, seed=0)
    eps = torch.randn(x0.shape, generator=g)
    images = digits()[0][:3]
    img_eps = torch.randn(images.shape, generator=g)
    s = beta_explorer_state("linear", 1000, 1e-4, 0.02, 300, points0=x0, points_eps=eps, images0=images, images_eps=img_eps)
    ab = np.cumprod(1 - np.linspace(1e-4, 0.02, 1000))[300]
    np.testing.assert_allclose(s.main.points, math.sqrt(ab) * x0.double().numpy() + math.sqrt(1 - ab) * eps.double().numpy(), atol=1e-5)
    np.testing.assert_allclose(s.main.images, math.sqrt(ab) * images.double().numpy() + math.sqrt(1 - ab) * img_eps.double().numpy(),
                               atol=1e-5)
    n = 20_000  # moments: one x_0 repeated, fresh noise
    x0_rep = torch.full((n, 2), 1.5)
    e = torch.randn((n, 2), generator=g)
    pts = beta_explorer_state("cosine", 500, 1e-4, 0.02, 400, points0=x0_rep, points_eps=e).main
    sd = math.sqrt(1 - pts.alpha_bar_t)
    assert abs(pts.points.mean() - 1.5 * pts.sqrt_alpha_bar_t) < 5 * sd / math.sqrt(2 * n)
    assert abs(pts.points.var() - (1 - pts.alpha_bar_t)) < 5 * (1 - pts.alpha_bar_t) * math.sqrt(2 / (2 * n))


def test_compare_overlays_a_second_schedule_of_the_same_T():
    s = beta_explorer_state("linear", 1000, 1e-4, 0.02, 500, compare="cosine")
    assert s.compare is not None and s.compare.kind == "cosine" and s.compare_kind == "cosine"
    cos = np.cumprod(1 - _oracle_betas("cosine", 1000, 0, 0))
    lin = np.cumprod(1 - _oracle_betas("linear", 1000, 1e-4, 0.02))
    np.testing.assert_allclose(s.compare.alpha_bar, cos, rtol=1e-9)
    np.testing.assert_allclose(s.main.alpha_bar, lin, rtol=1e-9)
    assert s.compare.snr_t == pytest.approx(cos[500] / (1 - cos[500]), rel=1e-9)
    # where SNR crosses 1 (alpha_bar = 1/2): the first t with alpha_bar_t < 1/2, for each schedule
    assert s.main.snr_below_1_from == int(np.nonzero(lin < 0.5)[0][0])
    assert s.compare.snr_below_1_from == int(np.nonzero(cos < 0.5)[0][0])
    assert s.main.snr_below_1_from < s.compare.snr_below_1_from  # the linear schedule loses its signal earlier
    assert [r.kind for r in s.rows] == ["linear", "cosine"]
    assert beta_explorer_state("linear", 100, 1e-4, 0.02, 5, compare="none").compare is None


def test_invalid_settings_give_one_error_text_and_bad_arguments_raise():
    s = beta_explorer_state("linear", 1000, 1e-4, 1.0, 10)
    assert s.main is None and s.compare is None and s.rows == ()
    assert s.error.startswith("Cannot build the linear schedule") and "beta_T must lie in" in s.error
    s = beta_explorer_state("cosine", 1000, 1e-4, 1.0, 10, compare="quadratic")  # cosine ignores beta_T; the comparison cannot
    assert s.main is None and "quadratic (the comparison)" in s.error
    assert beta_explorer_state("cosine", 1000, 1e-4, 1.0, 10).error is None
    notes = beta_explorer_state("linear", 1000, 0.02, 1e-4, 10).notes
    assert any("decreases" in n for n in notes)
    weak = beta_explorer_state("linear", 1000, 1e-5, 1e-4, 10)
    assert any(f"alpha_bar_T = {weak.main.alpha_bar[-1]:.3g}" in n for n in weak.notes)
    assert beta_explorer_state("linear", 1000, 1e-4, 0.02, 10).notes == ()
    with pytest.raises(ValueError, match="kind must be one of"):
        beta_explorer_state("exponential", 1000, 1e-4, 0.02, 10)
    with pytest.raises(ValueError, match="compare must be one of"):
        beta_explorer_state("linear", 1000, 1e-4, 0.02, 10, compare="exp")
    with pytest.raises(ValueError, match=r"t must lie in \[0, 99\]"):
        beta_explorer_state("linear", 100, 1e-4, 0.02, 100)
    with pytest.raises(ValueError, match="T must lie in"):
        beta_explorer_state("linear", 5, 1e-4, 0.02, 1)


def _readout_rows(html_text: str) -> list[list[str]]:
    import re

    rows = re.findall(r"<tr class='be-row'>(.*?)</tr>", html_text)
    return [[re.sub(r"<[^>]+>", "", c).replace("&nbsp;", "").strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", r)] for r in rows]


def test_the_view_draws_the_state_and_redraws_only_what_changed():
    """The one rendering test: controls -> state -> artists, read-out table, message and one PNG in one Output."""
    figs_before = plt.get_fignums()
    e = BetaExplorer(n_points=300, dpi=40)
    fig, out = e.figure, e.out
    d, s = e.plotted(), e.state
    np.testing.assert_array_equal(d["beta"], s.main.beta)
    np.testing.assert_array_equal(d["alpha_bar"], s.main.alpha_bar)
    assert d["marker_t"] == e.t.value == 250 and e.t.max == 999 and e.schedule.T == 1000
    np.testing.assert_allclose(d["points"], s.main.points)
    assert len(out.outputs) == 1 and "image/png" in out.outputs[0]["data"]
    rows = _readout_rows(e.readout.value)
    assert rows[0][:3] == ["linear", "250 (251)", f"{s.main.alpha_bar_t:.4g}"] and rows[1] == [""] * len(rows[0])
    png, full = e.png(), e.n_full_draws

    e.t.value = 500  # moving t: only the t-dependent artists are redrawn
    assert e.n_full_draws == full and e.png() != png
    assert e.plotted()["marker_alpha_bar"] == pytest.approx(e.state.main.alpha_bar_t)
    np.testing.assert_allclose(e.plotted()["points"], e.state.main.points)

    e.compare.value = "cosine"
    d = e.plotted()
    np.testing.assert_array_equal(d["compare_alpha_bar"], e.state.compare.alpha_bar)
    np.testing.assert_allclose(d["compare_points"], e.state.compare.points)
    assert _readout_rows(e.readout.value)[1][:2] == ["cosine (dashed)", "500 (501)"]
    assert d["image"].shape[0] > 2 * 9  # three rows of digits: x_0, x_t solid, x_t dashed

    with e.hold():
        e.T.value = 200  # t keeps its place along the chain
        e.kind.value = "quadratic"
    assert e.t.max == 199 and e.t.value == round(500 / 999 * 199) and len(e.plotted()["beta"]) == 200
    assert e.plotted()["marker_t"] == e.t.value

    e.beta_T.value = 1.0  # invalid: one message, no stale numbers, still one PNG in the Output
    assert e.schedule is None and e.message.value.count("Cannot build") == 1 and "beta_T must lie in" in e.message.value
    assert _readout_rows(e.readout.value)[0][0] == "(no schedule)" and e.readout.value.count("be-row") == 2
    assert len(out.outputs) == 1 and "image/png" in out.outputs[0]["data"]
    draws = e.n_draws
    e.t.value = 10  # moving t while the schedule is invalid does nothing
    assert e.n_draws == draws
    e.beta_T.value = 0.02
    assert e.schedule is not None and "Cannot build" not in e.message.value
    assert f"quadratic: alpha_bar_T = {e.state.main.alpha_bar[-1]:.3g}" in e.message.value  # T = 200 with T = 1000 betas
    assert e.figure is fig and e.out is out and len(out.outputs) == 1
    assert plt.get_fignums() == figs_before  # never registered with pyplot, so no stray figure is shown
    assert [c for c in e.widget.children if type(c).__name__ == "Output"] == [out]
    assert e.message.layout.height and e.readout.layout.height  # fixed heights: the figure never jumps
    assert e.t.layout.width == "99%"  # with its margin, inside the output area


def test_large_fonts_and_constructor_validation():
    big = BetaExplorer(n_points=50, dpi=30, large_fonts=True, T=100, t=99, kind="cosine", compare="linear")
    assert big.font_size > 10 and big.plotted()["marker_t"] == 99 and big.state.compare.kind == "linear"
    with pytest.raises(ValueError, match="kind"):
        BetaExplorer(kind="exponential")
    with pytest.raises(ValueError, match="compare"):
        BetaExplorer(compare="exponential")
    with pytest.raises(ValueError, match="t must lie"):
        BetaExplorer(T=100, t=100)
    with pytest.raises(ValueError, match="T must lie"):
        BetaExplorer(T=5)


def test_guidance_explorer_updates_caches_and_reads_the_digit():
    from diffusion_course.maths.schedules import NoiseSchedule, make_betas
    from diffusion_course.models.unet import UNet, UNetConfig
    from diffusion_course.teaching.guidance_explorer import GuidanceExplorer

    torch.manual_seed(0)
    model = UNet(UNetConfig(base_channels=8, channel_mults=(1, 2), num_res_blocks=1, attention_levels=(), mid_attention=False,
                            norm_groups=4, dropout=0.0, num_classes=10)).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    schedule = NoiseSchedule.from_betas(make_betas("linear", 100, 1e-4, 0.02))
    from diffusion_course.scoring.reference import load_classifier

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
    from diffusion_course.maths.samplers import ddim_sample
    from diffusion_course.maths.schedules import NoiseSchedule, make_betas
    from diffusion_course.models.unet import UNet, UNetConfig
    from diffusion_course.teaching.ddim_explorer import DDIMExplorer, ddim_view

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


def test_partial_redraws_match_a_fresh_figure():
    """The view redraws only what changed and reuses cached regions; after any sequence of changes its PNG must be
    pixel for pixel the PNG of a new explorer built straight at the same settings."""
    import io

    from PIL import Image

    def pixels(ex):
        return np.asarray(Image.open(io.BytesIO(ex.png())))

    e = BetaExplorer(n_points=100, dpi=40)
    rng = np.random.default_rng(0)
    for _ in range(12):
        c = int(rng.integers(5))
        if c == 0:
            e.kind.value = str(rng.choice(["linear", "cosine", "quadratic", "sigmoid"]))
        elif c == 1:
            e.compare.value = str(rng.choice(["none", "linear", "cosine"]))
        elif c == 2:
            e.T.value = int(rng.choice([200, 500, 1000]))
        elif c == 3:
            e.beta_T.value = float(rng.choice([0.02, 0.05, 1.0]))
        else:
            e.t.value = int(rng.integers(0, e.T.value))
        fresh = BetaExplorer(n_points=100, dpi=40, kind=e.kind.value, compare=e.compare.value, T=e.T.value, t=e.t.value,
                             beta_1=e.beta_1.value, beta_T=e.beta_T.value)
        np.testing.assert_array_equal(pixels(e), pixels(fresh))


def test_T_there_and_back_keeps_the_learners_t():
    """T 1000 -> 980 -> 1000 gives back the t the learner set. Rescaling the already rescaled t drifted: t = 275 came
    back as 274 (and, through the keyboard's steps of ten, 1000 -> 990 -> 980 -> 990 -> 1000, t = 250 as 251)."""
    e = BetaExplorer(n_points=50, dpi=20)
    for t0, path in ((275, (980, 1000)), (259, (980, 1000)), (250, (990, 980, 990, 1000)), (999, (10, 1000)), (0, (500, 1000))):
        e.t.value = t0
        for T in path:
            e.T.value = T
            assert e.t.max == T - 1 and e.t.value == min(round(t0 * (T - 1) / 999), T - 1)  # the same fraction of the chain
            assert e.state.t == e.t.value and e.plotted()["marker_t"] == e.t.value
        assert e.t.value == t0, f"T 1000 -> {' -> '.join(map(str, path))} took t = {t0} to {e.t.value}"
    e.T.value = 500
    e.t.value = 100  # a t the learner picks under T = 500 is the one kept from then on
    e.T.value = 1000
    assert e.t.value == round(100 * 999 / 499)
    e.T.value = 500
    assert e.t.value == 100


def test_beta_explorer_fits_the_lecture_hall():
    """At the default size the figure fits JupyterLab's 844 px output area at 1280 x 720 (file browser open) in a
    height that leaves the controls on screen, and every text in it is at least 12 px (tests/test_browser.py measures the
    whole explorer, read-out table included, on the page)."""
    import io

    from matplotlib.text import Text
    from PIL import Image

    e = BetaExplorer(n_points=50, compare="cosine")
    width, height = Image.open(io.BytesIO(e.png())).size
    assert width <= 830 and height <= 400, (width, height)
    texts = [t for t in e.figure.findobj(Text) if t.get_visible() and t.get_text().strip()]
    assert len(texts) > 30  # titles, labels, tick labels, legends
    small = sorted({(t.get_text(), round(t.get_fontsize() * e.dpi / 72, 1)) for t in texts if t.get_fontsize() * e.dpi / 72 < 12})
    assert not small, f"figure text under 12 px: {small[:5]}"
    head = re.findall(r"<th[^>]*font-family:var\(--jp-ui-font-family[^>]*>([^<]*)</th>", e.readout.value)
    assert len(head) == 7, "the read-out's headers are set in the page's narrower font (the numbers in monospace)"


def _small_unet(**extra):
    from diffusion_course.models.unet import UNet, UNetConfig

    torch.manual_seed(0)
    model = UNet(UNetConfig(base_channels=8, channel_mults=(1, 2), num_res_blocks=1, attention_levels=(), mid_attention=False,
                            norm_groups=4, dropout=0.0, **extra)).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    return model


def test_explorers_display_a_picture_beside_the_widget():
    """What a notebook stores for an explorer: the widget view, a PNG of the picture it shows and a line of text, so an
    untrusted or reopened notebook (no widget manager, no widget state) shows the picture, not ``VBox(children=...``."""
    import base64

    from diffusion_course.maths.schedules import NoiseSchedule, make_betas
    from diffusion_course.teaching.ddim_explorer import DDIMExplorer
    from diffusion_course.teaching.guidance_explorer import GuidanceExplorer

    schedule = NoiseSchedule.from_betas(make_betas("linear", 100, 1e-4, 0.02))
    for ex in (BetaExplorer(n_points=50, dpi=20), DDIMExplorer(_small_unet(), schedule, steps=3, n=4),
               GuidanceExplorer(_small_unet(num_classes=10), schedule, steps=5, n=4)):
        data = ex._repr_mimebundle_()
        assert data["application/vnd.jupyter.widget-view+json"]["model_id"] == ex.widget.model_id
        assert base64.b64decode(data["image/png"]) == ex.png() and ex.png()[:4] == b"\x89PNG"
        assert "live explorer" in data["text/plain"] and "VBox" not in data["text/plain"]


def test_ddim_steps_slider_stops_are_useful_step_counts():
    """The steps slider moves over about 17 stops roughly 25% apart (a drag of 60 px moves a few stops, never 20 -> 1);
    a steps value given to the constructor is one of the stops."""
    from diffusion_course.maths.schedules import NoiseSchedule, make_betas
    from diffusion_course.teaching.ddim_explorer import DDIMExplorer

    schedule = NoiseSchedule.from_betas(make_betas("linear", 100, 1e-4, 0.02))
    ex = DDIMExplorer(_small_unet(), schedule, steps=7, n=4)
    stops = list(ex.steps.options)
    assert stops == sorted(stops) and stops[0] == 1 and stops[-1] == 100 and 7 in stops and len(stops) <= 20
    assert all(b / a <= 2.0 for a, b in zip(stops[1:], stops[2:]))  # no gap wider than a doubling
    ex.steps.value = 10
    assert ex.readout.value.startswith("10 steps,") and len(ex.last["timesteps"]) == 10


def _recording_threads(model: torch.nn.Module) -> list[int]:
    """torch's intra-op thread count at every forward call of ``model`` (a pre-hook appends to the returned list)."""
    seen: list[int] = []
    model.register_forward_pre_hook(lambda module, args: seen.append(torch.get_num_threads()))
    return seen


@pytest.mark.skipif((__import__("os").cpu_count() or 1) < 2, reason="needs 2 CPUs to tell 1 thread from 2")
def test_explorers_compute_on_one_thread_and_restore_the_setting():
    """On a busy 2-core machine torch's two threads make a new explorer setting many times slower than one thread, so
    the DDIM, guidance and solver explorers compute on ``threads`` threads (default 1) and give torch its setting back;
    ``threads=None`` leaves torch's setting alone; a bad ``threads`` names the argument and the range."""
    from diffusion_course.maths.schedules import NoiseSchedule, make_betas
    from diffusion_course.teaching.ddim_explorer import DDIMExplorer
    from diffusion_course.teaching.guidance_explorer import GuidanceExplorer
    from diffusion_course.teaching.solver_explorer import SolverExplorer

    schedule = NoiseSchedule.from_betas(make_betas("linear", 100, 1e-4, 0.02))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for threads, expect in ((1, 1), (None, 2), (2, 2)):
            builds = (lambda m: DDIMExplorer(m, schedule, steps=3, n=4, threads=threads),
                      lambda m: GuidanceExplorer(m, schedule, steps=5, n=4, threads=threads),
                      lambda m: SolverExplorer(m, schedule, calls=3, n=4, threads=threads))
            for build, extra in zip(builds, ({}, {"num_classes": 10}, {})):
                model = _small_unet(**extra)
                seen = _recording_threads(model)
                ex = build(model)
                ex.seed.value = 1  # a new setting, computed again
                assert seen and set(seen) == {expect}, (type(ex).__name__, threads, sorted(set(seen)))
                assert torch.get_num_threads() == 2  # given back
        for bad in (0, (__import__("os").cpu_count() or 1) + 1):
            with pytest.raises(ValueError, match=r"threads.*1"):
                DDIMExplorer(_small_unet(), schedule, steps=3, n=4, threads=bad)
    finally:
        torch.set_num_threads(before)
