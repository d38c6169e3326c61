"""Images as bytes (chapters 6-11): the shipped sample files store pixel values -1..1 as uint8 0..255."""

from __future__ import annotations

import torch

__all__ = ["to_uint8", "from_uint8"]


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] as uint8 0..255 (values outside are clipped): how the card's samples are shipped."""
    return ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def from_uint8(u: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`to_uint8` up to its rounding (at most 1/255 per pixel): uint8 images back to [-1, 1] floats."""
    if u.dtype != torch.uint8:
        raise ValueError(f"u must be a uint8 tensor; got {u.dtype}")
    return u.float() / 127.5 - 1
