"""Plotting helpers shared by every chapter: image grids, 2-D scatter trajectories and small animations.

Every function returns the matplotlib Figure (or an HTML animation) and gives each axis a title and labels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib import animation

__all__ = ["image_grid", "show_images", "scatter_2d", "plot_trajectories", "animate_points", "animate_images", "plot_curve"]


def image_grid(images: torch.Tensor, nrow: int | None = None, pad: int = 1) -> np.ndarray:
    """Tile (B, C, H, W) images in [-1, 1] into one (rows*(H+pad), cols*(W+pad)) array in [0, 1] (C = 1 or 3)."""
    if images.ndim != 4:
        raise ValueError(f"images must have shape (B, C, H, W); got {tuple(images.shape)}")
    x = ((images.detach().float().cpu().clamp(-1, 1) + 1) / 2).numpy()
    B, C, H, W = x.shape
    nrow = nrow or math.ceil(math.sqrt(B))
    ncol = math.ceil(B / nrow)
    grid = np.ones((ncol * (H + pad) + pad, nrow * (W + pad) + pad, C), dtype=np.float32)
    for i in range(B):
        r, c = divmod(i, nrow)
        grid[pad + r * (H + pad) : pad + r * (H + pad) + H, pad + c * (W + pad) : pad + c * (W + pad) + W] = x[i].transpose(1, 2, 0)
    return grid[..., 0] if C == 1 else grid


def show_images(images: torch.Tensor, title: str, nrow: int | None = None, ax: plt.Axes | None = None, size: float = 4.0) -> plt.Figure:
    """Show a batch of images in [-1, 1] as one grid with a title."""
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


def _frame_indices(n: int, frames: int) -> list[int]:
    return sorted(set(np.linspace(0, n - 1, min(frames, n)).round().astype(int).tolist()))


def animate_points(traj: torch.Tensor, title: str, frames: int = 40, lim: float = 3.0, labels: Sequence[str] | None = None, interval: int = 80):
    """A JS/HTML animation (IPython HTML) of (steps+1, N, 2) points, ``frames`` frames, each titled with its step.

    ``labels`` names each stored step (e.g. "t = 999"); by default the frame index. Kept small: a few hundred KB.
    """
    from IPython.display import HTML

    idx = _frame_indices(traj.shape[0], frames)
    p = traj.detach().cpu().numpy()
    fig, ax = plt.subplots(figsize=(3.6, 3.6), dpi=72)
    sc = ax.scatter(p[idx[0], :, 0], p[idx[0], :, 1], s=2, alpha=0.5)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")

    def update(k: int):
        sc.set_offsets(p[idx[k]])
        ax.set_title(f"{title}\n{labels[idx[k]] if labels else f'frame {idx[k]}'}", fontsize=9)
        return (sc,)

    anim = animation.FuncAnimation(fig, update, frames=len(idx), interval=interval, blit=False)
    html = HTML(anim.to_jshtml(default_mode="once"))
    plt.close(fig)
    return html


def animate_images(traj: torch.Tensor, title: str, frames: int = 30, nrow: int | None = None, labels: Sequence[str] | None = None, interval: int = 100):
    """A JS/HTML animation of an image trajectory (steps+1, B, C, H, W) in [-1, 1], shown as a grid per frame."""
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
    html = HTML(anim.to_jshtml(default_mode="once"))
    plt.close(fig)
    return html


def plot_curve(values: Sequence[float], title: str, xlabel: str = "step", ylabel: str = "loss", smooth: int = 50,
               ax: plt.Axes | None = None, logy: bool = False) -> plt.Figure:
    """Plot a (loss) curve, raw and smoothed by a running mean over ``smooth`` points."""
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
