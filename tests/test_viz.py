"""viz: every plot returns a figure (or an HTML animation) whose axes carry a title and labels; image grids have the
documented shape and range; animations stay small for typical inputs; bad input raises ValueError."""

from __future__ import annotations

import re

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from diffusion_course.teaching import viz

matplotlib.use("Agg")  # headless: figures are inspected, never shown

KB = 1000
ANIMATION_LIMIT = 600 * KB  # "a few hundred KB" per animation for the typical inputs below


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _points(n: int = 300, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))


def _images(b: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, 1, 28, 28, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _digit_like(b: int, seed: int = 0) -> torch.Tensor:
    """(b, 1, 28, 28) images in [-1, 1] with digit-like structure: a bright ring on a dark background."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    out = []
    for _ in range(b):
        cx, cy, r = (torch.rand(3, generator=g) * torch.tensor([8.0, 8.0, 4.0]) + torch.tensor([10.0, 10.0, 5.0])).tolist()
        ring = ((xx - cx) ** 2 + (yy - cy) ** 2).sqrt().sub(r).abs() < 1.5
        out.append(ring.float() * 2 - 1)
    return torch.stack(out).unsqueeze(1)


def _assert_labelled(ax: plt.Axes, *, ylabel: bool = True) -> None:
    assert ax.get_title(), "axis has no title"
    assert ax.get_xlabel(), f"axis {ax.get_title()!r} has no x label"
    if ylabel:
        assert ax.get_ylabel(), f"axis {ax.get_title()!r} has no y label"


def _frames(html: str) -> int:
    return len(re.findall(r"frames\[\d+\] = ", html))


# ---------------------------------------------------------------------------------------------------------- image_grid
def test_image_grid_shape_and_range():
    imgs = _images(6)
    grid = viz.image_grid(imgs, nrow=3, pad=1)
    assert grid.shape == (2 * 29 + 1, 3 * 29 + 1)  # 2 rows x 3 columns of 28x28 with 1-pixel padding
    assert grid.dtype == np.float32
    assert grid.min() >= 0 and grid.max() <= 1


def test_image_grid_maps_minus_one_to_zero_and_one_to_one():
    imgs = torch.stack([torch.full((1, 4, 4), -1.0), torch.full((1, 4, 4), 1.0)])
    grid = viz.image_grid(imgs, nrow=2, pad=1)
    assert np.allclose(grid[1:5, 1:5], 0.0)  # first image: -1 -> black
    assert np.allclose(grid[1:5, 6:10], 1.0)  # second image: 1 -> white
    assert np.allclose(grid[0], 1.0)  # padding is white


def test_image_grid_places_images_row_major_and_clamps():
    imgs = torch.linspace(-0.5, 0.5, 4).reshape(4, 1, 1, 1).expand(4, 1, 3, 3).clone()
    imgs[3] = 5.0  # out of range: clamped to 1
    grid = viz.image_grid(imgs, nrow=2, pad=1)
    cells = [grid[1 + r * 4 : 4 + r * 4, 1 + c * 4 : 4 + c * 4] for r in range(2) for c in range(2)]
    expect = [(v + 1) / 2 for v in torch.linspace(-0.5, 0.5, 4)[:3].tolist()] + [1.0]
    for cell, e in zip(cells, expect):
        assert np.allclose(cell, e, atol=1e-6)


def test_image_grid_colour_keeps_channels():
    grid = viz.image_grid(torch.zeros(5, 3, 8, 8))
    assert grid.ndim == 3 and grid.shape[-1] == 3


def test_image_grid_rejects_wrong_rank():
    with pytest.raises(ValueError, match="images"):
        viz.image_grid(torch.zeros(1, 28, 28))


# ---------------------------------------------------------------------------------------------------- static plots
def test_show_images_is_titled_and_labelled():
    fig = viz.show_images(_images(), "eight images")
    assert isinstance(fig, plt.Figure)
    ax = fig.axes[0]
    assert ax.get_title() == "eight images"
    _assert_labelled(ax, ylabel=False)


def test_scatter_2d_titled_labelled_and_uses_given_axis():
    fig, ax = plt.subplots()
    out = viz.scatter_2d(_points(), "cloud", ax=ax)
    assert out is fig
    assert ax.get_title() == "cloud"
    _assert_labelled(ax)
    assert ax.collections[0].get_offsets().shape == (300, 2)


def test_plot_trajectories_titled_labelled_and_checks_shape():
    traj = torch.cumsum(torch.randn(11, 50, 2, generator=torch.Generator().manual_seed(0)) * 0.1, 0)
    fig = viz.plot_trajectories(traj, "paths", n_paths=10)
    ax = fig.axes[0]
    _assert_labelled(ax)
    assert len(ax.get_lines()) == 10  # one path per point shown
    assert ax.get_legend() is not None
    with pytest.raises(ValueError, match="traj"):
        viz.plot_trajectories(torch.zeros(11, 50, 3), "bad")


def test_plot_curve_titled_labelled_with_smoothing():
    values = list(np.linspace(1, 0.1, 200))
    fig = viz.plot_curve(values, "loss", smooth=20)
    ax = fig.axes[0]
    _assert_labelled(ax)
    lines = ax.get_lines()
    assert len(lines) == 2  # raw and running mean
    assert np.allclose(lines[1].get_ydata()[0], np.mean(values[:20]))
    fig = viz.plot_curve(values[:5], "short", smooth=20, logy=True)
    assert len(fig.axes[0].get_lines()) == 1 and fig.axes[0].get_yscale() == "log"


def test_show_image_rows_one_titled_row_per_entry():
    x01 = torch.rand(8, 1, 28, 28)
    x01[0] = 0.0  # first image black in [0, 1]
    fig = viz.show_image_rows({"clean": x01, "noisy": x01.flip(0)}, "rows", value_range=(0, 1))
    assert fig._suptitle is not None and fig._suptitle.get_text() == "rows"
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == ["clean", "noisy"]
    assert axes[-1].get_xlabel()
    shown = axes[0].images[0].get_array()
    assert np.allclose(shown[1:29, 1:29], 0.0)  # value_range (0, 1): 0 is shown black
    with pytest.raises(ValueError, match="rows"):
        viz.show_image_rows({}, "empty")
    with pytest.raises(ValueError, match="value_range"):
        viz.show_image_rows({"a": x01}, "bad", value_range=(1, 0))


def test_scatter_panels_titled_labelled_and_hides_spare_axes():
    clouds = {"a": _points(100, 1), "b": _points(100, 2), "c": _points(100, 3)}
    fig = viz.scatter_panels(clouds, "panels", ncols=2)
    assert fig._suptitle.get_text() == "panels"
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["a", "b", "c"]
    for ax in visible:
        _assert_labelled(ax)
    assert len(fig.axes) == 4 and not fig.axes[3].get_visible()
    with pytest.raises(ValueError, match="clouds"):
        viz.scatter_panels({"bad": torch.zeros(5, 3)}, "bad")


def test_plot_heatmap_titled_labelled_with_colour_bar():
    values = torch.randn(20, 8)
    fig = viz.plot_heatmap(values, "heat", "column", "row", colorbar_label="value", extent=(0, 8, 20, 0))
    ax = fig.axes[0]
    _assert_labelled(ax)
    assert len(fig.axes) == 2  # the heat map and its colour bar
    assert fig.axes[1].get_ylabel() == "value"
    assert np.allclose(ax.images[0].get_array(), values.numpy())
    assert tuple(ax.images[0].get_extent()) == (0, 8, 20, 0)
    with pytest.raises(ValueError, match="values"):
        viz.plot_heatmap(torch.zeros(3), "bad", "x", "y")


def test_generative_models_schematic_titles_every_row():
    fig = viz.generative_models_schematic()
    assert fig._suptitle is not None and fig._suptitle.get_text()
    assert len(fig.axes) == 3
    titles = [ax.get_title(loc="left") for ax in fig.axes]
    assert [t.split(":")[0] for t in titles] == ["GAN", "VAE", "Diffusion"]
    for ax in fig.axes:
        assert ax.get_xlabel()
        assert ax.texts, "each row draws labelled boxes"


# ------------------------------------------------------------------------------------------------------ animations
def _swiss_like_trajectory(n: int, steps: int) -> torch.Tensor:
    """(steps+1, n, 2): noise at the start, a spiral at the end, blended linearly (like a reverse process)."""
    g = torch.Generator().manual_seed(0)
    s = torch.rand(n, generator=g) * 3 * torch.pi + 1.5 * torch.pi
    spiral = torch.stack([s * torch.cos(s), s * torch.sin(s)], 1) / 6 + torch.randn(n, 2, generator=g) * 0.05
    noise = torch.randn(n, 2, generator=g)
    w = torch.linspace(0, 1, steps + 1).reshape(-1, 1, 1)
    return (1 - w) * noise + w * spiral


def test_animate_points_small_labelled_and_closes_its_figure():
    before = plt.get_fignums()
    traj = _swiss_like_trajectory(500, 1000)  # a typical chapter-4 run: 1000 steps, a few hundred points
    html = viz.animate_points(traj, "reverse process", frames=40, labels=[f"step {k}" for k in range(1001)])
    data = html.data
    assert _frames(data) == 40
    assert len(data) < ANIMATION_LIMIT, f"animation is {len(data) / KB:.0f} KB"
    assert plt.get_fignums() == before  # no stray figure left to be shown twice


def test_animate_points_keeps_short_trajectories_whole():
    html = viz.animate_points(_swiss_like_trajectory(50, 5), "short", frames=40)
    assert _frames(html.data) == 6  # never more frames than stored steps


def test_animate_images_small_and_closes_its_figure():
    before = plt.get_fignums()
    clean = _digit_like(16)
    noise = torch.randn(16, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    w = torch.linspace(0, 1, 101).reshape(-1, 1, 1, 1, 1)
    traj = ((1 - w) * noise + w * clean).clamp(-1, 1)  # (101, 16, 1, 28, 28): noisy frames are the expensive ones
    html = viz.animate_images(traj, "denoising", frames=30)
    data = html.data
    assert _frames(data) == 30
    assert len(data) < ANIMATION_LIMIT, f"animation is {len(data) / KB:.0f} KB"
    assert plt.get_fignums() == before


def test_animations_work_offline_and_show_frame_0_without_scripts() -> None:
    """No CDN link (the course runs offline), button glyphs without Font Awesome, and frame 0 as the <img>'s own src,
    so an untrusted notebook, whose scripts do not run, still shows a picture."""
    import base64
    import re

    from diffusion_course.teaching.viz import animate_images, animate_points

    for html in (animate_images(torch.rand(4, 3, 1, 8, 8) * 2 - 1, "images", frames=4).data,
                 animate_points(torch.randn(5, 40, 2), "points", frames=5).data):
        assert "http://" not in html and "https://" not in html
        assert 'class="fa' not in html
        img = re.search(r'<img id="_anim_img[0-9a-f]+" src="data:image/(?:png|jpeg);base64,([A-Za-z0-9+/=]+)">', html)
        assert img, "frame 0 is not the image's src"
        first = re.search(r'frames\[0\] = "data:image/[a-z]+;base64,([^"]+)"', html).group(1)
        assert base64.b64decode(img.group(1)) == base64.b64decode(re.sub(r"\\\n|\s", "", first))


def test_animation_buttons_use_ascii_labels_and_points_frames_read_on_a_projector() -> None:
    """Every player button is labelled in plain ASCII (HTML entities for < and >), which every font draws: Unicode
    media symbols such as U+23EE show as empty boxes in fonts that lack them. The points animation's frames are at
    least 450 px wide, readable at 1280x720 (matplotlib's old default here was 259 px)."""
    import base64
    import html as html_lib
    from io import BytesIO

    from PIL import Image

    html = viz.animate_points(torch.randn(5, 40, 2), "points", frames=5).data
    labels = [html_lib.unescape(s).strip() for s in re.findall(r"<button[^>]*>(.*?)</button>", html, re.S)]
    assert len(labels) == 9 and all(label and label.isascii() and "&#" not in label for label in labels), labels
    assert labels == ["-", "|<<", "<|", "<", "||", ">", "|>", ">>|", "+"]
    img = re.search(r'<img id="_anim_img[0-9a-f]+" src="data:image/png;base64,([A-Za-z0-9+/=]+)">', html).group(1)
    assert Image.open(BytesIO(base64.b64decode(img))).width >= 450
