"""Saving and loading: atomic training checkpoints (resume) and safetensors weights with a JSON card (shipping)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["CheckpointError", "atomic_save", "load_checkpoint", "architecture_of", "save_weights", "load_weights"]


class CheckpointError(ValueError):
    """A checkpoint that is corrupt, or built for another architecture than the model it is loaded into."""


def architecture_of(model: nn.Module) -> dict[str, Any]:
    """A description of the model that two compatible models share: class name, config, parameter shapes."""
    config = getattr(model, "config", None)
    return {
        "class": type(model).__name__,
        "config": repr(config) if config is not None else None,
        "shapes": {k: list(v.shape) for k, v in model.state_dict().items()},
    }


def _check_architecture(model: nn.Module, saved: dict[str, Any], path: Path) -> None:
    mine = architecture_of(model)
    if saved.get("class") != mine["class"]:
        raise CheckpointError(f"{path} holds a {saved.get('class')} but the model is a {mine['class']}")
    if saved.get("shapes") != mine["shapes"]:
        missing = sorted(set(mine["shapes"]) - set(saved.get("shapes", {})))
        extra = sorted(set(saved.get("shapes", {})) - set(mine["shapes"]))
        differ = [k for k in mine["shapes"] if k in saved.get("shapes", {}) and saved["shapes"][k] != mine["shapes"][k]]
        detail = []
        if differ:
            k = differ[0]
            detail.append(f"{len(differ)} tensors differ in shape (first: {k} saved {saved['shapes'][k]}, model {mine['shapes'][k]})")
        if missing:
            detail.append(f"{len(missing)} model tensors are absent (first: {missing[0]})")
        if extra:
            detail.append(f"{len(extra)} saved tensors are unknown to the model (first: {extra[0]})")
        raise CheckpointError(
            f"{path} was saved from a {saved.get('class')} of another size; {'; '.join(detail)}. "
            f"Saved config: {saved.get('config')}; model config: {mine['config']}"
        )


def atomic_save(obj: Any, path: str | Path) -> None:
    """torch.save to a temporary file in the same folder, then rename it over ``path``: a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_checkpoint(path: str | Path, model: nn.Module | None = None) -> dict[str, Any]:
    """Load a training checkpoint written by :func:`atomic_save` (tensors only, ``weights_only=True``).

    With ``model``, first checks that the checkpoint was built for the same architecture; raises :class:`CheckpointError`
    with a one-line reason for a corrupt file or another architecture.
    """
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as err:
        raise CheckpointError(f"{path} is not a readable checkpoint (corrupt or truncated?): {type(err).__name__}: {err}") from None
    if not isinstance(state, dict) or "model" not in state or "architecture" not in state:
        raise CheckpointError(f"{path} is not a diffusion_course training checkpoint (keys: {list(state)[:6] if isinstance(state, dict) else type(state).__name__})")
    if model is not None:
        _check_architecture(model, state["architecture"], path)
    return state


def save_weights(model: nn.Module, path: str | Path, card: dict[str, Any] | None = None) -> Path:
    """Write the model's weights as safetensors (no pickle) and, beside them, ``<name>.json`` with the card and the
    architecture. Both files are written atomically. Returns the card's path."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={"class": type(model).__name__})
    os.replace(tmp, path)
    card_path = path.with_suffix(".json")
    full = dict(card or {})
    full["architecture"] = architecture_of(model)
    tmp_card = card_path.with_name(card_path.name + ".tmp")
    tmp_card.write_text(json.dumps(full, indent=2) + "\n")
    os.replace(tmp_card, card_path)
    return card_path


def load_weights(model: nn.Module, path: str | Path) -> dict[str, Any]:
    """Load safetensors weights written by :func:`save_weights` into ``model`` after checking its card's architecture.
    Returns the card. Raises :class:`CheckpointError` for a corrupt file or a model of another architecture."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    card_path = path.with_suffix(".json")
    card: dict[str, Any] = json.loads(card_path.read_text()) if card_path.exists() else {}
    if "architecture" in card:
        _check_architecture(model, card["architecture"], path)
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path} is not a readable safetensors file (corrupt or truncated?): {err}") from None
    if "architecture" not in card:
        _check_architecture(model, {"class": type(model).__name__, "shapes": {k: list(v.shape) for k, v in tensors.items()}}, path)
    model.load_state_dict(tensors)
    return card
