"""Chapter 10's copying study: crops drawn at random positions, held-out crops that touch no training crop, the ratio of
medians with its bootstrap interval, the near-copy share, and the shipped card against its own samples. Oracles and
properties (brute-force pixel masks, planted copies, exact medians), not stored numbers."""

from __future__ import annotations

import pytest
import torch

from diffusion_course.data.locations import DATA_DIR
from diffusion_course.data.photos import channel_range, crops_overlap, load_photos, random_crop_sets, scale_per_channel
from diffusion_course.scoring.distances import nearest_train_distances
from diffusion_course.scoring.memorisation import copying_row, median_ratio_interval, near_copy_share
from diffusion_course.weights.colour_study import COPYING_FILE, CopyingSettings, load_copying_study


@pytest.fixture(scope="module")
def sets():
    return random_crop_sets(24, 16, 8, downscale=4, seed=3)


def _mask(at: torch.Tensor, size: int, shape: tuple[int, int, int]) -> torch.Tensor:
    m = torch.zeros(shape, dtype=torch.bool)
    for p, r, c in at.tolist():
        m[p, r : r + size, c : c + size] = True
    return m


def test_crops_overlap_matches_brute_force_pixel_masks():
    g = torch.Generator().manual_seed(0)
    a = torch.stack([torch.randint(0, 2, (40,), generator=g), torch.randint(0, 20, (40,), generator=g), torch.randint(0, 20, (40,), generator=g)], 1)
    b = torch.stack([torch.randint(0, 2, (30,), generator=g), torch.randint(0, 20, (30,), generator=g), torch.randint(0, 20, (30,), generator=g)], 1)
    got = crops_overlap(a, b, 5)
    want = torch.tensor([[bool((_mask(a[i : i + 1], 5, (2, 30, 30)) & _mask(b[j : j + 1], 5, (2, 30, 30))).any()) for j in range(30)]
                         for i in range(40)])
    assert torch.equal(got, want) and bool(got.any()) and not bool(got.all())


def test_heldout_crops_never_touch_a_training_crop_and_are_cut_where_they_say(sets):
    assert not bool(crops_overlap(sets.heldout_at, sets.train_at, sets.size).any())
    photos = torch.stack(list(load_photos(4).values()))
    H, W = photos.shape[-2:]
    assert not bool((_mask(sets.train_at, 8, (2, H, W)) & _mask(sets.heldout_at, 8, (2, H, W))).any())
    for x, at in ((sets.train, sets.train_at), (sets.heldout, sets.heldout_at)):
        for k, (p, r, c) in enumerate(at.tolist()):
            assert torch.equal(x[k], photos[p, :, r : r + 8, c : c + 8])
    p, r, c = sets.train_at[0].tolist()
    assert torch.allclose(sets.train_shifted[0], (photos[p, :, r : r + 8, c : c + 8] + photos[p, :, r : r + 8, c + 1 : c + 9]) / 2)
    # both photos appear in both sets, and the draw is a function of the seed
    assert set(sets.train_at[:, 0].tolist()) == {0, 1} and set(sets.heldout_at[:, 0].tolist()) == {0, 1}
    again = random_crop_sets(24, 16, 8, downscale=4, seed=3)
    assert torch.equal(again.train_at, sets.train_at) and torch.equal(again.heldout_at, sets.heldout_at)
    assert not torch.equal(random_crop_sets(24, 16, 8, downscale=4, seed=4).train_at, sets.train_at)


def test_too_many_crops_raise_naming_the_counts():
    with pytest.raises(ValueError, match="n_train"):
        random_crop_sets(200, 200, 16, downscale=8, max_tries=2000)


def test_a_planted_copy_has_distance_zero_and_share_one(sets):
    lo, hi = channel_range(sets.train)
    train_x, held_x = scale_per_channel(sets.train, lo, hi), scale_per_channel(sets.heldout, lo, hi)
    row = copying_row(train_x[:10], held_x, train_x, 0.05, draws=200)
    assert row["samples"]["median"] == 0 and row["ratio"] == 0 and row["near_copies"] == 1
    assert row["heldout"]["median"] > 0 and row["heldout_near_copies"] == 0  # held-out crops are not copies
    half = torch.cat([train_x[:5], torch.rand(5, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1])
    assert copying_row(half, held_x, train_x, 0.05, draws=200)["near_copies"] == 0.5


def test_median_ratio_interval_against_exact_medians():
    g = torch.Generator().manual_seed(1)
    a, b = torch.rand(51, generator=g) + 0.5, torch.rand(41, generator=g) + 1.0
    r = median_ratio_interval(a, b, draws=500)
    assert r["ratio"] == pytest.approx(float(a.median() / b.median()))  # odd counts: the middle values
    even = median_ratio_interval(torch.tensor([1.0, 2.0, 4.0, 9.0]), torch.tensor([2.0, 4.0]), draws=10)
    assert even["ratio"] == pytest.approx(3.0 / 3.0)  # even counts: the mean of the two middle values, as distance_summary
    assert r["lo"] <= r["ratio"] <= r["hi"]
    scaled = median_ratio_interval(3 * a, b, draws=500)  # same seed, same resamples: everything scales by 3
    assert scaled["lo"] == pytest.approx(3 * r["lo"]) and scaled["hi"] == pytest.approx(3 * r["hi"])
    flat = median_ratio_interval(torch.full((9,), 2.0), torch.full((7,), 4.0), draws=50)
    assert flat["lo"] == flat["ratio"] == flat["hi"] == 0.5
    wide, narrow = median_ratio_interval(a, b, level=0.99, draws=500), median_ratio_interval(a, b, level=0.5, draws=500)
    assert wide["lo"] <= narrow["lo"] and narrow["hi"] <= wide["hi"]


def test_near_copy_share_counts_strictly_below():
    assert near_copy_share(torch.tensor([0.0, 1.0, 2.0, 3.0]), 2.0) == 0.5
    with pytest.raises(ValueError, match="threshold"):
        near_copy_share(torch.ones(3), 0.0)


def test_copying_settings_reject_bad_sizes():
    with pytest.raises(ValueError, match="set_sizes"):
        CopyingSettings(set_sizes=(16, 8))
    with pytest.raises(ValueError, match="milestones"):
        CopyingSettings(milestones=())


def test_shipped_copying_card_matches_its_samples_and_crops():
    """The card's table is recomputed from the shipped samples and the crops its settings draw."""
    if not (DATA_DIR / COPYING_FILE).exists():
        pytest.fail(f"{DATA_DIR / COPYING_FILE} is missing; run python -m diffusion_course.weights.make train-colour --part copying")
    samples, card = load_copying_study()
    s, d = card["settings"], card["data"]
    crops = random_crop_sets(max(s["set_sizes"]), s["n_heldout"], s["size"], downscale=s["downscale"], seed=s["crop_seed"])
    assert crops.train_at.tolist() == d["train_at"] and crops.heldout_at.tolist() == d["heldout_at"]
    assert not bool(crops_overlap(crops.heldout_at, crops.train_at, s["size"]).any())
    lo, hi = torch.tensor(d["lo"]), torch.tensor(d["hi"])
    train_x, held_x = scale_per_channel(crops.train, lo, hi), scale_per_channel(crops.heldout, lo, hi)
    shift = (train_x - scale_per_channel(crops.train_shifted, lo, hi)).flatten(1).norm(dim=1).median()
    assert float(shift) == pytest.approx(d["threshold"], abs=1e-4)
    assert len(card["rows"]) == len(samples) >= len(s["set_sizes"]) * len(s["milestones"])
    for row in card["rows"]:
        x = samples[f"n{row['set_size']}_seed{row['seed']}_steps{row['steps']}"]
        assert x.shape == (s["samples"], 3, s["size"], s["size"])
        d_s = nearest_train_distances(x, train_x[: row["set_size"]])
        assert float(torch.quantile(d_s, 0.5)) == pytest.approx(row["samples"]["median"], abs=2e-2)  # float16 storage
        d_h = nearest_train_distances(held_x, train_x[: row["set_size"]])
        assert float(torch.quantile(d_h, 0.5)) == pytest.approx(row["heldout"]["median"], abs=1e-3)
        assert row["samples"]["median"] / row["heldout"]["median"] == pytest.approx(row["ratio"], rel=2e-3)
        assert near_copy_share(d_s, d["threshold"]) == pytest.approx(row["near_copies"], abs=2 / s["samples"])
