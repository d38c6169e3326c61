"""Bad input gets a ValueError whose message names the argument (STYLE.md, rule 9): one parametrised case per
function and kind of mistake, plus a check that every public function taking ``t``, ``steps``, ``spacing`` or
``variance`` has a case here, so a new function cannot slip through."""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable

import pytest
import torch

from diffusion_course import data, forward, losses, posterior, profiles, samplers, schedules
from diffusion_course.models import MLPConfig, MLPDenoiser, SinusoidalEmbedding, sinusoidal_embedding
from diffusion_course.schedules import NoiseSchedule

T = 20
S = NoiseSchedule.linear(T, 1e-3, 0.2)
X = torch.zeros(4, 2)
EPS = torch.zeros(4, 2)
IMG = torch.zeros(2, 1, 4, 4)
BAD_SHAPE = torch.zeros(4, 3)
ZERO = lambda x, t: torch.zeros_like(x)  # noqa: E731  a model that predicts eps_hat = 0
LONG = lambda *v: torch.tensor(v, dtype=torch.long)  # noqa: E731


def _t_cases() -> list[tuple[str, str, Callable[[int], object]]]:
    """(function name, argument name, call(bad_t)) for every public function with a timestep argument."""
    B = X.shape[0]
    tb = lambda v: torch.full((B,), v, dtype=torch.long)  # noqa: E731
    return [
        ("q_step", "t", lambda v: forward.q_step(S, X, v)),
        ("q_sample", "t", lambda v: forward.q_sample(S, X, v)),
        ("add_noise", "t", lambda v: forward.add_noise(S, X, EPS, tb(v))),
        ("q_mean_variance", "t", lambda v: forward.q_mean_variance(S, X, v)),
        ("predict_x0_from_eps", "t", lambda v: forward.predict_x0_from_eps(S, X, v, EPS)),
        ("predict_eps_from_x0", "t", lambda v: forward.predict_eps_from_x0(S, X, v, X)),
        ("v_from_x0_eps", "t", lambda v: forward.v_from_x0_eps(S, X, EPS, v)),
        ("predict_x0_from_v", "t", lambda v: forward.predict_x0_from_v(S, X, v, EPS)),
        ("predict_eps_from_v", "t", lambda v: forward.predict_eps_from_v(S, X, v, EPS)),
        ("q_posterior", "t", lambda v: posterior.q_posterior(S, X, X, v)),
        ("posterior_mean_from_eps", "t", lambda v: posterior.posterior_mean_from_eps(S, X, v, EPS)),
        ("elbo_terms", "t", lambda v: losses.elbo_terms(S, ZERO, X, v, decoder="gaussian")),
        ("elbo_weight", "t", lambda v: losses.elbo_weight(S, tb(v))),
        ("simple_loss", "t", lambda v: losses.simple_loss(ZERO, S, X, t=tb(v))),
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


T_INT_CASES = [c for c in T_CASES if c[0] not in ("add_noise", "elbo_weight", "simple_loss", "min_snr_weight", "extract")]  # these take tensors


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
    ("add_noise", "eps", lambda: forward.add_noise(S, X, BAD_SHAPE, LONG(1, 1, 1, 1))),
    ("predict_x0_from_eps", "eps", lambda: forward.predict_x0_from_eps(S, X, 1, BAD_SHAPE)),
    ("predict_eps_from_x0", "x0", lambda: forward.predict_eps_from_x0(S, X, 1, BAD_SHAPE)),
    ("v_from_x0_eps", "eps", lambda: forward.v_from_x0_eps(S, X, BAD_SHAPE, 1)),
    ("predict_x0_from_v", "v", lambda: forward.predict_x0_from_v(S, X, 1, BAD_SHAPE)),
    ("predict_eps_from_v", "v", lambda: forward.predict_eps_from_v(S, X, 1, BAD_SHAPE)),
    ("q_posterior", "x0", lambda: posterior.q_posterior(S, BAD_SHAPE, X, 1)),
    ("posterior_mean_from_eps", "eps", lambda: posterior.posterior_mean_from_eps(S, X, 1, BAD_SHAPE)),
    ("simple_loss", "eps", lambda: losses.simple_loss(ZERO, S, X, eps=BAD_SHAPE)),
    ("simple_loss", "model output", lambda: losses.simple_loss(lambda x, t: x[:, :1], S, X)),
    ("elbo_terms", "eps", lambda: losses.elbo_terms(S, ZERO, X, 1, decoder="gaussian", eps=BAD_SHAPE)),
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
    ("elbo_terms", "variance", lambda: losses.elbo_terms(S, ZERO, X, 1, variance="learned", decoder="gaussian")),
    ("elbo_weight", "variance", lambda: losses.elbo_weight(S, LONG(1, 2), "small")),
    ("elbo_terms", "decoder", lambda: losses.elbo_terms(S, ZERO, X, 1, decoder="bernoulli")),
    ("elbo_terms", "x0", lambda: losses.elbo_terms(S, ZERO, X + 3.0, 1)),  # discretized decoder needs [-1, 1]
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

_MODULES = ["forward", "posterior", "losses", "samplers", "schedules"]
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
            if not inspect.isfunction(obj):
                continue
            params = inspect.signature(obj).parameters
            for arg, covered in _COVERED.items():
                if arg in params and name not in covered:
                    missing.append(f"{mod_name}.{name}({arg})")
    assert not missing, f"add bad-input cases for: {missing}"


def test_errors_are_value_errors_not_index_errors() -> None:
    """A negative t must never index the coefficient tables from the end (a silent wrong answer)."""
    assert re.search(r"\bt\b", str(pytest.raises(ValueError, schedules.extract, S.beta, LONG(-1, 0, 0, 0), X).value))
