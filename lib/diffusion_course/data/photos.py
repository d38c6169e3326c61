"""Chapter 10's data: scikit-learn's two bundled photographs (china.jpg, flower.jpg) as small RGB crops.

Each 427x640 photo is shrunk by average pooling, split into a training region (the left part) and a held-out region
(the right strip, never trained on), and cut into crops. Pixel values stay in [0, 255] until :func:`scale_per_channel`
maps each channel to [-1, 1] with the training region's per-channel range.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from .._internal.validate import check_positive_int, check_range

__all__ = ["PHOTO_NAMES", "CropSet", "load_photos", "grid_crops", "make_crops", "channel_stats", "channel_range", "scale_per_channel",
           "unscale_per_channel", "to_display", "crop_and_flip", "random_crops", "dense_reference",
           "RandomCropSet", "crops_overlap", "random_crop_sets"]


PHOTO_NAMES = ("china", "flower")  # scikit-learn's bundled photographs, 427 x 640 RGB each


# ------------------------------------------------------------------------------------------------------------ data
def load_photos(downscale: int = 4) -> dict[str, torch.Tensor]:
    """scikit-learn's two sample photographs as float tensors (3, H, W) with values in [0, 255], shrunk ``downscale``
    times by average pooling (427 x 640 -> 106 x 160 for 4). No network: the JPEGs ship inside scikit-learn."""
    check_positive_int(downscale, "downscale", 1, 8)
    from sklearn.datasets import load_sample_images

    bunch = load_sample_images()
    out = {}
    for path, image in zip(bunch.filenames, bunch.images):
        name = Path(path).stem
        x = torch.from_numpy(image.copy()).permute(2, 0, 1).float()  # (3, 427, 640), uint8 values as floats
        out[name] = F.avg_pool2d(x[None], downscale)[0] if downscale > 1 else x
    return {n: out[n] for n in PHOTO_NAMES}


def grid_crops(image: torch.Tensor, size: int, stride: int) -> torch.Tensor:
    """All ``size`` x ``size`` crops of ``image`` (C, H, W) whose top-left corners lie on a grid of step ``stride``,
    row by row: shape (n_rows * n_cols, C, size, size)."""
    if image.ndim != 3:
        raise ValueError(f"image must have shape (C, H, W); got {tuple(image.shape)}")
    H, W = image.shape[-2:]
    check_positive_int(size, "size", 1, min(H, W))
    check_positive_int(stride, "stride", 1)
    patches = image.unfold(1, size, stride).unfold(2, size, stride)  # (C, n_rows, n_cols, size, size)
    return patches.permute(1, 2, 0, 3, 4).reshape(-1, image.shape[0], size, size).contiguous()


@dataclass(frozen=True)
class CropSet:
    """The chapter's data: training crops, held-out crops and the training regions they come from (values in [0, 255])."""

    train: torch.Tensor  # (N_train, 3, size, size): a fixed grid of crops of the training regions
    heldout: torch.Tensor  # (N_heldout, 3, size, size): crops of the held-out strips, never trained on
    regions: torch.Tensor  # (n_photos, 3, H, W_train): the training regions (augmentation crops from these)
    heldout_regions: torch.Tensor  # (n_photos, 3, H, W_heldout)
    train_photo: torch.Tensor  # (N_train,) index into PHOTO_NAMES of each training crop
    heldout_photo: torch.Tensor  # (N_heldout,)
    size: int  # crop side in pixels
    downscale: int  # how many times the photos were shrunk
    train_stride: int  # grid step of the training crops
    heldout_stride: int  # grid step of the held-out crops


def make_crops(size: int = 32, *, downscale: int = 4, heldout_fraction: float = 0.3, train_stride: int | None = None,
               heldout_stride: int | None = None) -> CropSet:
    """Cut both photos into crops: the right ``heldout_fraction`` of each photo's width is held out; the rest is the
    training region. Training crops sit on a grid of step ``train_stride`` (default size // 2), held-out crops on a
    finer grid of step ``heldout_stride`` (default size // 4) so both sets have a similar size."""
    check_positive_int(size, "size", 4, 128)
    check_range(heldout_fraction, "heldout_fraction", 0.0, 0.5, open_low=True)
    train_stride = size // 2 if train_stride is None else train_stride
    heldout_stride = max(1, size // 4) if heldout_stride is None else heldout_stride
    check_positive_int(train_stride, "train_stride", 1)
    check_positive_int(heldout_stride, "heldout_stride", 1)
    photos = load_photos(downscale)
    H, W = next(iter(photos.values())).shape[-2:]
    w_held = round(W * heldout_fraction)
    if size > H or size > w_held or size > W - w_held:
        raise ValueError(f"size must fit in the held-out strip ({H} x {w_held} px) and the training region ({H} x {W - w_held} px) "
                         f"at downscale {downscale}; got size={size}")
    regions = torch.stack([p[:, :, : W - w_held] for p in photos.values()])
    held = torch.stack([p[:, :, W - w_held :] for p in photos.values()])
    train_c = [grid_crops(r, size, train_stride) for r in regions]
    held_c = [grid_crops(r, size, heldout_stride) for r in held]
    return CropSet(
        train=torch.cat(train_c), heldout=torch.cat(held_c), regions=regions, heldout_regions=held,
        train_photo=torch.cat([torch.full((len(c),), i) for i, c in enumerate(train_c)]),
        heldout_photo=torch.cat([torch.full((len(c),), i) for i, c in enumerate(held_c)]),
        size=size, downscale=downscale, train_stride=train_stride, heldout_stride=heldout_stride,
    )


def _check_images(x: torch.Tensor, name: str) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"{name} must be a tensor of RGB images (N, 3, H, W); got {tuple(getattr(x, 'shape', ()))}")


def channel_stats(images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-channel mean, standard deviation, minimum and maximum of (N, 3, H, W) images: each a (3,) tensor (R, G, B)."""
    _check_images(images, "images")
    flat = images.transpose(0, 1).reshape(3, -1).double()
    return {"mean": flat.mean(1), "std": flat.std(1), "min": flat.amin(1), "max": flat.amax(1)}


def channel_range(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(lo, hi): the per-channel minimum and maximum of (N, 3, H, W) images, each of shape (3,), as float32."""
    s = channel_stats(images)
    lo, hi = s["min"].float(), s["max"].float()
    if not bool((hi > lo).all()):
        raise ValueError(f"images must vary in every channel to be scaled; got per-channel ranges lo={lo.tolist()}, hi={hi.tolist()}")
    return lo, hi


def _check_range_args(x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    _check_images(x, "x")
    lo, hi = torch.as_tensor(lo, dtype=x.dtype, device=x.device), torch.as_tensor(hi, dtype=x.dtype, device=x.device)
    if lo.shape != (3,) or hi.shape != (3,):
        raise ValueError(f"lo and hi must have shape (3,), one value per channel; got {tuple(lo.shape)} and {tuple(hi.shape)}")
    if not bool((hi > lo).all()):
        raise ValueError(f"hi must exceed lo in every channel; got lo={lo.tolist()}, hi={hi.tolist()}")
    return lo.reshape(1, 3, 1, 1), hi.reshape(1, 3, 1, 1)


def scale_per_channel(x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Map each channel c of (N, 3, H, W) images linearly from [lo_c, hi_c] to [-1, 1]: y = 2 (x - lo_c) / (hi_c - lo_c) - 1."""
    lo, hi = _check_range_args(x, lo, hi)
    return 2 * (x - lo) / (hi - lo) - 1


def unscale_per_channel(y: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`scale_per_channel`: x = lo_c + (y + 1) / 2 (hi_c - lo_c), back in pixel units."""
    lo, hi = _check_range_args(y, lo, hi)
    return lo + (y + 1) / 2 * (hi - lo)


def to_display(y: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Model-space images (per-channel [-1, 1]) as the [-1, 1] RGB that :func:`viz.show_images` draws (0..255 -> -1..1)."""
    return (unscale_per_channel(y, lo, hi) / 127.5 - 1).clamp(-1, 1)


# ---------------------------------------------------------------------------------------------------- augmentation
def crop_and_flip(regions: torch.Tensor, size: int, generator: torch.Generator, *, flip: bool = True,
                  return_positions: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One random ``size`` x ``size`` crop of each region (B, C, H, W), mirrored left-right with probability 1/2 when
    ``flip``. Positions and flips are drawn from ``generator`` (CPU). With ``return_positions`` also returns the (B, 2)
    top-left corners (row, column) and the (B,) flip flags."""
    if regions.ndim != 4:
        raise ValueError(f"regions must have shape (B, C, H, W); got {tuple(regions.shape)}")
    B, _, H, W = regions.shape
    check_positive_int(size, "size", 1, min(H, W))
    rows = torch.randint(0, H - size + 1, (B,), generator=generator)
    cols = torch.randint(0, W - size + 1, (B,), generator=generator)
    flips = torch.rand(B, generator=generator) < 0.5 if flip else torch.zeros(B, dtype=torch.bool)
    crops = torch.stack([regions[b, :, r : r + size, c : c + size] for b, (r, c) in enumerate(zip(rows.tolist(), cols.tolist()))])
    crops = torch.where(flips.to(crops.device).reshape(B, 1, 1, 1), crops.flip(-1), crops)  # (B, C, size, size)
    if return_positions:
        return crops, torch.stack([rows, cols], 1), flips
    return crops


def random_crops(regions: torch.Tensor, n: int, size: int, generator: torch.Generator, *, flip: bool = True) -> torch.Tensor:
    """``n`` random crops (with random flips) from regions (P, C, H, W), each from a region picked uniformly."""
    check_positive_int(n, "n", 1)
    idx = torch.randint(0, regions.shape[0], (n,), generator=generator)
    return crop_and_flip(regions[idx.to(regions.device)], size, generator, flip=flip)


def dense_reference(regions: torch.Tensor, size: int, stride: int = 2, *, flip: bool = True) -> torch.Tensor:
    """Every crop of the regions on a grid of step ``stride``, and (with ``flip``) their mirror images: the training set
    an augmented run draws from, as a finite set to measure nearest distances against."""
    crops = torch.cat([grid_crops(r, size, stride) for r in regions])
    return torch.cat([crops, crops.flip(-1)]) if flip else crops


# ------------------------------------------------------------------------------------------ crops at random positions
@dataclass(frozen=True)
class RandomCropSet:
    """Training and held-out crops drawn the same way (uniform photo and position), held-out ones touching no training
    crop. Values in [0, 255]. The first k training crops form the k-crop training set (the sets are nested)."""

    train: torch.Tensor  # (n_train, 3, size, size)
    heldout: torch.Tensor  # (n_heldout, 3, size, size)
    train_shifted: torch.Tensor  # (n_train, 3, size, size): each training crop moved half a pixel to the right
    train_at: torch.Tensor  # (n_train, 3) long: photo index into PHOTO_NAMES, row, column of the top-left corner
    heldout_at: torch.Tensor  # (n_heldout, 3) long
    size: int
    downscale: int
    seed: int


def crops_overlap(a_at: torch.Tensor, b_at: torch.Tensor, size: int) -> torch.Tensor:
    """(len(a), len(b)) bool: whether square crops of side ``size`` at (photo, row, column) corners share a pixel."""
    check_positive_int(size, "size", 1)
    for t, name in ((a_at, "a_at"), (b_at, "b_at")):
        if t.ndim != 2 or t.shape[1] != 3:
            raise ValueError(f"{name} must have shape (n, 3) of (photo, row, column); got {tuple(t.shape)}")
    a, b = a_at[:, None, :], b_at[None, :, :]
    return (a[..., 0] == b[..., 0]) & ((a[..., 1] - b[..., 1]).abs() < size) & ((a[..., 2] - b[..., 2]).abs() < size)


def _cut(photos: torch.Tensor, at: torch.Tensor, size: int, shift: bool = False) -> torch.Tensor:
    out = [photos[p, :, r : r + size, c : c + size + 1] for p, r, c in at.tolist()] if shift else \
        [photos[p, :, r : r + size, c : c + size] for p, r, c in at.tolist()]
    x = torch.stack(out)
    return (x[..., :-1] + x[..., 1:]) / 2 if shift else x


def random_crop_sets(n_train: int = 64, n_heldout: int = 64, size: int = 16, *, downscale: int = 2, seed: int = 0,
                     max_tries: int = 200_000) -> RandomCropSet:
    """Draw ``n_train + n_heldout`` crops at uniform random positions of both photos (photo uniform too), keeping a
    candidate only if it shares no pixel with the crops kept so far, then split them at random into training and
    held-out crops: both sets are drawn the same way, and no held-out crop touches a training crop. Columns stop one
    pixel short of the edge so every crop has a half-pixel-shifted twin (the mean of the crop and the crop one pixel to
    its right), the yardstick of a near-copy."""
    check_positive_int(n_train, "n_train", 1, 10_000)
    check_positive_int(n_heldout, "n_heldout", 1, 10_000)
    check_positive_int(size, "size", 4, 64)
    check_positive_int(max_tries, "max_tries", 1)
    photos = torch.stack(list(load_photos(downscale).values()))  # (2, 3, H, W)
    P, _, H, W = photos.shape
    if size > H or size >= W:
        raise ValueError(f"size must fit the photos ({H} x {W} px at downscale {downscale}, one column spare); got size={size}")
    g = torch.Generator().manual_seed(seed)
    n, kept, tries = n_train + n_heldout, torch.zeros(0, 3, dtype=torch.long), 0
    while len(kept) < n:
        if tries >= max_tries:
            raise ValueError(f"n_train + n_heldout = {n} crops of size {size} that touch no other could not be placed on the photos "
                             f"at downscale {downscale} in {max_tries} tries; use fewer or smaller crops or a smaller downscale")
        c = torch.stack([torch.randint(0, P, (1,), generator=g), torch.randint(0, H - size + 1, (1,), generator=g),
                         torch.randint(0, W - size, (1,), generator=g)], 1)
        tries += 1
        if not bool(crops_overlap(c, kept, size).any()):
            kept = torch.cat([kept, c])
    kept = kept[torch.randperm(n, generator=g)]
    train_at, heldout_at = kept[:n_train], kept[n_train:]
    return RandomCropSet(train=_cut(photos, train_at, size), heldout=_cut(photos, heldout_at, size),
                         train_shifted=_cut(photos, train_at, size, shift=True), train_at=train_at, heldout_at=heldout_at,
                         size=size, downscale=downscale, seed=seed)
