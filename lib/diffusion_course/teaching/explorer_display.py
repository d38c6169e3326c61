"""What every explorer of the course shares (chapters 2, 8, 11): showing it in a notebook, images as PNG bytes."""

from __future__ import annotations

import io

import numpy as np

from .._internal.validate import check_positive_int

__all__ = ["show_explorer", "png_bytes"]


def show_explorer(explorer):
    """Display an explorer's widget and return the explorer (to drive it from code)."""
    from IPython.display import display

    display(explorer.widget)
    return explorer


def png_bytes(grid: np.ndarray, scale: int) -> bytes:
    """An image grid in [0, 1] as PNG bytes, each pixel a scale x scale block (crisp on a projector)."""
    from PIL import Image

    check_positive_int(scale, "scale", 1, 64)
    pixels = (grid * 255).round().astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).resize((pixels.shape[1] * scale, pixels.shape[0] * scale), Image.NEAREST).save(buf, format="png")
    return buf.getvalue()
