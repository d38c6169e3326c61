"""Scoring (chapters 4-11): distances between sample sets, the yardstick's classifier, quality reports against real
data, sampler comparisons, the guidance report and the memorisation measure. Imports data, models, maths, training.
"""


from .comparisons import CARD_SETTINGS, SIGMA_HAT, QualityTable, SamplerSetting, TableCell, ddim_table, sample_in_batches, sample_setting, table_settings
from .distances import frechet_distance, gaussian_frechet_distance, mmd_rbf, nearest_train_distances, sliced_wasserstein
from .guidance_report import guidance_report
from .memorisation import distance_summary, memorisation_row
from .quality import (
    CONFIDENT,
    FLOOR_DRAWS,
    MIN_SAMPLES_PER_FEATURE,
    QualityReport,
    classifier_outputs,
    floor_draws,
    floor_table,
    frechet_floor,
    mnist_splits,
    quality_report,
    toy_2d_reference_and_floor,
)
from .reference import CLASSIFIER_FILE, load_classifier

__all__ = [
    "sliced_wasserstein", "mmd_rbf", "frechet_distance", "gaussian_frechet_distance", "nearest_train_distances", "CLASSIFIER_FILE",
    "load_classifier", "QualityReport", "quality_report", "classifier_outputs", "floor_draws", "frechet_floor", "floor_table",
    "toy_2d_reference_and_floor", "FLOOR_DRAWS", "MIN_SAMPLES_PER_FEATURE", "CONFIDENT", "mnist_splits", "TableCell", "QualityTable",
    "ddim_table", "sample_in_batches", "SIGMA_HAT", "SamplerSetting", "CARD_SETTINGS", "table_settings", "sample_setting",
    "guidance_report", "distance_summary", "memorisation_row",
]
