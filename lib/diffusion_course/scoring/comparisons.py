"""Sampler comparisons (chapters 6 and 8): the card's sampler settings and the steps x eta quality table in the form of
the DDIM paper's Table 1 (Song et al. 2021; eta scales sigma as in its eq. 16).

:func:`ddim_table` samples with DDIM for every (eta, steps) pair and with the "sigma-hat" DDPM sampler (ancestral
sampling on the kept steps with sigma^2 = beta', i.e. DDPM's larger variance), scores every set of samples with one
``score_fn`` (lower is better: a Fréchet distance, a sliced Wasserstein distance ...) and reports score / floor, where
``floor`` is the same score measured between two independent draws of real data. Every cell starts from the same
x_T (same seed), so the cells differ only by the sampler. Wall-clock seconds are recorded per cell.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from .._internal.progress import progress_bar
from .._internal.types import EpsModel
from .._internal.validate import check_choice, check_positive_int, check_range
from ..maths.respacing import ddpm_sample_respaced
from ..maths.samplers import DDIM_SPACINGS, ddim_sample, ddpm_sample
from ..maths.schedules import NoiseSchedule
from ..maths.solvers import dpm_solver_sample, heun_sample

__all__ = [
    "TableCell",
    "QualityTable",
    "ddim_table",
    "sample_in_batches",
    "SIGMA_HAT",
    "SamplerSetting",
    "CARD_SETTINGS", "calls_settings", "CALLS_BUDGETS", "CALLS_SAMPLERS", "HEUN_CHURN",
    "table_settings",
    "sample_setting",
]

SIGMA_HAT = "sigma_hat"  # row label of the DDPM large-variance sampler


@dataclass
class TableCell:
    """One entry of the table: a sampler at a number of steps."""

    row: str  # "eta=0.5" or SIGMA_HAT
    eta: float | None  # None for the sigma-hat row
    steps: int  # model calls per sample
    score: float  # score_fn(samples), lower is better
    ratio: float  # score / floor (1 = as close to the data as a second draw of the data)
    seconds: float  # wall-clock of sampling (not scoring) all n_samples


@dataclass
class QualityTable:
    """The result of :func:`ddim_table`: cells by (row, steps), the floor and what was run."""

    rows: list[str]
    steps: list[int]
    cells: dict[tuple[str, int], TableCell]
    floor: float
    n_samples: int
    spacing: str
    notes: dict = field(default_factory=dict)

    def ratio(self, row: str, steps: int) -> float:
        """score / floor of one cell."""
        return self.cells[(row, steps)].ratio

    def to_markdown(self, digits: int = 2) -> str:
        """A markdown table: one row per sampler, one column per number of steps (cells: score / floor), then the
        row's total wall-clock seconds; a last row gives the seconds of each column for eta = 0 (or the first row)."""
        head = "| sampler | " + " | ".join(f"S={s}" for s in self.steps) + " | wall-clock (s) |"
        sep = "|---" * (len(self.steps) + 2) + "|"
        lines = [head, sep]
        for r in self.rows:
            label = "σ̂ (DDPM, σ²=β')" if r == SIGMA_HAT else f"η = {r.split('=')[1]}"
            vals = [f"{self.cells[(r, s)].ratio:.{digits}f}" for s in self.steps]
            total = sum(self.cells[(r, s)].seconds for s in self.steps)
            lines.append(f"| {label} | " + " | ".join(vals) + f" | {total:.1f} |")
        first = self.rows[0]
        secs = [f"{self.cells[(first, s)].seconds:.1f}" for s in self.steps]
        lines.append(f"| seconds ({first.replace('eta=', 'η = ') if first != SIGMA_HAT else 'σ̂'}) | " + " | ".join(secs) + " | |")
        return "\n".join(lines)

    def as_dict(self) -> dict:
        """A JSON-ready dict (for the benchmarks)."""
        return {
            "floor": self.floor,
            "n_samples": self.n_samples,
            "spacing": self.spacing,
            "rows": self.rows,
            "steps": self.steps,
            "cells": [vars(c) for c in self.cells.values()],
            "notes": self.notes,
        }


def sample_in_batches(
    sampler: Callable[..., torch.Tensor], n: int, item_shape: Sequence[int], batch_size: int, seed: int, **kwargs
) -> torch.Tensor:
    """Draw n samples as ``sampler(shape=(b, *item_shape), generator=g, **kwargs)`` over batches of at most
    ``batch_size``, with one CPU generator seeded by ``seed`` (so the same seed gives the same x_T for every sampler
    that draws x_T first). Returns a CPU tensor (n, *item_shape)."""
    check_positive_int(n, "n")
    check_positive_int(batch_size, "batch_size")
    g = torch.Generator().manual_seed(seed)
    out = []
    for start in range(0, n, batch_size):
        b = min(batch_size, n - start)
        out.append(sampler(shape=(b, *item_shape), generator=g, **kwargs).cpu())
    return torch.cat(out)


def ddim_table(
    model: EpsModel,
    schedule: NoiseSchedule,
    item_shape: Sequence[int],
    *,
    score_fn: Callable[[torch.Tensor], float],
    floor: float,
    etas: Sequence[float] = (0.0, 0.2, 0.5, 1.0),
    steps: Sequence[int] = (10, 20, 50, 100, 1000),
    sigma_hat: bool = True,
    n_samples: int = 1000,
    batch_size: int = 250,
    spacing: str = "uniform",
    clip_x0: float | None = None,
    seed: int = 0,
    progress: bool = True,
) -> QualityTable:
    """Quality of DDIM for every eta x steps, plus the sigma-hat DDPM row, as score / floor (Song et al. 2021, Table 1).

    ``item_shape`` is one sample's shape, e.g. (1, 28, 28). ``score_fn`` maps (n_samples, *item_shape) samples to a
    float, lower is better; ``floor`` > 0 is that score between two draws of real data.
    """
    check_range(floor, "floor", 0.0, math.inf, open_low=True)
    check_positive_int(n_samples, "n_samples")
    if spacing not in DDIM_SPACINGS:
        raise ValueError(f"spacing must be one of {', '.join(repr(s) for s in DDIM_SPACINGS)}; got {spacing!r}")
    if not etas and not sigma_hat:
        raise ValueError("etas must hold at least one value when sigma_hat is False")
    for e in etas:
        check_range(e, "eta", 0.0, 1.0)  # as ddim_sample: fail before any sampling, not at the first cell with eta > 1
    if not steps:
        raise ValueError("steps must hold at least one number of steps")
    for s in steps:
        check_positive_int(int(s), "steps", 1, schedule.T)
    rows = [f"eta={float(e):g}" for e in etas] + ([SIGMA_HAT] if sigma_hat else [])
    jobs = [(r, int(s)) for r in rows for s in steps]
    cells: dict[tuple[str, int], TableCell] = {}
    bar = progress_bar(jobs, desc="sampler table", disable=not progress)
    for row, s in bar:
        bar.set_postfix(row=row, steps=s)
        t0 = time.perf_counter()
        if row == SIGMA_HAT:
            x = sample_in_batches(ddpm_sample_respaced, n_samples, item_shape, batch_size, seed, model=model, schedule=schedule,
                                  steps=s, spacing=spacing, variance="beta", clip_x0=clip_x0)
            eta = None
        else:
            eta = float(row.split("=")[1])
            x = sample_in_batches(ddim_sample, n_samples, item_shape, batch_size, seed, model=model, schedule=schedule,
                                  steps=s, eta=eta, spacing=spacing, clip_x0=clip_x0)
        seconds = time.perf_counter() - t0
        if not torch.isfinite(x).all():
            score = math.inf
        else:
            score = float(score_fn(x))
        cells[(row, s)] = TableCell(row=row, eta=eta, steps=s, score=score, ratio=score / floor, seconds=seconds)
    bar.close()
    return QualityTable(rows=rows, steps=[int(s) for s in steps], cells=cells, floor=float(floor), n_samples=n_samples,
                        spacing=spacing, notes={"clip_x0": clip_x0, "seed": seed, "batch_size": batch_size})


# ------------------------------------------------------------------------------------------------ the shipped model's quality


@dataclass(frozen=True)
class SamplerSetting:
    """One way of sampling the shipped U-Net, scored into its card: which weights, which sampler, how many samples."""

    name: str  # key in the card's quality table and in the samples file
    weights: str  # "ema" or "raw"
    sampler: str  # "ddpm" (Algorithm 2, T steps), "ddim", "sigma_hat" (ancestral DDPM on kept steps, sigma^2 = beta'),
    # "dpm_solver" (DPM-Solver++, multistep) or "heun" (Karras et al. Algorithm 1 on Karras sigmas)
    steps: int  # the sampler's steps: model calls per sample, except Heun (2 * steps - 1 calls; see `calls`)
    eta: float | None = None  # DDIM only
    spacing: str = "uniform"  # kept timesteps (DDIM, sigma_hat)
    clip_x0: float | None = 1.0
    n: int = 1000  # samples scored
    order: int | None = None  # DPM-Solver++ only: 1, 2 (2M) or 3 (3M)
    s_churn: float = 0.0  # Heun only: Karras et al.'s Algorithm 2 churn (0: the deterministic Algorithm 1)

    def __post_init__(self) -> None:
        check_choice(self.weights, ("ema", "raw"), "weights")
        check_choice(self.sampler, ("ddpm", "ddim", SIGMA_HAT, "dpm_solver", "heun"), "sampler")
        if self.order is not None:
            check_positive_int(self.order, "order", 1, 3)
        check_positive_int(self.steps, "steps")
        if self.eta is not None:
            check_range(self.eta, "eta", 0.0, 1.0)
        check_choice(self.spacing, DDIM_SPACINGS, "spacing")
        if self.clip_x0 is not None:
            check_range(self.clip_x0, "clip_x0", 0.0, math.inf, open_low=True)
        check_positive_int(self.n, "n")
        check_range(self.s_churn, "s_churn", 0.0, math.inf)

    @property
    def calls(self) -> int:
        """Network calls per sample."""
        return 2 * self.steps - 1 if self.sampler == "heun" else self.steps

    def describe(self) -> str:
        clip = f"x0 clipped to +/-{self.clip_x0:g}" if self.clip_x0 else "no clipping"
        if self.sampler == "dpm_solver":
            return f"{self.weights} weights, DPM-Solver++({self.order or 2}M) {self.steps} {self.spacing} steps, {clip}"
        if self.sampler == "heun":
            churn = f", churn S_churn = {self.s_churn:g}" if self.s_churn else ""
            return f"{self.weights} weights, Heun on {self.steps} Karras sigmas ({self.calls} calls){churn}, {clip}"
        if self.sampler == "ddpm":
            return f"{self.weights} weights, DDPM {self.steps} steps (sigma^2 = beta), {clip}"
        if self.sampler == SIGMA_HAT:
            return f"{self.weights} weights, sigma-hat DDPM on {self.steps} {self.spacing} steps, {clip}"
        return f"{self.weights} weights, DDIM {self.steps} {self.spacing} steps, eta = {self.eta:g}, {clip}"


# The card's table: every setting on 1,000 samples from one seeded batch of x_T (so any two settings can be compared by
# a paired interval, scoring.quality.compare_paired), against the reference set.
CARD_SETTINGS = (
    SamplerSetting("ddpm1000", "ema", "ddpm", 1000),
    SamplerSetting("ddim50_eta0", "ema", "ddim", 50, eta=0.0),
    SamplerSetting("ddim50_eta1", "ema", "ddim", 50, eta=1.0),
    SamplerSetting("ddim50_eta0_noclip", "ema", "ddim", 50, eta=0.0, clip_x0=None),
    SamplerSetting("ddim50_eta1_noclip", "ema", "ddim", 50, eta=1.0, clip_x0=None),
    SamplerSetting("raw_ddim50_eta0", "raw", "ddim", 50, eta=0.0),
    SamplerSetting("raw_ddim50_eta1", "raw", "ddim", 50, eta=1.0),
    # chapter 12: few network calls
    SamplerSetting("dpm2m_10", "ema", "dpm_solver", 10, spacing="trailing", order=2),
    SamplerSetting("dpm2m_20", "ema", "dpm_solver", 20, spacing="trailing", order=2),
    SamplerSetting("heun_10", "ema", "heun", 10),
    SamplerSetting("ddim20_eta1", "ema", "ddim", 20, eta=1.0),
)


CALLS_BUDGETS = (5, 8, 10, 15, 20, 50)  # chapter 12's quality-against-calls table: network calls per sample
CALLS_SAMPLERS = ("ddim_eta0", "ddim_eta1", "dpm2m", "dpm3m", "heun", "heun_churn")
HEUN_CHURN = 10.0  # S_churn of the table's stochastic Heun rows (Karras et al. 2022, Algorithm 2; gamma = min(S_churn / N, sqrt(2) - 1))


def calls_settings(n: int = 1000) -> tuple[SamplerSetting, ...]:
    """Chapter 12's quality-against-network-calls table: for each budget of :data:`CALLS_BUDGETS` calls, DDIM with
    eta = 0 and eta = 1 (uniform timesteps), DPM-Solver++(2M) and (3M) (trailing timesteps) and Heun on Karras sigmas,
    deterministic and with churn (the most levels whose 2N - 1 calls fit), all x0-clipped, all from the same x_T."""
    check_positive_int(n, "n", 2)
    out = []
    for c in CALLS_BUDGETS:
        out += [SamplerSetting(f"ddim_eta0_c{c}", "ema", "ddim", c, eta=0.0, n=n), SamplerSetting(f"ddim_eta1_c{c}", "ema", "ddim", c, eta=1.0, n=n),
                SamplerSetting(f"dpm2m_c{c}", "ema", "dpm_solver", c, spacing="trailing", order=2, n=n),
                SamplerSetting(f"dpm3m_c{c}", "ema", "dpm_solver", c, spacing="trailing", order=3, n=n),
                SamplerSetting(f"heun_c{c}", "ema", "heun", (c + 1) // 2, n=n),
                SamplerSetting(f"heun_churn_c{c}", "ema", "heun", (c + 1) // 2, s_churn=HEUN_CHURN, n=n)]
    return tuple(out)


def table_settings(n: int = 1000) -> tuple[SamplerSetting, ...]:
    """The steps x eta grid of chapter 8 (the DDIM paper's Table 1 in its own setting: "leading" spacing as in the
    paper's code, x0 clipped, eta in {0, 0.2, 0.5, 1} and sigma-hat at S in {10, 20, 50}, eta in {0, 1} at S = 100),
    plus eta = 0 on the other spacings at S in {10, 50} and eta in {0, 1} without clipping at S = 10."""
    check_positive_int(n, "n", 2)
    out = []
    for S in (10, 20, 50, 100):
        for eta in (0.0, 0.2, 0.5, 1.0):
            if S == 100 and eta not in (0.0, 1.0):
                continue  # S = 100 costs as much as the other three columns together: its two end rows only
            out.append(SamplerSetting(f"leading_S{S}_eta{eta:g}", "ema", "ddim", S, eta=eta, spacing="leading", n=n))
        if S < 100:
            out.append(SamplerSetting(f"leading_S{S}_sigmahat", "ema", SIGMA_HAT, S, spacing="leading", n=n))
    for spacing in ("quadratic", "uniform", "trailing"):
        for S in (10, 50):
            out.append(SamplerSetting(f"{spacing}_S{S}_eta0", "ema", "ddim", S, eta=0.0, spacing=spacing, n=n))
    for eta in (0.0, 1.0):
        out.append(SamplerSetting(f"leading_S10_eta{eta:g}_noclip", "ema", "ddim", 10, eta=eta, spacing="leading", clip_x0=None, n=n))
    return tuple(out)


def sample_setting(model: EpsModel, schedule: NoiseSchedule, setting: SamplerSetting, *, seed: int = 0, batch_size: int = 250,
                   item_shape: Sequence[int] = (1, 28, 28), progress: bool = True) -> torch.Tensor:
    """Draw ``setting.n`` samples (CPU, float32) with the setting's sampler; the same seed gives the same x_T in every setting."""

    common = dict(model=model, schedule=schedule, clip_x0=setting.clip_x0)
    if setting.sampler == "ddpm":
        return sample_in_batches(ddpm_sample, setting.n, item_shape, batch_size, seed, variance="beta", progress=progress, **common)
    if setting.sampler == SIGMA_HAT:
        return sample_in_batches(ddpm_sample_respaced, setting.n, item_shape, batch_size, seed, steps=setting.steps,
                                 spacing=setting.spacing, variance="beta", progress=progress, **common)
    if setting.sampler == "dpm_solver":
        return sample_in_batches(dpm_solver_sample, setting.n, item_shape, batch_size, seed, steps=setting.steps, order=setting.order or 2,
                                 spacing=setting.spacing, progress=progress, **common)
    if setting.sampler == "heun":
        return sample_in_batches(heun_sample, setting.n, item_shape, batch_size, seed, steps=setting.steps, s_churn=setting.s_churn,
                                 progress=progress, **common)
    return sample_in_batches(ddim_sample, setting.n, item_shape, batch_size, seed, steps=setting.steps, eta=setting.eta,
                             spacing=setting.spacing, progress=progress, **common)
