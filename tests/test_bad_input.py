"""Bad input gets a ValueError whose message names the argument (STYLE.md, rule 9): one parametrised case per
function and kind of mistake, plus a check that every public function taking ``t``, ``steps``, ``spacing`` or
``variance`` has a case here, so a new function cannot slip through; then, at the end, a meta-test over every public
module of the package (found by pkgutil): a bad value of each numeric or choice argument of each public function or
class must raise ValueError / TypeError naming the argument and its allowed range."""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable

import numpy as np
import pytest
import torch

from diffusion_course import data
from diffusion_course.maths import forward, losses, posterior, samplers, schedules
from diffusion_course.maths.schedules import NoiseSchedule
from diffusion_course.models.embeddings import SinusoidalEmbedding, sinusoidal_embedding
from diffusion_course.models.mlp import MLPConfig, MLPDenoiser
from diffusion_course.teaching import profiles

T = 20
S = NoiseSchedule.linear(T, 1e-3, 0.2)
X = torch.zeros(4, 2)
EPS = torch.zeros(4, 2)
IMG = torch.zeros(2, 1, 4, 4)
BAD_SHAPE = torch.zeros(4, 3)
ZERO = lambda x, t: torch.zeros_like(x)  # noqa: E731  a model that predicts eps_hat = 0
LONG = lambda *v: torch.tensor(v, dtype=torch.long)  # noqa: E731


class _CondZero(torch.nn.Module):
    """A class-conditional model (10 classes, label 10 = no label) that predicts eps_hat = 0."""

    null_label = 10

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


COND_ZERO = _CondZero()


def _t_cases() -> list[tuple[str, str, Callable[[int], object]]]:
    """(function name, argument name, call(bad_t)) for every public function with a timestep argument."""
    B = X.shape[0]
    tb = lambda v: torch.full((B,), v, dtype=torch.long)  # noqa: E731
    return [
        ("q_step", "t", lambda v: forward.q_step(S, X, v)),
        ("q_sample", "t", lambda v: forward.q_sample(S, X, v)),
        ("add_noise", "t", lambda v: forward.add_noise(S, X, tb(v), EPS)),
        ("q_mean_variance", "t", lambda v: forward.q_mean_variance(S, X, v)),
        ("predict_x0_from_eps", "t", lambda v: forward.predict_x0_from_eps(S, X, v, EPS)),
        ("predict_eps_from_x0", "t", lambda v: forward.predict_eps_from_x0(S, X, v, X)),
        ("v_from_x0_eps", "t", lambda v: forward.v_from_x0_eps(S, X, v, EPS)),
        ("predict_x0_from_v", "t", lambda v: forward.predict_x0_from_v(S, X, v, EPS)),
        ("predict_eps_from_v", "t", lambda v: forward.predict_eps_from_v(S, X, v, EPS)),
        ("q_posterior", "t", lambda v: posterior.q_posterior(S, X, X, v)),
        ("posterior_mean_from_eps", "t", lambda v: posterior.posterior_mean_from_eps(S, X, v, EPS)),
        ("elbo_terms", "t", lambda v: losses.elbo_terms(ZERO, S, X, v, decoder="gaussian")),
        ("elbo_weight", "t", lambda v: losses.elbo_weight(S, tb(v))),
        ("simple_loss", "t", lambda v: losses.simple_loss(ZERO, S, X, t=tb(v))),
        ("conditional_simple_loss", "t", lambda v: losses.conditional_simple_loss(COND_ZERO, S, X, LONG(0, 1, 2, 3), t=tb(v))),
        ("min_snr_weight", "t", lambda v: losses.min_snr_weight(S, tb(v), 5.0)),
        ("ddpm_step", "t", lambda v: samplers.ddpm_step(S, X, v, EPS)),
        ("ddim_step", "t", lambda v: samplers.ddim_step(S, X, v, -1, EPS)),
        ("extract", "t", lambda v: schedules.extract(S.beta, tb(v), X)),
    ]


T_CASES = _t_cases()


@pytest.mark.parametrize("bad_t", [-1, T], ids=["negative", "T"])
@pytest.mark.parametrize("fn,arg,call", T_CASES, ids=[c[0] for c in T_CASES])
def test_t_outside_range(fn: str, arg: str, call: Callable, bad_t: int) -> None:
    with pytest.raises(ValueError, match=rf"\b{arg}\b.*\[0, {T - 1}\]"):
        call(bad_t)


_TENSOR_T = ("add_noise", "elbo_weight", "simple_loss", "conditional_simple_loss", "min_snr_weight", "extract")  # these take tensors
T_INT_CASES = [c for c in T_CASES if c[0] not in _TENSOR_T]


@pytest.mark.parametrize("fn,arg,call", T_INT_CASES, ids=[c[0] for c in T_INT_CASES])
def test_t_float_or_wrong_shape(fn: str, arg: str, call: Callable) -> None:
    with pytest.raises(ValueError, match=rf"\b{arg}\b"):
        call(torch.tensor([1.0, 2.0, 3.0, 4.0]))  # float timesteps
    with pytest.raises(ValueError, match=rf"\b{arg}\b"):
        call(LONG(1, 2))  # 2 timesteps for a batch of 4


def test_ddim_step_t_prev() -> None:
    with pytest.raises(ValueError, match=r"\bt_prev\b.*\[-1, 19\]"):
        samplers.ddim_step(S, X, 10, -2, EPS)
    with pytest.raises(ValueError, match=r"\bt_prev\b.*\[-1, 19\]"):
        samplers.ddim_step(S, X, 10, T, EPS)
    with pytest.raises(ValueError, match=r"\bt_prev\b.*smaller"):
        samplers.ddim_step(S, X, 10, 10, EPS)
    with pytest.raises(ValueError, match=r"\bt_prev\b"):
        samplers.ddim_step(S, X, 10, LONG(1, 2), EPS)


# --- betas and schedules ---------------------------------------------------------------------------------------------

BAD_BETAS = {
    "zero": torch.tensor([0.0, 0.1]),
    "one": torch.tensor([0.1, 1.0]),
    "negative": torch.tensor([-0.1, 0.1]),
    "above_one": torch.tensor([0.5, 1.5]),
    "nan": torch.tensor([0.1, float("nan")]),
    "2d": torch.full((2, 3), 0.1),
    "empty": torch.zeros(0),
    "scalar": torch.tensor(0.1),
}


@pytest.mark.parametrize("name", BAD_BETAS)
def test_bad_betas(name: str) -> None:
    with pytest.raises(ValueError, match=r"\bbetas\b"):
        NoiseSchedule.from_betas(BAD_BETAS[name])


SCHEDULE_ARG_CASES = [
    ("linear_betas", "T", lambda: schedules.linear_betas(0)),
    ("linear_betas", "beta_1", lambda: schedules.linear_betas(10, beta_1=0.0)),
    ("linear_betas", "beta_T", lambda: schedules.linear_betas(10, beta_T=1.0)),
    ("quadratic_betas", "T", lambda: schedules.quadratic_betas(-3)),
    ("quadratic_betas", "beta_T", lambda: schedules.quadratic_betas(10, beta_T=2.0)),
    ("sigmoid_betas", "beta_1", lambda: schedules.sigmoid_betas(10, beta_1=-0.1)),
    ("sigmoid_betas", "T", lambda: schedules.sigmoid_betas(0)),
    ("cosine_betas", "T", lambda: schedules.cosine_betas(0)),
    ("cosine_betas", "s", lambda: schedules.cosine_betas(10, s=-0.1)),
    ("cosine_betas", "max_beta", lambda: schedules.cosine_betas(10, max_beta=1.0)),
    ("make_betas", "kind", lambda: schedules.make_betas("exponential", 10)),
    ("NoiseSchedule.linear", "T", lambda: NoiseSchedule.linear(0)),
    ("NoiseSchedule.cosine", "max_beta", lambda: NoiseSchedule.cosine(10, max_beta=0.0)),
]


@pytest.mark.parametrize("fn,arg,call", SCHEDULE_ARG_CASES, ids=[f"{c[0]}-{c[1]}" for c in SCHEDULE_ARG_CASES])
def test_schedule_arguments(fn: str, arg: str, call: Callable) -> None:
    with pytest.raises(ValueError, match=rf"\b{arg}\b"):
        call()


# --- shapes ----------------------------------------------------------------------------------------------------------

SHAPE_CASES = [
    ("q_step", "eps", lambda: forward.q_step(S, X, 1, eps=BAD_SHAPE)),
    ("q_sample", "eps", lambda: forward.q_sample(S, X, 1, eps=BAD_SHAPE)),
    ("add_noise", "eps", lambda: forward.add_noise(S, X, LONG(1, 1, 1, 1), BAD_SHAPE)),
    ("predict_x0_from_eps", "eps", lambda: forward.predict_x0_from_eps(S, X, 1, BAD_SHAPE)),
    ("predict_eps_from_x0", "x0", lambda: forward.predict_eps_from_x0(S, X, 1, BAD_SHAPE)),
    ("v_from_x0_eps", "eps", lambda: forward.v_from_x0_eps(S, X, 1, BAD_SHAPE)),
    ("predict_x0_from_v", "v", lambda: forward.predict_x0_from_v(S, X, 1, BAD_SHAPE)),
    ("predict_eps_from_v", "v", lambda: forward.predict_eps_from_v(S, X, 1, BAD_SHAPE)),
    ("q_posterior", "x0", lambda: posterior.q_posterior(S, BAD_SHAPE, X, 1)),
    ("posterior_mean_from_eps", "eps", lambda: posterior.posterior_mean_from_eps(S, X, 1, BAD_SHAPE)),
    ("simple_loss", "eps", lambda: losses.simple_loss(ZERO, S, X, eps=BAD_SHAPE)),
    ("conditional_simple_loss", "eps", lambda: losses.conditional_simple_loss(COND_ZERO, S, X, LONG(0, 1, 2, 3), eps=BAD_SHAPE)),
    ("simple_loss", "model output", lambda: losses.simple_loss(lambda x, t: x[:, :1], S, X)),
    ("elbo_terms", "eps", lambda: losses.elbo_terms(ZERO, S, X, 1, decoder="gaussian", eps=BAD_SHAPE)),
    ("gaussian_log_likelihood", "means", lambda: losses.gaussian_log_likelihood(X, BAD_SHAPE, X)),
    ("discretized_gaussian_log_likelihood", "means", lambda: losses.discretized_gaussian_log_likelihood(X, BAD_SHAPE, X)),
    ("ddpm_step", "eps_hat", lambda: samplers.ddpm_step(S, X, 1, BAD_SHAPE)),
    ("ddpm_step", "noise", lambda: samplers.ddpm_step(S, X, 1, EPS, noise=BAD_SHAPE)),
    ("ddim_step", "eps_hat", lambda: samplers.ddim_step(S, X, 5, 1, BAD_SHAPE)),
    ("ddim_step", "noise", lambda: samplers.ddim_step(S, X, 5, 1, EPS, eta=1.0, noise=BAD_SHAPE)),
    ("ddpm_sample", "x_T", lambda: samplers.ddpm_sample(ZERO, S, (4, 2), x_T=BAD_SHAPE)),
    ("ddim_sample", "x_T", lambda: samplers.ddim_sample(ZERO, S, (4, 2), steps=5, x_T=BAD_SHAPE)),
    ("corrupt", "amount", lambda: forward.corrupt(IMG, torch.tensor([0.1, 0.2, 0.3]))),
    ("extract", "t", lambda: schedules.extract(S.beta, LONG(1, 2), X)),
    ("sinusoidal_embedding", "t", lambda: sinusoidal_embedding(torch.zeros(2, 2, dtype=torch.long), 8)),
    ("MLPDenoiser", "x", lambda: MLPDenoiser(MLPConfig(hidden=8))(BAD_SHAPE, LONG(1, 1, 1, 1))),
    ("MLPDenoiser", "t", lambda: MLPDenoiser(MLPConfig(hidden=8))(X, LONG(1))),
]


@pytest.mark.parametrize("fn,arg,call", SHAPE_CASES, ids=[f"{c[0]}-{c[1]}" for c in SHAPE_CASES])
def test_shape_mismatch(fn: str, arg: str, call: Callable) -> None:
    with pytest.raises(ValueError, match=rf"\b{arg}\b"):
        call()


# --- steps, spacing, variance and other named choices ----------------------------------------------------------------

CHOICE_CASES = [
    ("ddim_timesteps", "steps", lambda: samplers.ddim_timesteps(T, 0)),
    ("ddim_timesteps", "steps", lambda: samplers.ddim_timesteps(T, T + 1)),
    ("ddim_timesteps", "T", lambda: samplers.ddim_timesteps(0, 1)),
    ("ddim_sample", "steps", lambda: samplers.ddim_sample(ZERO, S, (4, 2), steps=T + 1)),
    ("ddim_sample", "steps", lambda: samplers.ddim_sample(ZERO, S, (4, 2), steps=0)),
    ("ddim_invert", "steps", lambda: samplers.ddim_invert(ZERO, S, X, steps=T + 1)),
    ("ddim_invert", "steps", lambda: samplers.ddim_invert(ZERO, S, X, steps=0)),
    ("ddim_timesteps", "spacing", lambda: samplers.ddim_timesteps(T, 5, "linspace")),
    ("ddim_sample", "spacing", lambda: samplers.ddim_sample(ZERO, S, (4, 2), steps=5, spacing="cosine")),
    ("ddim_invert", "spacing", lambda: samplers.ddim_invert(ZERO, S, X, steps=5, spacing="")),
    ("ddpm_step", "variance", lambda: samplers.ddpm_step(S, X, 1, EPS, variance="fixed_large")),
    ("ddpm_sample", "variance", lambda: samplers.ddpm_sample(ZERO, S, (4, 2), variance="large")),
    ("elbo_terms", "variance", lambda: losses.elbo_terms(ZERO, S, X, 1, variance="learned", decoder="gaussian")),
    ("elbo_weight", "variance", lambda: losses.elbo_weight(S, LONG(1, 2), "small")),
    ("elbo_terms", "decoder", lambda: losses.elbo_terms(ZERO, S, X, 1, decoder="bernoulli")),
    ("elbo_terms", "x0", lambda: losses.elbo_terms(ZERO, S, X + 3.0, 1)),  # discretized decoder needs [-1, 1]
    ("discretized_gaussian_log_likelihood", "x", lambda: losses.discretized_gaussian_log_likelihood(X + 2, X, X)),
    ("ddim_step", "eta", lambda: samplers.ddim_step(S, X, 5, 1, EPS, eta=-0.1)),
    ("ddim_sample", "eta", lambda: samplers.ddim_sample(ZERO, S, (4, 2), steps=5, eta=-1.0)),
    ("ddim_step", "eta", lambda: samplers.ddim_step(S, X, 5, 1, EPS, eta=1.5)),
    ("ddim_sample", "eta", lambda: samplers.ddim_sample(ZERO, S, (4, 2), steps=5, eta=2.0)),
    ("ddpm_step", "clip_x0", lambda: samplers.ddpm_step(S, X, 1, EPS, clip_x0=0.0)),
    ("ddim_step", "clip_x0", lambda: samplers.ddim_step(S, X, 5, 1, EPS, clip_x0=-1.0)),
    ("ddpm_sample", "clip_x0", lambda: samplers.ddpm_sample(ZERO, S, (4, 2), clip_x0=0.0)),
    ("corrupt", "amount", lambda: forward.corrupt(IMG, -0.1)),
    ("corrupt", "amount", lambda: forward.corrupt(IMG, 1.5)),
    ("corrupt", "amount", lambda: forward.corrupt(IMG, torch.tensor([0.5, 1.01]))),
    ("corrupt", "amount", lambda: forward.corrupt(IMG, float("nan"))),
    ("toy_2d", "name", lambda: data.toy_2d("spiral", 10)),
    ("toy_2d", "n", lambda: data.toy_2d("moons", 0)),
    ("swiss_roll", "n", lambda: data.swiss_roll(-5)),
    ("mnist", "split", lambda: data.mnist("validation")),
    ("fashion_mnist", "split", lambda: data.fashion_mnist("dev")),
    ("sinusoidal_embedding", "dim", lambda: sinusoidal_embedding(LONG(1, 2), 7)),
    ("SinusoidalEmbedding", "dim", lambda: SinusoidalEmbedding(0)),
    ("MLPConfig", "hidden", lambda: MLPConfig(hidden=0)),
    ("MLPConfig", "time_dim", lambda: MLPConfig(time_dim=5)),
]


@pytest.mark.parametrize("fn,arg,call", CHOICE_CASES, ids=[f"{c[0]}-{c[1]}-{i}" for i, c in enumerate(CHOICE_CASES)])
def test_bad_choice_or_range(fn: str, arg: str, call: Callable) -> None:
    with pytest.raises(ValueError, match=rf"\b{arg}\b"):
        call()


@pytest.mark.parametrize("fn", [profiles.active_profile, profiles.device, profiles.describe, lambda: profiles.pick(smoke=1, cpu=2, gpu=3)])
def test_unknown_profile(monkeypatch: pytest.MonkeyPatch, fn: Callable) -> None:
    monkeypatch.setenv("COURSE_PROFILE", "laptop")
    with pytest.raises(ValueError, match=r"COURSE_PROFILE.*smoke, cpu, gpu.*laptop"):
        fn()


def test_profile_names_are_accepted(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for name, expected in (("smoke", 1), (" Smoke ", 1), ("cpu", 2), ("gpu", 3)):
        monkeypatch.setenv("COURSE_PROFILE", name)
        assert profiles.pick(smoke=1, cpu=2, gpu=3) == expected
    monkeypatch.setenv("COURSE_PROFILE", "smoke")
    profiles.pick(smoke=10, cpu=20, gpu=30, name="steps")
    assert capsys.readouterr().out.strip().startswith("steps = 10  (profile 'smoke'")


# --- coverage of this file -------------------------------------------------------------------------------------------

_MODULES = ["maths.forward", "maths.posterior", "maths.losses", "maths.samplers", "maths.schedules"]
_COVERED = {
    "t": {c[0] for c in T_CASES},
    "steps": {c[0] for c in CHOICE_CASES if c[1] == "steps"},
    "spacing": {c[0] for c in CHOICE_CASES if c[1] == "spacing"},
    "variance": {c[0] for c in CHOICE_CASES if c[1] == "variance"},
    "eps": {c[0] for c in SHAPE_CASES if c[1] == "eps"},
}


def test_every_public_function_with_these_arguments_is_covered() -> None:
    missing = []
    for mod_name in _MODULES:
        mod = importlib.import_module(f"diffusion_course.{mod_name}")
        for name in mod.__all__:
            obj = getattr(mod, name)
            if not inspect.isfunction(obj) or name.endswith("_unchecked"):
                continue  # an *_unchecked function is the arithmetic behind a checked one: it takes checked arguments
            params = inspect.signature(obj).parameters
            for arg, covered in _COVERED.items():
                if arg in params and name not in covered:
                    missing.append(f"{mod_name}.{name}({arg})")
    assert not missing, f"add bad-input cases for: {missing}"


def test_errors_are_value_errors_not_index_errors() -> None:
    """A negative t must never index the coefficient tables from the end (a silent wrong answer)."""
    assert re.search(r"\bt\b", str(pytest.raises(ValueError, schedules.extract, S.beta, LONG(-1, 0, 0, 0), X).value))


# --- every public module: a bad value of every numeric or choice argument --------------------------------------------
#
# The modules are enumerated with pkgutil, so a new module is covered as soon as it exists: each public function or
# class defined in it whose signature has a scalar int / float / str argument (annotation made of int, float, str,
# None, Tensor) needs, for each such argument, either a valid call in BASE (the test then swaps in a bad value for that
# one argument) or a line in FREE saying why every value is acceptable. A record type the package fills in itself (a
# result, not an input) goes in RECORDS; a command-line entry point in COMMANDS (argparse checks its own arguments).
#
# The bad value is chosen from the annotation: T for a timestep, NaN for a float, -1_000_000 for an int, an unknown
# name for a str; BAD overrides it where that value would be allowed. The call must raise ValueError or TypeError whose
# message names the argument and states the allowed range or choices ("[", "(" or "one of").

import pkgutil  # noqa: E402
import types  # noqa: E402

import diffusion_course  # noqa: E402
from diffusion_course.data.locations import find_shipped  # noqa: E402
from diffusion_course.maths import flow_oracles as _flow_oracles  # noqa: E402
from diffusion_course.models import classifier as _classifier  # noqa: E402
from diffusion_course.models.unet import UNet, UNetConfig  # noqa: E402
from diffusion_course.weights.shipped import FLOW_SAMPLES_FILE  # noqa: E402

_SCALAR = {"int", "float", "str"}
_ALLOWED_TOKENS = {"int", "float", "str", "None", "torch.Tensor", "Tensor", "bool"}


def _checkable(p: inspect.Parameter) -> bool:
    a = p.annotation
    if a is inspect.Parameter.empty:
        return isinstance(p.default, (int, float, str)) and not isinstance(p.default, bool)
    tokens = {t.strip() for t in (a if isinstance(a, str) else getattr(a, "__name__", str(a))).split("|")}
    return bool(tokens & _SCALAR) and tokens <= _ALLOWED_TOKENS


def _public_callables() -> dict[str, Callable]:
    """{"module.name" or "module.Class.method": callable} for every public function, class and public method of a
    class defined in a public module of the package."""
    out: dict[str, Callable] = {}
    for info in pkgutil.walk_packages(diffusion_course.__path__, "diffusion_course."):
        if any(part.startswith("_") for part in info.name.split(".")[1:]):
            continue
        mod = importlib.import_module(info.name)
        short = info.name.removeprefix("diffusion_course.")
        for name, obj in vars(mod).items():
            if name.startswith("_") or not (inspect.isfunction(obj) or inspect.isclass(obj)) or obj.__module__ != info.name:
                continue
            if name.endswith("_unchecked"):  # the arithmetic behind a checked public function: it takes checked arguments
                continue
            out[f"{short}.{name}"] = obj
            if inspect.isclass(obj):
                for k, v in vars(obj).items():
                    if not k.startswith("_") and isinstance(v, (types.FunctionType, classmethod, staticmethod)):
                        out[f"{short}.{name}.{k}"] = getattr(obj, k)
    return out


def _checkable_args(fn: Callable) -> list[str]:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return []
    return [p.name for p in sig.parameters.values() if p.name not in ("self", "cls") and _checkable(p)]


PUBLIC = _public_callables()

# Result records: filled in by the package from what it measured, never typed by a learner.
RECORDS = {
    "scoring.distances.KernelDistance",
    "scoring.comparisons.TableCell", "scoring.comparisons.QualityTable", "scoring.comparisons.QualityTable.ratio",
    "scoring.comparisons.QualityTable.to_markdown", "scoring.quality.QualityReport", "training.loop.TrainResult", "data.photos.CropSet",
    "data.photos.RandomCropSet",
    "teaching.beta_explorer_state.ScheduleAtT", "teaching.beta_explorer_state.BetaExplorerState",
}
# Command lines: argparse rejects a bad option with its own message and exit status.
COMMANDS = {"weights.make.main", "teaching.student.main", "teaching.slides.main"}

# Arguments every value of which is valid, and why.
FREE: dict[str, dict[str, str]] = {}
for _fn, _args in {
    # seeds: any int seeds a generator
    "seed": ["scoring.distances.unpaired_kernel_distance_difference", "scoring.distances.unpaired_mean_difference", "scoring.quality.compare_unpaired",
             "scoring.distances.kernel_distance_interval", "training.noisy_classifier.train_noisy_classifier",
             "scoring.distances.paired_mean_difference", "scoring.distances.paired_kernel_distance_difference", "scoring.quality.compare_paired",
             "training.classifier.train_classifier", "data.sets.toy_2d", "data.sets.swiss_roll", "data.sets.moons", "data.sets.rings",
             "data.sets.gaussian_mixture", "scoring.comparisons.sample_in_batches", "scoring.comparisons.ddim_table", "scoring.comparisons.sample_setting",
             "teaching.guidance_explorer.guided_grid", "scoring.distances.sliced_wasserstein", "scoring.quality.floor_draws", "scoring.quality.frechet_floor",
             "scoring.quality.quality_report", "scoring.quality.floor_table", "training.loop.TrainConfig", "weights.colour_study.StudySettings",
             "weights.colour_study.CopyingSettings", "data.photos.random_crop_sets", "scoring.memorisation.median_ratio_interval",
             "scoring.memorisation.copying_row",
             "teaching.beta_explorer.BetaExplorer", "teaching.guidance_explorer.GuidanceExplorer", "teaching.ddim_explorer.ddim_view",
             "teaching.ddim_explorer.DDIMExplorer", "teaching.solver_explorer.solver_view", "teaching.solver_explorer.SolverExplorer"],
    "sample_seed": ["weights.colour_study.StudySettings", "weights.colour_study.CopyingSettings"],
    "crop_seed": ["weights.colour_study.CopyingSettings"], "second_seed": ["weights.colour_study.CopyingSettings"],
    # free text: titles, axis labels, display names, file-system locations
    "title": ["teaching.viz.show_images", "teaching.viz.scatter_2d", "teaching.viz.plot_trajectories", "teaching.viz.animate_points",
              "teaching.viz.animate_images", "teaching.viz.plot_curve", "teaching.viz.show_image_rows", "teaching.viz.scatter_panels",
              "teaching.viz.plot_heatmap"],
    "xlabel": ["teaching.viz.plot_curve", "teaching.viz.plot_heatmap"], "ylabel": ["teaching.viz.plot_curve", "teaching.viz.plot_heatmap"],
    "colorbar_label": ["teaching.viz.plot_heatmap"],
    "name": ["teaching.profiles.pick", "scoring.comparisons.SamplerSetting", "teaching.student.student_notebook", "data.locations.find_shipped",
             "maths.losses.check_labels"],  # a label printed beside the value
    "prefix": ["data.locations.find_data_dir"],  # an installation prefix (a path)
    "checkpoint_path": ["training.loop.TrainConfig"],  # a path
    "source": ["teaching.student.strip_solutions"], "where": ["teaching.student.strip_solutions"],  # notebook text and its location label
    "page": ["teaching.slides_export.remote_references"],  # the HTML text of an exported page
    "made_by": ["data.locations.find_shipped"],  # the command named in the error message
    "w": ["weights.make_guidance.guidance_setting_name"],  # any guidance scale has a name
    "seconds": ["weights.provenance.card_provenance"],  # a measured time, written as it was measured
}.items():
    for _f in _args:
        FREE.setdefault(_f, {})[_fn] = "free"

# The explorers must not raise while a learner drags a slider: a bad schedule value is reported in the explorer's
# state instead (and drawn as its message). The test reads the message there: it must name the argument and its range.
REPORTED: dict[tuple[str, str], Callable[[object], str]] = {
    ("teaching.beta_explorer_state.beta_explorer_state", "beta_1"): lambda state: state.error,
    ("teaching.beta_explorer_state.beta_explorer_state", "beta_T"): lambda state: state.error,
    ("teaching.beta_explorer.BetaExplorer", "beta_1"): lambda explorer: explorer.state.error,
    ("teaching.beta_explorer.BetaExplorer", "beta_T"): lambda explorer: explorer.state.error,
}

# Functions whose argument is checked against the contents of a shipped file (the names it holds): without the file
# there is nothing to check against.
CHECKED_AGAINST_A_FILE = {"weights.shipped.load_flow_samples": FLOW_SAMPLES_FILE}

BAD: dict[tuple[str, str], object] = {
    ("maths.samplers.ddim_step", "t_prev"): T,  # -1 is allowed (the last step)
    ("scoring.comparisons.SamplerSetting", "eta"): 2.0,  # None is allowed (DDPM)
}

_G = torch.Generator().manual_seed(0)
ZA, ZB = torch.randn(4, 2, generator=_G), torch.randn(4, 2, generator=_G)  # two noises, not opposite
IMG28 = torch.rand(130, 1, 28, 28, generator=_G) * 2 - 1
IMG28_B = torch.rand(130, 1, 28, 28, generator=_G) * 2 - 1


def _cond_unet() -> UNet:
    return UNet(UNetConfig(in_channels=1, base_channels=8, channel_mults=(1,), num_res_blocks=1, attention_levels=(), mid_attention=False,
                           norm_groups=4, num_classes=10)).eval()


def _tiny_ae():
    from diffusion_course.models.autoencoder import AutoencoderConfig, KLAutoencoder

    return KLAutoencoder(AutoencoderConfig(widths=(8, 8, 16), norm_groups=4)).eval()


def _image_unet() -> UNet:
    return UNet(UNetConfig(in_channels=1, base_channels=8, channel_mults=(1,), num_res_blocks=1, attention_levels=(), mid_attention=False,
                           norm_groups=4)).eval()


def _mlp() -> MLPDenoiser:
    return MLPDenoiser(MLPConfig(hidden=8))


# A valid call of each function: (args, kwargs) builders; the test replaces one argument by a bad value.
BASE: dict[str, Callable[[], tuple[tuple, dict]]] = {
    # forward, posterior, losses, samplers, schedules (pure maths)
    "maths.forward.corrupt": lambda: ((IMG, 0.5), {}),
    "maths.forward.q_step": lambda: ((S, X, 1), {}),
    "maths.forward.q_sample": lambda: ((S, X, 1), {}),
    "maths.forward.add_noise": lambda: ((S, X, 1, EPS), {}),
    "maths.forward.q_mean_variance": lambda: ((S, X, 1), {}),
    "maths.forward.predict_x0_from_eps": lambda: ((S, X, 1, EPS), {}),
    "maths.forward.predict_eps_from_x0": lambda: ((S, X, 1, X), {}),
    "maths.forward.v_from_x0_eps": lambda: ((S, X, 1, EPS), {}),
    "maths.forward.predict_x0_from_v": lambda: ((S, X, 1, EPS), {}),
    "maths.forward.predict_eps_from_v": lambda: ((S, X, 1, EPS), {}),
    "maths.posterior.q_posterior": lambda: ((S, X, X, 1), {}),
    "maths.posterior.posterior_mean_from_eps": lambda: ((S, X, 1, EPS), {}),
    "maths.losses.elbo_terms": lambda: ((ZERO, S, X, 1), {"decoder": "gaussian"}),
    "maths.losses.elbo_weight": lambda: ((S, LONG(1, 2)), {}),
    "maths.losses.min_snr_weight": lambda: ((S, LONG(1, 2), 5.0), {}),
    "maths.losses.simple_loss": lambda: ((ZERO, S, X), {"snr_gamma": 5.0}),
    "maths.samplers.ddpm_step": lambda: ((S, X, 1, EPS), {"clip_x0": 1.0}),
    "maths.samplers.ddim_step": lambda: ((S, X, 5, 1, EPS), {"clip_x0": 1.0}),
    "maths.samplers.ddim_timesteps": lambda: ((T, 5), {}),
    "maths.samplers.ddpm_sample": lambda: ((ZERO, S, (4, 2)), {"clip_x0": 1.0}),
    "maths.samplers.ddim_sample": lambda: ((ZERO, S, (4, 2)), {"steps": 5, "clip_x0": 1.0}),
    "maths.samplers.ddim_invert": lambda: ((ZERO, S, X), {"steps": 5, "clip_x0": 1.0}),
    "maths.solvers.dpm_solver_sample": lambda: ((ZERO, S, (4, 2)), {"steps": 5, "clip_x0": 1.0}),
    "maths.solvers.heun_sample": lambda: ((ZERO, S, (4, 2)), {"steps": 3, "s_churn": 1.0, "clip_x0": 1.0}),
    "maths.solvers.euler_sample": lambda: ((ZERO, S, (4, 2)), {"steps": 3, "s_churn": 1.0, "clip_x0": 1.0}),
    "maths.solvers.karras_sigmas": lambda: ((S, 5), {}),
    "maths.solvers.sigma_grid": lambda: ((S, 5), {}),
    "maths.solvers.network_calls": lambda: (("heun", 5), {}),
    "maths.respacing.ddpm_sample_respaced": lambda: ((ZERO, S, (4, 2)), {"steps": 5, "clip_x0": 1.0}),
    "maths.schedules.linear_betas": lambda: ((10,), {}),
    "maths.schedules.quadratic_betas": lambda: ((10,), {}),
    "maths.schedules.sigmoid_betas": lambda: ((10,), {}),
    "maths.schedules.cosine_betas": lambda: ((10,), {}),
    "maths.schedules.make_betas": lambda: (("linear", 10), {}),
    "maths.schedules.NoiseSchedule.linear": lambda: ((10,), {}),
    "maths.schedules.NoiseSchedule.cosine": lambda: ((10,), {}),
    "maths.counterexamples.naive_mix_factors": lambda: ((5,), {}),
    "maths.counterexamples.naive_sample": lambda: ((lambda x: x, (2, 1, 4, 4)), {"steps": 3}),
    "maths.counterexamples.simplified_step": lambda: ((S, X, 1, EPS), {}),
    "maths.interpolation.lerp": lambda: ((X, X + 1, 0.5), {}),
    "maths.interpolation.slerp": lambda: ((ZA, ZB, 0.5), {}),
    "maths.interpolation.interpolate": lambda: ((ZA, ZB, 3), {}),
    "scoring.distances.sliced_wasserstein": lambda: ((X, X), {}),
    "scoring.distances.nearest_train_distances": lambda: ((IMG, IMG), {}),
    "maths.oracles.GaussianEps": lambda: ((S, torch.zeros(2), 1.0), {}),
    "maths.oracles.ExactDenoiser": lambda: ((S, torch.zeros(3, 2)), {}),
    # flow matching (chapter 13)
    "maths.flow.check_flow_time": lambda: ((0.5, X), {}),
    "maths.flow.sample_flow_t": lambda: ((4,), {"t_sampling": "logit_normal"}),
    "maths.flow.flow_matching_loss": lambda: ((ZERO, X), {"t_sampling": "logit_normal"}),
    "maths.flow.flow_matching_loss_fn": lambda: ((), {"t_sampling": "logit_normal"}),
    "maths.flow.shift_sigmas": lambda: ((torch.linspace(1.0, 0.0, 5), 3.0), {}),
    "maths.flow.flow_sigmas": lambda: ((5,), {"shift": 3.0}),
    "maths.flow.flow_sample": lambda: ((ZERO, (4, 2)), {"steps": 3, "method": "heun", "shift": 3.0}),
    "maths.flow_oracles.ExactVelocity": lambda: ((torch.zeros(3, 2),), {"s": 0.5}),
    "maths.flow_oracles.ExactVelocity.x0_hat": lambda: ((_flow_oracles.ExactVelocity(torch.zeros(3, 2)), X, 0.5), {}),
    "maths.flow_oracles.GaussianVelocity": lambda: ((torch.zeros(2), 1.0), {}),
    "maths.flow_oracles.GaussianVelocity.x0_hat": lambda: ((_flow_oracles.GaussianVelocity(torch.zeros(2), 1.0), X, 0.5), {}),
    "maths.flow_oracles.gaussian_flow_point": lambda: ((X, 0.5, torch.zeros(2), 1.0), {}),
    "maths.flow_oracles.gaussian_flow_endpoint": lambda: ((X, torch.zeros(2), 1.0), {}),
    "maths.flow_oracles.gaussian_flow_loss_minimum": lambda: ((1.0,), {"t_sampling": "logit_normal"}),
    "maths.flow_paths.flow_x0_eps_from_v": lambda: ((X, X, 0.5), {}),
    "maths.flow_paths.flow_v_from_x0": lambda: ((X, X, 0.5), {}),
    "maths.flow_paths.flow_v_from_eps": lambda: ((X, X, 0.5), {}),
    "maths.flow_paths.ddpm_to_flow_time": lambda: ((S, 1), {}),
    "maths.flow_paths.flow_to_ddpm_time": lambda: ((S, 0.5), {}),
    "maths.flow_paths.flow_to_ddpm_scale": lambda: ((0.5,), {}),
    "models.flow_time.FlowTime": lambda: ((_image_unet(),), {}),
    "models.autoencoder.AutoencoderConfig": lambda: ((), {"widths": (8, 8, 16), "norm_groups": 4}),
    "models.autoencoder.autoencoder_loss": lambda: ((_tiny_ae(), IMG28[:2]), {"kl_weight": 1e-3}),
    "models.autoencoder.autoencoder_loss_fn": lambda: ((1e-3,), {}),
    "models.cross_attention.CrossAttention": lambda: ((8, 6), {"heads": 2, "head_dim": 4}),
    "models.cross_attention.CrossAttentionBlock": lambda: ((8, 6), {"groups": 4, "heads": 2}),
    "models.cross_attention.LabelTokens": lambda: ((10, 3, 8), {}),
    "models.latent.decode_latents": lambda: ((_tiny_ae(), torch.zeros(2, 4, 7, 7), 0.5), {}),
    "models.latent.latent_sample": lambda: ((COND_ZERO, S, (2, 4, 7, 7)), {"autoencoder": _tiny_ae(), "scale_factor": 0.5, "y": LONG(1, 2),
                                                                      "w": 1.0, "steps": 3, "eta": 0.5}),
    "weights.make_latent.encode_posterior": lambda: ((_tiny_ae(), IMG28[:2]), {"batch": 2}),
    "weights.make_latent.latent_loss_fn": lambda: ((S, 0.5, 0.1, 10), {}),
    "scoring.distances.unpaired_kernel_distance_difference": lambda: ((torch.randn(20, 3), torch.randn(25, 3), torch.randn(30, 3)), {"resamples": 20}),
    "scoring.distances.unpaired_mean_difference": lambda: ((torch.rand(20), torch.rand(25)), {"resamples": 20}),
    "scoring.quality.compare_unpaired": lambda: ((IMG28[:20], IMG28_B[:25]), {"resamples": 20}),
    "weights.shipped.load_pretrained_flow_unet": lambda: (("ema",), {}),
    "weights.shipped.load_pretrained_latent_unet": lambda: (("ema",), {}),
    "weights.shipped.load_flow_samples": lambda: (("flow_euler_20",), {}),
    # models
    "models.embeddings.sinusoidal_embedding": lambda: ((LONG(1, 2), 8), {}),
    "models.embeddings.SinusoidalEmbedding": lambda: ((8,), {}),
    "models.mlp.MLPConfig": lambda: ((), {}),
    "models.basic_unet.BasicUNet": lambda: ((), {}),
    "models.sizes.conv2d_output_size": lambda: ((28, 3), {}),
    "models.sizes.conv_transpose2d_output_size": lambda: ((14, 4), {"stride": 2, "padding": 1}),
    "models.sizes.conv2d_parameter_count": lambda: ((4, 8, 3), {}),
    "models.unet.UNetConfig": lambda: ((), {}),
    "models.unet.ResBlock": lambda: ((8, 8, 16), {"groups": 4, "dropout": 0.0, "time_conditioning": "add"}),
    "models.unet.SelfAttention": lambda: ((8,), {"groups": 4, "num_heads": 1}),
    "models.unet.Downsample": lambda: ((8,), {}),
    "models.unet.Upsample": lambda: ((8,), {}),
    "models.classifier.ClassifierConfig": lambda: ((), {}),
    "training.classifier.random_shift": lambda: ((IMG, 1), {}),
    "training.classifier.accuracy": lambda: ((_classifier.MNISTClassifier(), IMG28[:4], torch.zeros(4, dtype=torch.long)), {}),
    "training.classifier.train_classifier": lambda: ((IMG28[:8], torch.zeros(8, dtype=torch.long)), {"steps": 1, "progress": False}),
    "training.ema.ema_decay_at": lambda: ((10, 0.99), {}),
    "training.ema.decay_half_life": lambda: ((0.99,), {}),
    "training.ema.EMA": lambda: ((_mlp(),), {}),
    "training.loop.TrainConfig": lambda: ((), {}),
    "training.distributed.BatchSplit": lambda: ((0, 2), {}),  # rank 0 of 2; the constructor joins nothing
    "training.distributed.BatchSplit.same_start": lambda: ((_split(), 0), {}),
    "training.distributed.batch_split": lambda: ((_mlp(), 8), {}),  # one process: the identity split
    # guidance
    "maths.losses.conditional_simple_loss": lambda: ((_cond_unet(), S, torch.zeros(2, 1, 8, 8), LONG(1, 2)), {}),
    "maths.guidance.guided_eps": lambda: ((_cond_unet(), torch.zeros(2, 1, 8, 8), LONG(1, 2), LONG(3, 4)), {"w": 1.0}),
    "maths.guidance.GuidedModel": lambda: ((_cond_unet(), LONG(3, 4), 1.0), {}),
    "maths.losses.simple_loss_fn": lambda: ((S, 5.0), {}),
    "maths.losses.conditional_simple_loss_fn": lambda: ((S, 0.1, 10), {}),
    "maths.losses.check_labels": lambda: ((LONG(1, 2), 2, 10), {}),
    "models.unet.UNet.check_labels": lambda: ((_cond_unet(), None, 2, torch.device("cpu")), {}),
    "models.mlp.MLPBlock": lambda: ((8, 4), {}),
    "scoring.distances.kernel_distance_interval": lambda: ((torch.randn(6, 3), torch.randn(7, 3)), {"resamples": 20}),
    "scoring.distances.paired_kernel_distance_difference": lambda: ((torch.randn(6, 3), torch.randn(6, 3), torch.randn(7, 3)), {"resamples": 20}),
    "scoring.distances.paired_mean_difference": lambda: ((torch.rand(6), torch.rand(6)), {"resamples": 20}),
    "weights.make_guidance.guidance_paired_differences": lambda: (({n: IMG28[:10] for n in ("w0", "w1", "w2", "w3", "w5", "uncond")}, 1),
                                                                  {"classifier": _classifier.MNISTClassifier()}),
    "scoring.quality.compare_paired": lambda: ((IMG28[:4], IMG28[:4]), {"classifier": _classifier.MNISTClassifier(), "reference": IMG28_B, "resamples": 20}),
    "teaching.explorer_display.png_bytes": lambda: ((np.zeros((4, 4, 3)), 2), {}),
    "teaching.explorer_display.check_threads": lambda: ((1,), {}),
    "teaching.explorer_display.compute_threads": lambda: ((1,), {}),
    "maths.guidance.guided_sample": lambda: ((_cond_unet(), S, LONG(3, 4)), {"w": 1.0, "item_shape": (1, 8, 8), "steps": 2}),
    "teaching.guidance_explorer.guided_grid": lambda: ((_cond_unet(), S, 3, 1.0), {"n": 2, "steps": 2}),
    # data, scores, shipped files
    "data.sets.toy_2d": lambda: (("moons", 10), {}),
    "data.sets.swiss_roll": lambda: ((10,), {}),
    "data.sets.moons": lambda: ((10,), {}),
    "data.sets.rings": lambda: ((10,), {}),
    "data.sets.gaussian_mixture": lambda: ((10,), {}),
    "data.sets.mnist": lambda: (("test",), {}),
    "data.sets.fashion_mnist": lambda: (("test",), {}),
    "scoring.quality.classifier_outputs": lambda: ((_classifier.MNISTClassifier(), IMG28[:4]), {}),
    "scoring.quality.floor_draws": lambda: ((100, 10, 3), {}),
    "scoring.quality.frechet_floor": lambda: ((torch.randn(100, 3), torch.randn(50, 3), 10), {"draws": 2}),
    "scoring.quality.quality_report": lambda: ((IMG28,), {"classifier": _classifier.MNISTClassifier(), "reference": IMG28_B,
                                                   "train_images": torch.cat([IMG28_B, IMG28])}),
    "scoring.quality.floor_table": lambda: (((128,),), {"classifier": _classifier.MNISTClassifier(), "draws": 2}),
    "scoring.quality.toy_2d_reference_and_floor": lambda: (("moons", 50), {"draws": 2}),
    "weights.shipped.load_pretrained_unet": lambda: (("ema",), {}),
    "weights.shipped.load_card_samples": lambda: (("ddpm1000",), {}),
    "scoring.comparisons.sample_in_batches": lambda: ((samplers.ddim_sample, 4, (2,), 2, 0), {"model": ZERO, "schedule": S, "steps": 2}),
    "scoring.comparisons.ddim_table": lambda: ((ZERO, S, (2,)), {"score_fn": lambda x: 0.0, "floor": 1.0, "etas": (0.0,), "steps": (2,),
                                                        "sigma_hat": False, "n_samples": 4, "batch_size": 2, "progress": False}),
    "scoring.comparisons.SamplerSetting": lambda: (("x", "ema", "ddim", 5), {"eta": 0.0}),
    "scoring.comparisons.table_settings": lambda: ((), {}),
    "scoring.comparisons.calls_settings": lambda: ((), {}),
    "scoring.comparisons.sample_setting": lambda: ((ZERO, S, _setting()), {"batch_size": 2, "item_shape": (2,), "progress": False}),
    "models.diffusers_bridge.diffusers_schedule_config": lambda: (("linear",), {}),
    "teaching.profiles.pick": lambda: ((), {"smoke": 1, "cpu": 2, "gpu": 3}),
    "data.locations.find_data_dir": lambda: ((), {}),
    # colour (chapter 10)
    "data.photos.load_photos": lambda: ((), {"downscale": 8}),
    "data.photos.grid_crops": lambda: ((torch.zeros(3, 16, 16), 4, 4), {}),
    "data.photos.make_crops": lambda: ((8,), {"downscale": 8}),
    "data.photos.crop_and_flip": lambda: ((torch.zeros(2, 3, 16, 16), 4, torch.Generator().manual_seed(0)), {}),
    "data.photos.random_crops": lambda: ((torch.zeros(2, 3, 16, 16), 3, 4, torch.Generator().manual_seed(0)), {}),
    "training.augmented.augmented_loss": lambda: ((S, 4), {}),
    "data.photos.dense_reference": lambda: ((torch.zeros(2, 3, 16, 16), 4), {}),
    "weights.colour_study.StudySettings": lambda: ((), {}),
    "weights.colour_study.CopyingSettings": lambda: ((), {}),
    "data.photos.crops_overlap": lambda: ((torch.zeros(2, 3, dtype=torch.long), torch.ones(1, 3, dtype=torch.long), 4), {}),
    "data.photos.random_crop_sets": lambda: ((2, 2, 8), {"downscale": 8}),
    "scoring.memorisation.median_ratio_interval": lambda: ((torch.ones(4), torch.ones(3)), {"draws": 10}),
    "scoring.memorisation.near_copy_share": lambda: ((torch.ones(4), 0.5), {}),
    "scoring.memorisation.copying_row": lambda: ((torch.zeros(2, 3, 4, 4), torch.ones(2, 3, 4, 4), torch.zeros(3, 3, 4, 4), 0.5), {"draws": 10}),
    "weights.shipped.load_colour_unet": lambda: (("augmented",), {}),
    # the notebooks' helpers
    "teaching.viz.image_grid": lambda: ((IMG,), {"nrow": 1}),
    "teaching.viz.show_images": lambda: ((IMG, "t"), {"nrow": 1}),
    "teaching.viz.scatter_2d": lambda: ((X, "t"), {}),
    "teaching.viz.plot_trajectories": lambda: ((torch.zeros(3, 4, 2), "t"), {}),
    "teaching.viz.animate_points": lambda: ((torch.zeros(3, 4, 2), "t"), {"frames": 2}),
    "teaching.viz.animate_images": lambda: ((torch.zeros(3, 2, 1, 4, 4), "t"), {"frames": 2}),
    "teaching.viz.plot_curve": lambda: (([1.0, 2.0, 3.0], "t"), {"smooth": 1}),
    "teaching.viz.show_image_rows": lambda: (({"a": IMG}, "t"), {}),
    "teaching.viz.scatter_panels": lambda: (({"a": X}, "t"), {}),
    "teaching.viz.plot_heatmap": lambda: ((torch.zeros(2, 2), "t", "x", "y"), {}),
    "teaching.unet_diagram.unet_diagram": lambda: ((_image_unet(), (1, 1, 4, 4)), {}),
    "teaching.exercises.reverse_step.check_reverse_step": lambda: ((lambda *a: None,), {"quiet": True}),
    "teaching.beta_explorer_state.beta_explorer_state": lambda: (("linear", 10, 1e-3, 0.2, 2), {}),
    "teaching.beta_explorer.BetaExplorer": lambda: ((), {"T": 10, "beta_1": 1e-3, "beta_T": 0.2, "n_points": 10}),
    "teaching.guidance_explorer.GuidanceExplorer": lambda: ((_cond_unet(), S), {"steps": 2, "n": 2}),
    "teaching.ddim_explorer.ddim_view": lambda: ((ZERO, S), {"steps": 2, "n": 2, "item_shape": (2,)}),
    "teaching.ddim_explorer.DDIMExplorer": lambda: ((_image_unet(), S), {"steps": 2, "n": 4}),
    "teaching.solver_explorer.solver_view": lambda: ((ZERO, S), {"calls": 2, "n": 2, "item_shape": (2,)}),
    "teaching.solver_explorer.SolverExplorer": lambda: ((_image_unet(), S), {"calls": 2, "max_calls": 3, "n": 2}),
    "teaching.solver_explorer.steps_for_calls": lambda: (("heun", 3), {}),
    # editing and classifier guidance (chapter 14)
    "maths.editing.sdedit": lambda: ((ZERO, S, X), {"t0": 5, "steps": 3, "clip_x0": 1.0}),
    "maths.editing.renoise": lambda: ((S, X, 1, 5), {}),
    "maths.editing.inpaint_step": lambda: ((S, X, 1, EPS, X, torch.ones(4, 2)), {"clip_x0": 1.0}),
    "maths.editing.repaint_schedule": lambda: ((10, 2, 3), {}),
    "maths.editing.inpaint_calls": lambda: ((10, 2, 3), {}),
    "maths.editing.inpaint": lambda: ((ZERO, S, X, torch.ones(4, 2)), {"steps": 5, "resample": 2, "jump": 2, "clip_x0": 1.0}),
    "maths.classifier_guidance.classifier_log_prob_grad": lambda: ((_mixture_classifier(), X, 1, 0), {}),
    "maths.classifier_guidance.classifier_guided_eps": lambda: ((ZERO, _mixture_classifier(), S, X, 1, 0, 1.0), {}),
    "maths.classifier_guidance.ClassifierGuidedModel": lambda: ((ZERO, _mixture_classifier(), S, 0, 1.0), {}),
    "maths.classifier_guidance.classifier_guided_sample": lambda: ((ZERO, _mixture_classifier(), S, (4, 2)), {"y": 0, "scale": 1.0, "steps": 2}),
    "maths.classifier_guidance.ExactMixtureClassifier": lambda: ((S, torch.zeros(3, 2)), {"s": 0.5}),
    "models.noisy_classifier.NoisyClassifierConfig": lambda: ((), {}),
    "training.noisy_classifier.train_noisy_classifier": lambda: ((_noisy_classifier(), IMG28[:8], torch.zeros(8, dtype=torch.long), S),
                                                                 {"steps": 1, "batch_size": 4, "progress": False}),
    "training.noisy_classifier.noisy_accuracy_by_t": lambda: ((_noisy_classifier(), IMG28[:4], torch.zeros(4, dtype=torch.long), S, [0, 5]), {}),
    "weights.make_editing.classifier_guidance_paired_differences": lambda: (
        ({n: IMG28[:10] for n in ("unguided", "noisy_s1", "noisy_s3", "noisy_s10", "clean_s3", "clean_s10")}, 1),
        {"classifier": _classifier.MNISTClassifier()}),
}


def _mixture_classifier():
    from diffusion_course.maths.classifier_guidance import ExactMixtureClassifier

    return ExactMixtureClassifier(S, torch.randn(3, 2, generator=torch.Generator().manual_seed(0)))


def _noisy_classifier():
    from diffusion_course.models.noisy_classifier import NoisyClassifier, NoisyClassifierConfig

    return NoisyClassifier(NoisyClassifierConfig(width=2, time_dim=4, T=T))


def _split():
    from diffusion_course.training.distributed import BatchSplit

    return BatchSplit(0, 1)  # one process: its methods check their arguments and do nothing else


def _setting():
    from diffusion_course.scoring.comparisons import SamplerSetting

    return SamplerSetting("x", "ema", "ddim", 2, eta=0.0, n=4)


def _bad_value(fn_name: str, arg: str, param: inspect.Parameter) -> object:
    if (fn_name, arg) in BAD:
        return BAD[(fn_name, arg)]
    a = param.annotation if isinstance(param.annotation, str) else getattr(param.annotation, "__name__", str(param.annotation))
    if arg in ("t", "t_prev") and "Tensor" in a:
        return T
    if "str" in a or isinstance(param.default, str):
        return "no-such-choice"
    if "float" in a or isinstance(param.default, float):
        return float("nan")
    return -1_000_000


def _meta_cases() -> list[tuple[str, str]]:
    cases = []
    for fn_name, fn in sorted(PUBLIC.items()):
        if fn_name in RECORDS or fn_name in COMMANDS:
            continue
        for arg in _checkable_args(fn):
            if arg not in FREE.get(fn_name, {}):
                cases.append((fn_name, arg))
    return cases


META_CASES = _meta_cases()


def test_every_checkable_argument_has_a_valid_call() -> None:
    """Each (function, argument) to check has a valid call in BASE; a new module or function lands here first."""
    missing = sorted({fn for fn, _ in META_CASES if fn not in BASE})
    assert not missing, f"add a valid call to BASE (or a line to FREE / RECORDS / COMMANDS) for: {missing}"
    stale = sorted(set(BASE) - set(PUBLIC)) + sorted(f for f in set(FREE) | RECORDS | COMMANDS if f not in PUBLIC)
    assert not stale, f"BASE / FREE / RECORDS / COMMANDS name functions that no longer exist: {stale}"


def test_the_valid_calls_are_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every BASE call runs as given, so a failure below comes from the bad value alone."""
    pytest.importorskip("ipywidgets")
    monkeypatch.setenv("COURSE_PROFILE", "smoke")
    failed = {}
    for fn_name in sorted({fn for fn, _ in META_CASES} & set(BASE)):
        args, kwargs = BASE[fn_name]()
        try:
            PUBLIC[fn_name](*args, **kwargs)
        except (FileNotFoundError, ImportError):  # shipped files or optional packages absent: nothing to learn here
            pass
        except Exception as e:  # noqa: BLE001
            failed[fn_name] = f"{type(e).__name__}: {e}"
    assert not failed, "\n".join(f"{k}: {v}" for k, v in failed.items())


@pytest.mark.parametrize("fn_name,arg", META_CASES, ids=[f"{f}-{a}" for f, a in META_CASES])
def test_bad_value_names_the_argument_and_its_range(fn_name: str, arg: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if fn_name not in BASE:
        pytest.fail(f"no valid call for {fn_name} in BASE")
    if fn_name.startswith(("teaching.beta_explorer.", "teaching.ddim_explorer.", "teaching.guidance_explorer.", "teaching.solver_explorer.")):
        pytest.importorskip("ipywidgets")
    monkeypatch.setenv("COURSE_PROFILE", "smoke")
    fn = PUBLIC[fn_name]
    sig = inspect.signature(fn)
    args, kwargs = BASE[fn_name]()
    bound = sig.bind_partial(*args, **kwargs)
    bad = _bad_value(fn_name, arg, sig.parameters[arg])
    bound.arguments[arg] = bad
    if fn_name in CHECKED_AGAINST_A_FILE:
        try:
            find_shipped(CHECKED_AGAINST_A_FILE[fn_name])
        except FileNotFoundError:
            pytest.skip(f"{fn_name} checks {arg} against {CHECKED_AGAINST_A_FILE[fn_name]}, which is not shipped here")
    if (fn_name, arg) in REPORTED:
        message = REPORTED[(fn_name, arg)](fn(*bound.args, **bound.kwargs)) or ""
    else:
        with pytest.raises((ValueError, TypeError)) as err:
            fn(*bound.args, **bound.kwargs)
        message = str(err.value)
    assert re.search(rf"\b{re.escape(arg)}\b", message), f"{fn_name}({arg}={bad!r}): the message does not name {arg}: {message}"
    assert re.search(r"\[|\(|one of", message), f"{fn_name}({arg}={bad!r}): the message gives no range or choices: {message}"
