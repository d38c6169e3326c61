"""Old name of chapter 4's "simplified step" counter-example, now in :mod:`.counterexamples`; these names stay
importable from here."""

from .counterexamples import simplified_sample, simplified_step

__all__ = ["simplified_step", "simplified_sample"]
