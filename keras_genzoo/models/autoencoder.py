"""Convolutional (denoising) auto-encoder, backend-free."""

import numpy as np

import keras
from keras import ops

from keras_genzoo.models.base import ImageModel
from keras_genzoo.models.vae import reconstruction_bce
from keras_genzoo.networks.conv import (
    check_filters,
    conv_decoder,
    conv_encoder,
)


@keras.saving.register_keras_serializable(package="keras_genzoo")
class AutoEncoder(ImageModel):
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

    Args:
        latent_dim: size of the code.
        noise_stddev: standard deviation of the training noise, on the [0, 1]
            pixel scale; 0 for a plain auto-encoder.
        filters: filters of the encoder's strided convolutions (the decoder
            mirrors them); each entry halves the spatial size.
        image_shape: `(height, width, channels)`, or `None` to infer it from
            the first training batch.
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

    def __init__(
        self,
        latent_dim=32,
        noise_stddev=0.0,
        filters=(32, 64),
        image_shape=None,
        seed=None,
        **kwargs,
    ):
        if int(latent_dim) <= 0:
            raise ValueError(
                f"`latent_dim` must be a positive integer; got {latent_dim}."
            )
        if float(noise_stddev) < 0:
            raise ValueError(
                f"`noise_stddev` must be >= 0; got {noise_stddev}."
            )
        self.latent_dim = int(latent_dim)
        self.noise_stddev = float(noise_stddev)
        self.filters = check_filters(filters)
        super().__init__(image_shape=image_shape, seed=seed, **kwargs)

    def build_networks(self, image_shape):
        self.encoder = conv_encoder(image_shape, (self.latent_dim,),
                                    self.filters)
        self.decoder = conv_decoder(image_shape, self.latent_dim, self.filters)

    def add_noise(self, images):
        """Adds the training noise to images in [0, 1] and clips the result.

        Args:
            images: float tensor of images in [0, 1].

        Returns:
            The noisy images, still in [0, 1] (the input itself when
            `noise_stddev` is 0).
        """
        if self.noise_stddev == 0.0:
            return images
        noise = keras.random.normal(
            ops.shape(images), stddev=self.noise_stddev,
            seed=self.seed_generator,
        )
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
        if self.losses:
            loss = loss + ops.cast(ops.sum(self.losses), "float32")
        return loss

    # ------------------------------------------------------------ helpers
    def encode(self, images, batch_size=256):
        """Maps images to their codes.

        Args:
            images: one image `(H, W, C)` or a batch, uint8 or float in [0, 1].
            batch_size: how many images to encode at once.

        Returns:
            numpy array `(num_images, latent_dim)`.
        """
        self._require_built("encode")
        return self._apply_in_batches(
            lambda b: self.encoder(b, training=False),
            self._to_array(images), batch_size,
        )

    def decode(self, codes, batch_size=256):
        """Maps codes back to images.

        Args:
            codes: array `(num_codes, latent_dim)`.
            batch_size: how many codes to decode at once.

        Returns:
            numpy float32 array of images in [0, 1].
        """
        self._require_built("decode")
        codes = np.asarray(ops.convert_to_numpy(codes), dtype="float32")
        if codes.ndim != 2 or codes.shape[1] != self.latent_dim:
            raise ValueError(
                f"`codes` must have shape (num_codes, {self.latent_dim}); "
                f"got {codes.shape}."
            )
        return self._apply_in_batches(
            lambda b: self.decoder(b, training=False), codes, batch_size
        ).astype("float32")

    def reconstruct(self, images, batch_size=256):
        """Encodes and decodes images (no noise is added).

        Args:
            images: one image or a batch, uint8 or float in [0, 1]; for a
                denoising auto-encoder, pass noisy images to denoise them.
            batch_size: how many images to process at once.

        Returns:
            numpy float32 array of reconstructions in [0, 1].
        """
        return self.decode(self.encode(images, batch_size), batch_size)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "latent_dim": self.latent_dim,
                "noise_stddev": self.noise_stddev,
                "filters": list(self.filters),
            }
        )
        return config
