"""Plotting helpers shared by every chapter: image grids, 2-D scatter trajectories and small animations.

Every function returns the matplotlib Figure (or an HTML animation) and gives each axis a title and labels.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Mapping, Sequence
from io import BytesIO
from pathlib import Path
from tempfile import TemporaryDirectory

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib import animation

from .._internal.validate import check_positive_int, check_range

__all__ = [
    "image_grid",
    "show_images",
    "scatter_2d",
    "plot_trajectories",
    "animate_points",
    "animate_images",
    "plot_curve",
    "show_image_rows",
    "scatter_panels",
    "plot_heatmap",
    "generative_models_schematic",
]


def image_grid(images: torch.Tensor, nrow: int | None = None, pad: int = 1) -> np.ndarray:
    """Tile (B, C, H, W) images in [-1, 1] into one array in [0, 1] (C = 1 or 3) with ``nrow`` images per row (as in
    torchvision's ``make_grid``; default about sqrt(B)) and as many rows as needed."""
    if nrow is not None:
        check_positive_int(nrow, "nrow")
    check_positive_int(pad, "pad", 0)
    if images.ndim != 4:
        raise ValueError(f"images must have shape (B, C, H, W); got {tuple(images.shape)}")
    x = ((images.detach().float().cpu().clamp(-1, 1) + 1) / 2).numpy()
    B, C, H, W = x.shape
    per_row = nrow or math.ceil(math.sqrt(B))  # images per row (torchvision's make_grid calls it nrow too)
    rows = math.ceil(B / per_row)
    grid = np.ones((rows * (H + pad) + pad, per_row * (W + pad) + pad, C), dtype=np.float32)
    for i in range(B):
        r, c = divmod(i, per_row)
        grid[pad + r * (H + pad) : pad + r * (H + pad) + H, pad + c * (W + pad) : pad + c * (W + pad) + W] = x[i].transpose(1, 2, 0)
    return grid[..., 0] if C == 1 else grid


def show_images(images: torch.Tensor, title: str, nrow: int | None = None, ax: plt.Axes | None = None, size: float = 4.0) -> plt.Figure:
    """Show a batch of images in [-1, 1] as one grid with a title."""
    if nrow is not None:
        check_positive_int(nrow, "nrow")
    check_range(size, "size", 0.0, 100.0, open_low=True)
    grid = image_grid(images, nrow)
    if ax is None:
        fig, ax = plt.subplots(figsize=(size, size * grid.shape[0] / grid.shape[1]))
    else:
        fig = ax.figure
    ax.imshow(grid, cmap="gray" if grid.ndim == 2 else None, vmin=0, vmax=1)
    ax.set_title(title)
    ax.set_xlabel(f"{images.shape[0]} images, {images.shape[-2]}x{images.shape[-1]} pixels")
    ax.set_xticks([])
    ax.set_yticks([])
    return fig


def scatter_2d(points: torch.Tensor, title: str, ax: plt.Axes | None = None, lim: float = 3.0, **kw) -> plt.Figure:
    """Scatter (N, 2) points with equal axes, a title and x1/x2 labels."""
    check_range(lim, "lim", 0.0, math.inf, open_low=True, open_high=True)
    if ax is None:
        fig, ax = plt.subplots(figsize=(4, 4))
    else:
        fig = ax.figure
    p = points.detach().cpu().numpy()
    ax.scatter(p[:, 0], p[:, 1], s=kw.pop("s", 3), alpha=kw.pop("alpha", 0.6), **kw)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_title(title)
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    return fig


def plot_trajectories(traj: torch.Tensor, title: str, ax: plt.Axes | None = None, lim: float = 3.0, n_paths: int = 40) -> plt.Figure:
    """Draw the paths of ``n_paths`` points through a (steps+1, N, 2) trajectory: grey lines, start (o) and end (x)."""
    check_range(lim, "lim", 0.0, math.inf, open_low=True, open_high=True)
    check_positive_int(n_paths, "n_paths")
    if traj.ndim != 3 or traj.shape[-1] != 2:
        raise ValueError(f"traj must have shape (steps+1, N, 2); got {tuple(traj.shape)}")
    if ax is None:
        fig, ax = plt.subplots(figsize=(4.5, 4.5))
    else:
        fig = ax.figure
    p = traj[:, :n_paths].detach().cpu().numpy()
    for i in range(p.shape[1]):
        ax.plot(p[:, i, 0], p[:, i, 1], color="0.6", lw=0.6, alpha=0.8)
    ax.scatter(p[0, :, 0], p[0, :, 1], s=12, marker="o", label="start", zorder=3)
    ax.scatter(p[-1, :, 0], p[-1, :, 1], s=18, marker="x", label="end", zorder=3)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title(title)
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    return fig


def _palette_png(match: re.Match, colors: int) -> str:
    """Re-encode one embedded base64 PNG frame with a ``colors``-colour palette (about 3x smaller for plots)."""
    from PIL import Image

    raw = base64.b64decode(re.sub(r"[^A-Za-z0-9+/=]", "", match.group(1)))
    out = BytesIO()
    Image.open(BytesIO(raw)).convert("RGB").quantize(colors=colors).save(out, format="png", optimize=True)
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode("ascii")


def _jshtml(anim: animation.Animation, interval: int, frame_format: str = "png", jpeg_quality: int | None = None,
            png_colors: int | None = None) -> str:
    """``anim.to_jshtml(default_mode="once")`` with smaller frames: JPEG (with ``jpeg_quality``) for noisy images, or
    PNG frames re-encoded with a ``png_colors``-colour palette for plots."""
    writer = animation.HTMLWriter(fps=1000 / interval, embed_frames=True, default_mode="once")
    writer.frame_format = frame_format
    savefig_kwargs = {"pil_kwargs": {"quality": jpeg_quality}} if frame_format == "jpeg" and jpeg_quality else {}
    with TemporaryDirectory() as tmp:
        path = Path(tmp, "animation.html")
        anim.save(str(path), writer=writer, savefig_kwargs=savefig_kwargs)
        html = path.read_text()
    if frame_format == "png" and png_colors:
        html = re.sub(r"data:image/png;base64,([A-Za-z0-9+/=\\\s]+)", lambda m: _palette_png(m, png_colors), html)
    return _offline_and_first_frame(html)


# Button labels in plain ASCII, which every font draws: matplotlib's template uses Font Awesome icons from a CDN, which
# fail offline, and Unicode media symbols such as U+23EE/U+23ED are missing from many fonts (they show as empty boxes).
# Each button keeps matplotlib's tooltip ("First frame", "Play", ...).
_ICONS = {"fa-minus": "-", "fa-fast-backward": "|&lt;&lt;", "fa-step-backward": "&lt;|", "fa-play fa-flip-horizontal": "&lt;",
          "fa-pause": "||", "fa-play": "&gt;", "fa-step-forward": "|&gt;", "fa-fast-forward": "&gt;&gt;|", "fa-plus": "+"}


def _offline_and_first_frame(html: str) -> str:
    """Make matplotlib's JS animation work offline and before its script runs: drop the CDN stylesheet, draw the
    buttons with Unicode glyphs, and put frame 0 in the ``<img>`` itself, so an untrusted notebook (scripts blocked)
    or a freshly reopened one shows the first frame instead of an empty box."""
    html = re.sub(r"<link[^>]*font-awesome[^>]*>\s*", "", html)
    html = re.sub(r'<i class="fa ([a-z -]+)"></i>', lambda m: _ICONS.get(m.group(1), m.group(1)), html)
    first = re.search(r'frames\[0\] = "(data:image/[a-z]+;base64,[^"]+)"', html)
    if first:
        src = re.sub(r"\\\n|\s", "", first.group(1))
        html = re.sub(r'<img id="(_anim_img[0-9a-f]+)">', lambda m: f'<img id="{m.group(1)}" src="{src}">', html, count=1)
    return html


_POINTS_FIGSIZE, _POINTS_DPI = (6.0, 6.0), 80  # animate_points: 480 x 480 px frames


def _frame_indices(n: int, frames: int) -> list[int]:
    return sorted(set(np.linspace(0, n - 1, min(frames, n)).round().astype(int).tolist()))


def animate_points(traj: torch.Tensor, title: str, frames: int = 40, lim: float = 3.0, labels: Sequence[str] | None = None, interval: int = 80):
    """A JS/HTML animation (IPython HTML) of (steps+1, N, 2) points, ``frames`` frames, each titled with its step.

    ``labels`` names each stored step (e.g. "t = 999"); by default the frame index. Kept small: a few hundred KB.
    """
    check_positive_int(frames, "frames")
    check_range(lim, "lim", 0.0, math.inf, open_low=True, open_high=True)
    check_positive_int(interval, "interval")
    from IPython.display import HTML

    idx = _frame_indices(traj.shape[0], frames)
    p = traj.detach().cpu().numpy()
    # 480 x 480 px with 13-15 px text: readable on a 1280x720 projector, and the player still fits below it
    fig, ax = plt.subplots(figsize=_POINTS_FIGSIZE, dpi=_POINTS_DPI)
    sc = ax.scatter(p[idx[0], :, 0], p[idx[0], :, 1], s=8, alpha=0.6, linewidths=0)  # no marker edges: smaller frames
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_xlabel("$x_1$", fontsize=13)
    ax.set_ylabel("$x_2$", fontsize=13)
    ax.tick_params(labelsize=12)
    fig.subplots_adjust(left=0.13, right=0.97, bottom=0.1, top=0.86)

    def update(k: int):
        sc.set_offsets(p[idx[k]])
        ax.set_title(f"{title}\n{labels[idx[k]] if labels else f'frame {idx[k]}'}", fontsize=13)
        return (sc,)

    anim = animation.FuncAnimation(fig, update, frames=len(idx), interval=interval, blit=False)
    html = HTML(_jshtml(anim, interval, png_colors=64))  # a 64-colour palette: frames about 3x smaller
    plt.close(fig)
    return html


def animate_images(traj: torch.Tensor, title: str, frames: int = 30, nrow: int | None = None, labels: Sequence[str] | None = None, interval: int = 100):
    """A JS/HTML animation of an image trajectory (steps+1, B, C, H, W) in [-1, 1], shown as a grid per frame."""
    check_positive_int(frames, "frames")
    if nrow is not None:
        check_positive_int(nrow, "nrow")
    check_positive_int(interval, "interval")
    from IPython.display import HTML

    idx = _frame_indices(traj.shape[0], frames)
    grids = [image_grid(traj[i], nrow) for i in idx]
    fig, ax = plt.subplots(figsize=(3.2, 3.2 * grids[0].shape[0] / grids[0].shape[1]), dpi=72)
    im = ax.imshow(grids[0], cmap="gray", vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel(f"{traj.shape[1]} samples")

    def update(k: int):
        im.set_data(grids[k])
        ax.set_title(f"{title}\n{labels[idx[k]] if labels else f'frame {idx[k]}'}", fontsize=9)
        return (im,)

    anim = animation.FuncAnimation(fig, update, frames=len(idx), interval=interval, blit=False)
    html = HTML(_jshtml(anim, interval, frame_format="jpeg", jpeg_quality=60))  # noisy frames: JPEG is ~5x smaller than PNG
    plt.close(fig)
    return html


def plot_curve(values: Sequence[float], title: str, xlabel: str = "step", ylabel: str = "loss", smooth: int = 50,
               ax: plt.Axes | None = None, logy: bool = False) -> plt.Figure:
    """Plot a (loss) curve, raw and smoothed by a running mean over ``smooth`` points."""
    check_positive_int(smooth, "smooth")
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 3))
    else:
        fig = ax.figure
    v = np.asarray(values, dtype=np.float64)
    ax.plot(np.arange(1, len(v) + 1), v, color="0.75", lw=0.6, label="per step")
    if len(v) >= smooth > 1:
        k = np.convolve(v, np.ones(smooth) / smooth, mode="valid")
        ax.plot(np.arange(smooth, len(v) + 1), k, lw=1.5, label=f"mean of {smooth}")
    if logy:
        ax.set_yscale("log")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    return fig


# --- additions for chapters 1 and 4 (and later chapters): named panels, heat maps, the generative-model schematic ---


def _to_unit_range(images: torch.Tensor, value_range: tuple[float, float]) -> torch.Tensor:
    """Map images from ``value_range`` = (lo, hi) to the [-1, 1] that :func:`image_grid` expects."""
    lo, hi = value_range
    if not hi > lo:
        raise ValueError(f"value_range must be (lo, hi) with hi > lo; got {value_range}")
    return (images.detach().float().cpu() - lo) / (hi - lo) * 2 - 1


def show_image_rows(rows: Mapping[str, torch.Tensor], title: str, *, value_range: tuple[float, float] = (-1.0, 1.0),
                    size: float = 1.0) -> plt.Figure:
    """One row of images per entry of ``rows`` (name -> (B, C, H, W)), each row titled with its name.

    ``value_range`` is the range of the pixel values ((0, 1) for chapter 1's uniform-noise images); ``size`` is the
    height of one image row in inches.
    """
    check_range(size, "size", 0.0, 100.0, open_low=True)
    if not rows:
        raise ValueError("rows must hold at least one (name -> images) entry")
    grids = [image_grid(_to_unit_range(imgs, value_range), nrow=imgs.shape[0]) for imgs in rows.values()]
    width = max(g.shape[1] / g.shape[0] for g in grids) * size
    fig, axes = plt.subplots(len(grids), 1, figsize=(max(width, 3.0), (size + 0.35) * len(grids) + 0.4), squeeze=False)
    for ax, name, grid in zip(axes[:, 0], rows, grids):
        ax.imshow(grid, cmap="gray" if grid.ndim == 2 else None, vmin=0, vmax=1)
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    h, w = next(iter(rows.values())).shape[-2:]
    axes[-1, 0].set_xlabel(f"one {h}x{w} image per column", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def scatter_panels(clouds: Mapping[str, torch.Tensor], title: str, *, lim: float = 3.0, ncols: int | None = None,
                   size: float = 2.8, s: float = 2.0) -> plt.Figure:
    """Side-by-side scatters of named (N, 2) point clouds (e.g. data next to samples), one titled panel each."""
    check_range(lim, "lim", 0.0, math.inf, open_low=True, open_high=True)
    if ncols is not None:
        check_positive_int(ncols, "ncols")
    check_range(size, "size", 0.0, 100.0, open_low=True)
    check_range(s, "s", 0.0, math.inf, open_low=True, open_high=True)
    if not clouds:
        raise ValueError("clouds must hold at least one (name -> points) entry")
    n = len(clouds)
    ncols = ncols or n
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.4), squeeze=False)
    for ax, (name, pts) in zip(axes.flat, clouds.items()):
        if pts.ndim != 2 or pts.shape[1] != 2:
            raise ValueError(f"clouds[{name!r}] must have shape (N, 2); got {tuple(pts.shape)}")
        scatter_2d(pts, name, ax=ax, lim=lim, s=s)
        ax.title.set_fontsize(9)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_heatmap(values: torch.Tensor | np.ndarray, title: str, xlabel: str, ylabel: str, *, ax: plt.Axes | None = None,
                 cmap: str = "RdBu_r", colorbar_label: str | None = None,
                 extent: tuple[float, float, float, float] | None = None) -> plt.Figure:
    """Show a 2-D array (rows x columns) as a heat map with a colour bar (e.g. a time embedding: t x dimension).

    ``extent`` = (left, right, bottom, top) puts the axes in data units (e.g. timesteps) instead of array indices.
    """
    v = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
    if v.ndim != 2:
        raise ValueError(f"values must be 2-D (rows, columns); got shape {v.shape}")
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 4))
    else:
        fig = ax.figure
    im = ax.imshow(v, aspect="auto", cmap=cmap, interpolation="nearest", extent=extent)
    cbar = fig.colorbar(im, ax=ax)
    if colorbar_label:
        cbar.set_label(colorbar_label)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return fig


def _box(ax: plt.Axes, x: float, y: float, text: str, color: str) -> None:
    ax.text(x, y, text, ha="center", va="center", fontsize=9,
            bbox=dict(boxstyle="round,pad=0.35", facecolor=color, edgecolor="0.3"))


def _arrow(ax: plt.Axes, x0: float, x1: float, y: float, label: str = "", color: str = "0.2", dy: float = 0.0) -> None:
    ax.annotate("", xy=(x1, y + dy), xytext=(x0, y + dy), arrowprops=dict(arrowstyle="->", color=color, lw=1.3))
    if label:
        ax.text((x0 + x1) / 2, y + dy + (0.13 if dy >= 0 else -0.13), label, ha="center", va="center", fontsize=8, color=color)


def generative_models_schematic() -> plt.Figure:
    """GAN vs VAE vs diffusion in one titled figure: what each one maps to what, drawn as boxes and arrows."""
    fig, axes = plt.subplots(3, 1, figsize=(8.5, 5.4))
    data_c, noise_c, net_c = "#cfe3f7", "#f3d6d6", "#e4f2d7"
    rows = [
        ("GAN: one network maps noise to data in one shot",
         r"generator $G$ learns $z \to x$; a discriminator judges its samples during training"),
        ("VAE: an encoder and a decoder, one latent step",
         r"both networks are learned together; the latent is one Gaussian step away from the data"),
        ("Diffusion: a fixed noising chain and a learned denoising chain",
         r"$q$ adds a little Gaussian noise $T$ times (fixed, no parameters); $p_\theta$ removes it step by step (learned)"),
    ]
    for ax, (title, xlabel) in zip(axes, rows):
        ax.set_xlim(0, 10)
        ax.set_ylim(-0.6, 0.6)
        ax.set_xticks([])
        ax.set_yticks([])
        for s in ax.spines.values():
            s.set_visible(False)
        ax.set_title(title, fontsize=10, loc="left")
        ax.set_xlabel(xlabel, fontsize=8)
    ax = axes[0]
    _box(ax, 1.0, 0, "noise $z$\n" + r"$\sim \mathcal{N}(0, I)$", noise_c)
    _box(ax, 5.0, 0, "generator $G$", net_c)
    _box(ax, 9.0, 0, r"sample $\hat{x}$", data_c)
    _arrow(ax, 1.8, 4.1, 0)
    _arrow(ax, 5.9, 8.1, 0)
    ax = axes[1]
    _box(ax, 0.8, 0, "data $x_0$", data_c)
    _box(ax, 3.0, 0, r"encoder $q_\phi$", net_c)
    _box(ax, 5.2, 0, r"$z = \mu + \sigma \epsilon$", noise_c)
    _box(ax, 7.3, 0, r"decoder $p_\theta$", net_c)
    _box(ax, 9.2, 0, r"$\hat{x}$", data_c)
    for a, b in [(1.5, 2.3), (3.7, 4.1), (6.3, 6.7), (7.95, 8.7)]:
        _arrow(ax, a, b, 0)
    ax = axes[2]
    xs = [0.8, 3.0, 5.0, 7.0, 9.2]
    names = ["$x_0$ (data)", "$x_1$", "$x_{t-1}$", "$x_t$", r"$x_T \sim \mathcal{N}(0, I)$"]
    colors = [data_c, "#dde6ef", "#e8e0e4", "#eedadb", noise_c]
    for x, n, c in zip(xs, names, colors):
        _box(ax, x, 0, n, c)
    for a, b in zip(xs[:-1], xs[1:]):
        _arrow(ax, a + 0.55, b - 0.55, 0, "$q$" if a != 3.0 else "$q$ ...", color="#b03030", dy=0.28)
        _arrow(ax, b - 0.55, a + 0.55, 0, r"$p_\theta$" if a != 3.0 else r"... $p_\theta$", color="#2f7d32", dy=-0.28)
    fig.suptitle("Three ways to turn noise into data")
    fig.tight_layout()
    return fig
