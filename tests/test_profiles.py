"""COURSE_SIZES beside COURSE_PROFILE: sizes follow COURSE_SIZES, switches (picks of three bools) follow the profile, so
``COURSE_PROFILE=gpu COURSE_SIZES=smoke`` takes every gpu-only branch at tiny sizes; and every chapter with such a
branch is in the Makefile's second nbval pass (GPU_BRANCH_NOTEBOOKS)."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from diffusion_course.teaching import profiles

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch):
    """set(profile, sizes): sets COURSE_PROFILE and COURSE_SIZES (None: unset)."""

    def set_(profile: str | None, sizes: str | None = None) -> None:
        for var, value in (("COURSE_PROFILE", profile), ("COURSE_SIZES", sizes)):
            if value is None:
                monkeypatch.delenv(var, raising=False)
            else:
                monkeypatch.setenv(var, value)

    return set_


@pytest.mark.parametrize("profile", profiles.PROFILES)
def test_unset_sizes_are_the_profiles_own(env, profile: str) -> None:
    for sizes in (None, "", "  "):
        env(profile, sizes)
        assert profiles.active_sizes() == profile
        assert profiles.pick(smoke=1, cpu=2, gpu=3) == {"smoke": 1, "cpu": 2, "gpu": 3}[profile]
        assert profiles.pick(smoke=True, cpu=False, gpu=False) is (profile == "smoke")


@pytest.mark.parametrize("profile", profiles.PROFILES)
@pytest.mark.parametrize("sizes", profiles.PROFILES)
def test_sizes_follow_course_sizes_and_switches_follow_the_profile(env, profile: str, sizes: str) -> None:
    env(profile, sizes)
    index = {"smoke": 0, "cpu": 1, "gpu": 2}
    assert profiles.active_profile() == profile and profiles.active_sizes() == sizes
    assert profiles.pick(smoke=10, cpu=20, gpu=30) == (10, 20, 30)[index[sizes]]
    assert profiles.pick(smoke=(1,), cpu=(1, 2), gpu=(1, 2, 3)) == ((1,), (1, 2), (1, 2, 3))[index[sizes]]
    assert profiles.pick(smoke="tiny", cpu="small", gpu="wide") == ("tiny", "small", "wide")[index[sizes]]
    for flags in ((False, False, True), (True, True, False), (True, False, True)):
        assert profiles.pick(smoke=flags[0], cpu=flags[1], gpu=flags[2]) is flags[index[profile]]


def test_a_pick_is_a_switch_only_when_all_three_values_are_bools(env) -> None:
    env("gpu", "smoke")
    assert profiles.pick(smoke=0, cpu=False, gpu=True) == 0  # an int among bools: a size, so COURSE_SIZES chooses
    assert profiles.pick(smoke=False, cpu=False, gpu=1) is False
    assert profiles.pick(smoke=None, cpu=None, gpu=True) is None
    assert profiles.pick(smoke=False, cpu=False, gpu=True) is True


def test_course_sizes_is_read_like_course_profile(env) -> None:
    env("gpu", " Smoke ")
    assert profiles.active_sizes() == "smoke"
    assert profiles.pick(smoke=1, cpu=2, gpu=3) == 1


@pytest.mark.parametrize("fn", [profiles.active_sizes, profiles.describe, lambda: profiles.pick(smoke=1, cpu=2, gpu=3),
                                lambda: profiles.pick(smoke=False, cpu=False, gpu=True, name="switch")])
@pytest.mark.parametrize("bad", ["laptop", "gpu-small", "0"])
def test_bad_course_sizes_names_the_variable_and_the_choices(env, fn, bad: str) -> None:
    env("gpu", bad)
    with pytest.raises(ValueError, match=rf"COURSE_SIZES.*smoke, cpu, gpu.*{re.escape(repr(bad))}"):
        fn()


def test_bad_course_profile_is_still_reported_as_the_profile(env) -> None:
    env("laptop", "smoke")
    with pytest.raises(ValueError, match=r"COURSE_PROFILE.*smoke, cpu, gpu.*'laptop'"):
        profiles.pick(smoke=1, cpu=2, gpu=3)


def test_printed_line_is_unchanged_without_course_sizes(env, capsys: pytest.CaptureFixture[str]) -> None:
    for sizes in (None, "cpu"):  # unset, or naming the profile's own sizes: the same line as before COURSE_SIZES existed
        env("cpu", sizes)
        profiles.pick(smoke=10, cpu=20, gpu=30, name="steps")
        profiles.pick(smoke=False, cpu=False, gpu=True, name="TRAIN_FROM_SCRATCH")
        assert capsys.readouterr().out.splitlines() == [
            "steps = 20  (profile 'cpu'; smoke=10, cpu=20, gpu=30)",
            "TRAIN_FROM_SCRATCH = False  (profile 'cpu'; smoke=False, cpu=False, gpu=True)",
        ]


def test_printed_line_names_profile_and_sizes_the_chooser_first(env, capsys: pytest.CaptureFixture[str]) -> None:
    env("gpu", "smoke")
    profiles.pick(smoke=False, cpu=False, gpu=True, name="TRAIN_FROM_SCRATCH")
    profiles.pick(smoke=5, cpu=15_000, gpu=20_000, name="steps")
    profiles.pick(smoke=2, cpu=3, gpu=4)  # no name: prints nothing
    assert capsys.readouterr().out.splitlines() == [
        "TRAIN_FROM_SCRATCH = True  (profile 'gpu', sizes 'smoke'; smoke=False, cpu=False, gpu=True)",
        "steps = 5  (sizes 'smoke', profile 'gpu'; smoke=5, cpu=15000, gpu=20000)",
    ]


def test_describe_mentions_the_sizes_only_when_they_differ(env) -> None:
    env("smoke", None)
    assert profiles.describe().startswith("profile 'smoke' on ")
    env("smoke", "smoke")
    assert profiles.describe().startswith("profile 'smoke' on ")
    env("gpu", "smoke")
    line = profiles.describe()
    assert line.startswith("profile 'gpu' with 'smoke' sizes on "), line


# --- the second nbval pass: every chapter with a gpu-only branch ------------------------------------------------------


def _code(path: Path) -> str:
    """The notebook's code cells as one Python text, IPython magics and shell lines left out."""
    cells = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    lines = [ln for c in cells for ln in "".join(c["source"]).splitlines() + [""] if not ln.lstrip().startswith(("%", "!"))]
    return "\n".join(lines)


def _switches_and_profile_uses(source: str) -> list[str]:
    """Each pick of three bool constants and each name active_profile in ``source``, as text."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "pick":
            kw = {k.arg: k.value for k in node.keywords}
            if all(isinstance(kw.get(p), ast.Constant) and isinstance(kw[p].value, bool) for p in profiles.PROFILES):
                found.append(ast.unparse(node))
        elif isinstance(node, (ast.Name, ast.Attribute, ast.alias)) and "active_profile" in (
                getattr(node, "id", None), getattr(node, "attr", None), getattr(node, "name", None)):
            found.append("active_profile")
    return found


def _gpu_branch_notebooks() -> list[str]:
    text = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    m = re.search(r"^GPU_BRANCH_NOTEBOOKS\s*:?=(.*)$", text, re.M)
    assert m, "the Makefile defines no GPU_BRANCH_NOTEBOOKS"
    return m.group(1).split()


def test_the_detector_finds_switches_and_profile_uses() -> None:
    assert _switches_and_profile_uses("x = pick(smoke=False, cpu=False, gpu=True, name='a')") == ["pick(smoke=False, cpu=False, gpu=True, name='a')"]
    assert _switches_and_profile_uses("if p.pick(smoke=True, cpu=True, gpu=False):\n    pass") != []
    assert _switches_and_profile_uses("from m import (a, active_profile)\nprint(active_profile())") != []
    assert _switches_and_profile_uses("n = pick(smoke=1, cpu=2, gpu=3)\nk = pick(smoke=0, cpu=False, gpu=True)") == []


def test_every_chapter_with_a_gpu_only_branch_runs_in_the_second_nbval_pass() -> None:
    listed = _gpu_branch_notebooks()
    assert listed == sorted(set(listed)), f"GPU_BRANCH_NOTEBOOKS: keep it sorted, without repeats: {listed}"
    missing_files = [p for p in listed if not (ROOT / p).is_file()]
    assert not missing_files, f"GPU_BRANCH_NOTEBOOKS names notebooks that do not exist: {missing_files}"
    with_branch = {str(p.relative_to(ROOT)): _switches_and_profile_uses(_code(p)) for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))}
    need = sorted(p for p, found in with_branch.items() if found)
    assert "notebooks/06_ddpm_images.ipynb" in need, "the detector no longer sees chapter 06's TRAIN_FROM_SCRATCH switch"
    unlisted = [p for p in need if p not in listed]
    assert not unlisted, "add to GPU_BRANCH_NOTEBOOKS in the Makefile (they have a gpu-only branch): " + "; ".join(
        f"{p}: {with_branch[p][0]}" for p in unlisted)
    extra = [p for p in listed if p not in need]
    assert not extra, f"GPU_BRANCH_NOTEBOOKS names notebooks without a switch or active_profile (drop them): {extra}"


def test_make_notebooks_runs_the_gpu_branches_at_smoke_sizes() -> None:
    text = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^notebooks:.*\n((?:\t.*\n)+)", text, re.M)
    assert recipe, "no notebooks target in the Makefile"
    passes = [ln for ln in recipe.group(1).splitlines() if "--nbval" in ln]
    second = [ln for ln in passes if "COURSE_PROFILE=gpu" in ln]
    assert len(second) == 1, passes
    assert "COURSE_SIZES=smoke" in second[0] and "$(GPU_BRANCH_NOTEBOOKS)" in second[0], second[0]
    assert any("COURSE_PROFILE=smoke" in ln and "COURSE_SIZES" not in ln for ln in passes), "the first pass (every notebook under smoke) is gone"
