"""Wasserstein GAN with gradient penalty (Gulrajani et al., 2017)."""

import math

import keras
from keras import ops

from keras_genzoo import backend as zoo_backend
from keras_genzoo.models.adversarial import AdversarialModel
from keras_genzoo.models.base import with_added_losses


def check_critic(critic):
    """Refuses a critic with batch normalisation or dropout, on every
    backend alike: the gradient penalty needs each image's score to depend
    on that image alone and on nothing random. (Batch statistics made
    JAX's input gradient fail inside the traced step while TensorFlow and
    PyTorch trained on a penalty that does not mean what it should.)"""
    for layer in critic._flatten_layers(include_self=True, recursive=True):
        if isinstance(layer, keras.layers.BatchNormalization):
            raise ValueError(
                f"A WGAN-GP critic takes no batch normalisation (the "
                f"gradient penalty needs each image's score to depend on "
                f"that image alone); this one has `{layer.name}` "
                f"({type(layer).__name__}). Use "
                f"`keras.layers.LayerNormalization()` there, or no "
                f"normalisation.")
        # Every layer that draws random numbers, not only `Dropout`'s
        # subclasses: AlphaDropout, GaussianDropout and GaussianNoise got
        # through, and the penalty ran through a random critic (0.8 to 2.6
        # where it is 0.03 without).
        seeded = isinstance(layer, keras.layers.Dropout) or any(
            isinstance(value, keras.random.SeedGenerator)
            for value in vars(layer).values())
        # (recurrent cells hold a seed generator at any dropout: their
        # rates are `dropout` and `recurrent_dropout`)
        amounts = [float(getattr(layer, name)) for name in (
            "rate", "stddev", "dropout", "recurrent_dropout")
            if isinstance(getattr(layer, name, None), (int, float))]
        amount = max(amounts) if amounts else None
        if seeded and (amount is None or amount > 0):
            said = "" if amount is None else f", {amount:g}"
            raise ValueError(
                f"A WGAN-GP critic takes no dropout, noise or other "
                f"randomness (the gradient penalty assumes a deterministic "
                f"critic); this one has `{layer.name}` "
                f"({type(layer).__name__}{said}). Remove it (augment the "
                f"images in the data pipeline instead).")


@keras.saving.register_keras_serializable(package="keras_genzoo")
class WGANGP(AdversarialModel):
    """Wasserstein GAN with gradient penalty (Gulrajani et al., 2017).

    The discriminator is a critic: a linear score, no sigmoid, no dropout.
    Each step makes `d_steps` (default 5) critic updates on

        critic_loss = mean(D(fake)) - mean(D(real)) + gp_weight * penalty

    where the penalty is `(||grad_x D(x_hat)|| - 1)^2` on random
    interpolates `x_hat` of real and fake images (input gradients, taken on
    each backend by `keras_genzoo.backend.input_gradients`), then one
    generator update on `-mean(D(fake))`. `fit` logs `d_loss`, `g_loss`,
    `gradient_penalty` and `wasserstein` (the critic's estimate of the
    Wasserstein distance, `mean(D(real)) - mean(D(fake))`); `evaluate`
    gives the same on held-out images. Default optimizers: Adam(1e-4,
    beta_1=0, beta_2=0.9), as in the paper. `WGANGP` and `GAN` are siblings
    under `AdversarialModel`.

    Bring your own networks with `generator=` and/or `discriminator=` (the
    critic: the zoo uses one name for the second network of every GAN).
    Contract: the generator maps noise `(batch, latent_dim)` (plus int
    labels `(batch,)` when conditional) to images in [-1, 1]; the critic
    maps images in [-1, 1] (plus labels) to one score per image, `(batch,
    1)` or `(batch,)`, and has no batch normalisation or dropout (the
    penalty assumes each image's score depends on that image alone; either
    layer in a critic is a `ValueError`).
    Each network's own `losses` count as in `GAN` (the critic's call inside
    the penalty adds none).

    Args:
        latent_dim: size of the noise vector (default 64, or read from the
            generator given).
        num_classes: number of classes for a conditional WGAN-GP, or `None`.
        generator_filters: filters of the built-in generator's transposed
            convolutions, smallest feature map first.
        discriminator_filters: filters of the built-in critic's strided
            convolutions.
        d_steps: critic updates per generator update.
        gp_weight: weight of the gradient penalty.
        generator: optional generator of your own.
        discriminator: optional critic of your own.
        image_shape: `(height, width, channels)`, or `None` to infer it from
            the first training batch (or from the networks given).
        seed: optional integer seed of the training noise and of `generate`.
        **kwargs: standard `keras.Model` arguments (`name`, `dtype`).

    Examples:
        >>> import numpy as np
        >>> from keras_genzoo import WGANGP
        >>> images = np.random.rand(32, 16, 16, 1).astype("float32")
        >>> wgan = WGANGP(latent_dim=8, generator_filters=(16, 8),
        ...               discriminator_filters=(8, 16), d_steps=2, seed=0)
        >>> logs = wgan.fit(images, epochs=1, batch_size=16, verbose=0).history
        >>> sorted(logs)
        ['d_loss', 'g_loss', 'gradient_penalty', 'wasserstein']
    """

    default_d_steps = 5
    metric_names = ("d_loss", "g_loss", "gradient_penalty", "wasserstein")

    def __init__(
        self,
        latent_dim=None,
        num_classes=None,
        generator_filters=(64, 32),
        discriminator_filters=(32, 64),
        d_steps=None,
        gp_weight=10.0,
        generator=None,
        discriminator=None,
        image_shape=None,
        seed=None,
        **kwargs,
    ):
        if kwargs.pop("dropout", 0.0):
            raise ValueError(
                "A WGAN-GP critic uses no dropout (the gradient penalty "
                "assumes a deterministic critic): drop `dropout=`."
            )
        if kwargs.pop("label_smoothing", 0.0):
            raise ValueError(
                "A WGAN-GP critic has no labels to smooth: drop "
                "`label_smoothing=`."
            )
        if not float(gp_weight) >= 0 or not math.isfinite(float(gp_weight)):
            # NaN passed (and every loss was NaN)
            raise ValueError(
                f"`gp_weight` must be a finite number >= 0; got "
                f"{gp_weight}.")
        super().__init__(
            latent_dim=latent_dim, num_classes=num_classes,
            generator_filters=generator_filters,
            discriminator_filters=discriminator_filters, d_steps=d_steps,
            generator=generator, discriminator=discriminator,
            image_shape=image_shape, seed=seed, **kwargs)
        self.gp_weight = float(gp_weight)

    def adopt_networks(self):
        super().adopt_networks()
        if "discriminator" in self.given_networks():
            check_critic(self.discriminator)

    def default_optimizer(self):
        """Adam(1e-4, beta_1=0, beta_2=0.9): the WGAN-GP paper's setting."""
        return keras.optimizers.Adam(learning_rate=1e-4, beta_1=0.0,
                                     beta_2=0.9)

    def gradient_penalty(self, real, fake, labels=None, training=True):
        """`mean((||grad D(x_hat)|| - 1)^2)` on random interpolates.

        Args:
            real: real images in [-1, 1].
            fake: generated images in [-1, 1], same shape.
            labels: their labels (conditional) or `None`.
            training: kept for overrides; the critic runs in inference
                mode here (the same function for a critic, which holds
                no batch normalization or random layers).

        Returns:
            The scalar penalty, differentiable with respect to the critic.
        """
        batch_size = ops.shape(real)[0]
        eps = zoo_backend.draw_for_replica(
            lambda shape: keras.random.uniform(shape,
                                               seed=self.seed_generator),
            (batch_size, 1, 1, 1))
        interpolates = eps * real + (1.0 - eps) * fake
        # the critic as the update's first call left it: a critic holds no
        # batch normalization or random layers (`check_critic`), so
        # `training` changes nothing but the layers that update themselves
        # at a training call, Keras' SpectralNormalization, whose third
        # in-place write of its kernel failed the step on PyTorch
        del training
        grads = zoo_backend.input_gradients(
            lambda x: self.discriminate(x, labels, training=False),
            interpolates,
        )
        grads = ops.cast(grads, "float32")
        norms = ops.sqrt(ops.sum(ops.square(grads), axis=(1, 2, 3)) + 1e-12)
        return ops.mean(ops.square(norms - 1.0))

    def discriminator_objective(self, real, labels=None, training=True):
        fake = self.fake_batch(ops.shape(real)[0], labels, training)
        real_scores, fake_scores, terms = self.score_real_and_fake(
            real, fake, labels, training)
        wasserstein = ops.mean(real_scores) - ops.mean(fake_scores)
        # the penalty's call of the critic (inside a gradient) adds no terms
        penalty = self.gradient_penalty(real, fake, labels, training)
        d_loss = with_added_losses(-wasserstein + self.gp_weight * penalty,
                                   terms)
        return d_loss, {"d_loss": d_loss, "gradient_penalty": penalty,
                        "wasserstein": wasserstein}

    def generator_objective(self, batch_size, labels=None, training=True):
        fake, terms = self.generate_for_update(batch_size, labels, training)
        g_loss = -ops.mean(self.discriminate(fake, labels, training=training))
        g_loss = with_added_losses(g_loss, terms)
        return g_loss, {"g_loss": g_loss}

    def get_config(self):
        config = super().get_config()
        config["gp_weight"] = self.gp_weight
        return config
