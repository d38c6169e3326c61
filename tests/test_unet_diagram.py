"""unet_diagram: every box prints the shape that a forward hook of our own sees for that block, the skip arrows join
the blocks UNet.forward concatenates, the figure is titled and labelled, the model is left as it was, and bad input
raises ValueError naming the argument."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from diffusion_course import unet_diagram  # noqa: E402
from diffusion_course.models.unet import ResAttnBlock, UNet, UNetConfig  # noqa: E402

CONFIGS = {
    # the shipped layout, narrower: 3 levels, one block per level, attention at the lowest level and in the middle
    "3 levels, 1 block": (UNetConfig(base_channels=8, channel_mults=(1, 2, 4), num_res_blocks=1, attention_levels=(2,), norm_groups=4), (2, 1, 28, 28)),
    # colour, 2 levels of 2 blocks, attention at level 1, no middle attention, a non-square input
    "2 levels, 2 blocks": (UNetConfig(in_channels=3, base_channels=8, channel_mults=(1, 2), num_res_blocks=2, attention_levels=(1,), mid_attention=False,
                                      norm_groups=4), (1, 3, 8, 12)),
}


def _hooked_shapes(model: UNet, x_shape: tuple[int, ...]) -> list[tuple[str, tuple[int, ...], tuple[int, ...]]]:
    """(name, input shape, output shape) of every block in forward order, recorded here by hooks of the test's own."""
    named = [("conv_in", model.conv_in)] + [(f"down[{i}]", m) for i, m in enumerate(model.down)] + [("mid1", model.mid1)]
    if not isinstance(model.mid_attn, nn.Identity):
        named.append(("mid_attn", model.mid_attn))
    named += [("mid2", model.mid2)] + [(f"up[{i}]", m) for i, m in enumerate(model.up)] + [("conv_out", model.conv_out)]
    seen = []
    hooks = [m.register_forward_hook(lambda m, i, o, name=name: seen.append((name, tuple(i[0].shape), tuple(o.shape)))) for name, m in named]
    with torch.no_grad():
        model(torch.randn(x_shape), torch.tensor([7] * x_shape[0]))
    for h in hooks:
        h.remove()
    return seen


def _boxes(fig: plt.Figure) -> list[list[str]]:
    """The lines of text of every box, left to right."""
    return [t.get_text().split("\n") for t in fig.axes[0].texts if t.get_text()]  # the arrows are empty annotations


@pytest.mark.parametrize("name", CONFIGS)
def test_each_box_prints_the_shape_a_forward_hook_sees(name: str) -> None:
    config, x_shape = CONFIGS[name]
    model = UNet(config)
    fig = unet_diagram(model, x_shape)
    hooked = _hooked_shapes(model, x_shape)
    boxes = _boxes(fig)
    assert [b[0] for b in boxes] == [n for n, _, _ in hooked]  # one box per block, in forward order
    for lines, (block, shape_in, shape_out) in zip(boxes, hooked):
        _, c, h, w = shape_out
        assert lines[2] == f"{c} ch" and lines[3] == f"{h}\u00d7{w}", (block, lines, shape_out)
        if block.startswith("up[") and len(lines) == 5:  # a decoder block that reads a skip: current + skip = its input channels
            a, b = (int(v) for v in lines[4].split("+"))
            assert a + b == shape_in[1], (block, lines, shape_in)
    n_skips = sum(1 for lines in boxes if lines[0].startswith("up[") and len(lines) == 5)
    decoder_res = sum(isinstance(m, ResAttnBlock) for m in model.up)
    assert n_skips == decoder_res == (config.num_res_blocks + 1) * len(config.channel_mults)  # one skip per decoder residual block
    dashed = [ln for ln in fig.axes[0].lines if ln.get_linestyle() == "--"]
    assert len(dashed) == n_skips
    plt.close(fig)


def test_skips_join_the_outputs_unet_forward_concatenates() -> None:
    """Each decoder residual block's "a+b" names the channels of the saved encoder output it reads, last saved first."""
    config, x_shape = CONFIGS["3 levels, 1 block"]
    model = UNet(config)
    fig = unet_diagram(model, x_shape)
    hooked = _hooked_shapes(model, x_shape)
    saved = [s_out[1] for n, _, s_out in hooked if n == "conv_in" or n.startswith("down[")]
    for lines in _boxes(fig):
        if lines[0].startswith("up[") and len(lines) == 5:
            assert int(lines[4].split("+")[1]) == saved.pop()
    assert saved == []
    plt.close(fig)


def test_titled_labelled_and_the_model_left_as_it_was() -> None:
    config, x_shape = CONFIGS["2 levels, 2 blocks"]
    model = UNet(config).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fig = unet_diagram(model, x_shape)
    ax = fig.axes[0]
    assert "U-Net" in ax.get_title() and str(tuple(x_shape)) in ax.get_title()
    assert ax.get_xlabel() and ax.get_ylabel()
    assert [t.get_text() for t in ax.get_yticklabels()] == ["8\u00d712", "4\u00d76"]
    assert model.training
    assert all(not m._forward_hooks for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    plt.close(fig)


@pytest.mark.parametrize(
    "kwargs, arg",
    [
        ({"model": nn.Conv2d(1, 1, 3), "x_shape": (1, 1, 8, 8)}, "model"),
        ({"x_shape": (1, 1, 8)}, "x_shape"),
        ({"x_shape": (1, 3, 8, 8)}, "x_shape"),
        ({"x_shape": (1, 1, 6, 8)}, "x_shape"),
        ({"x_shape": (0, 1, 8, 8)}, "x_shape"),
        ({"x_shape": (1, 1, 8, 8), "fontsize": math.nan}, "fontsize"),
        ({"x_shape": (1, 1, 8, 8), "fontsize": 0.0}, "fontsize"),
    ],
)
def test_bad_input_raises_naming_the_argument(kwargs: dict, arg: str) -> None:
    model = kwargs.pop("model", UNet(UNetConfig(base_channels=8, channel_mults=(1, 2, 2), num_res_blocks=1, attention_levels=(), norm_groups=4)))
    with pytest.raises(ValueError, match=arg):
        unet_diagram(model, **kwargs)
