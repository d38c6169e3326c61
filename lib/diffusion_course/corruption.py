"""Old name of chapter 1's warm-up (the x0-predicting loss and the naive sampler), now in :mod:`.counterexamples`;
these names stay importable from here."""

from .counterexamples import X0Model, naive_mix_factors, naive_sample, x0_prediction_loss

__all__ = ["x0_prediction_loss", "naive_mix_factors", "naive_sample", "X0Model"]
