"""A picture of a U-Net drawn from one forward pass (chapter 05): each block's output shape, recorded by forward hooks.

The encoder runs down the left (one row per resolution), the middle sits at the bottom, the decoder climbs back up the
right; solid arrows follow the forward pass and dashed arrows are the skip connections, each from the encoder output
that the forward pass saves to the decoder block that concatenates it. Every box prints the shape C x H x W that its
module returned (batch left out), so the figure is the model's own bookkeeping, not a hand-drawn sketch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import torch
from matplotlib.lines import Line2D
from matplotlib.patches import FancyBboxPatch

from .._internal.validate import check_positive_int, check_range
from ..models.unet import Downsample, ResAttnBlock, UNet, Upsample

__all__ = ["unet_diagram"]

_COLOURS = {"conv": "#dddddd", "res": "#cfe3f7", "attn": "#f7d9b5", "down": "#d7efd0", "up": "#f3d1e6"}
_DY = 2.9  # vertical distance between two resolution rows, in column widths
_BOX_W, _BOX_H = 0.9, 1.45


@dataclass(frozen=True)
class _Block:
    name: str  # the attribute path in the model, e.g. "down[2]"
    kind: str  # a short label: "res", "res+attn", "down", "up", "attn", "conv"
    part: str  # "encoder", "middle" or "decoder"
    shape_in: tuple[int, ...]  # (B, C, H, W) of the module's first input
    shape_out: tuple[int, ...]  # (B, C, H, W) of its output


def _kind(module: torch.nn.Module) -> str:
    if isinstance(module, Downsample):
        return "down"
    if isinstance(module, Upsample):
        return "up"
    if isinstance(module, ResAttnBlock):
        return "res" if isinstance(module.attn, torch.nn.Identity) else "res+attn"
    if isinstance(module, torch.nn.Conv2d):
        return "conv"
    return "attn" if "Attention" in type(module).__name__ else "res"


def _named_blocks(model: UNet) -> list[tuple[str, str, torch.nn.Module]]:
    """(name, part, module) in the order the forward pass runs them."""
    blocks = [("conv_in", "encoder", model.conv_in)] + [(f"down[{i}]", "encoder", m) for i, m in enumerate(model.down)]
    blocks.append(("mid1", "middle", model.mid1))
    if not isinstance(model.mid_attn, torch.nn.Identity):
        blocks.append(("mid_attn", "middle", model.mid_attn))
    if getattr(model, "mid_cross", None) is not None:
        blocks.append(("mid_cross", "middle", model.mid_cross))
    blocks.append(("mid2", "middle", model.mid2))
    blocks += [(f"up[{i}]", "decoder", m) for i, m in enumerate(model.up)] + [("conv_out", "decoder", model.conv_out)]
    return blocks


def _record(model: UNet, x_shape: tuple[int, ...]) -> list[_Block]:
    """One forward pass on zeros of ``x_shape`` (t = 0, no label) with a hook on every block: what each one saw."""
    named = _named_blocks(model)
    seen: dict[int, tuple[tuple[int, ...], tuple[int, ...]]] = {}

    def hook(k: int):
        return lambda module, inputs, output: seen.__setitem__(k, (tuple(inputs[0].shape), tuple(output.shape)))

    handles = [m.register_forward_hook(hook(k)) for k, (_, _, m) in enumerate(named)]
    device = next(model.parameters()).device
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(x_shape, device=device), torch.zeros(x_shape[0], dtype=torch.long, device=device))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return [_Block(name, _kind(m), part, *seen[k]) for k, (name, part, m) in enumerate(named)]


def _skip_pairs(blocks: list[_Block]) -> list[tuple[int, int]]:
    """(encoder index, decoder index) of every skip: UNet.forward saves conv_in's and each down layer's output and
    every decoder residual block pops the last one saved."""
    stack = [k for k, b in enumerate(blocks) if b.part == "encoder"]
    pairs = []
    for k, b in enumerate(blocks):
        if b.part == "decoder" and b.kind.startswith("res"):
            src = stack.pop()
            assert blocks[src].shape_out[2:] == b.shape_in[2:], "a skip joins feature maps of one resolution"
            pairs.append((src, k))
    return pairs


def _draw_box(ax: plt.Axes, x: float, y: float, block: _Block, skip_channels: int | None, fontsize: float) -> None:
    colour = _COLOURS["attn" if block.kind in ("attn", "res+attn") else block.kind]
    ax.add_patch(FancyBboxPatch((x - _BOX_W / 2, y - _BOX_H / 2), _BOX_W, _BOX_H, boxstyle="round,pad=0.02,rounding_size=0.08",
                                facecolor=colour, edgecolor="0.25", linewidth=1.0, zorder=2))
    c, h, w = block.shape_out[1:]
    lines = [block.name, block.kind, f"{c} ch", f"{h}\u00d7{w}"]  # C, then H x W: short lines fit a narrow box
    if skip_channels is not None:
        lines.append(f"{block.shape_in[1] - skip_channels}+{skip_channels}")  # input channels: current features + the skip
    ax.text(x, y, "\n".join(lines), ha="center", va="center", fontsize=fontsize, zorder=3, linespacing=1.15)


def _levels(blocks: list[_Block], image_h: int) -> list[int]:
    return [round(math.log2(image_h / b.shape_out[2])) for b in blocks]


def _draw_flow(ax: plt.Axes, xs: list[float], ys: list[float]) -> None:
    for k in range(len(xs) - 1):
        ax.annotate("", xy=(xs[k + 1] - _BOX_W / 2, ys[k + 1]), xytext=(xs[k] + _BOX_W / 2, ys[k]),
                    arrowprops={"arrowstyle": "-|>", "color": "0.2", "lw": 1.2, "shrinkA": 0, "shrinkB": 0}, zorder=1)


def _draw_skips(ax: plt.Axes, pairs: list[tuple[int, int]], xs: list[float], ys: list[float]) -> None:
    by_level: dict[float, list[tuple[int, int]]] = {}
    for src, dst in pairs:
        by_level.setdefault(ys[src], []).append((src, dst))
    for y, level_pairs in by_level.items():
        for rank, (src, dst) in enumerate(sorted(level_pairs, key=lambda p: p[1] - p[0])):  # inner skips lower, outer higher
            top = y + _BOX_H / 2
            height = top + 0.25 + 0.28 * rank
            ax.plot([xs[src], xs[src], xs[dst]], [top, height, height], color="tab:purple", ls="--", lw=1.2, zorder=1)
            ax.annotate("", xy=(xs[dst], top), xytext=(xs[dst], height),
                        arrowprops={"arrowstyle": "-|>", "color": "tab:purple", "lw": 1.2, "ls": "--", "shrinkA": 0, "shrinkB": 0}, zorder=1)


def _check(model: UNet, x_shape: Sequence[int], fontsize: float) -> tuple[int, ...]:
    if not isinstance(model, UNet):
        raise ValueError(f"model must be a diffusion_course UNet (the course's time-conditioned U-Net); got {type(model).__name__}")
    check_range(fontsize, "fontsize", 0.0, math.inf, open_low=True, open_high=True)
    shape = tuple(x_shape) if isinstance(x_shape, (tuple, list, torch.Size)) else ()
    if len(shape) != 4:
        raise ValueError(f"x_shape must be (B, C, H, W), four positive ints; got {x_shape!r}")
    for s in shape:
        check_positive_int(s, "x_shape entries")
    c = model.config
    if shape[1] != c.in_channels:
        raise ValueError(f"x_shape's C must equal the model's in_channels = {c.in_channels}, in [{c.in_channels}, {c.in_channels}]; got {shape[1]}")
    f = c.downsample_factor
    if shape[2] % f or shape[3] % f:
        raise ValueError(f"x_shape's H and W must be multiples of 2^(levels-1) = {f} (one of {f}, {2 * f}, {3 * f}, ...); got {shape[2]}x{shape[3]}")
    return shape


def unet_diagram(model: UNet, x_shape: Sequence[int], *, fontsize: float = 10.0) -> plt.Figure:
    """Draw ``model`` as a U from one forward pass on an input of ``x_shape`` (B, C, H, W): encoder down the left,
    middle at the bottom, decoder up the right, skip arrows, and in each box the shape C x H x W its block returned
    (decoder residual blocks also show their input channels, current + skip). Returns the titled Figure."""
    shape = _check(model, x_shape, fontsize)
    blocks = _record(model, shape)
    pairs = _skip_pairs(blocks)
    skip_of = {dst: blocks[src].shape_out[1] for src, dst in pairs}
    levels = _levels(blocks, shape[2])
    xs = [float(k) for k in range(len(blocks))]
    ys = [-_DY * lv for lv in levels]
    n_levels = max(levels) + 1
    fig, ax = plt.subplots(figsize=(max(9.0, 0.72 * len(blocks) + 1.6), 1.7 * n_levels + 1.6))  # 14.6 x 6.7 in for 18 blocks
    for k, block in enumerate(blocks):
        _draw_box(ax, xs[k], ys[k], block, skip_of.get(k), fontsize)
    _draw_flow(ax, xs, ys)
    _draw_skips(ax, pairs, xs, ys)
    ax.set_xlim(-0.7, len(blocks) - 0.3)
    ax.set_ylim(-_DY * (n_levels - 1) - _BOX_H / 2 - 0.3, _BOX_H / 2 + 0.3 + 0.28 * (model.config.num_res_blocks + 1) + 0.3)
    ax.set_yticks([-_DY * lv for lv in range(n_levels)], [f"{shape[2] >> lv}\u00d7{shape[3] >> lv}" for lv in range(n_levels)])
    ax.set_xticks([])
    ax.tick_params(axis="y", labelsize=fontsize + 1)
    ax.set_ylabel("feature-map size H\u00d7W (one row per level)", fontsize=fontsize + 1)
    ax.set_xlabel("blocks in the order the forward pass runs them: encoder, middle, decoder", fontsize=fontsize + 1)
    for side in ("top", "right", "bottom"):
        ax.spines[side].set_visible(False)
    skip_label = "skip: a saved output, concatenated into a decoder block (a+b: its input channels, current + skip)"
    handles = [Line2D([], [], color="0.2", lw=1.2, label="forward pass"), Line2D([], [], color="tab:purple", lw=1.2, ls="--", label=skip_label)]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.07), ncol=2, fontsize=fontsize, frameon=False)
    n_params = sum(p.numel() for p in model.parameters())
    ax.set_title(f"U-Net on x of shape {shape}: every block's output shape C\u00d7H\u00d7W from one forward pass "
                 f"({n_params:,} parameters)", fontsize=fontsize + 2)
    fig.tight_layout()
    return fig
