"""Data (every chapter): 2-D sets, 8x8 digits, MNIST with its offline fallback, the photos of chapter 10, where the
shipped files live, and images as bytes. Imports only the private helpers.
"""

from .encoding import from_uint8, to_uint8
from .locations import DATA_DIR, SHIPPED_MARKER, find_data_dir, find_shipped
from .photos import (
    PHOTO_NAMES,
    CropSet,
    RandomCropSet,
    channel_range,
    channel_stats,
    crop_and_flip,
    crops_overlap,
    dense_reference,
    grid_crops,
    load_photos,
    make_crops,
    random_crop_sets,
    random_crops,
    scale_per_channel,
    to_display,
    unscale_per_channel,
)
from .sets import MNIST_SOURCES, TOY_2D, digits, fashion_mnist, gaussian_mixture, mnist, moons, rings, swiss_roll, toy_2d

__all__ = [
    "to_uint8", "from_uint8", "DATA_DIR", "SHIPPED_MARKER", "find_data_dir", "find_shipped", "PHOTO_NAMES", "CropSet", "load_photos",
    "grid_crops", "make_crops", "channel_stats", "channel_range", "scale_per_channel", "unscale_per_channel", "to_display", "crop_and_flip",
    "random_crops", "dense_reference", "RandomCropSet", "crops_overlap", "random_crop_sets",
    "TOY_2D", "toy_2d", "swiss_roll", "moons", "rings", "gaussian_mixture", "digits", "MNIST_SOURCES",
    "mnist", "fashion_mnist",
]
