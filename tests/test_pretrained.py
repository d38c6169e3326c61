"""The shipped weights in data/: they load on the CPU, their cards say how they were made and are honest, the U-Net
samples digits that the classifier recognises, and the one documented command runs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from diffusion_course.data.locations import DATA_DIR
from diffusion_course.maths.samplers import ddpm_sample
from diffusion_course.maths.schedules import NoiseSchedule
from diffusion_course.models.unet import UNet
from diffusion_course.scoring.quality import classifier_outputs
from diffusion_course.scoring.reference import CLASSIFIER_FILE, load_classifier
from diffusion_course.training.classifier import accuracy
from diffusion_course.weights.make import main
from diffusion_course.weights.shipped import UNET_EMA_FILE, UNET_RAW_FILE, load_pretrained_unet, schedule_from_card

PROVENANCE = {"command", "git_commit", "git_tree_dirty", "device", "torch", "seconds", "date"}


def test_shipped_files_are_small_and_safetensors() -> None:
    files = [DATA_DIR / f for f in (UNET_EMA_FILE, UNET_RAW_FILE, CLASSIFIER_FILE)]
    cards = [f.with_suffix(".json") for f in files]
    assert all(f.exists() for f in files + cards)
    assert sum(f.stat().st_size for f in files + cards) < 10 * 2**20
    assert all(f.read_bytes()[8:9] == b"{" for f in files)  # safetensors: 8-byte header length, then a JSON header


@pytest.fixture(scope="module")
def unet():
    return load_pretrained_unet("ema")


@pytest.fixture(scope="module")
def classifier():
    return load_classifier()


def test_unet_card(unet) -> None:
    model, card = unet
    assert isinstance(model, UNet) and not model.training
    assert PROVENANCE <= set(card)
    assert card["training"]["steps"] > 0 and "seed" in card["training"]
    # the command as it was spelled at the card's commit (cards keep their history; the commit names the code)
    assert re.fullmatch(r"python -m diffusion_course\.[a-z_.]+ train-unet( .*)?", card["command"]), card["command"]
    assert card["parameters"] == sum(p.numel() for p in model.parameters())
    q = card["quality"]
    assert q["headline"] in q["settings"]
    for name, r in q["settings"].items():
        assert r["ratio"] == pytest.approx(r["frechet"] / r["floor"], rel=1e-3), name
        assert r["n"] >= 1000, name  # enough samples to tell settings apart (issue: one yardstick at one n)
        assert r["kid_lo"] <= r["kid"] <= r["kid_hi"] and r["reference"] == q["reference"], name
        assert r["floor_draws"] >= 20, name
    assert q["settings"]["ddpm1000"]["steps"] == 1000


def test_card_numbers_are_reproduced_from_the_shipped_samples(unet) -> None:
    """Re-scoring the shipped uint8 samples gives the card's numbers (up to the uint8 rounding of the pixels)."""
    from diffusion_course.scoring.quality import quality_report
    from diffusion_course.weights.shipped import load_card_samples

    _, card = unet
    floors = load_classifier()[1]["floors"]
    for name in ("ddpm1000", "ddim50_eta0"):
        r = card["quality"]["settings"][name]
        x = load_card_samples(name)
        assert x.shape == (r["n"], 1, 28, 28) and x.min() >= -1 and x.max() <= 1
        again = quality_report(x)
        assert again.frechet == pytest.approx(r["frechet"], rel=0.02), name
        assert again.confident_share == pytest.approx(r["confident_share"], abs=0.01), name
        assert again.floor == pytest.approx(floors[str(r["n"])]["mean"], rel=1e-4)  # the floor stored once, used everywhere
        assert again.kid == pytest.approx(r["kid"], abs=1e-6), name  # evaluate scores the uint8 samples, with seed 0
        assert (again.kid_lo, again.kid_hi) == pytest.approx((r["kid_lo"], r["kid_hi"]), abs=1e-6), name
    with pytest.raises(ValueError, match="name must be one of"):
        load_card_samples("ddim51")


def test_collect_names_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="not scored yet: ddpm1000"):
        main(["collect", "--what", "card", "--out", str(tmp_path)])


def test_schedule_from_card_is_the_ddpm_schedule(unet) -> None:
    torch.testing.assert_close(schedule_from_card(unet[1]).beta, NoiseSchedule.linear(1000).beta)


def test_raw_and_ema_weights_differ() -> None:
    ema, _ = load_pretrained_unet("ema")
    raw, card = load_pretrained_unet("raw")
    assert "raw" in card["weights"]
    assert any(not torch.equal(a, b) for a, b in zip(ema.state_dict().values(), raw.state_dict().values()))
    with pytest.raises(ValueError, match="which"):
        load_pretrained_unet("best")


def test_classifier_card_is_honest(classifier) -> None:
    """The card's test accuracy is recomputed here, on the same test images."""
    from diffusion_course.data.sets import mnist

    model, card = classifier
    assert PROVENANCE <= set(card)
    x, y = mnist("test")
    acc = accuracy(model, x, y)
    assert acc == pytest.approx(card["test_accuracy"], abs=1e-3)
    assert acc > 0.95


def test_unet_samples_read_as_digits(unet, classifier) -> None:
    """Algorithm 2 end to end on the shipped weights (1000 DDPM steps, 12 images): images in range that the classifier
    reads as digits of several classes with reasonable confidence, and whose features lie nearer real digits than noise's.
    (Uniform noise is no contrast for the confidence: this classifier calls it a confident "0".)"""
    from diffusion_course.data.sets import mnist

    model, card = unet
    g = torch.Generator().manual_seed(0)
    x = ddpm_sample(model, schedule_from_card(card), (12, 1, 28, 28), variance="beta", clip_x0=1.0, generator=g)
    assert x.shape == (12, 1, 28, 28) and torch.isfinite(x).all()
    assert x.min() >= -1.0 and x.max() <= 1.0  # the last step returns the clipped x0_hat
    f, p = classifier_outputs(classifier[0], x)
    confidence = p.max(1).values
    assert confidence.mean() > 0.7
    assert (confidence > 0.5).float().mean() >= 0.75  # most samples are recognised
    assert len(set(p.argmax(1).tolist())) >= 4  # several digits, not a single mode
    f_noise, p_noise = classifier_outputs(classifier[0], torch.rand(12, 1, 28, 28, generator=g) * 2 - 1)
    f_real, _ = classifier_outputs(classifier[0], mnist("test")[0])
    nearest = torch.cdist(f, f_real).min(1).values.median()
    nearest_noise = torch.cdist(f_noise, f_real).min(1).values.median()
    assert nearest < 0.85 * nearest_noise


def test_missing_weights_say_how_to_make_them(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="make weights"):
        load_pretrained_unet(directory=tmp_path)


def test_the_documented_command_runs(tmp_path: Path) -> None:
    """`train-classifier` and `train-unet` on a few steps: files, cards with provenance, and they load back."""
    main(["train-classifier", "--steps", "3", "--out", str(tmp_path)])
    main(["train-unet", "--steps", "2", "--checkpoint-every", "1", "--out", str(tmp_path)])
    for name in (CLASSIFIER_FILE, UNET_EMA_FILE, UNET_RAW_FILE):
        card = json.loads((tmp_path / name).with_suffix(".json").read_text())
        assert PROVENANCE <= set(card)
        assert card["command"].startswith("python -m diffusion_course.weights.make "), card["command"]
    model, card = load_pretrained_unet("ema", directory=tmp_path)
    assert card["training"]["steps"] == 2
    load_classifier(directory=tmp_path)
    assert not (tmp_path / "checkpoints" / "mnist_unet.pt").exists()  # removed once the run completed
    with pytest.raises(SystemExit):
        main(["--help"])


def test_weights_without_a_card_say_so(tmp_path: Path) -> None:
    import shutil

    from diffusion_course.data.locations import DATA_DIR
    from diffusion_course.training.checkpoints import CheckpointError

    shutil.copy(DATA_DIR / UNET_EMA_FILE, tmp_path / UNET_EMA_FILE)  # weights, no card beside them
    with pytest.raises(CheckpointError, match="unet_config"):
        load_pretrained_unet(directory=tmp_path)


# ------------------------------------------------------------------ chapter 11: the conditional U-Net and its sweep
@pytest.fixture(scope="module")
def cond_unet():
    from diffusion_course.weights.shipped import load_pretrained_cond_unet

    return load_pretrained_cond_unet()


def test_cond_card_records_how_it_was_made_and_its_sweep(cond_unet) -> None:
    from diffusion_course.weights.shipped import GUIDANCE_SCALES

    model, card = cond_unet
    assert PROVENANCE <= set(card) and card["unet_config"]["num_classes"] == 10 and model.null_label == 10
    assert card["parameters"] == sum(p.numel() for p in model.parameters())
    assert card["training"]["label_dropout"] == 0.1 and card["initialised_from"]["from"] == UNET_EMA_FILE
    sweep = card["guidance_sweep"]["settings"]
    assert set(sweep) == {f"w{w:g}" for w in GUIDANCE_SCALES} | {"uncond"}
    for name, r in sweep.items():
        assert r["n"] == 10 * r["per_class"] and r["per_class"] >= 128, name  # the per-class Frechet needs 4 x 32
        if name != "uncond":
            assert 0 <= r["confident_correct_share"] <= r["accuracy"] <= 1 and len(r["per_class_ratio"]["each"]) == 10
    assert card["guidance_sweep"]["goal_w3_confident_correct_at_least_0.95"] == (sweep["w3"]["confident_correct_share"] >= 0.95)


def test_cond_sweep_numbers_are_reproduced_from_the_shipped_samples(cond_unet) -> None:
    """The shipped guided samples are the first 16 of each digit the sweep scored: re-reading them with the classifier
    gives accuracies consistent with the card's (160 of 1,280 samples, so within a few per cent)."""
    from diffusion_course.weights.shipped import load_guidance_samples

    _, card = cond_unet
    shipped = load_guidance_samples()
    labels = torch.arange(10).repeat_interleave(16)
    clf, _ = load_classifier()
    samples_card = json.loads((DATA_DIR / "mnist_cond_unet_samples.json").read_text())
    assert set(samples_card["settings"]) == set(shipped) == set(card["guidance_sweep"]["settings"])
    for name, entry in samples_card["settings"].items():
        assert entry["shipped"] == shipped[name].shape[0] and entry["scored"] == card["guidance_sweep"]["settings"][name]["n"], name
    for name in ("w0", "w3"):
        x = shipped[name]
        assert x.shape == (160, 1, 28, 28)
        _, p = classifier_outputs(clf, x)
        acc = float((p.argmax(1) == labels).double().mean())
        assert abs(acc - card["guidance_sweep"]["settings"][name]["accuracy"]) < 0.1, name


def test_cond_unet_draws_the_digit_asked_for(cond_unet, classifier) -> None:
    from diffusion_course.maths.guidance import guided_sample

    model, card = cond_unet
    clf, _ = classifier
    labels = torch.tensor([0, 1, 7]).repeat_interleave(8)
    x = guided_sample(model, schedule_from_card(card), labels, w=3.0, steps=10, generator=torch.Generator().manual_seed(0))
    _, p = classifier_outputs(clf, x)
    assert float((p.argmax(1) == labels).double().mean()) >= 0.8


def test_the_weights_command_lists_every_step_of_make_weights() -> None:
    """`python -m diffusion_course.weights.make --help` names every command the Makefile's `weights` target runs."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "diffusion_course.weights.make", "--help"], capture_output=True, text=True, check=True).stdout
    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    used = set(re.findall(r"-m diffusion_course\.weights\.make ([a-z-]+)", makefile))
    assert used and all(cmd in out for cmd in used), (sorted(used), out)


def test_collect_writes_kid_and_paired_differences_into_the_cards(tmp_path: Path) -> None:
    """`collect --what card` on scored parts: each setting keeps its KID interval, the card names the reference set and
    carries every paired KID difference, and the samples file holds what was scored. The parts are made here from real
    test digits (cheap stand-ins for samples), with a 2-step U-Net beside the shipped classifier."""
    import shutil

    from safetensors.torch import save_file

    from diffusion_course import CARD_SETTINGS, REFERENCE_SET, load_card_samples, quality_report, reference_splits, to_uint8
    from diffusion_course.weights.make_mnist import PAIRED_COMPARISONS
    from diffusion_course.weights.provenance import PARTS_DIR

    for suffix in (".safetensors", ".json"):
        shutil.copy(DATA_DIR / CLASSIFIER_FILE.replace(".safetensors", suffix), tmp_path)
    main(["train-unet", "--steps", "2", "--checkpoint-every", "1", "--out", str(tmp_path)])
    parts = tmp_path / PARTS_DIR / "card"
    parts.mkdir(parents=True)
    test = reference_splits()[1]
    for k, st in enumerate(CARD_SETTINGS):
        x = test[torch.arange(k * 70, k * 70 + 200) % len(test)]  # overlapping slices: paired sets that differ
        report = quality_report(x, floor_repeats=2, kid_resamples=20)
        entry = {"name": st.name, "description": st.describe(), **{a: v for a, v in vars(st).items() if a != "name"}, "seed": 0,
                 **report.as_dict(), "nearest_train_median": 1.0}
        (parts / f"{st.name}.json").write_text(json.dumps(entry))
        save_file({st.name: to_uint8(x).contiguous()}, str(parts / f"{st.name}.safetensors"))
    main(["collect", "--what", "card", "--out", str(tmp_path)])
    _, card = load_pretrained_unet("ema", directory=tmp_path)
    q = card["quality"]
    assert q["reference"] == REFERENCE_SET
    assert {label for label, _, _ in PAIRED_COMPARISONS} == set(q["paired_kid_differences"])
    for d in q["paired_kid_differences"].values():
        assert d["lo"] <= d["hi"]
        assert d["separated"] == (d["lo"] > 0 or d["hi"] < 0)
    for name, r in q["settings"].items():
        assert r["kid_lo"] <= r["kid_hi"] and r["reference"] == REFERENCE_SET, name
    torch.testing.assert_close(load_card_samples("ddim50_eta0", directory=tmp_path), test[70:270], atol=1 / 127.5, rtol=0)


@pytest.mark.parametrize("what", ["table", "calls"])
def test_collect_pairs_the_cells_of_the_ddim_and_calls_tables(tmp_path: Path, what: str) -> None:
    """`collect --what table|calls`: every cell and every paired difference of `table_pairs` / `calls_pairs` in the
    table file, the reference named, each interval ordered and "separated" exactly when it excludes 0. Real test digits
    stand in for samples."""
    import shutil

    from safetensors.torch import save_file

    from diffusion_course import REFERENCE_SET, calls_settings, quality_report, reference_splits, table_settings, to_uint8
    from diffusion_course.weights.make_mnist import calls_pairs, table_pairs
    from diffusion_course.weights.provenance import PARTS_DIR
    from diffusion_course.weights.shipped import CALLS_TABLE_FILE, TABLE_FILE

    settings_of, pairs, file = {"table": (table_settings, table_pairs, TABLE_FILE), "calls": (calls_settings, calls_pairs, CALLS_TABLE_FILE)}[what]
    for suffix in (".safetensors", ".json"):
        shutil.copy(DATA_DIR / CLASSIFIER_FILE.replace(".safetensors", suffix), tmp_path)
    parts = tmp_path / PARTS_DIR / what
    parts.mkdir(parents=True)
    test = reference_splits()[1]
    settings = settings_of(128)
    for k, st in enumerate(settings):
        x = test[torch.arange(k * 20, k * 20 + 128) % len(test)]
        entry = {"name": st.name, **quality_report(x, floor_repeats=2, kid_resamples=20).as_dict()}
        (parts / f"{st.name}.json").write_text(json.dumps(entry))
        save_file({st.name: to_uint8(x).contiguous()}, str(parts / f"{st.name}.safetensors"))
    main(["collect", "--what", what, "--table-n", "128", "--out", str(tmp_path)])
    table = json.loads((tmp_path / file).read_text())
    assert table["reference"] == REFERENCE_SET and set(table["cells"]) == {s.name for s in settings}
    assert {label for label, _, _ in pairs()} == set(table["paired_kid_differences"])
    for d in table["paired_kid_differences"].values():
        assert d["lo"] <= d["kid_a_minus_b"] <= d["hi"] and d["separated"] == (d["lo"] > 0 or d["hi"] < 0)


def test_null_vs_start_pairs_the_null_label_with_its_starting_model(tmp_path: Path) -> None:
    """null-vs-start on a conditional U-Net whose null label computes exactly its starting model (the shipped
    unconditional weights with a zero label table): both sample sets come from the same x_T, so they are identical and
    the paired KID difference is exactly 0; the card names the start by its sha256 and says it is the one it began from."""
    import dataclasses
    import hashlib
    import shutil

    from diffusion_course.training.checkpoints import save_weights
    from diffusion_course.weights.shipped import COND_UNET_FILE, SHIPPED_UNET_CONFIG, load_pretrained_cond_unet

    for suffix in (".safetensors", ".json"):
        shutil.copy(DATA_DIR / CLASSIFIER_FILE.replace(".safetensors", suffix), tmp_path)
    start, start_card = load_pretrained_unet("ema")
    save_weights(start, tmp_path / UNET_EMA_FILE, start_card)
    _, cond_card = load_pretrained_cond_unet()
    cond = UNet(dataclasses.replace(SHIPPED_UNET_CONFIG, num_classes=10))
    missing, _ = cond.load_state_dict(start.state_dict(), strict=False)
    assert missing == ["label_embed.weight"]
    torch.nn.init.zeros_(cond.label_embed.weight)
    sha = hashlib.sha256((tmp_path / UNET_EMA_FILE).read_bytes()).hexdigest()
    card = {k: v for k, v in cond_card.items() if k not in ("guidance_sweep", "null_vs_start", "architecture", "weights_sha256")}
    save_weights(cond, tmp_path / COND_UNET_FILE, {**card, "initialised_from": {"from": UNET_EMA_FILE, "weights_sha256": sha}})
    main(["null-vs-start", "--per-class", "1", "--steps", "2", "--batch", "4", "--out", str(tmp_path)])
    entry = json.loads((tmp_path / COND_UNET_FILE).with_suffix(".json").read_text())["null_vs_start"]
    assert entry["n"] == 10 and entry["start"] == {"weights_sha256": sha, "steps": start_card["training"]["steps"], "is_initialised_from": True}
    assert entry["kid_null_minus_start_paired"] == [0.0, 0.0, 0.0] and not entry["paired_separated"] and entry["same_digit_share"] == 1.0
    est, lo, hi = entry["kid_null_minus_start_unpaired"]
    assert est == 0.0 and lo <= 0.0 <= hi and not entry["unpaired_separated"]
    assert entry["null"] is None and entry["null_reproduces_shipped_samples"] is None  # 10 samples: too few for a Frechet distance; no sweep


def test_cond_card_scores_the_starting_model_like_the_null_label(cond_unet) -> None:
    """The card's null_vs_start used the sweep's null-label sampler, seed and n, and its intervals read as they say."""
    _, card = cond_unet
    entry, swept = card["null_vs_start"], card["guidance_sweep"]["settings"]["uncond"]
    assert (entry["sampler"], entry["seed"], entry["n"]) == (swept["sampler"], swept["seed"], swept["n"])
    for key, flag in (("kid_null_minus_start_paired", "paired_separated"), ("kid_null_minus_start_unpaired", "unpaired_separated")):
        est, lo, hi = entry[key]
        assert lo <= est <= hi and entry[flag] == (lo > 0 or hi < 0), key
    assert entry["start"]["is_initialised_from"] == (entry["start"]["weights_sha256"] == card["initialised_from"]["weights_sha256"])


def test_guidance_pairs_compare_the_same_noises() -> None:
    """guidance_paired_differences on stand-in "samples" (real test digits in label order): a setting against itself
    differs by exactly 0 in both scores; one with a tenth of its digits replaced by noise reads worse, separated."""
    from diffusion_course import shipped_classifier
    from diffusion_course.data.sets import mnist
    from diffusion_course.weights.make_guidance import GUIDANCE_PAIRS, guidance_paired_differences

    x, y = mnist("test", source="subset")
    per = 40
    good = torch.cat([x[y == c][:per] for c in range(10)])
    bad = good.clone()
    bad[::10] = torch.rand_like(bad[::10]) * 2 - 1  # every tenth "sample" is noise
    samples = {"w0": good, "w1": bad, "w2": good, "w3": good, "w5": good, "uncond": good}
    out = guidance_paired_differences(samples, per, classifier=shipped_classifier())
    assert set(out) == {label for label, _, _ in GUIDANCE_PAIRS} and "confident_correct_a_minus_b" not in out["w0 - uncond"]
    assert out["w3 - w2"]["kid_a_minus_b"] == [0.0, 0.0, 0.0] and out["w3 - w2"]["confident_correct_a_minus_b"] == [0.0, 0.0, 0.0]
    worse = out["w1 - w0"]
    assert worse["kid_separated"] and worse["kid_a_minus_b"][1] > 0  # noise raises the KID, beyond its interval
    assert worse["confident_correct_separated"] and worse["confident_correct_a_minus_b"][2] < 0
    same = out["w3 - w2"]["per_class_kid_a_minus_b"]
    assert len(same) == 10 and all(e == [0.0, 0.0, 0.0] for e in same)
    assert all(lo <= est <= hi for est, lo, hi in worse["per_class_kid_a_minus_b"])
    assert sum(est > 0 for est, _, _ in worse["per_class_kid_a_minus_b"]) >= 8  # noise in every digit's samples raises its KID


def test_flow_card_commands_pair_with_the_ddpm_card(tmp_path: Path) -> None:
    """evaluate-flow on a 2-step flow U-Net writes its part (calls, KID interval, the uint8 samples it scored);
    collect-flow, on parts planted from real test digits, writes every setting and every paired difference of FLOW_PAIRS
    into both flow cards, the DDPM card's rows at equal calls beside them, and ships the samples."""
    import shutil

    from safetensors.torch import load_file, save_file

    from diffusion_course import REFERENCE_SET, load_pretrained_flow_unet, quality_report, reference_splits, to_uint8
    from diffusion_course.weights.make_flow import FLOW_CARD_SETTINGS, FLOW_PAIRS
    from diffusion_course.weights.provenance import PARTS_DIR
    from diffusion_course.weights.shipped import FLOW_SAMPLES_FILE, SAMPLES_FILE

    for name in (CLASSIFIER_FILE, UNET_EMA_FILE, SAMPLES_FILE):
        for suffix in (".safetensors", ".json"):
            shutil.copy(DATA_DIR / name.replace(".safetensors", suffix), tmp_path)
    main(["train-flow-unet", "--steps", "2", "--checkpoint-every", "1", "--out", str(tmp_path)])
    main(["evaluate-flow", "--only", "flow_heun_10", "--n", "128", "--out", str(tmp_path)])
    part = json.loads((tmp_path / PARTS_DIR / "flow" / "flow_heun_10.json").read_text())
    assert part["calls"] == 19 and part["n"] == 128 and part["kid_lo"] <= part["kid"] <= part["kid_hi"]
    assert load_file(str(tmp_path / PARTS_DIR / "flow" / "flow_heun_10.safetensors"))["flow_heun_10"].shape == (128, 1, 28, 28)
    test = reference_splits()[1]
    for k, (name, *_rest) in enumerate(FLOW_CARD_SETTINGS):  # planted parts: overlapping slices of the test digits
        x = test[torch.arange(k * 50, k * 50 + 1000) % len(test)]
        entry = {"name": name, "calls": 10 + k, **quality_report(x, floor_repeats=2, kid_resamples=20).as_dict()}
        (tmp_path / PARTS_DIR / "flow" / f"{name}.json").write_text(json.dumps(entry))
        save_file({name: to_uint8(x).contiguous()}, str(tmp_path / PARTS_DIR / "flow" / f"{name}.safetensors"))
    main(["collect-flow", "--out", str(tmp_path)])
    for which in ("ema", "raw"):
        _, card = load_pretrained_flow_unet(which, directory=tmp_path)
        q = card["quality"]
        assert q["reference"] == REFERENCE_SET and set(q["settings"]) == {s[0] for s in FLOW_CARD_SETTINGS}
        assert set(q["paired_kid_differences"]) == {label for label, _, _ in FLOW_PAIRS}
        for d in q["paired_kid_differences"].values():
            assert d["lo"] <= d["kid_a_minus_b"] <= d["hi"] and d["separated"] == (d["lo"] > 0 or d["hi"] < 0)
        assert set(q["ddpm_unet_at_equal_calls"]) == {"dpm2m_10", "dpm2m_20", "heun_10", "ddim50_eta0"}
    assert set(load_file(str(tmp_path / FLOW_SAMPLES_FILE))) == {s[0] for s in FLOW_CARD_SETTINGS}


def test_the_flow_unet_card_holds_its_quality_table() -> None:
    """The shipped flow-matching U-Net loads as FlowTime(UNet) with its card: every flow setting scored on 1,000
    samples against the reference set with KID intervals, paired against the DDPM card at equal calls, and the stored
    KID is what the shipped samples score."""
    from diffusion_course import REFERENCE_SET, FlowTime, load_flow_samples, load_pretrained_flow_unet, quality_report
    from diffusion_course.weights.make_flow import FLOW_CARD_SETTINGS, FLOW_PAIRS

    model, card = load_pretrained_flow_unet()
    assert isinstance(model, FlowTime) and not model.training
    assert PROVENANCE <= set(card) and card["parameters"] == sum(p.numel() for p in model.parameters())
    q = card["quality"]
    assert q["reference"] == REFERENCE_SET and set(q["settings"]) == {s[0] for s in FLOW_CARD_SETTINGS}
    assert set(q["paired_kid_differences"]) == {label for label, _, _ in FLOW_PAIRS}
    for name, r in q["settings"].items():
        assert r["n"] == 1000 and r["kid_lo"] <= r["kid"] <= r["kid_hi"], name
    x = load_flow_samples("flow_euler_10")
    assert x.shape == (1000, 1, 28, 28)
    again = quality_report(x, seed=0)
    assert again.kid == pytest.approx(q["settings"]["flow_euler_10"]["kid"], abs=1e-6)


def test_the_shipped_calls_table_covers_every_sampler_and_budget() -> None:
    """Chapter 12's quality-against-calls table: every setting of calls_settings on 1,000 samples against the reference
    set, with the paired differences of calls_pairs, each interval ordered."""
    from diffusion_course import REFERENCE_SET, calls_settings, load_calls_table
    from diffusion_course.weights.make_mnist import calls_pairs

    t = load_calls_table()
    assert t["reference"] == REFERENCE_SET and set(t["cells"]) == {s.name for s in calls_settings()}
    assert all(c["n"] == 1000 and c["kid_lo"] <= c["kid"] <= c["kid_hi"] for c in t["cells"].values())
    assert set(t["paired_kid_differences"]) == {label for label, _, _ in calls_pairs()}
    assert all(d["lo"] <= d["kid_a_minus_b"] <= d["hi"] for d in t["paired_kid_differences"].values())


def test_the_noisy_classifier_card_holds_what_chapter_14_reads() -> None:
    """Chapter 14's noise-aware classifier loads with its card: how it was made, its accuracy by t beside the clean
    classifier's on the same noised test digits, the classifier-guidance sweep (every setting of CG_SETTINGS on 128 digits
    of each class, every pair of CG_PAIRS with ordered intervals), and the shipped samples are those the card scored."""
    from diffusion_course import (
        ACCURACY_TS,
        CG_PAIRS,
        CG_SETTINGS,
        NoisyClassifier,
        load_classifier_guidance_samples,
        load_noisy_classifier,
    )

    model, card = load_noisy_classifier()
    assert isinstance(model, NoisyClassifier) and not model.training and not any(p.requires_grad for p in model.parameters())
    assert PROVENANCE <= set(card) and card["parameters"] == sum(p.numel() for p in model.parameters())
    acc = card["accuracy_by_t"]
    assert acc["t"] == list(ACCURACY_TS) and acc["images"] == 1000 and len(acc["noisy"]) == len(acc["clean"]) == len(ACCURACY_TS)
    assert all(0 <= a <= 1 for a in acc["noisy"] + acc["clean"])
    sweep = card["classifier_guidance_sweep"]
    assert set(sweep["settings"]) == {s[0] for s in CG_SETTINGS} and set(sweep["paired"]) == {label for label, _, _ in CG_PAIRS}
    for name, r in sweep["settings"].items():
        assert r["per_class"] >= 128 and r["n"] == 10 * r["per_class"] and 0 <= r["confident_correct_share"] <= r["accuracy"] <= 1, name
        assert r["judged_by_its_own_guide"] == (r["guide"] == "clean"), name
    for label, d in sweep["paired"].items():
        for key in ("kid_a_minus_b", "accuracy_a_minus_b", "confident_correct_a_minus_b"):
            est, lo, hi = d[key]
            assert lo <= est <= hi, (label, key)
    shipped = load_classifier_guidance_samples()
    assert set(shipped) == set(sweep["settings"])
    labels = torch.arange(10).repeat_interleave(16)
    clf, _ = load_classifier()
    for name in ("unguided", "noisy_s3"):
        assert shipped[name].shape == (160, 1, 28, 28)
        _, p = classifier_outputs(clf, shipped[name])
        assert abs(float((p.argmax(1) == labels).double().mean()) - sweep["settings"][name]["accuracy"]) < 0.1, name


def test_classifier_guidance_pairs_compare_the_same_noises() -> None:
    """classifier_guidance_paired_differences on stand-in "samples" (real test digits in label order): a setting against
    itself differs by exactly 0; one with every fifth digit replaced by noise reads worse, separated from 0."""
    from diffusion_course import CG_PAIRS, classifier_guidance_paired_differences, shipped_classifier
    from diffusion_course.data.sets import mnist

    x, y = mnist("test", source="subset")
    per = 40
    good = torch.cat([x[y == c][:per] for c in range(10)])
    bad = good.clone()
    bad[::5] = torch.rand_like(bad[::5]) * 2 - 1
    samples = {name: good for name in ("unguided", "noisy_s1", "noisy_s3", "noisy_s10", "clean_s3", "clean_s10")}
    samples["noisy_s1"] = bad
    out = classifier_guidance_paired_differences(samples, per, classifier=shipped_classifier())
    assert set(out) == {label for label, _, _ in CG_PAIRS}
    assert out["clean_s3 - noisy_s3"]["kid_a_minus_b"] == [0.0, 0.0, 0.0] and out["clean_s3 - noisy_s3"]["accuracy_a_minus_b"] == [0.0, 0.0, 0.0]
    worse = out["noisy_s1 - unguided"]
    assert worse["kid_separated"] and worse["kid_a_minus_b"][1] > 0
    assert worse["accuracy_separated"] and worse["accuracy_a_minus_b"][2] < 0 and worse["confident_correct_a_minus_b"][2] < 0
    better = out["noisy_s3 - noisy_s1"]  # the same pair the other way round
    assert better["accuracy_a_minus_b"][0] == pytest.approx(-worse["accuracy_a_minus_b"][0])
    with pytest.raises(ValueError, match="samples"):
        classifier_guidance_paired_differences({"unguided": good}, per, classifier=shipped_classifier())


def test_the_chapter_14_commands_run_end_to_end(tmp_path: Path) -> None:
    """train-noisy-classifier (2 steps of a width-2 network) writes weights and a card with both accuracies by t, the clean
    classifier's as good as its own card says on clean digits; evaluate-classifier-guidance (13 digits of each class, 2
    DDIM steps) scores one setting at a time and, once all are scored, writes the sweep into the card and ships the samples."""
    import shutil

    from safetensors.torch import load_file

    from diffusion_course import ACCURACY_TS, CG_PAIRS, CG_SETTINGS, load_noisy_classifier
    from diffusion_course.weights.provenance import PARTS_DIR
    from diffusion_course.weights.shipped import CG_SAMPLES_FILE, NOISY_CLASSIFIER_FILE

    for name in (CLASSIFIER_FILE, UNET_EMA_FILE):
        for suffix in (".safetensors", ".json"):
            shutil.copy(DATA_DIR / name.replace(".safetensors", suffix), tmp_path)
    main(["train-noisy-classifier", "--steps", "2", "--width", "2", "--batch-size", "16", "--out", str(tmp_path)])
    model, card = load_noisy_classifier(directory=tmp_path)
    assert card["noisy_classifier_config"]["width"] == 2 and card["training"]["steps"] == 2 and PROVENANCE <= set(card)
    acc = card["accuracy_by_t"]
    assert acc["t"] == list(ACCURACY_TS) and acc["clean"][0] > 0.9 and acc["clean"][0] > acc["clean"][-1]
    main(["evaluate-classifier-guidance", "--only", "unguided", "--per-class", "13", "--steps", "2", "--batch", "130", "--out", str(tmp_path)])
    assert "classifier_guidance_sweep" not in load_noisy_classifier(directory=tmp_path)[1]  # not merged until every setting is scored
    main(["evaluate-classifier-guidance", "--per-class", "13", "--steps", "2", "--batch", "130", "--out", str(tmp_path)])
    parts = tmp_path / PARTS_DIR / "classifier_guidance"
    assert load_file(str(parts / "noisy_s3.safetensors"))["noisy_s3"].shape == (130, 1, 28, 28)
    _, card = load_noisy_classifier(directory=tmp_path)
    sweep = card["classifier_guidance_sweep"]
    assert set(sweep["settings"]) == {s[0] for s in CG_SETTINGS} and set(sweep["paired"]) == {label for label, _, _ in CG_PAIRS}
    assert all(r["n"] == 130 for r in sweep["settings"].values())
    assert card["accuracy_by_t"] == acc  # the sweep is added; the card keeps the rest
    shipped = load_file(str(tmp_path / CG_SAMPLES_FILE))
    assert set(shipped) == set(sweep["settings"]) and all(v.shape == (130, 1, 28, 28) for v in shipped.values())
    assert (tmp_path / NOISY_CLASSIFIER_FILE).with_suffix(".json").exists()
