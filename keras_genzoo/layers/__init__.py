"""Small reusable layers."""

from keras_genzoo.layers.convolution import Conv2DTranspose
from keras_genzoo.layers.embeddings import SinusoidalEmbedding
from keras_genzoo.layers.normalization import (
    BatchNormalization,
    GroupNormalization,
)
from keras_genzoo.layers.sampling import Sampling
from keras_genzoo.layers.transformer import CausalSelfAttentionBlock

__all__ = [
    "BatchNormalization",
    "CausalSelfAttentionBlock",
    "Conv2DTranspose",
    "GroupNormalization",
    "Sampling",
    "SinusoidalEmbedding",
]
