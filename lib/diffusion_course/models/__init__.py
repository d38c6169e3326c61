"""Models of the course (chapters 1, 4, 5 and after): the sinusoidal time embedding, the 2-D MLP noise predictor and
the U-Nets."""

from .embeddings import SinusoidalEmbedding, sinusoidal_embedding
from .mlp import MLPConfig, MLPDenoiser
from .unet import BasicUNet, UNet, UNetConfig

__all__ = ["SinusoidalEmbedding", "sinusoidal_embedding", "MLPConfig", "MLPDenoiser", "BasicUNet", "UNetConfig", "UNet"]
