"""Saving and loading (chapters 4-11, first shown in chapter 6): atomic training checkpoints that a run resumes from, and
safetensors weights with a JSON card beside them (what the shipped files are). No paper equations."""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["CheckpointError", "atomic_save", "load_checkpoint", "architecture_of", "save_weights", "load_weights", "read_card", "replace_atomically"]


class CheckpointError(ValueError):
    """A checkpoint that is corrupt, or built for another architecture than the model it is loaded into."""


# Config fields that change how a model trains but not which weights it has or what they compute.
_NOT_ARCHITECTURE = ("dropout",)


def _config_dict(config: Any) -> dict[str, Any] | str | None:
    """A model config as a JSON-safe dict (dataclass fields; tuples become lists), else its repr."""
    if config is None:
        return None
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return json.loads(json.dumps(dataclasses.asdict(config)))
    return repr(config)


def architecture_of(model: nn.Module) -> dict[str, Any]:
    """A description of the model that two compatible models share: class name, config, parameter shapes."""
    return {
        "class": type(model).__name__,
        "config": _config_dict(getattr(model, "config", None)),
        "shapes": {k: list(v.shape) for k, v in model.state_dict().items()},
    }


def _has_defaults(cls: type) -> bool:
    """Whether every field of the dataclass ``cls`` has a default (so ``cls()`` builds one)."""
    return all(f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING for f in dataclasses.fields(cls))


def _check_architecture(model: nn.Module, saved: dict[str, Any], path: Path) -> None:
    """Raise CheckpointError unless ``saved`` (from :func:`architecture_of`) describes a model like ``model``."""
    mine = architecture_of(model)
    if saved.get("class") != mine["class"]:
        raise CheckpointError(f"{path} holds a {saved.get('class')} but the model is a {mine['class']}")
    saved_shapes = saved.get("shapes") or {}
    if saved_shapes != mine["shapes"]:
        missing = sorted(set(mine["shapes"]) - set(saved_shapes))
        extra = sorted(set(saved_shapes) - set(mine["shapes"]))
        differ = [k for k in mine["shapes"] if k in saved_shapes and saved_shapes[k] != mine["shapes"][k]]
        detail = []
        if differ:
            k = differ[0]
            detail.append(f"{len(differ)} tensors differ in shape (first: {k} saved {saved_shapes[k]}, model {mine['shapes'][k]})")
        if missing:
            detail.append(f"{len(missing)} model tensors are absent (first: {missing[0]})")
        if extra:
            detail.append(f"{len(extra)} saved tensors are unknown to the model (first: {extra[0]})")
        raise CheckpointError(
            f"{path} was saved from a {saved.get('class')} of another architecture; {'; '.join(detail)}. "
            f"Saved config: {saved.get('config')}; model config: {mine['config']}"
        )
    # Same shapes can still mean another network (e.g. another number of attention heads): compare the configs too.
    a, b = saved.get("config"), mine["config"]
    if isinstance(a, dict) and isinstance(b, dict):
        # a field the saved config lacks was added to the class later: the file matches while the model keeps its default
        config = getattr(model, "config", None)
        defaults = _config_dict(type(config)()) if dataclasses.is_dataclass(config) and _has_defaults(type(config)) else {}
        a = {**{k: v for k, v in defaults.items() if k not in a and b.get(k) == v}, **a}
        differ = [k for k in sorted(set(a) | set(b)) if k not in _NOT_ARCHITECTURE and a.get(k) != b.get(k)]
        if differ:
            pairs = ", ".join(f"{k}: saved {a.get(k)!r}, model {b.get(k)!r}" for k in differ)
            raise CheckpointError(f"{path} was saved from a {saved.get('class')} with another config ({pairs})")


def _read_umask() -> int:
    """The process umask, read once: from /proc on Linux (no side effect); elsewhere by setting and restoring it, at
    import time, before any thread of the course could be writing files."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_read_umask()  # rw-r--r-- under the usual umask: what an ordinary open() gives (mkstemp's is rw-------)


def _fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (POSIX); a no-op where directories cannot be opened (Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_save(obj: Any, path: str | Path) -> None:
    """torch.save to a temporary file in the same folder, then rename it over ``path``: a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())

    replace_atomically(write, path)


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
        found = list(state)[:6] if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"{path} is not a diffusion_course training checkpoint (keys: {found})")
    if model is not None:
        _check_architecture(model, state["architecture"], path)
    return state


def replace_atomically(write: Callable[[Path], None], path: Path) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it over ``path`` (removed on failure)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb+") as f:  # whatever wrote it, its bytes reach the disk before the rename
            os.fsync(f.fileno())
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_weights(model: nn.Module, path: str | Path, card: dict[str, Any] | None = None) -> Path:
    """Write the model's weights as safetensors (no pickle) and, beside them, ``<name>.json`` with the card and the
    architecture. Both files are written atomically. Returns the card's path."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    digest = {}

    def write(tmp: Path) -> None:
        save_file(tensors, str(tmp), metadata={"class": type(model).__name__})
        digest["sha256"] = _sha256(tmp)

    replace_atomically(write, path)
    card_path = path.with_suffix(".json")
    full = dict(card or {})
    full["architecture"] = architecture_of(model)
    # The two files are replaced one after the other; a crash between them would pair new weights with an old card.
    # The card names the exact bytes it belongs to, and load_weights refuses a pair that does not match.
    full["weights_sha256"] = digest["sha256"]
    replace_atomically(lambda tmp: tmp.write_text(json.dumps(full, indent=2) + "\n"), card_path)
    return card_path


def _sha256(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_card(path: str | Path) -> dict[str, Any]:
    """The JSON card beside safetensors weights ``path`` (``x.safetensors`` -> ``x.json``); {} when there is none."""
    card_path = Path(path).with_suffix(".json")
    if not card_path.exists():
        return {}
    try:
        card = json.loads(card_path.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{card_path} is not valid JSON (corrupt or truncated?): {err}") from None
    if not isinstance(card, dict):
        raise CheckpointError(f"{card_path} must hold a JSON object; got {type(card).__name__}")
    return card


def load_weights(model: nn.Module, path: str | Path) -> dict[str, Any]:
    """Load safetensors weights written by :func:`save_weights` into ``model`` after checking the architecture (the
    card's, and the file's own tensor names and shapes). Returns the card. Raises :class:`CheckpointError` for a corrupt
    or truncated file or a model of another architecture, before touching the model's weights."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no weights at {path}")
    card = read_card(path)
    if "architecture" in card:
        _check_architecture(model, card["architecture"], path)
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{path} is not a readable safetensors file (corrupt or truncated?): {err}") from None
    file_arch = {"class": type(model).__name__, "shapes": {k: list(v.shape) for k, v in tensors.items()}}
    _check_architecture(model, file_arch, path)  # the file itself must match too, whatever its card says
    mine = model.state_dict()
    bad = [k for k, v in tensors.items() if v.dtype != mine[k].dtype and not (v.is_floating_point() and mine[k].is_floating_point())]
    if bad:
        raise CheckpointError(f"{path}: tensor {bad[0]} has dtype {tensors[bad[0]].dtype}, the model expects {mine[bad[0]].dtype}")
    if card.get("weights_sha256") and _sha256(path) != card["weights_sha256"]:
        raise CheckpointError(f"{path.with_suffix('.json')} does not belong to {path} (the weights' SHA-256 differs from the card's): "
                              "an interrupted save? Run `make weights` again")
    model.load_state_dict(tensors)
    return card
