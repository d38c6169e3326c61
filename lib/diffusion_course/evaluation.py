"""Sampler comparisons: the steps x eta quality table in the form of the DDIM paper's Table 1 (Song et al. 2021).

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
from tqdm.auto import tqdm

from ._validate import check_positive_int, check_range
from .respacing import ddpm_sample_respaced
from .samplers import DDIM_SPACINGS, ddim_sample
from .schedules import NoiseSchedule

__all__ = ["TableCell", "QualityTable", "ddim_table", "sample_in_batches", "SIGMA_HAT"]

EpsModel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
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
        check_range(e, "eta", 0.0, math.inf)
    if not steps:
        raise ValueError("steps must hold at least one number of steps")
    for s in steps:
        check_positive_int(int(s), "steps", 1, schedule.T)
    rows = [f"eta={float(e):g}" for e in etas] + ([SIGMA_HAT] if sigma_hat else [])
    jobs = [(r, int(s)) for r in rows for s in steps]
    cells: dict[tuple[str, int], TableCell] = {}
    bar = tqdm(jobs, desc="sampler table", disable=not progress)
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
