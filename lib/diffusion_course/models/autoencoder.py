"""Chapter 15: the KL-regularised autoencoder of latent diffusion (Rombach et al. 2022, section 3.1 and appendix G) at
MNIST scale. The encoder maps a 28x28 digit to the mean and log-variance of a diagonal Gaussian over a
latent_channels x 7 x 7 latent (two stride-2 convolutions: 28 -> 14 -> 7, Stable Diffusion's f = 8 is three); the
decoder maps a latent back to the image. A small KL weight keeps the latents near N(0, I) only loosely, which is why
a latent is rescaled (Stable Diffusion's 0.18215) before the forward process sees it."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .._internal.validate import check_positive_int, check_range

__all__ = ["AutoencoderConfig", "KLAutoencoder", "gaussian_kl", "autoencoder_loss", "autoencoder_loss_fn"]


@dataclass(kw_only=True)
class AutoencoderConfig:
    """Sizes of :class:`KLAutoencoder` (Stable Diffusion's VAE has widths 128-512, four levels and f = 8)."""

    in_channels: int = 1  # image channels
    latent_channels: int = 4  # channels of the latent (Stable Diffusion: 4)
    widths: tuple[int, ...] = (32, 64, 64)  # one per resolution: 28x28, 14x14, 7x7; len(widths) - 1 halvings
    blocks: int = 1  # residual blocks per resolution
    norm_groups: int = 8  # GroupNorm groups; must divide every width

    def __post_init__(self) -> None:
        self.widths = tuple(self.widths)
        check_positive_int(self.in_channels, "in_channels")
        check_positive_int(self.latent_channels, "latent_channels")
        if len(self.widths) < 1:
            raise ValueError("widths must hold at least one width; got ()")
        for w in self.widths:
            check_positive_int(w, "widths entries")
        check_positive_int(self.blocks, "blocks")
        check_positive_int(self.norm_groups, "norm_groups")
        bad = [w for w in self.widths if w % self.norm_groups]
        if bad:
            raise ValueError(f"norm_groups must divide every width {self.widths}; got norm_groups={self.norm_groups}")

    @property
    def factor(self) -> int:
        """How many times smaller the latent's sides are than the image's: 2 ** (len(widths) - 1)."""
        return 2 ** (len(self.widths) - 1)


class _Res(nn.Module):
    """x + conv(act(norm(conv(act(norm(x)))))): a residual block without a time input."""

    def __init__(self, i: int, o: int, groups: int) -> None:
        super().__init__()
        self.block = nn.Sequential(nn.GroupNorm(groups, i), nn.SiLU(), nn.Conv2d(i, o, 3, padding=1),
                                   nn.GroupNorm(groups, o), nn.SiLU(), nn.Conv2d(o, o, 3, padding=1))
        self.skip = nn.Conv2d(i, o, 1) if i != o else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.block(x)


class KLAutoencoder(nn.Module):
    """``encode(x) -> (mean, logvar)`` each (B, latent_channels, H/f, W/f); ``decode(z) -> x_hat`` (B, C, H, W);
    ``forward(x, generator=None)`` draws z = mean + exp(logvar / 2) * n and returns (x_hat, mean, logvar)."""

    def __init__(self, config: AutoencoderConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or AutoencoderConfig()
        g, w = c.norm_groups, c.widths
        enc: list[nn.Module] = [nn.Conv2d(c.in_channels, w[0], 3, padding=1)]
        ch = w[0]
        for level, width in enumerate(w):
            for _ in range(c.blocks):
                enc.append(_Res(ch, width, g))
                ch = width
            if level < len(w) - 1:
                enc.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))  # halve H and W
        enc += [nn.GroupNorm(g, ch), nn.SiLU(), nn.Conv2d(ch, 2 * c.latent_channels, 3, padding=1)]
        self.encoder = nn.Sequential(*enc)
        dec: list[nn.Module] = [nn.Conv2d(c.latent_channels, w[-1], 3, padding=1)]
        ch = w[-1]
        for level in reversed(range(len(w))):
            for _ in range(c.blocks):
                dec.append(_Res(ch, w[level], g))
                ch = w[level]
            if level > 0:
                dec += [nn.Upsample(scale_factor=2.0, mode="nearest"), nn.Conv2d(ch, ch, 3, padding=1)]
        dec += [nn.GroupNorm(g, ch), nn.SiLU(), nn.Conv2d(ch, c.in_channels, 3, padding=1)]
        self.decoder = nn.Sequential(*dec)

    def _check_image(self, x: torch.Tensor) -> None:
        c = self.config
        if x.ndim != 4 or x.shape[1] != c.in_channels or x.shape[-1] % c.factor or x.shape[-2] % c.factor:
            raise ValueError(f"x must have shape (B, {c.in_channels}, H, W) with H and W divisible by {c.factor}; got {tuple(x.shape)}")

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The posterior q(z | x) = N(mean, exp(logvar)): (mean, logvar), each (B, latent_channels, H/f, W/f)."""
        self._check_image(x)
        # channels_last: oneDNN's CPU convolutions are much faster on it for narrow layers (the result is the same)
        mean, logvar = self.encoder(x.contiguous(memory_format=torch.channels_last)).contiguous().chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)  # the clamp of Stable Diffusion's DiagonalGaussianDistribution

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """x_hat (B, C, H, W) from a latent z (B, latent_channels, h, w)."""
        c = self.config
        if z.ndim != 4 or z.shape[1] != c.latent_channels:
            raise ValueError(f"z must have shape (B, {c.latent_channels}, h, w); got {tuple(z.shape)}")
        return self.decoder(z.contiguous(memory_format=torch.channels_last)).contiguous()

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mean, logvar = self.encode(x)
        n = torch.randn(mean.shape, generator=generator, device=generator.device if generator is not None else None).to(mean.device)
        z = mean + torch.exp(0.5 * logvar) * n  # the reparameterisation trick: a draw from q(z | x) that gradients pass
        return self.decode(z), mean, logvar


def gaussian_kl(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, I)) per example, summed over the latent: 1/2 sum(mean^2 + var - 1 - logvar), (B,)."""
    if mean.shape != logvar.shape:
        raise ValueError(f"mean and logvar must have the same shape; got {tuple(mean.shape)} and {tuple(logvar.shape)}")
    return 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).flatten(1).sum(1)


def autoencoder_loss(model: KLAutoencoder, x: torch.Tensor, *, kl_weight: float, generator: torch.Generator | None = None,
                     parts: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per image, averaged over the batch: sum of squared pixel errors + kl_weight * KL(q(z|x) || N(0, I)).
    kl_weight = 1 is the ELBO of a Gaussian decoder of variance 1/2; latent diffusion uses a tiny weight (Stable
    Diffusion's VAE: 1e-6 beside perceptual and adversarial terms this course leaves out). ``parts=True`` also returns
    the two terms' batch means."""
    check_range(kl_weight, "kl_weight", 0.0, float("inf"))
    x_hat, mean, logvar = model(x, generator)
    rec = (x_hat - x).pow(2).flatten(1).sum(1).mean()
    kl = gaussian_kl(mean, logvar).mean()
    loss = rec + kl_weight * kl
    return (loss, rec.detach(), kl.detach()) if parts else loss


def autoencoder_loss_fn(kl_weight: float):
    """:func:`autoencoder_loss` as the ``loss_fn(model, x0, generator)`` that :func:`diffusion_course.train` calls."""
    check_range(kl_weight, "kl_weight", 0.0, float("inf"))

    def loss_fn(model: nn.Module, x0: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        return autoencoder_loss(model, x0, kl_weight=kl_weight, generator=g)

    return loss_fn
