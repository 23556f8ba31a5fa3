"""The model families of the zoo, and the bases they stand on."""

from keras_genzoo.models.adversarial import AdversarialModel
from keras_genzoo.models.autoencoder import AutoEncoder
from keras_genzoo.models.base import (
    GenerativeModel,
    ImageModel,
    LatentImageModel,
)
from keras_genzoo.models.bigram import BigramLM
from keras_genzoo.models.diffusion import DiffusionModel
from keras_genzoo.models.gan import GAN
from keras_genzoo.models.gmm import GaussianMixture
from keras_genzoo.models.gpt import MiniGPT
from keras_genzoo.models.language import CharLanguageModel
from keras_genzoo.models.vae import VAE
from keras_genzoo.models.wgan_gp import WGANGP
from keras_genzoo.optimizers import OptimizerPair, warmup_cosine_adamw

__all__ = [
    "AdversarialModel",
    "AutoEncoder",
    "BigramLM",
    "CharLanguageModel",
    "DiffusionModel",
    "GAN",
    "GaussianMixture",
    "GenerativeModel",
    "ImageModel",
    "LatentImageModel",
    "MiniGPT",
    "OptimizerPair",
    "VAE",
    "WGANGP",
    "warmup_cosine_adamw",
]
