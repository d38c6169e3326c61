"""The networks (chapters 1, 4-11): the time embedding, the 2-D MLP, the U-Nets, the MNIST classifier and diffusers'
models seen as ours. Imports maths and the private helpers.
"""

from .classifier import ClassifierConfig, MNISTClassifier
from .diffusers_bridge import DIFFUSERS_BETA_SCHEDULES, DiffusersEps, diffusers_schedule_config, schedule_from_diffusers
from .embeddings import SinusoidalEmbedding, sinusoidal_embedding
from .flow_time import FLOW_TIME_SCALE, FlowTime
from .mlp import MLPBlock, MLPConfig, MLPDenoiser
from .sizes import conv2d_output_size, conv2d_parameter_count, conv_transpose2d_output_size
from .unet import TIME_CONDITIONINGS, BasicUNet, Downsample, ResBlock, SelfAttention, UNet, UNetConfig, Upsample

__all__ = [
    "ClassifierConfig", "MNISTClassifier", "DiffusersEps", "DIFFUSERS_BETA_SCHEDULES", "diffusers_schedule_config",
    "schedule_from_diffusers", "sinusoidal_embedding", "SinusoidalEmbedding", "MLPConfig", "MLPDenoiser", "MLPBlock", "conv2d_output_size",
    "conv_transpose2d_output_size", "conv2d_parameter_count", "BasicUNet", "UNetConfig", "UNet", "ResBlock", "SelfAttention", "Downsample",
    "Upsample", "TIME_CONDITIONINGS", "FlowTime", "FLOW_TIME_SCALE",
]
