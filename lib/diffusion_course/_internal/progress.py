"""One progress bar for every long loop of the package: plain text, never a Jupyter widget.

``tqdm.auto`` draws an ipywidgets bar inside Jupyter; once the notebook is saved and reopened without its kernel, the
bar shows "Error displaying widget: model not found". :func:`progress_bar` is ``tqdm.std.tqdm`` writing to stderr, so a
notebook stores the bar as ordinary stream text that reads the same when reopened. It redraws at most once a second,
so the text a long loop leaves in a saved notebook stays small (about 100 bytes a second).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from tqdm.std import tqdm

__all__ = ["progress_bar"]

_T = TypeVar("_T")

NCOLS = 100  # a fixed width: no terminal-size guess inside a notebook


def progress_bar(iterable: Iterable[_T] | None = None, *, desc: str | None = None, disable: bool = False, **kwargs: Any) -> tqdm:
    """A text progress bar over ``iterable`` (any ``tqdm`` keyword is passed on: ``total``, ``initial``, ``leave``...)."""
    kwargs.setdefault("ncols", NCOLS)
    kwargs.setdefault("mininterval", 1.0)
    kwargs.setdefault("dynamic_ncols", False)
    return tqdm(iterable, desc=desc, disable=disable, **kwargs)
