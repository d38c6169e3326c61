"""Chapter 10's memorisation measure: how near samples sit to their nearest training crop, beside new real crops."""

from __future__ import annotations

from typing import Any

import torch

from .._internal.validate import check_positive_int, check_range
from .distances import nearest_train_distances

__all__ = ["distance_summary", "memorisation_row", "median_ratio_interval", "near_copy_share", "copying_row"]


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


# ------------------------------------------------------------------------------------------------------ copying
def median_ratio_interval(d_samples: torch.Tensor, d_heldout: torch.Tensor, *, draws: int = 2000, level: float = 0.95,
                          seed: int = 0) -> dict[str, float]:
    """Ratio of the median of ``d_samples`` to the median of ``d_heldout`` (medians as :func:`distance_summary` takes them:
    the mean of the two middle values for an even count) with a percentile bootstrap interval: each of ``draws`` draws
    resamples both sets with replacement (independently: they are unpaired) and takes the ratio."""
    for d, name in ((d_samples, "d_samples"), (d_heldout, "d_heldout")):
        if d.ndim != 1 or d.numel() < 1:
            raise ValueError(f"{name} must be a non-empty 1-D tensor of distances; got shape {tuple(d.shape)}")
    check_positive_int(draws, "draws", 1)
    check_range(level, "level", 0.0, 1.0, open_low=True, open_high=True)
    g = torch.Generator().manual_seed(seed)
    a, b = d_samples.double().cpu(), d_heldout.double().cpu()
    ia = torch.randint(0, len(a), (draws, len(a)), generator=g)
    ib = torch.randint(0, len(b), (draws, len(b)), generator=g)
    r = torch.quantile(a[ia], 0.5, dim=1) / torch.quantile(b[ib], 0.5, dim=1)
    q = torch.quantile(r, torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64))
    return {"ratio": float(torch.quantile(a, 0.5) / torch.quantile(b, 0.5)), "lo": float(q[0]), "hi": float(q[1]), "level": level, "draws": draws}


def near_copy_share(d: torch.Tensor, threshold: float) -> float:
    """Share of nearest-training-crop distances ``d`` strictly below ``threshold`` (the near-copies)."""
    if d.ndim != 1 or d.numel() < 1:
        raise ValueError(f"d must be a non-empty 1-D tensor of distances; got shape {tuple(d.shape)}")
    check_range(threshold, "threshold", 0.0, float("inf"), open_low=True)
    return float((d < threshold).double().mean())


def copying_row(samples: torch.Tensor, heldout: torch.Tensor, train: torch.Tensor, threshold: float, *, draws: int = 2000,
                seed: int = 0) -> dict[str, Any]:
    """One cell of the copying table: nearest-training-crop distances (pixel L2) of samples and of held-out crops drawn
    like the training crops, their medians and quartiles, the ratio of medians with its bootstrap interval (near 1:
    samples sit as far from the training crops as new real crops do; well below 1: samples sit on training crops) and the
    share of each set nearer than ``threshold`` to a training crop (near-copies)."""
    d_s, d_h = nearest_train_distances(samples, train), nearest_train_distances(heldout, train)
    r = median_ratio_interval(d_s, d_h, draws=draws, seed=seed)
    return {"samples": distance_summary(d_s), "heldout": distance_summary(d_h), "ratio": round(r["ratio"], 3),
            "ratio_lo": round(r["lo"], 3), "ratio_hi": round(r["hi"], 3), "near_copies": round(near_copy_share(d_s, threshold), 4),
            "heldout_near_copies": round(near_copy_share(d_h, threshold), 4)}
