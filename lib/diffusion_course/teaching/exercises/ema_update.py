"""Chapter 7's exercise: one update of an exponential moving average of a model's weights (the lib's ``EMA.update``).

The learner writes ``fn(shadow, model, decay, num_updates)``: it blends the live ``model``'s parameters and buffers into
the ``shadow`` copy in place, shadow <- d * shadow + (1 - d) * value, with the warm-up decay the lib uses,
d = min(decay, (1 + n) / (10 + n)) after n earlier updates (:func:`diffusion_course.ema.ema_decay_at`); floating-point
buffers (BatchNorm's running mean and variance) are averaged like parameters and integer buffers (its batch counter)
are copied. No gradient may be tracked and the live model must not change.

The checker runs the learner's function and the lib's :class:`~diffusion_course.ema.EMA` side by side for several steps
on a small model with a BatchNorm layer (an optimiser-like change of the weights and a forward pass in training mode
between updates, so the buffers move too), at two decays, and compares every tensor of the shadow after every update.
On a difference it replays known wrong rules (decay and 1 - decay swapped, no warm-up, a warm-up one step late,
parameters only) and names the one the learner's shadow matches.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

from ...training.ema import EMA, ema_decay_at
from ._diagnosis import _learner_line
from ._engine import CheckResult, _is_stub_output, _reporter

NAME = "ema_update"
_DECAYS = (0.99, 0.5)  # 0.99: the warm-up rules for ~900 updates; 0.5: it stops mattering after 8
_STEPS = 12
_TOL = 1e-6  # float32 arithmetic in a different order: differences of a few ulp


def _small_model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))


def _perturb(model: nn.Module, g: torch.Generator) -> None:
    """An optimiser-like step (every parameter moves) and a training-mode forward pass (BatchNorm's buffers move)."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    model.train()
    model(torch.randn(8, 3, generator=g))


def _blend(shadow: dict[str, torch.Tensor], src: dict[str, torch.Tensor], d: float, *, swap: bool = False,
           params_only: set[str] | None = None) -> None:
    for name, s in shadow.items():
        if params_only is not None and name not in params_only:
            continue
        v = src[name].detach()
        if s.dtype.is_floating_point:
            a, b = (1 - d, d) if swap else (d, 1 - d)
            s.mul_(a).add_(v.to(s.dtype), alpha=b)
        else:
            s.copy_(v)


# (key, explanation, decay rule (decay, n) -> d, swap, parameters only)
_EMA_MISTAKES: tuple[tuple[str, str, Callable[[float, int], float], bool, bool], ...] = (
    ("swapped", "decay and 1 - decay are swapped: the shadow keeps only (1 - d) of itself and takes d of the live weights, "
     "so with d = 0.999 it is almost a copy of the model and averages nothing. shadow <- d * shadow + (1 - d) * weights.",
     lambda decay, n: ema_decay_at(n, decay), True, False),
    ("no_warmup", "the warm-up is missing: you used `decay` itself from the first update. The lib uses "
     "d = min(decay, (1 + n) / (10 + n)) after n earlier updates (0.1 for the first, 0.5 after 8, 0.9 after 80), so the "
     "shadow is not stuck near the random initial weights for thousands of steps.",
     lambda decay, n: decay, False, False),
    ("warmup_off_by_one", "the warm-up runs one update late: d = min(decay, (1 + n) / (10 + n)) uses n = the number of "
     "updates done *before* this one (0 for the first update), and the count goes up after the update.",
     lambda decay, n: ema_decay_at(n + 1, decay), False, False),
    ("warmup_off_by_one", "the warm-up runs one update early: n is the number of updates done before this one, 0 for "
     "the first update, not -1.", lambda decay, n: ema_decay_at(max(n - 1, 0), decay) if n > 0 else 0.0, False, False),
    ("buffers_not_copied", "only the parameters are averaged: the buffers (here BatchNorm's running mean and variance and "
     "its batch counter) stay at their initial values in the shadow, so the EMA model normalises with the statistics of "
     "the random initial network. Go over `state_dict()` (parameters and buffers), average floating-point entries and "
     "copy integer ones.", lambda decay, n: ema_decay_at(n, decay), False, True),
    ("buffers_not_copied", "only the parameters are averaged and no warm-up is used: the buffers stay at their initial "
     "values (iterate over `state_dict()`, not `parameters()`), and the decay must follow min(decay, (1 + n) / (10 + n)).",
     lambda decay, n: decay, False, True),
)


def _replay(model0: nn.Module, decay: float, rule: Callable[[float, int], float], swap: bool, params_only: bool,
            seed: int) -> list[dict[str, torch.Tensor]]:
    """The shadow after each update under a (possibly wrong) rule, on the same sequence of model changes."""
    model = copy.deepcopy(model0)
    shadow = {k: v.clone() for k, v in model.state_dict().items()}
    names = {k for k, _ in model.named_parameters()} if params_only else None
    g = torch.Generator().manual_seed(seed)
    out = []
    for n in range(_STEPS):
        _perturb(model, g)
        _blend(shadow, model.state_dict(), rule(decay, n), swap=swap, params_only=names)
        out.append({k: v.clone() for k, v in shadow.items()})
    return out


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return all(torch.allclose(a[k].double(), b[k].double(), rtol=_TOL, atol=_TOL) for k in a)


def _first_diff(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> tuple[str, tuple[int, ...], float, float]:
    for k in want:
        g, w = got[k].double().reshape(-1), want[k].double().reshape(-1)
        bad = ~torch.isclose(g, w, rtol=_TOL, atol=_TOL)
        if bad.any():
            i = int(torch.nonzero(bad)[0])
            idx = tuple(int(j) for j in torch.unravel_index(torch.tensor(i), want[k].shape)) if want[k].ndim else ()
            return k, idx, float(w[i]), float(g[i])
    raise ValueError("no difference")


def _raised(err: Exception, where: str, n_cases: int, done: Callable[..., CheckResult]) -> CheckResult:
    """The report of a learner's update that raised (an in-place change under autograd gets its own words)."""
    if isinstance(err, RuntimeError):
        text = str(err)
        if "leaf Variable that requires grad" in text or "requires grad" in text:
            return done("wrong", f"{NAME}: your function raised RuntimeError: {err}{_learner_line(err)}\n"
                                 "  The update ran with gradient tracking on: PyTorch refuses an in-place change of a "
                                 "tensor that autograd follows. Decorate the function with @torch.no_grad() (or "
                                 "write its body inside `with torch.no_grad():`); the average is bookkeeping, not "
                                 "part of any loss.", ("grad_tracked",), n_cases + 1)
        return done("error", f"{NAME}: your function raised RuntimeError: {err}{_learner_line(err)}\n  on: {where}.",
                    ("error",), n_cases + 1)
    return done("error", f"{NAME}: your function raised {type(err).__name__}: {err}{_learner_line(err)}\n"
                         f"  on: {where}.", ("error",), n_cases + 1)


def _side_effects(out: object, n: int, state: dict[str, torch.Tensor], shadow_before: dict[str, torch.Tensor],
                  model: nn.Module, live_before: dict[str, torch.Tensor], where: str, n_cases: int,
                  done: Callable[..., CheckResult]) -> CheckResult | None:
    """The report of a stub that changed nothing, a changed live model or a shadow that tracks gradients, or None."""
    if _is_stub_output(out) and n == 0 and all(torch.equal(state[k].detach(), v) for k, v in shadow_before.items()):
        if not all(torch.equal(model.state_dict()[k], v) for k, v in live_before.items()):
            pass  # it changed the live model: reported below
        else:
            return done("not written yet", f"{NAME}: not written yet (it returned {out!r} and changed nothing). "
                                           "The function must change `shadow` in place.")
    if not all(torch.equal(model.state_dict()[k], v) for k, v in live_before.items()):
        return done("wrong", f"{NAME}: your function changed the live model (on: {where}). The EMA must only write "
                             "into `shadow`: with `p.mul_(...)` on the model's own parameters, training would "
                             "continue from the averaged weights instead of the optimiser's. Read from `model`, "
                             "write into `shadow`.", ("live_model",), n_cases)
    tracked = [k for k, v in state.items() if v.requires_grad or v.grad_fn is not None]
    if tracked:
        return done("wrong", f"{NAME}: the shadow's `{tracked[0]}` now tracks gradients (requires_grad=True after "
                             f"the update, on: {where}): the update ran outside torch.no_grad(), so autograd records "
                             "every EMA step and memory grows with each one. Decorate the function with "
                             "@torch.no_grad() or use `with torch.no_grad():`.", ("grad_tracked",), n_cases)
    return None


def _mismatch(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor], model0: nn.Module, decay: float, seed: int,
              n: int, where: str, n_cases: int, done: Callable[..., CheckResult]) -> CheckResult:
    """The report of a shadow that differs from the lib's: the first difference and the known wrong rule it matches."""
    key, idx, w, gv = _first_diff(got, want)
    lines = [f"{NAME}: not right yet.",
             f"  First difference: {where}, shadow entry `{key}`{list(idx) if idx else ''}: expected {w:.6g}, "
             f"got {gv:.6g}."]
    if n == 0:
        lines.append("  (This is the very first update: the lib's decay there is min(decay, 1/10) = "
                     f"{ema_decay_at(0, decay):g}.)")
    found = []
    for key_m, text, rule, swap, params_only in _EMA_MISTAKES:
        replay = _replay(model0, decay, rule, swap, params_only, 100 + seed)
        if _same(got, replay[n]):
            lines.append(f"  Diagnosis: {text}")
            found.append(key_m)
            break
    if not found:
        lines.append("  It matches none of the mistakes I know. The rule: d = min(decay, (1 + n) / (10 + n)), "
                     "then for every entry of shadow.state_dict(): floating point -> d * shadow + (1 - d) * "
                     "model's value, integer -> copy.")
    return done("wrong", "\n".join(lines), tuple(found), n_cases,
                {"kind": "mismatch", "decay": decay, "update": n, "entry": key, "expected": w, "got": gv})


def _check_decay(fn: Callable, seed: int, decay: float, n_cases: int,
                 done: Callable[..., CheckResult]) -> tuple[CheckResult | None, int]:
    """Run ``fn`` beside the lib's EMA for _STEPS updates at one decay: (the report of the first problem or None, the
    number of updates checked so far)."""
    model = _small_model(seed)
    lib = EMA(model, decay)
    shadow = copy.deepcopy(model).eval()
    for p in shadow.parameters():
        p.requires_grad_(False)
    g = torch.Generator().manual_seed(100 + seed)
    model0 = copy.deepcopy(model)
    for n in range(_STEPS):
        _perturb(model, g)
        live_before = {k: v.clone() for k, v in model.state_dict().items()}
        shadow_before = {k: v.clone() for k, v in shadow.state_dict().items()}
        where = f"decay = {decay:g}, update number {n + 1} (num_updates = {n}, the lib's decay {ema_decay_at(n, decay):.4g})"
        try:
            out = fn(shadow, model, decay, n)
        except NotImplementedError:
            return done("not written yet", f"{NAME}: not written yet. Replace the `raise NotImplementedError` with your "
                                           "code, then run this cell again."), n_cases
        except Exception as err:  # noqa: BLE001 - report any learner error in words, never raise
            return _raised(err, where, n_cases, done), n_cases
        n_cases += 1
        state = shadow.state_dict(keep_vars=True)
        verdict = _side_effects(out, n, state, shadow_before, model, live_before, where, n_cases, done)
        if verdict is not None:
            return verdict, n_cases
        lib.update(model)
        got = {k: v.detach() for k, v in state.items()}
        want = lib.shadow.state_dict()
        if not _same(got, want):
            return _mismatch(got, want, model0, decay, seed, n, where, n_cases, done), n_cases
    return None, n_cases


def check_ema_update(fn: Callable, *, quiet: bool = False) -> CheckResult:
    """Check ``fn(shadow, model, decay, num_updates)``, an in-place EMA update of ``shadow`` from ``model``, against the
    lib's :class:`~diffusion_course.ema.EMA` over 12 updates at decay 0.99 and 0.5 on a Linear-BatchNorm-Linear model;
    print the report and return it."""
    done = _reporter(NAME, quiet)

    if not callable(fn):
        return done("error", f"{NAME}: expected a function fn(shadow, model, decay, num_updates); got {type(fn).__name__}.",
                    ("not_callable",))
    n_cases = 0
    for seed, decay in enumerate(_DECAYS):
        verdict, n_cases = _check_decay(fn, seed, decay, n_cases, done)
        if verdict is not None:
            return verdict
    return done("correct", f"{NAME}: correct. It matched the lib's EMA after every one of {n_cases} updates ({_STEPS} at "
                           f"each decay in {{{', '.join(f'{d:g}' for d in _DECAYS)}}}, warm-up included) on a "
                           "Linear-BatchNorm-Linear model: parameters, running statistics and the batch counter; the live "
                           "model untouched and no gradient tracked.", (), n_cases)
