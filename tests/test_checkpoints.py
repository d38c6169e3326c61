"""Checkpoints and shipped weights: atomic writes, round trips, and a clear CheckpointError (never a stack of shape
mismatches) for corrupt or truncated files and for another architecture."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch
from torch import nn

from diffusion_course.models.mlp import MLPConfig, MLPDenoiser
from diffusion_course.models.unet import UNet, UNetConfig
from diffusion_course.training.checkpoints import CheckpointError, architecture_of, atomic_save, load_checkpoint, load_weights, save_weights

SMALL = dict(base_channels=8, norm_groups=4, num_res_blocks=1, channel_mults=(1, 2), attention_levels=(1,))


def _unet(**kw) -> UNet:
    torch.manual_seed(kw.pop("seed", 0))
    return UNet(UNetConfig(**{**SMALL, **kw}))


def _state(model: nn.Module) -> dict:
    return {"model": model.state_dict(), "architecture": architecture_of(model), "step": 3}


def test_atomic_save_round_trip(tmp_path: Path) -> None:
    model = _unet()
    atomic_save(_state(model), tmp_path / "a.pt")
    state = load_checkpoint(tmp_path / "a.pt", model)
    assert state["step"] == 3
    for a, b in zip(state["model"].values(), model.state_dict().values()):
        assert torch.equal(a, b)


def test_failed_save_leaves_the_old_file_and_no_debris(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.pt"
    atomic_save(_state(_unet()), path)
    before = path.read_bytes()
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        atomic_save({"model": {}, "bad": lambda: None}, path)  # a lambda cannot be pickled: fails mid-write
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"]


def test_saved_files_are_readable_by_others(tmp_path: Path) -> None:
    atomic_save(_state(_unet()), tmp_path / "a.pt")
    save_weights(_unet(), tmp_path / "w.safetensors")
    for name in ("a.pt", "w.safetensors", "w.json"):
        assert (tmp_path / name).stat().st_mode & 0o044 == 0o044, name  # not mkstemp's private rw-------


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_checkpoint_raises_checkpoint_error(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "c.pt"
    atomic_save(_state(_unet()), path)
    data = path.read_bytes()
    path.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"not a checkpoint" * 10, "empty": b""}[damage])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(path, _unet())


def test_foreign_torch_file_raises(tmp_path: Path) -> None:
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a diffusion_course training checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_checkpoint_for_another_architecture(tmp_path: Path) -> None:
    atomic_save(_state(_unet(base_channels=8)), tmp_path / "c.pt")
    with pytest.raises(CheckpointError, match="another architecture.*differ in shape"):
        load_checkpoint(tmp_path / "c.pt", _unet(base_channels=16, norm_groups=8))
    with pytest.raises(CheckpointError, match="holds a UNet but the model is a MLPDenoiser"):
        load_checkpoint(tmp_path / "c.pt", MLPDenoiser(MLPConfig()))


def test_same_shapes_other_config_is_another_architecture(tmp_path: Path) -> None:
    """Two attention heads instead of one: identical tensor shapes, a different function."""
    atomic_save(_state(_unet(num_heads=1)), tmp_path / "c.pt")
    with pytest.raises(CheckpointError, match="num_heads"):
        load_checkpoint(tmp_path / "c.pt", _unet(num_heads=2))


def test_dropout_is_not_architecture(tmp_path: Path) -> None:
    saved = _unet(dropout=0.0)
    save_weights(saved, tmp_path / "w.safetensors")
    loaded = _unet(dropout=0.1, seed=1)
    load_weights(loaded, tmp_path / "w.safetensors")  # no CheckpointError: dropout changes training, not the function
    assert all(torch.equal(a, b) for a, b in zip(saved.state_dict().values(), loaded.state_dict().values()))


def test_a_card_from_another_save_is_refused(tmp_path: Path) -> None:
    """Weights and card are two files replaced one after the other: a crash between them must not go unnoticed."""
    save_weights(_unet(seed=0), tmp_path / "w.safetensors", {"run": "old"})
    old_card = (tmp_path / "w.json").read_text()
    save_weights(_unet(seed=1), tmp_path / "w.safetensors", {"run": "new"})
    (tmp_path / "w.json").write_text(old_card)  # new weights, old card: what a crash between the two replaces leaves
    with pytest.raises(CheckpointError, match="does not belong"):
        load_weights(_unet(), tmp_path / "w.safetensors")


def test_atomic_writes_leave_the_umask_alone(tmp_path: Path) -> None:
    import os

    before = os.umask(0o027)
    try:
        atomic_save({"x": torch.zeros(1)}, tmp_path / "c.pt")
        assert os.umask(0o027) == 0o027  # nothing changed the mask while saving
    finally:
        os.umask(before)


def test_weights_round_trip_with_card(tmp_path: Path) -> None:
    model = _unet()
    card_path = save_weights(model, tmp_path / "w.safetensors", {"steps": 10, "note": "test"})
    assert card_path == tmp_path / "w.json"
    other = _unet(seed=1)
    card = load_weights(other, tmp_path / "w.safetensors")
    assert card["steps"] == 10 and card["architecture"]["class"] == "UNet"
    assert card["architecture"]["config"]["channel_mults"] == [1, 2]
    for a, b in zip(other.state_dict().values(), model.state_dict().values()):
        assert torch.equal(a, b)


def _weights_unchanged(model: nn.Module, before: dict) -> bool:
    return all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), before.values()))


def test_weights_for_another_architecture(tmp_path: Path) -> None:
    save_weights(_unet(), tmp_path / "w.safetensors")
    target = _unet(base_channels=16, norm_groups=8)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(CheckpointError, match="another architecture"):
        load_weights(target, tmp_path / "w.safetensors")
    assert _weights_unchanged(target, before)


def test_weights_without_card_are_still_checked(tmp_path: Path) -> None:
    save_weights(_unet(), tmp_path / "w.safetensors")
    (tmp_path / "w.json").unlink()
    with pytest.raises(CheckpointError, match="differ in shape"):
        load_weights(_unet(base_channels=16, norm_groups=8), tmp_path / "w.safetensors")


def test_card_that_lies_about_the_file(tmp_path: Path) -> None:
    """A card copied from another model does not let mismatching tensors through."""
    save_weights(_unet(base_channels=16, norm_groups=8), tmp_path / "w.safetensors")
    save_weights(_unet(), tmp_path / "small.safetensors")
    (tmp_path / "w.json").write_text((tmp_path / "small.json").read_text())
    with pytest.raises(CheckpointError, match="differ in shape"):
        load_weights(_unet(), tmp_path / "w.safetensors")


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_weights(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "w.safetensors"
    save_weights(_unet(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"\x00" * 64)
    target = _unet(seed=2)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_weights(target, path)
    assert _weights_unchanged(target, before)


def test_corrupt_card(tmp_path: Path) -> None:
    save_weights(_unet(), tmp_path / "w.safetensors")
    (tmp_path / "w.json").write_text('{"steps": 1')
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_weights(_unet(), tmp_path / "w.safetensors")


def test_missing_weights_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_weights(_unet(), tmp_path / "absent.safetensors")


def test_card_is_json_with_architecture(tmp_path: Path) -> None:
    save_weights(_unet(), tmp_path / "w.safetensors", {"seed": 0})
    card = json.loads((tmp_path / "w.json").read_text())
    assert set(card["architecture"]) == {"class", "config", "shapes"}
