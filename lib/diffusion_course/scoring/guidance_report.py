"""Scoring guided samples (chapter 11): does the classifier read the digit that was asked for, and at what quality."""

from __future__ import annotations

import torch
from torch import nn

from ..data.sets import mnist
from ..maths.losses import check_labels
from .quality import CONFIDENT, classifier_outputs, quality_report
from .reference import shipped_classifier

__all__ = ["guidance_report"]


def guidance_report(samples: torch.Tensor, labels: torch.Tensor | None, *, classifier: nn.Module | None = None,
                    per_class_frechet: bool = True) -> dict:
    """How well guided MNIST samples (N, 1, 28, 28) show the digits ``labels`` (N,) asked for, read by the course's
    classifier: accuracy (top class = requested), the share read as the requested digit with probability > 0.9, the
    mean probability of the requested digit, per-class accuracy; the pooled Frechet / floor of all samples
    (:func:`.quality.quality_report`); and per class, the Frechet / floor of that class's samples against that class's
    test digits (floor: that class's training digits), which falls when samples get sharper and rises again when they
    lose variety. With ``labels=None`` (unconditional samples) only the pooled numbers. ``per_class_frechet=False``
    skips the per-class distances (they need 128 samples of each class)."""
    if classifier is None:
        classifier = shipped_classifier()
    out: dict = {"n": int(samples.shape[0]), "pooled": quality_report(samples, classifier=classifier).as_dict()}
    if labels is None:
        return out
    labels = check_labels(labels, samples.shape[0], 10, "labels")
    _, p = classifier_outputs(classifier, samples.detach().float().cpu().clamp(-1, 1))
    conf, pred = p.max(1)
    right = pred == labels
    k = p.shape[1]
    out.update(
        accuracy=round(float(right.double().mean()), 4),
        confident_correct_share=round(float((right & (conf > CONFIDENT)).double().mean()), 4),
        mean_probability_of_requested=round(float(p[torch.arange(len(labels)), labels].mean()), 4),
        per_class_accuracy=[round(float(right[labels == c].double().mean()), 4) if (labels == c).any() else None for c in range(k)],
    )
    if not per_class_frechet:
        return out
    x_tr, y_tr = mnist("train", source="subset")  # the reference set, as in quality_report
    x_te, y_te = mnist("test", source="subset")
    ratios, spreads = [], []
    for c in range(k):
        mine = samples[labels == c]
        if mine.shape[0] == 0:
            continue
        r = quality_report(mine, classifier=classifier, reference=x_te[y_te == c], train_images=x_tr[y_tr == c])
        ratios.append(round(r.ratio, 4))
        spreads.append(round(r.ratio_spread, 4))
    if ratios:
        out["per_class_ratio"] = {"mean": round(sum(ratios) / len(ratios), 4), "min": min(ratios), "max": max(ratios), "each": ratios,
                                  "spread_each": spreads}
    return out
