"""Private helpers of the whole package (not for the notebooks): argument checks, the model type, noise drawing and
the one progress bar. Import nothing from the package."""
