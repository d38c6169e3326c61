"""The networks (chapters 1, 4-11): the time embedding, the 2-D MLP, the U-Nets, the MNIST classifier and diffusers'
models seen as ours. Imports maths and the private helpers.
"""

from .autoencoder import AutoencoderConfig, KLAutoencoder, autoencoder_loss, autoencoder_loss_fn, gaussian_kl
from .basic_unet import BasicUNet
from .classifier import ClassifierConfig, MNISTClassifier
from .cross_attention import CrossAttention, CrossAttentionBlock, LabelTokens
from .diffusers_bridge import DIFFUSERS_BETA_SCHEDULES, DiffusersEps, diffusers_schedule_config, schedule_from_diffusers
from .embeddings import SinusoidalEmbedding, sinusoidal_embedding
from .flow_time import FLOW_TIME_SCALE, FlowTime
from .latent import decode_latents, latent_sample
from .mlp import MLPBlock, MLPConfig, MLPDenoiser
from .noisy_classifier import NoisyClassifier, NoisyClassifierConfig, TimeIgnoring
from .sizes import conv2d_output_size, conv2d_parameter_count, conv_transpose2d_output_size
from .unet import LABEL_CONDITIONINGS, TIME_CONDITIONINGS, Downsample, ResBlock, SelfAttention, UNet, UNetConfig, Upsample

__all__ = [
    "ClassifierConfig", "MNISTClassifier", "DiffusersEps", "DIFFUSERS_BETA_SCHEDULES", "diffusers_schedule_config",
    "schedule_from_diffusers", "sinusoidal_embedding", "SinusoidalEmbedding", "MLPConfig", "MLPDenoiser", "MLPBlock", "conv2d_output_size",
    "conv_transpose2d_output_size", "conv2d_parameter_count", "BasicUNet", "UNetConfig", "UNet", "ResBlock", "SelfAttention", "Downsample",
    "Upsample", "TIME_CONDITIONINGS", "FlowTime", "FLOW_TIME_SCALE",
    "AutoencoderConfig", "KLAutoencoder", "autoencoder_loss", "autoencoder_loss_fn", "gaussian_kl", "CrossAttention", "CrossAttentionBlock",
    "LabelTokens", "LABEL_CONDITIONINGS", "latent_sample", "decode_latents",
    "NoisyClassifierConfig", "NoisyClassifier", "TimeIgnoring",
]
