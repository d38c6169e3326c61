"""What every explorer of the course shares (chapters 2, 8, 11, 12): showing it in a notebook, images as PNG bytes.

An explorer is displayed as one output holding its live widget *and* a PNG of what it shows when it is displayed. A
page that can run the widget shows the widget; one that cannot (an untrusted notebook, e.g. one saved after "Run All
Above", whose other cells keep outputs the server cannot vouch for; a static viewer) shows the picture instead of the
widget's text form (``VBox(children=(...``).
"""

from __future__ import annotations

import base64
import contextlib
import io
import os

import numpy as np

from .._internal.validate import check_positive_int

__all__ = ["show_explorer", "explorer_bundle", "png_bytes", "compute_threads", "check_threads"]


def explorer_bundle(explorer) -> dict:
    """The output data of an explorer: its widget view, a PNG of its current picture (``explorer.png()``, where it has
    one) and a line of text naming it, for pages that show neither."""
    data = dict(explorer.widget._repr_mimebundle_())
    png = explorer.png() if hasattr(explorer, "png") else None
    if png:
        data["image/png"] = base64.b64encode(png).decode("ascii")
    data["text/plain"] = f"<{type(explorer).__name__}: a live explorer; run this cell in a running notebook to use it>"
    return data


def show_explorer(explorer):
    """Display an explorer (its live widget, with a PNG of it for pages that cannot run widgets) and return it, to drive
    it from code."""
    from IPython.display import display

    display(explorer_bundle(explorer), raw=True)
    return explorer


def png_bytes(grid: np.ndarray, scale: int) -> bytes:
    """An image grid in [0, 1] as PNG bytes, each pixel a scale x scale block (crisp on a projector)."""
    from PIL import Image

    check_positive_int(scale, "scale", 1, 64)
    pixels = (grid * 255).round().astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).resize((pixels.shape[1] * scale, pixels.shape[0] * scale), Image.NEAREST).save(buf, format="png")
    return buf.getvalue()


def check_threads(threads: int | None) -> int | None:
    """An explorer's ``threads`` argument: None (use torch's own setting) or 1 to the machine's CPU count."""
    if threads is not None:
        check_positive_int(threads, "threads", 1, os.cpu_count() or 1)
    return threads


def compute_threads(threads: int | None) -> contextlib.AbstractContextManager:
    """A context that runs its block with torch on ``threads`` CPU threads, then restores the setting (None: leave it
    as it is). ``threads`` is checked at once (1 to the CPU count).

    The explorers compute on one thread by default. On a 2-core machine where anything else is running (the lecture
    hall's laptop: the browser, a screen share), torch's two threads wait for each other's core and a new setting takes
    many times as long as on one thread (``benchmarks/explorer_latency.py --busy 1``)."""
    return _threads(check_threads(threads))


@contextlib.contextmanager
def _threads(threads: int | None):
    import torch

    before = torch.get_num_threads()
    if threads is None or threads == before:
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
