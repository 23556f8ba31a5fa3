"""Convolutional (denoising) auto-encoder, backend-free."""

import math

import keras
from keras import ops

from keras_genzoo import _inputs
from keras_genzoo import backend as zoo_backend
from keras_genzoo.models.base import LatentImageModel, with_added_losses
from keras_genzoo.models.vae import reconstruction_bce
from keras_genzoo.networks.conv import conv_decoder, conv_encoder


@keras.saving.register_keras_serializable(package="keras_genzoo")
class AutoEncoder(LatentImageModel):
    """A convolutional auto-encoder; with `noise_stddev > 0`, a denoising one.

    The encoder (strided `Conv2D`s) compresses each image to a code of
    `latent_dim` numbers and the decoder (`Conv2DTranspose`s) rebuilds the
    image from it. The loss is the binary cross-entropy between image and
    reconstruction, summed over pixels and averaged over the batch. With
    `noise_stddev > 0` the encoder sees the image plus Gaussian noise (clipped
    to [0, 1]) during training while the loss still compares with the clean
    image: a denoising auto-encoder.

    Input handling is that of every zoo model: bare batches, `(images,
    labels)` tuples or `{"image": ...}` dicts, uint8 or floats in [0, 1], any
    image shape (taken from the first batch). `fit` on an uncompiled model
    uses Adam with learning rate 1e-3.

    Bring your own networks with `encoder=` and `decoder=` (both, any Keras
    models or layers). Contract: the encoder maps images in [0, 1] of shape
    `(batch, height, width, channels)` to codes `z` of shape `(batch,
    latent_dim)`; the decoder maps `z` to images in [0, 1] of the encoder's
    input shape (end it with a sigmoid). `image_shape` and `latent_dim` are
    read from them (pass `image_shape` if the encoder has no
    `keras.Input`); a network that breaks the contract gets a `ValueError`
    when the model is created. They are saved in the `.keras` file.

    Args:
        latent_dim: size of the code (default 32, or read from the encoder
            given).
        noise_stddev: standard deviation of the training noise, on the [0, 1]
            pixel scale; 0 for a plain auto-encoder.
        filters: filters of the built-in encoder's strided convolutions (the
            decoder mirrors them); each entry halves the spatial size.
        encoder: optional encoder of your own (see the contract above).
        decoder: optional decoder of your own.
        image_shape: `(height, width, channels)`, or `None` to infer it from
            the first training batch (or from the encoder given).
        seed: optional integer seed of the training noise.
        **kwargs: standard `keras.Model` arguments (`name`, `dtype`).

    Examples:
        >>> import numpy as np
        >>> from keras_genzoo import AutoEncoder
        >>> images = np.random.rand(64, 16, 16, 1).astype("float32")
        >>> ae = AutoEncoder(latent_dim=8, noise_stddev=0.2, filters=(8, 16))
        >>> history = ae.fit(images, epochs=1, batch_size=32, verbose=0)
        >>> ae.reconstruct(images[:3]).shape
        (3, 16, 16, 1)
    """

    default_latent_dim = 32
    # `generate` decodes samples of `latent_prior` (see `fit_latent_prior`)
    generates_from_prior = True

    def __init__(
        self,
        latent_dim=None,
        noise_stddev=0.0,
        filters=(32, 64),
        encoder=None,
        decoder=None,
        image_shape=None,
        seed=None,
        **kwargs,
    ):
        if kwargs.get("num_classes") is not None:
            raise ValueError(
                "AutoEncoder is not conditional (its loss and networks take "
                "no labels): drop `num_classes`, or use "
                "`VAE(num_classes=...)` for an auto-encoder that does.")
        super().__init__(latent_dim, filters, encoder=encoder,
                         decoder=decoder, image_shape=image_shape,
                         seed=seed, **kwargs)
        if not math.isfinite(float(noise_stddev)) or float(noise_stddev) < 0:
            raise ValueError(
                f"`noise_stddev` must be a finite number >= 0 (0 for a plain "
                f"auto-encoder); got {noise_stddev}."
            )
        self.noise_stddev = float(noise_stddev)

    def build_networks(self, image_shape):
        if self.encoder is None:
            self.encoder = conv_encoder(image_shape, (self.latent_dim,),
                                        self.filters)
            self.decoder = conv_decoder(image_shape, self.latent_dim,
                                        self.filters)

    def add_noise(self, images):
        """Adds the training noise to images and clips the result to
        [0, 1]: the corruption a denoising auto-encoder learns to undo.

        The training step calls it on its batches (a subclass may
        override it to corrupt images otherwise).

        Args:
            images: a batch of images, uint8 or float in [0, 1]: a backend
                tensor (inside a compiled step too), a TensorFlow tensor in
                a `tf.data` map (on every backend: there the noise is
                TensorFlow's own draw, repeatable under
                `keras.utils.set_random_seed`), or numpy (also one image
                `(H, W, C)`, as `reconstruct` takes).

        Returns:
            The noisy images as float32 in [0, 1] (the images, scaled, when
            `noise_stddev` is 0): a tensor for a tensor, numpy for numpy.
        """
        # (uint8 images got the noise on the 0..255 scale, clipped to
        # [0, 1]: 99 % of the pixels 1.0; numpy images failed on PyTorch)
        if _inputs.is_foreign_tf_tensor(images):
            # a `tf.data` map on JAX or PyTorch: TensorFlow's own ops (this
            # backend's `keras.ops` and seed generator cannot run there)
            return _inputs.tf_noisy_pixels(images, self.noise_stddev)
        if ops.is_tensor(images):
            return self._noisy(self.images_from_inputs(images))
        array = self._to_array(images, "the images given to `add_noise`")
        return _inputs.to_numpy(self._noisy(ops.convert_to_tensor(array)))

    def _noisy(self, images):
        """The noise on float images in [0, 1], clipped."""
        if self.noise_stddev == 0.0:
            return images
        noise = zoo_backend.draw_for_replica(
            lambda shape: keras.random.normal(
                shape, stddev=self.noise_stddev, seed=self.seed_generator),
            ops.shape(images))
        return ops.clip(images + noise, 0.0, 1.0)

    def call(self, inputs, training=False):
        """Reconstructs a batch (noising it first when training a DAE).

        Args:
            inputs: a batch of images (or `(images, labels)`, or a dict with
                an `"image"` key), uint8 or float in [0, 1].
            training: whether the call is part of a training step; only then
                is noise added.

        Returns:
            The reconstructions, in [0, 1].
        """
        images = self.images_from_inputs(inputs)
        if training:
            images = self.add_noise(images)
        code = self.encoder(images, training=training)
        return self.decoder(code, training=training)

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        loss = reconstruction_bce(self.images_from_inputs(x), y_pred)
        loss = with_added_losses(loss, self.losses)
        # a replica's share under tf.distribute (the identity elsewhere)
        return zoo_backend.scale_loss_for_replicas(loss)

    def generate(self, num_samples, seed=None, batch_size=256):
        """Draws new images: codes from the latent prior, decoded.

        An auto-encoder has no prior of its own: fit one first with
        `fit_latent_prior(training_images)` (a Gaussian mixture on the
        training codes).

        Args:
            num_samples: how many images.
            seed: optional integer; the same seed gives the same images, on
                every backend. Without one, the model's seed generator
                advances.
            batch_size: codes decoded at once.

        Returns:
            numpy float32 `(num_samples, H, W, C)` in [0, 1].
        """
        self.ensure_built("generate")
        return self.decode(self.sample_latent_prior(num_samples, seed),
                           batch_size=batch_size)

    def get_config(self):
        config = super().get_config()
        config.update({"noise_stddev": self.noise_stddev})
        return config
