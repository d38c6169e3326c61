"""The shipped weights (chapters 5-15): loading them with their cards, and the commands of ``make weights``
(``python -m diffusion_course.weights.make --help``) that train, score and write them.
"""


from .colour_study import COPYING_FILE, CopyingSettings, StudySettings, copying_study, load_copying_study, memorisation_study, train_colour_cmd
from .make_editing import ACCURACY_TS, CG_PAIRS, CG_SETTINGS, classifier_guidance_paired_differences
from .make_latent import encode_posterior, latent_loss_fn, latent_scale_factor
from .shipped import (
    AUTOENCODER_CONFIG,
    AUTOENCODER_FILE,
    CALLS_TABLE_FILE,
    CG_SAMPLES_FILE,
    COLOUR_FIXED_FILE,
    COLOUR_TINY_SAMPLES_FILE,
    COLOUR_UNET_CONFIG,
    COLOUR_UNET_FILE,
    COND_SAMPLES_FILE,
    COND_UNET_FILE,
    FLOW_EMA_FILE,
    FLOW_RAW_FILE,
    FLOW_SAMPLES_FILE,
    GUIDANCE_SCALES,
    LATENT_SAMPLES_FILE,
    LATENT_UNET_CONFIG,
    LATENT_UNET_FILE,
    LATENT_UNET_RAW_FILE,
    NOISY_CLASSIFIER_FILE,
    SAMPLES_FILE,
    SHIPPED_UNET_CONFIG,
    TABLE_FILE,
    TINY_UNET_CONFIG,
    UNET_EMA_FILE,
    UNET_RAW_FILE,
    load_calls_table,
    load_card_samples,
    load_classifier_guidance_samples,
    load_colour_unet,
    load_ddim_table,
    load_flow_samples,
    load_guidance_samples,
    load_latent_samples,
    load_noisy_classifier,
    load_pretrained_autoencoder,
    load_pretrained_cond_unet,
    load_pretrained_flow_unet,
    load_pretrained_latent_unet,
    load_pretrained_unet,
    load_tiny_samples,
    schedule_from_card,
)

__all__ = [
    "COLOUR_UNET_FILE", "COLOUR_FIXED_FILE", "COLOUR_TINY_SAMPLES_FILE", "COLOUR_UNET_CONFIG", "TINY_UNET_CONFIG", "load_colour_unet", "load_tiny_samples",
    "UNET_EMA_FILE", "UNET_RAW_FILE", "SHIPPED_UNET_CONFIG", "load_pretrained_unet", "schedule_from_card", "load_card_samples",
    "load_ddim_table", "SAMPLES_FILE", "TABLE_FILE", "COND_UNET_FILE", "COND_SAMPLES_FILE", "GUIDANCE_SCALES", "load_pretrained_cond_unet",
    "load_guidance_samples", "StudySettings", "memorisation_study", "train_colour_cmd", "COPYING_FILE",
    "CopyingSettings", "copying_study", "load_copying_study", "FLOW_EMA_FILE", "FLOW_RAW_FILE", "FLOW_SAMPLES_FILE",
    "load_pretrained_flow_unet", "load_flow_samples", "CALLS_TABLE_FILE", "load_calls_table",
    "AUTOENCODER_FILE", "AUTOENCODER_CONFIG", "LATENT_UNET_FILE", "LATENT_UNET_RAW_FILE", "LATENT_UNET_CONFIG", "load_pretrained_autoencoder",
    "load_pretrained_latent_unet", "LATENT_SAMPLES_FILE", "load_latent_samples", "encode_posterior", "latent_scale_factor", "latent_loss_fn",
    "NOISY_CLASSIFIER_FILE", "CG_SAMPLES_FILE", "load_noisy_classifier", "load_classifier_guidance_samples", "CG_SETTINGS", "CG_PAIRS",
    "ACCURACY_TS", "classifier_guidance_paired_differences",
]
