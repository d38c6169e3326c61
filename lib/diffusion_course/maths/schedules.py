"""Chapter 2: noise schedules beta_1..beta_T (linear as in Ho et al. 2020, section 4; cosine as in Nichol & Dhariwal
2021, eq. 17) and the frozen :class:`NoiseSchedule` of derived coefficients (alpha_t = 1 - beta_t,
alpha_bar_t = prod alpha_s, the posterior coefficients of Ho et al. eq. 7, the signal-to-noise ratio).

Timestep convention (one for the whole course): code index ``t`` runs ``0..T-1`` and stands
for the paper's ``t+1``. So ``beta[0]`` is the paper's beta_1, ``alpha_bar[T-1]`` is
alpha_bar_T, and ``alpha_bar_prev[0] = 1`` (the clean data, x_0).

Every coefficient is computed in float64 and stored in float32.

Glossary (ours -> Ho et al. 2020 -> diffusers / improved-diffusion):

=====================  ==========================================  ==============================================
ours                   paper                                       diffusers / improved-diffusion
=====================  ==========================================  ==============================================
``beta``               beta_t                                      ``betas``
``alpha``              alpha_t = 1 - beta_t                        ``alphas``
``alpha_bar``          bar-alpha_t = prod_{s<=t} alpha_s           ``alphas_cumprod``
``alpha_bar_prev``     bar-alpha_{t-1}                             ``alphas_cumprod_prev``
``posterior_variance`` tilde-beta_t                                ``posterior_variance`` ("fixed_small")
=====================  ==========================================  ==============================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch

from .._internal.validate import check_choice, check_positive_int, check_range

__all__ = [
    "linear_betas",
    "cosine_betas",
    "quadratic_betas",
    "sigmoid_betas",
    "make_betas",
    "SCHEDULE_KINDS",
    "NoiseSchedule",
    "extract",
    "snr",
]


def _check_betas(betas: torch.Tensor) -> torch.Tensor:
    """Validate a beta vector: 1-D, non-empty, every entry in the open interval (0, 1)."""
    if not isinstance(betas, torch.Tensor):
        betas = torch.as_tensor(betas, dtype=torch.float64)
    if betas.ndim != 1 or betas.numel() == 0:
        raise ValueError(f"betas must be a non-empty 1-D tensor of shape (T,); got shape {tuple(betas.shape)}")
    if not torch.isfinite(betas).all() or (betas <= 0).any() or (betas >= 1).any():
        raise ValueError(
            f"betas must lie in the open interval (0, 1); got min {float(betas.min()):.3g}, max {float(betas.max()):.3g}"
        )
    return betas.to(torch.float64)


def linear_betas(T: int, beta_1: float = 1e-4, beta_T: float = 0.02) -> torch.Tensor:
    """Linear schedule beta_t from beta_1 to beta_T (Ho et al. 2020, section 4: T=1000, 1e-4 .. 0.02). float64, shape (T,)."""
    check_positive_int(T, "T")
    check_range(beta_1, "beta_1", 0.0, 1.0, open_low=True, open_high=True)
    check_range(beta_T, "beta_T", 0.0, 1.0, open_low=True, open_high=True)
    return torch.linspace(beta_1, beta_T, T, dtype=torch.float64)


def quadratic_betas(T: int, beta_1: float = 1e-4, beta_T: float = 0.02) -> torch.Tensor:
    """Quadratic schedule: sqrt(beta_t) linear from sqrt(beta_1) to sqrt(beta_T) (Song et al. 2021 DDIM code; diffusers "scaled_linear")."""
    check_positive_int(T, "T")
    check_range(beta_1, "beta_1", 0.0, 1.0, open_low=True, open_high=True)
    check_range(beta_T, "beta_T", 0.0, 1.0, open_low=True, open_high=True)
    return torch.linspace(beta_1**0.5, beta_T**0.5, T, dtype=torch.float64) ** 2


def sigmoid_betas(T: int, beta_1: float = 1e-4, beta_T: float = 0.02) -> torch.Tensor:
    """Sigmoid schedule: beta_t = beta_1 + (beta_T - beta_1) * sigmoid(linspace(-6, 6, T)) (Xu et al. 2022, GeoDiff; diffusers "sigmoid")."""
    check_positive_int(T, "T")
    check_range(beta_1, "beta_1", 0.0, 1.0, open_low=True, open_high=True)
    check_range(beta_T, "beta_T", 0.0, 1.0, open_low=True, open_high=True)
    return beta_1 + (beta_T - beta_1) * torch.sigmoid(torch.linspace(-6, 6, T, dtype=torch.float64))


def cosine_betas(T: int, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """Cosine schedule (Nichol & Dhariwal 2021, eq. 17): alpha_bar(t) = f(t)/f(0), f(t) = cos^2(((t/T + s)/(1 + s)) pi/2),
    beta_t = min(1 - alpha_bar(t)/alpha_bar(t-1), max_beta). float64, shape (T,)."""
    check_positive_int(T, "T")
    check_range(s, "s", 0.0, 1.0, open_high=True)
    check_range(max_beta, "max_beta", 0.0, 1.0, open_low=True, open_high=True)
    steps = torch.arange(T + 1, dtype=torch.float64) / T
    f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    betas = 1 - f[1:] / f[:-1]
    return betas.clamp(min=1e-12, max=max_beta)


SCHEDULE_KINDS = ("linear", "cosine", "quadratic", "sigmoid")


def make_betas(kind: str, T: int, beta_1: float = 1e-4, beta_T: float = 0.02) -> torch.Tensor:
    """Betas for a schedule named by ``kind`` (one of :data:`SCHEDULE_KINDS`); beta_1/beta_T are ignored by "cosine"."""
    check_choice(kind, SCHEDULE_KINDS, "kind")
    if kind == "cosine":
        return cosine_betas(T)
    return {"linear": linear_betas, "quadratic": quadratic_betas, "sigmoid": sigmoid_betas}[kind](T, beta_1, beta_T)


def extract(values: torch.Tensor, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Gather ``values[t]`` and reshape to (B, 1, ..., 1) so it broadcasts against ``x`` of any rank (2-D points, 4-D images).

    ``values``: (T,), ``t``: LongTensor (B,), ``x``: (B, ...). Returns (B, 1, ..., 1) in x's dtype and device.
    """
    if t.ndim != 1 or t.shape[0] != x.shape[0]:
        raise ValueError(f"t must have shape (B,) with B = x.shape[0] = {x.shape[0]}; got shape {tuple(t.shape)}")
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= values.shape[0]):
        # a negative index would silently read from the end of the table
        raise ValueError(f"t must lie in [0, {values.shape[0] - 1}]; got values in [{int(t.min())}, {int(t.max())}]")
    out = values.to(device=x.device)[t.to(x.device)].to(x.dtype)
    return out.reshape(x.shape[0], *([1] * (x.ndim - 1)))


@dataclass(frozen=True, eq=False)
class NoiseSchedule:
    """All per-timestep coefficients of a DDPM (Ho et al. 2020, eqs. 4, 6, 7), derived once from the betas.

    Build with :meth:`from_betas`. Tensors have shape (T,), float32; code index t is the paper's t+1.
    """

    beta: torch.Tensor  # beta_t, noise added at step t
    alpha: torch.Tensor  # alpha_t = 1 - beta_t
    alpha_bar: torch.Tensor  # prod_{s<=t} alpha_s: signal kept from x_0 after t steps
    alpha_bar_prev: torch.Tensor  # alpha_bar_{t-1}, with alpha_bar_prev[0] = 1
    sqrt_alpha_bar: torch.Tensor  # mean coefficient of q(x_t | x_0), eq. 4
    sqrt_one_minus_alpha_bar: torch.Tensor  # standard deviation of q(x_t | x_0), eq. 4
    posterior_variance: torch.Tensor  # tilde-beta_t of q(x_{t-1} | x_t, x_0), eq. 7 (0 at t=0)
    posterior_log_variance_clipped: torch.Tensor  # log tilde-beta_t with the t=0 entry replaced by t=1's (finite)
    posterior_mean_coef1: torch.Tensor  # multiplies x_0 in tilde-mu_t, eq. 7
    posterior_mean_coef2: torch.Tensor  # multiplies x_t in tilde-mu_t, eq. 7

    @classmethod
    def from_betas(cls, betas: torch.Tensor) -> "NoiseSchedule":
        """Derive every coefficient in float64 from a (T,) beta vector with entries in (0, 1); store float32."""
        b = _check_betas(betas)
        a = 1.0 - b
        ab = torch.cumprod(a, 0)
        ab_prev = torch.cat([torch.ones(1, dtype=torch.float64), ab[:-1]])
        post_var = b * (1.0 - ab_prev) / (1.0 - ab)
        log_clipped = torch.log(torch.cat([post_var[1:2], post_var[1:]])) if len(b) > 1 else torch.log(b)
        coef1 = b * ab_prev.sqrt() / (1.0 - ab)
        coef2 = (1.0 - ab_prev) * a.sqrt() / (1.0 - ab)
        f32 = lambda v: v.to(torch.float32)  # noqa: E731
        return cls(
            beta=f32(b),
            alpha=f32(a),
            alpha_bar=f32(ab),
            alpha_bar_prev=f32(ab_prev),
            sqrt_alpha_bar=f32(ab.sqrt()),
            sqrt_one_minus_alpha_bar=f32((1.0 - ab).sqrt()),
            posterior_variance=f32(post_var),
            posterior_log_variance_clipped=f32(log_clipped),
            posterior_mean_coef1=f32(coef1),
            posterior_mean_coef2=f32(coef2),
        )

    @classmethod
    def linear(cls, T: int = 1000, beta_1: float = 1e-4, beta_T: float = 0.02) -> "NoiseSchedule":
        """The DDPM paper's schedule (T=1000, beta from 1e-4 to 0.02)."""
        return cls.from_betas(linear_betas(T, beta_1, beta_T))

    @classmethod
    def cosine(cls, T: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> "NoiseSchedule":
        """The improved-DDPM cosine schedule (Nichol & Dhariwal 2021)."""
        return cls.from_betas(cosine_betas(T, s, max_beta))

    @property
    def T(self) -> int:
        """Number of diffusion steps."""
        return int(self.beta.shape[0])

    @property
    def device(self) -> torch.device:
        """Device the coefficient tensors live on."""
        return self.beta.device

    def to(self, device: torch.device | str) -> "NoiseSchedule":
        """A copy with every coefficient tensor on ``device`` (the schedule itself is frozen)."""
        device = torch.device(device)
        if self.beta.device == device:
            return self
        return NoiseSchedule(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    def __eq__(self, other: object) -> bool:
        """Equal when every coefficient table is equal (same T, same values; the device is ignored)."""
        if not isinstance(other, NoiseSchedule):
            return NotImplemented
        return self.T == other.T and all(torch.equal(getattr(self, f.name).cpu(), getattr(other, f.name).cpu()) for f in fields(self))

    def __hash__(self) -> int:
        return hash((self.T, self.beta.detach().cpu().numpy().tobytes()))  # every table derives from beta

    def snr(self) -> torch.Tensor:
        """Signal-to-noise ratio alpha_bar_t / (1 - alpha_bar_t) (Kingma et al. 2021, eq. 3), shape (T,)."""
        # the stored sqrt(1 - alpha_bar) was derived in float64; 1 - alpha_bar in float32 would keep ~4 digits at t = 0
        return self.alpha_bar / self.sqrt_one_minus_alpha_bar**2

    def __repr__(self) -> str:
        return (
            f"NoiseSchedule(T={self.T}, beta=[{float(self.beta[0]):.3g} .. {float(self.beta[-1]):.3g}], "
            f"alpha_bar_T={float(self.alpha_bar[-1]):.3g}, device={self.device})"
        )


def snr(schedule: NoiseSchedule) -> torch.Tensor:
    """Signal-to-noise ratio of every timestep, alpha_bar_t / (1 - alpha_bar_t) (Kingma et al. 2021, eq. 3)."""
    return schedule.snr()
