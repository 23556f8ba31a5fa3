"""keras_genzoo: generative models for Keras 3, on TensorFlow, JAX and PyTorch.

Example:

>>> from keras_genzoo import VAE, datasets
>>> train_ds, val_ds = datasets.load_images("embedded_mnist", batch_size=128)
>>> vae = VAE(latent_dim=16)
>>> history = vae.fit(train_ds, validation_data=val_ds, epochs=1)  # doctest: +SKIP
"""

from keras_genzoo import callbacks, datasets, metrics, optimizers, plots
from keras_genzoo.layers import Sampling, SinusoidalEmbedding
from keras_genzoo.models import (
    GAN,
    VAE,
    GaussianMixture,
    WGANGP,
    AutoEncoder,
    BigramLM,
    DiffusionModel,
    GenerativeModel,
    ImageModel,
    MiniGPT,
)
from keras_genzoo.optimizers import (
    OptimizerPair,
    WarmupCosineDecay,
    warmup_cosine_adamw,
)

__version__ = "0.1.0"

__all__ = [
    "AutoEncoder",
    "BigramLM",
    "DiffusionModel",
    "GAN",
    "GaussianMixture",
    "GenerativeModel",
    "ImageModel",
    "MiniGPT",
    "OptimizerPair",
    "Sampling",
    "SinusoidalEmbedding",
    "VAE",
    "WGANGP",
    "WarmupCosineDecay",
    "callbacks",
    "datasets",
    "metrics",
    "optimizers",
    "plots",
    "warmup_cosine_adamw",
    "__version__",
]
