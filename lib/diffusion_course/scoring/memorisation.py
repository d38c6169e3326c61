"""Chapter 10's memorisation measure: how near samples sit to their nearest training crop, beside new real crops."""

from __future__ import annotations

from typing import Any

import torch

from .distances import nearest_train_distances

__all__ = ["distance_summary", "memorisation_row"]


# ------------------------------------------------------------------------------------------------------ measuring
def distance_summary(d: torch.Tensor) -> dict[str, float]:
    """Median and quartiles of a 1-D tensor of distances, with its size."""
    if d.ndim != 1 or d.numel() < 1:
        raise ValueError(f"d must be a non-empty 1-D tensor of distances; got shape {tuple(d.shape)}")
    q = torch.quantile(d.double(), torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64))
    return {"median": round(float(q[1]), 3), "q25": round(float(q[0]), 3), "q75": round(float(q[2]), 3), "n": int(d.numel())}


def memorisation_row(samples: torch.Tensor, heldout: torch.Tensor, reference: torch.Tensor) -> dict[str, Any]:
    """Nearest-training-crop distances (pixel L2 in model space) of samples and of held-out crops against the same
    ``reference``: their medians and quartiles, the ratio of medians (near 1: samples are as far from the training
    data as new real crops; well below 1: samples sit on training crops), and the share of samples nearer to a
    training crop than any held-out crop is."""
    d_s = nearest_train_distances(samples, reference)
    d_h = nearest_train_distances(heldout, reference)
    s, h = distance_summary(d_s), distance_summary(d_h)
    return {"samples": s, "heldout": h, "ratio": round(s["median"] / h["median"], 3),
            "closer_than_any_heldout": round(float((d_s < d_h.min()).float().mean()), 3)}
