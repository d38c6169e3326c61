"""Chapter 5: the shape and size arithmetic of the layers a U-Net is built from (the formulas of the PyTorch docs):
the output size of a convolution, a pooling and a transposed convolution, and a convolution's parameter count. The
chapter checks each against real layers before building :class:`~diffusion_course.models.unet.UNet`."""

from __future__ import annotations

from .._internal.validate import check_positive_int

__all__ = ["conv2d_output_size", "conv_transpose2d_output_size", "conv2d_parameter_count"]


def conv2d_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """Output height (or width) of Conv2d / MaxPool2d: floor((size + 2 padding - dilation (kernel - 1) - 1) / stride) + 1."""
    for name, v, low in (("size", size, 1), ("kernel", kernel, 1), ("stride", stride, 1), ("padding", padding, 0), ("dilation", dilation, 1)):
        check_positive_int(v, name, low)
    out = (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1
    if out < 1:
        raise ValueError(f"kernel {kernel} (dilation {dilation}) does not fit in size {size} + 2 * padding {padding}")
    return out


def conv_transpose2d_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0, output_padding: int = 0, dilation: int = 1) -> int:
    """Output height (or width) of ConvTranspose2d: (size - 1) stride - 2 padding + dilation (kernel - 1) + output_padding + 1."""
    for name, v, low in (("size", size, 1), ("kernel", kernel, 1), ("stride", stride, 1), ("padding", padding, 0), ("dilation", dilation, 1)):
        check_positive_int(v, name, low)
    check_positive_int(output_padding, "output_padding", 0, max(stride, dilation) - 1)
    return (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1


def conv2d_parameter_count(in_channels: int, out_channels: int, kernel: int, bias: bool = True, groups: int = 1) -> int:
    """Trainable numbers in Conv2d (and ConvTranspose2d): in_channels / groups * kernel^2 * out_channels weights + out_channels biases."""
    check_positive_int(in_channels, "in_channels")
    check_positive_int(out_channels, "out_channels")
    check_positive_int(kernel, "kernel")
    check_positive_int(groups, "groups")
    if in_channels % groups or out_channels % groups:
        raise ValueError(f"groups must divide in_channels and out_channels; got {groups} for {in_channels} -> {out_channels}")
    return in_channels // groups * kernel * kernel * out_channels + (out_channels if bias else 0)
