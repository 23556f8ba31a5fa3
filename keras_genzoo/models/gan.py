"""The DCGAN (Radford et al., 2016), optionally class-conditional."""

import keras
from keras import ops

from keras_genzoo.models.adversarial import AdversarialModel
from keras_genzoo.models.base import with_added_losses
from keras_genzoo.networks.dcgan import dcgan_discriminator


@keras.saving.register_keras_serializable(package="keras_genzoo")
class GAN(AdversarialModel):
    """A DCGAN, optionally class-conditional, trained on any backend.

    The generator maps noise (and a class label, with `num_classes`) to
    images through `Dense -> Reshape -> Conv2DTranspose + BatchNorm`; the
    discriminator scores images with strided `Conv2D + LeakyReLU + Dropout`.
    Each training step makes `d_steps` discriminator updates, then one
    generator update (non-saturating loss), each with its own optimizer.
    `fit` logs `d_loss`, `g_loss` and `d_accuracy` (how often the
    discriminator tells real from fake); `evaluate` and `validation_data`
    give the same three on held-out images, without updates.

    Input handling is that of every zoo model (bare batches, `(images,
    labels)`, `{"image", "label"}` dicts; uint8 or floats in [0, 1]; any image
    shape, read from the first batch); the networks work in [-1, 1] inside
    and `generate` returns images in [0, 1]. `fit` without `compile` uses
    Adam(2e-4, beta_1=0.5) for both networks; `compile(d_optimizer=...,
    g_optimizer=...)` to choose your own. `model.optimizer` is an
    `OptimizerPair`: `LearningRateScheduler` and `ReduceLROnPlateau` scale
    both learning rates by the same factor, and `model.optimizer.iterations`
    counts training steps. Under a `mixed_float16` policy both optimizers
    are wrapped in a `LossScaleOptimizer`.

    Bring your own networks with `generator=` and/or `discriminator=` (any
    Keras models or layers; the other one is built in). Contract: the
    generator maps noise `(batch, latent_dim)` (plus int labels `(batch,)`
    as a second input when conditional) to images in [-1, 1] of shape
    `(batch, height, width, channels)` (end it with a tanh); the
    discriminator maps such images (plus labels when conditional) to one
    logit per image, `(batch, 1)` or `(batch,)`. `latent_dim` and
    `image_shape` are read from the networks (pass them if a network has no
    `keras.Input`); a network that breaks the contract gets a `ValueError`
    when the GAN is created. They are saved in the `.keras` file. Each
    network's own `losses` (weight regularizers, `add_loss` terms) are added
    to its update's loss and log (`d_loss`, `g_loss`), as Keras' `fit` adds
    them to `loss`: weight penalties once per update, `add_loss` terms once
    per call (the discriminator's for the real and the fake batch).

    Args:
        latent_dim: size of the noise vector (default 64, or read from the
            generator given).
        num_classes: number of classes for a conditional GAN (labels come
            from `(images, labels)` batches or the `"label"` key); `None` for
            an unconditional one.
        generator_filters: filters of the built-in generator's transposed
            convolutions, smallest feature map first; each doubles the size.
        discriminator_filters: filters of the built-in discriminator's
            strided convolutions; each halves the size.
        dropout: dropout rate in the built-in discriminator.
        d_steps: discriminator updates per generator update.
        label_smoothing: one-sided label smoothing: real images are labelled
            `1 - label_smoothing` for the discriminator.
        generator: optional generator of your own (see the contract above).
        discriminator: optional discriminator of your own.
        image_shape: `(height, width, channels)`, or `None` to infer it from
            the first training batch (or from the networks given).
        seed: optional integer seed of the training noise and of `generate`.
        **kwargs: standard `keras.Model` arguments (`name`, `dtype`).

    Examples:
        >>> import numpy as np
        >>> from keras_genzoo import GAN
        >>> images = np.random.randint(0, 256, (64, 16, 16, 1), dtype="uint8")
        >>> gan = GAN(latent_dim=8, generator_filters=(16, 8),
        ...           discriminator_filters=(8, 16), seed=0)
        >>> history = gan.fit(images, epochs=1, batch_size=32, verbose=0)
        >>> gan.generate(4, seed=1).shape
        (4, 16, 16, 1)

        Your own generator (the built-in discriminator is made to fit it):

        >>> import keras
        >>> generator = keras.Sequential([
        ...     keras.Input((8,)), keras.layers.Dense(16 * 16, "tanh"),
        ...     keras.layers.Reshape((16, 16, 1))])
        >>> gan = GAN(generator=generator, discriminator_filters=(8,))
        >>> (gan.latent_dim, gan.image_shape)
        (8, (16, 16, 1))
    """

    default_d_steps = 1
    metric_names = ("d_loss", "g_loss", "d_accuracy")

    def __init__(
        self,
        latent_dim=None,
        num_classes=None,
        generator_filters=(64, 32),
        discriminator_filters=(32, 64),
        dropout=0.3,
        d_steps=None,
        label_smoothing=0.0,
        generator=None,
        discriminator=None,
        image_shape=None,
        seed=None,
        **kwargs,
    ):
        if not 0.0 <= float(label_smoothing) < 0.5:
            raise ValueError(
                "`label_smoothing` must be in [0, 0.5); got "
                f"{label_smoothing}."
            )
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1); got {dropout}.")
        super().__init__(
            latent_dim=latent_dim, num_classes=num_classes,
            generator_filters=generator_filters,
            discriminator_filters=discriminator_filters, d_steps=d_steps,
            generator=generator, discriminator=discriminator,
            image_shape=image_shape, seed=seed, **kwargs)
        self.dropout = float(dropout)
        self.label_smoothing = float(label_smoothing)

    def default_discriminator(self, image_shape):
        return dcgan_discriminator(
            image_shape, self.discriminator_filters,
            num_classes=self.num_classes, dropout=self.dropout,
            seed=self.seed,
        )

    def default_optimizer(self):
        """Adam(2e-4, beta_1=0.5): the DCGAN paper's setting."""
        return keras.optimizers.Adam(learning_rate=2e-4, beta_1=0.5)

    def discriminator_objective(self, real, labels=None, training=True):
        """The discriminator's loss on a batch, and the values to log.

        Args:
            real: real images in [-1, 1].
            labels: their labels (conditional GANs) or `None`.
            training: whether dropout and batch statistics are in training
                mode.

        Returns:
            `(d_loss, logs)`.
        """
        fake = self.fake_batch(ops.shape(real)[0], labels, training)
        real_logits, fake_logits, terms = self.score_real_and_fake(
            real, fake, labels, training)
        real_target = ops.full_like(real_logits, 1.0 - self.label_smoothing)
        d_loss = ops.mean(ops.binary_crossentropy(
            real_target, real_logits, from_logits=True)) + ops.mean(
            ops.binary_crossentropy(ops.zeros_like(fake_logits), fake_logits,
                                    from_logits=True))
        d_loss = with_added_losses(d_loss, terms)
        accuracy = 0.5 * (
            ops.mean(ops.cast(real_logits > 0, "float32"))
            + ops.mean(ops.cast(fake_logits < 0, "float32"))
        )
        return d_loss, {"d_loss": d_loss, "d_accuracy": accuracy}

    def generator_objective(self, batch_size, labels=None, training=True):
        """The generator's (non-saturating) loss, and the values to log.

        Args:
            batch_size: how many images to generate.
            labels: the labels to generate for (conditional GANs) or `None`.
            training: whether dropout and batch statistics are in training
                mode.

        Returns:
            `(g_loss, logs)`.
        """
        fake, terms = self.generate_for_update(batch_size, labels, training)
        logits = self.discriminate(fake, labels, training=training)
        g_loss = ops.mean(ops.binary_crossentropy(
            ops.ones_like(logits), logits, from_logits=True))
        g_loss = with_added_losses(g_loss, terms)
        return g_loss, {"g_loss": g_loss}

    def get_config(self):
        config = super().get_config()
        config.update({"dropout": self.dropout,
                       "label_smoothing": self.label_smoothing})
        return config


# Where these lived in keras_genzoo 0.1.0.
from keras_genzoo.models.wgan_gp import WGANGP  # noqa: E402
from keras_genzoo.optimizers import OptimizerPair  # noqa: E402

__all__ = ["GAN", "OptimizerPair", "WGANGP"]
