"""The yardstick's classifier (chapters 6-11): the shipped MNIST classifier whose features and probabilities score
image samples, loaded from its file in the data folder."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from ..data.locations import find_shipped
from ..models.classifier import ClassifierConfig, MNISTClassifier
from ..training.checkpoints import CheckpointError, load_weights, read_card

__all__ = ["CLASSIFIER_FILE", "load_classifier", "shipped_classifier"]


CLASSIFIER_FILE = "mnist_classifier.safetensors"


def load_classifier(*, directory: str | Path | None = None) -> tuple[MNISTClassifier, dict[str, Any]]:
    """The shipped MNIST classifier (eval mode, CPU) whose features give the image quality score, and its card."""
    path = find_shipped(CLASSIFIER_FILE, directory)
    card = read_card(path)
    if "classifier_config" not in card:
        raise CheckpointError(f"{path.with_suffix('.json')} is missing or holds no 'classifier_config'; run `make weights` to produce it")
    model = MNISTClassifier(ClassifierConfig(**card["classifier_config"]))
    load_weights(model, path)
    return model.eval(), card


@functools.lru_cache(maxsize=1)
def shipped_classifier() -> MNISTClassifier:
    """The shipped classifier, loaded once per process: the default of every score (it is never trained further)."""
    model, _ = load_classifier()
    for p in model.parameters():
        p.requires_grad_(False)
    return model
