"""Scoring (chapters 4-11): distances between sample sets, the yardstick's classifier, quality reports against real
data, sampler comparisons, the guidance report and the memorisation measure. Imports data, models, maths, training.
"""

from .comparisons import (
    CALLS_BUDGETS,
    CALLS_SAMPLERS,
    CARD_SETTINGS,
    HEUN_CHURN,
    SIGMA_HAT,
    QualityTable,
    SamplerSetting,
    TableCell,
    calls_settings,
    ddim_table,
    sample_in_batches,
    sample_setting,
    table_settings,
)
from .distances import (
    KernelDistance,
    frechet_distance,
    gaussian_frechet_distance,
    kernel_distance,
    kernel_distance_interval,
    mmd_rbf,
    nearest_train_distances,
    paired_kernel_distance_difference,
    paired_mean_difference,
    polynomial_kernel,
    sliced_wasserstein,
    unpaired_kernel_distance_difference,
    unpaired_mean_difference,
)
from .guidance_report import guidance_report
from .memorisation import copying_row, distance_summary, median_ratio_interval, memorisation_row, near_copy_share
from .quality import (
    CONFIDENT,
    FLOOR_DRAWS,
    KID_RESAMPLES,
    MIN_SAMPLES_PER_FEATURE,
    REFERENCE_SET,
    QualityReport,
    classifier_outputs,
    compare_paired,
    compare_unpaired,
    floor_draws,
    floor_table,
    frechet_floor,
    kid_features,
    quality_report,
    reference_splits,
    toy_2d_reference_and_floor,
)
from .reference import CLASSIFIER_FILE, load_classifier, shipped_classifier

__all__ = [
    "TableCell", "QualityTable", "ddim_table", "sample_in_batches", "SIGMA_HAT", "SamplerSetting", "CARD_SETTINGS", "table_settings",
    "calls_settings", "CALLS_BUDGETS", "CALLS_SAMPLERS", "HEUN_CHURN",
    "sample_setting", "sliced_wasserstein", "mmd_rbf", "frechet_distance", "gaussian_frechet_distance", "nearest_train_distances",
    "polynomial_kernel", "kernel_distance", "KernelDistance", "kernel_distance_interval", "paired_kernel_distance_difference", "paired_mean_difference",
    "guidance_report", "distance_summary", "memorisation_row", "median_ratio_interval", "near_copy_share", "copying_row",
    "QualityReport", "quality_report", "classifier_outputs", "floor_draws",
    "frechet_floor", "floor_table", "toy_2d_reference_and_floor", "FLOOR_DRAWS", "MIN_SAMPLES_PER_FEATURE", "CONFIDENT", "REFERENCE_SET",
    "reference_splits", "compare_paired", "compare_unpaired", "unpaired_kernel_distance_difference", "unpaired_mean_difference",
    "kid_features", "KID_RESAMPLES", "CLASSIFIER_FILE", "load_classifier", "shipped_classifier",
]
