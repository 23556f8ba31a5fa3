"""Small reusable layers."""

from keras_genzoo.layers.convolution import Conv2DTranspose
from keras_genzoo.layers.embeddings import SinusoidalEmbedding
from keras_genzoo.layers.normalization import BatchNormalization
from keras_genzoo.layers.sampling import Sampling

__all__ = [
    "BatchNormalization",
    "Conv2DTranspose",
    "Sampling",
    "SinusoidalEmbedding",
]
