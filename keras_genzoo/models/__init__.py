"""The model families of the zoo."""

from keras_genzoo.models.autoencoder import AutoEncoder
from keras_genzoo.models.base import ImageModel, LatentImageModel
from keras_genzoo.models.gan import GAN, WGANGP, OptimizerPair
from keras_genzoo.models.gpt import MiniGPT
from keras_genzoo.models.language import (
    BigramLM,
    CharLanguageModel,
    warmup_cosine_adamw,
)
from keras_genzoo.models.vae import VAE

__all__ = [
    "AutoEncoder",
    "BigramLM",
    "CharLanguageModel",
    "GAN",
    "ImageModel",
    "LatentImageModel",
    "MiniGPT",
    "OptimizerPair",
    "VAE",
    "WGANGP",
    "warmup_cosine_adamw",
]
