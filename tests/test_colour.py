"""Chapter 10's data helpers, augmentation, memorisation measure, shipped colour U-Net and the scaling checker:
properties, not stored numbers."""

from __future__ import annotations

import re

import pytest
import torch

from diffusion_course.data.locations import DATA_DIR
from diffusion_course.data.photos import (
    PHOTO_NAMES,
    channel_range,
    channel_stats,
    crop_and_flip,
    dense_reference,
    grid_crops,
    load_photos,
    make_crops,
    random_crops,
    scale_per_channel,
    to_display,
    unscale_per_channel,
)
from diffusion_course.maths.samplers import ddim_sample
from diffusion_course.maths.schedules import NoiseSchedule
from diffusion_course.scoring.memorisation import distance_summary, memorisation_row
from diffusion_course.teaching.exercises.channel_scaling import check_channel_scaling
from diffusion_course.training.checkpoints import read_card
from diffusion_course.weights.colour_study import StudySettings
from diffusion_course.weights.shipped import COLOUR_FIXED_FILE, COLOUR_UNET_CONFIG, COLOUR_UNET_FILE, load_colour_unet


@pytest.fixture(scope="module")
def crops():
    return make_crops(32, downscale=4)


def test_photos_are_the_two_bundled_rgb_photographs():
    photos = load_photos(4)
    assert tuple(photos) == PHOTO_NAMES
    for x in photos.values():
        assert x.shape == (3, 427 // 4, 640 // 4)
        assert 0 <= float(x.min()) and float(x.max()) <= 255


def test_grid_crops_shapes_and_positions():
    img = torch.arange(3 * 10 * 12, dtype=torch.float32).reshape(3, 10, 12)
    c = grid_crops(img, 4, 3)
    n_rows, n_cols = (10 - 4) // 3 + 1, (12 - 4) // 3 + 1
    assert c.shape == (n_rows * n_cols, 3, 4, 4)
    assert torch.equal(c[0], img[:, :4, :4])
    assert torch.equal(c[n_cols + 1], img[:, 3:7, 3:7])  # row by row


def test_crop_sets_are_disjoint_rgb_crops(crops):
    s = crops.size
    assert crops.train.shape[1:] == (3, s, s) and crops.heldout.shape[1:] == (3, s, s)
    assert len(crops.train) == len(crops.train_photo) and len(crops.heldout) == len(crops.heldout_photo)
    assert set(crops.train_photo.tolist()) == set(crops.heldout_photo.tolist()) == {0, 1}
    # the held-out strip and the training region do not overlap: together they are the whole photo
    photos = load_photos(crops.downscale)
    for i, p in enumerate(photos.values()):
        assert torch.equal(torch.cat([crops.regions[i], crops.heldout_regions[i]], dim=-1), p)
    # every training crop lies in a training region, no held-out crop equals a training crop
    d = torch.cdist(crops.heldout.flatten(1), crops.train.flatten(1)).min(1).values
    assert float(d.min()) > 0


def test_per_channel_scaling_round_trip_and_range(crops):
    lo, hi = channel_range(crops.regions)
    y = scale_per_channel(crops.regions, lo, hi)
    stats = channel_stats(y)
    assert torch.allclose(stats["min"], torch.full((3,), -1.0, dtype=torch.float64), atol=1e-5)
    assert torch.allclose(stats["max"], torch.ones(3, dtype=torch.float64), atol=1e-5)
    assert torch.allclose(unscale_per_channel(y, lo, hi), crops.regions, atol=1e-3)
    # display space is the 8-bit scaling: 0 -> -1, 255 -> 1, whatever lo and hi were
    assert torch.allclose(to_display(y, lo, hi), (crops.regions / 127.5 - 1).clamp(-1, 1), atol=1e-5)


def test_scaling_is_per_channel_not_global():
    g = torch.Generator().manual_seed(0)
    lo, hi = torch.tensor([0.0, 100.0, 50.0]), torch.tensor([255.0, 150.0, 60.0])
    x = lo.reshape(1, 3, 1, 1) + torch.rand(5, 3, 4, 3, generator=g) * (hi - lo).reshape(1, 3, 1, 1)
    y = scale_per_channel(x, lo, hi)
    for c in range(3):
        assert torch.allclose(y[:, c], 2 * (x[:, c] - lo[c]) / (hi[c] - lo[c]) - 1, atol=1e-5)


def test_flip_augmentation_keeps_each_crops_pixels(crops):
    g = torch.Generator().manual_seed(3)
    regions = crops.regions
    out, pos, flips = crop_and_flip(regions, 32, g, return_positions=True)
    assert out.shape == (len(regions), 3, 32, 32)
    for b in range(len(regions)):
        r, c = pos[b].tolist()
        src = regions[b, :, r : r + 32, c : c + 32]
        assert torch.equal(out[b], src.flip(-1) if flips[b] else src)
        # a flip moves pixels, it never changes them: the multiset of values per channel is the source crop's
        assert torch.equal(out[b].flatten(1).sort(1).values, src.flatten(1).sort(1).values)
    many = random_crops(regions, 200, 32, torch.Generator().manual_seed(4))
    assert many.shape == (200, 3, 32, 32)
    _, _, f = crop_and_flip(regions.repeat(100, 1, 1, 1), 32, torch.Generator().manual_seed(5), return_positions=True)
    assert 0.35 < f.float().mean() < 0.65  # about half are mirrored
    # same generator seed, same crops: augmentation is reproducible
    again = random_crops(regions, 200, 32, torch.Generator().manual_seed(4))
    assert torch.equal(many, again)


def test_dense_reference_contains_grid_crops_and_mirrors(crops):
    ref = dense_reference(crops.regions, 32, stride=16)
    fixed = torch.cat([grid_crops(r, 32, 16) for r in crops.regions])
    assert len(ref) == 2 * len(fixed)
    assert torch.equal(ref[: len(fixed)], fixed) and torch.equal(ref[len(fixed) :], fixed.flip(-1))


def test_memorisation_row_sees_copies(crops):
    lo, hi = channel_range(crops.regions)
    train_x, held_x = scale_per_channel(crops.train, lo, hi), scale_per_channel(crops.heldout, lo, hi)
    copies = memorisation_row(train_x[:16], held_x, train_x)
    assert copies["samples"]["median"] == 0 and copies["ratio"] == 0 and copies["closer_than_any_heldout"] == 1
    noise = memorisation_row(torch.rand(16, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1, held_x, train_x)
    assert noise["ratio"] > 1 and noise["closer_than_any_heldout"] == 0
    s = distance_summary(torch.arange(5.0))
    assert s["q25"] <= s["median"] <= s["q75"] and s["n"] == 5


@pytest.mark.parametrize(
    "call, arg",
    [
        (lambda: load_photos(0), "downscale"),
        (lambda: make_crops(2), "size"),
        (lambda: make_crops(32, heldout_fraction=0.9), "heldout_fraction"),
        (lambda: make_crops(100), "size"),
        (lambda: grid_crops(torch.zeros(3, 8, 8), 9, 1), "size"),
        (lambda: scale_per_channel(torch.zeros(1, 3, 2, 2), torch.zeros(3), torch.zeros(3)), "hi"),
        (lambda: scale_per_channel(torch.zeros(1, 1, 2, 2), torch.zeros(3), torch.ones(3)), "x"),
        (lambda: scale_per_channel(torch.zeros(1, 3, 2, 2), torch.zeros(1), torch.ones(1)), "lo and hi"),
        (lambda: StudySettings(milestones=(200, 100)), "milestones"),
        (lambda: load_colour_unet("raw"), "which"),
    ],
)
def test_bad_arguments_raise_naming_them(call, arg):
    with pytest.raises(ValueError, match=arg):
        call()


def test_shipped_card_loads_and_matches_the_model_config():
    path = DATA_DIR / COLOUR_UNET_FILE
    if not path.exists():
        pytest.skip("run `python -m diffusion_course.weights.make train-colour` to produce the shipped colour weights")
    model, card = load_colour_unet()
    assert card["unet_config"]["in_channels"] == 3
    assert card["architecture"]["config"] == card["unet_config"]
    assert card["params"] == sum(p.numel() for p in model.parameters())
    assert {k: v for k, v in card["unet_config"].items() if k != "base_channels"} == {
        k: v for k, v in read_card(path)["architecture"]["config"].items() if k != "base_channels"}
    assert card["unet_config"]["channel_mults"] == list(COLOUR_UNET_CONFIG.channel_mults)
    assert "command" in card and re.fullmatch(r"python -m diffusion_course\.[a-z_.]+ train(-colour)?( .*)?", card["command"])
    runs = card["memorisation"]["runs"]
    assert {"fixed", "augmented"} <= set(runs)
    for rows in runs.values():
        for row in rows:
            assert row["samples"]["q25"] <= row["samples"]["median"] <= row["samples"]["q75"]
    fixed, _ = load_colour_unet("fixed")
    assert sum(p.numel() for p in fixed.parameters()) == card["params"]
    assert (DATA_DIR / COLOUR_FIXED_FILE).exists()
    size = card["data"]["size"]
    x = ddim_sample(model, NoiseSchedule.linear(1000), (2, 3, size, size), steps=3, clip_x0=1.0, generator=torch.Generator().manual_seed(0))
    assert x.shape == (2, 3, size, size) and bool(torch.isfinite(x).all())


def test_channel_scaling_checker_passes_the_lib_and_names_mistakes():
    good = lambda x, lo, hi: scale_per_channel(x, lo, hi)  # noqa: E731
    inv = lambda y, lo, hi: unscale_per_channel(y, lo, hi)  # noqa: E731
    assert check_channel_scaling(good, inv, quiet=True)
    glob = check_channel_scaling(lambda x, lo, hi: 2 * (x - lo.min()) / (hi.max() - lo.min()) - 1, quiet=True)
    assert not glob and glob.mistake == "global_range"
    assert check_channel_scaling(good, lambda y, lo, hi: y, quiet=True).mistake == "no_inverse"
    assert check_channel_scaling(lambda x, lo, hi: (good(x, lo, hi) + 1) / 2, quiet=True).mistake == "unit_range"

    def stub(x, lo, hi):
        raise NotImplementedError

    assert check_channel_scaling(stub, quiet=True).status == "not written yet"
