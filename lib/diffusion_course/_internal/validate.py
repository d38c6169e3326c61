"""Argument checks shared by the public functions: each error names the argument and its allowed range."""

from __future__ import annotations

import torch


def check_timesteps(t: torch.Tensor | int, T: int, batch: int | None = None, name: str = "t") -> torch.Tensor:
    """Return ``t`` as a LongTensor of shape (B,), raising ``ValueError`` if any entry lies outside [0, T)."""
    if isinstance(t, int) and not isinstance(t, bool):
        if batch is None:
            raise ValueError(f"{name} must be a LongTensor of shape (B,) when the batch size is unknown; got int {t}")
        t = torch.full((batch,), t, dtype=torch.long)
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name} must be an int or a LongTensor of shape (B,); got {type(t).__name__}")
    if t.dtype.is_floating_point or t.dtype == torch.bool or t.is_complex():
        raise ValueError(f"{name} must hold integer timesteps in [0, {T - 1}]; got dtype {t.dtype}")
    if t.ndim == 0:
        if batch is None:
            raise ValueError(f"{name} must have shape (B,); got a 0-d tensor")
        t = t.expand(batch)
    if t.ndim != 1:
        raise ValueError(f"{name} must have shape (B,); got shape {tuple(t.shape)}")
    if batch is not None and t.shape[0] != batch:
        raise ValueError(f"{name} has {t.shape[0]} entries but the batch holds {batch} items")
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= T):
        raise ValueError(
            f"{name} must lie in [0, T-1] = [0, {T - 1}] (code index t is the paper's t+1); "
            f"got values in [{int(t.min())}, {int(t.max())}]"
        )
    return t.long()


def check_same_shape(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> None:
    """Raise ``ValueError`` unless the two tensors have the same shape (no silent broadcasting)."""
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(f"{name_b} must have the same shape as {name_a} {tuple(a.shape)}; got {tuple(b.shape)}")


def check_choice(value: str, allowed: tuple[str, ...], name: str) -> str:
    """Raise ``ValueError`` unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(repr(a) for a in allowed)}; got {value!r}")
    return value


def check_positive_int(value: int, name: str, low: int = 1, high: int | None = None) -> int:
    """Raise ``ValueError`` unless ``value`` is an int in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int; got {type(value).__name__} {value!r}")
    if value < low or (high is not None and value > high):
        hi = "inf" if high is None else str(high)
        raise ValueError(f"{name} must lie in [{low}, {hi}]; got {value}")
    return value


def check_range(value: float, name: str, low: float, high: float, *, open_low: bool = False, open_high: bool = False) -> float:
    """Raise ``ValueError`` unless ``low <(=) value <(=) high``."""
    value = float(value)
    ok_low = value > low if open_low else value >= low
    ok_high = value < high if open_high else value <= high
    if not (ok_low and ok_high) or value != value:
        lb = "(" if open_low else "["
        rb = ")" if open_high else "]"
        raise ValueError(f"{name} must lie in {lb}{low}, {high}{rb}; got {value}")
    return value
