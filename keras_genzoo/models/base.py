"""What every image model of the zoo shares: input handling and defaults.

`ImageModel` is a `keras.Model` that

- takes the image shape from the first batch it sees (or from `image_shape`),
- accepts bare image batches, `(images, labels)` tuples and tfds-style
  `{"image": ..., "label": ...}` dicts, as uint8 0..255 or floats in [0, 1],
- validates the data before training and raises one clear `ValueError`,
- compiles itself with a sensible default optimizer when `fit` is called on
  an uncompiled model.

Subclasses implement `build_networks(image_shape)`, `call` and
`compute_loss`, using `keras.ops` only, so they run on every backend.
"""

import numpy as np

import keras
from keras import ops

from keras_genzoo import _inputs
from keras_genzoo.layers.seed_state import SeedStateSaving
from keras_genzoo.networks.conv import check_filters


def _check_image_shape(image_shape):
    shape = tuple(image_shape)
    if len(shape) != 3 or any(
        d is None or int(d) <= 0 for d in shape
    ):
        raise ValueError(
            "`image_shape` must be (height, width, channels) with positive "
            f"sizes, e.g. (28, 28, 1); got {shape}."
        )
    return tuple(int(d) for d in shape)


class DefaultCompile:
    """Mixin: `_ensure_compiled()` compiles with `default_optimizer()`
    and `default_jit_compile()`."""

    def default_optimizer(self):
        """The optimizer `fit` uses when the model was not compiled."""
        raise NotImplementedError

    def default_jit_compile(self):
        """The `jit_compile` of the default compile (Keras' "auto")."""
        return "auto"

    def _ensure_compiled(self):
        if not self.compiled:
            self.compile(optimizer=self.default_optimizer(),
                         jit_compile=self.default_jit_compile())


class ImageModel(DefaultCompile, SeedStateSaving, keras.Model):
    """Base class of the image models: data handling, building, defaults.

    Args:
        image_shape: `(height, width, channels)` of the training images, or
            `None` to take it from the first batch given to `fit`.
        seed: optional integer seed of the model's own randomness (noise in
            training steps and in `generate`).
        **kwargs: standard `keras.Model` arguments (`name`, `dtype`).

    Examples:
        A new image model needs only its networks, `call` and
        `compute_loss`; the base class gives it the zoo's input handling:

        >>> import keras, numpy as np
        >>> from keras import ops
        >>> from keras_genzoo.models import ImageModel
        >>> class MeanImage(ImageModel):
        ...     def build_networks(self, image_shape):
        ...         self.net = keras.Sequential(
        ...             [keras.Input(image_shape), keras.layers.Dense(1)])
        ...     def call(self, inputs, training=False):
        ...         return self.net(self.images_from_inputs(inputs))
        ...     def compute_loss(self, x=None, y=None, y_pred=None,
        ...                      sample_weight=None, training=True):
        ...         return ops.mean(ops.square(
        ...             y_pred - self.images_from_inputs(x)))
        >>> model = MeanImage()
        >>> _ = model.fit(np.zeros((8, 4, 4), "uint8"), epochs=1, verbose=0)
        >>> model.image_shape
        (4, 4, 1)
    """

    def __init__(self, image_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.image_shape = None
        if image_shape is not None:
            self.image_shape = _check_image_shape(image_shape)
            self.build_networks(self.image_shape)
            self.built = True

    # ----------------------------------------------------------- building
    def build_networks(self, image_shape):
        """Creates the sub-networks for images of shape `image_shape`."""
        raise NotImplementedError

    def build(self, input_shape):
        if isinstance(input_shape, dict):
            input_shape = input_shape[_inputs.IMAGE_KEY]
        elif input_shape and isinstance(input_shape[0], (tuple, list)):
            input_shape = input_shape[0]  # called on (images, labels)
        shape = _check_image_shape(tuple(input_shape)[1:])
        if self.image_shape is None:
            self.image_shape = shape
            self.build_networks(shape)
        self.built = True

    def default_optimizer(self):
        """The optimizer `fit` uses when the model was not compiled."""
        return keras.optimizers.Adam(learning_rate=1e-3)

    # ------------------------------------------------------ data handling
    def images_from_inputs(self, inputs):
        """Takes the images out of a batch and scales them to [0, 1].

        Args:
            inputs: image tensor, `(images, labels)` tuple or a dict with an
                `"image"` key; uint8 (0..255) or float (0..1).

        Returns:
            A float32 tensor of images in [0, 1].
        """
        images = _inputs.extract_images(inputs)
        dtype = keras.backend.standardize_dtype(images.dtype)
        if "int" in dtype:
            return ops.cast(images, "float32") / 255.0
        return ops.cast(images, "float32")

    def _prepare(self, x, what, y=None):
        x, shape = _inputs.prepare_images_for_fit(x, self.image_shape, what)
        if self.image_shape is None:
            self.build((None,) + shape)
        return x

    def _prepare_validation(self, validation_data):
        what = "the validation data"
        if validation_data is None:
            return None
        if isinstance(validation_data, (tuple, list)):
            first = self._prepare(validation_data[0], what)
            return (first,) + tuple(validation_data[1:])
        return self._prepare(validation_data, what)


    def fit(self, x=None, y=None, *args, **kwargs):
        """Trains the model; see `keras.Model.fit` for every argument.

        Beyond `keras.Model.fit`, this checks the data first (one clear
        `ValueError` for bad input), builds the networks for the image shape
        of the first batch, and compiles with `default_optimizer()` when the
        model was not compiled.
        """
        x = self._prepare(x, "the training data", y)
        if "validation_data" in kwargs:
            kwargs["validation_data"] = self._prepare_validation(
                kwargs["validation_data"]
            )
        self._ensure_compiled()
        return super().fit(x, y, *args, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        """Evaluates the model; see `keras.Model.evaluate`.

        The data is checked like in `fit`; an uncompiled model is compiled
        with `default_optimizer()` first.
        """
        x = self._prepare(x, "the evaluation data", y)
        self._ensure_compiled()
        return super().evaluate(x, y, *args, **kwargs)

    # ------------------------------------------------------------ helpers
    def _require_built(self, method):
        if self.image_shape is None:
            raise ValueError(
                f"`{method}` needs a built model: call `fit` first, or pass "
                "`image_shape=(height, width, channels)` when creating it."
            )

    def _to_array(self, images, what="images"):
        return _inputs.images_to_array(images, self.image_shape, what)

    @staticmethod
    def _apply_in_batches(fn, array, batch_size):
        return np.concatenate([
            ops.convert_to_numpy(fn(array[i:i + batch_size]))
            for i in range(0, len(array), batch_size)
        ])

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "image_shape": (
                    None if self.image_shape is None
                    else list(self.image_shape)
                ),
                "seed": self.seed,
            }
        )
        return config


class LatentImageModel(ImageModel):
    """Base of the encoder/decoder models: `encode`, `decode`, `reconstruct`.

    Subclasses build `self.encoder` (images in [0, 1] to codes; a VAE's
    encoder returns `(mean, log_var)` and overrides `encode_batch`) and
    `self.decoder` (codes to images in [0, 1]) in `build_networks`.

    Args:
        latent_dim: size of the code.
        filters: filters of the encoder's strided convolutions (the decoder
            mirrors them); each entry halves the spatial size.
        image_shape: `(height, width, channels)`, or `None` to infer it from
            the first training batch.
        seed: optional integer seed of the model's own randomness.
        **kwargs: standard `keras.Model` arguments (`name`, `dtype`).

    Examples:
        `AutoEncoder` and `VAE` are its subclasses; every one of them has
        the same `encode` / `decode` / `reconstruct`:

        >>> from keras_genzoo import AutoEncoder
        >>> model = AutoEncoder(latent_dim=3, filters=(4,),
        ...                     image_shape=(8, 8, 1))
        >>> model.encode(np.zeros((2, 8, 8, 1), "uint8")).shape
        (2, 3)
        >>> model.reconstruct(np.zeros((8, 8))).shape
        (1, 8, 8, 1)
    """

    def __init__(self, latent_dim, filters, image_shape=None, seed=None,
                 **kwargs):
        if int(latent_dim) <= 0:
            raise ValueError(
                f"`latent_dim` must be a positive integer; got {latent_dim}."
            )
        self.latent_dim = int(latent_dim)
        self.filters = check_filters(filters)
        super().__init__(image_shape=image_shape, seed=seed, **kwargs)

    def encode_batch(self, images):
        """Codes of one batch of float images (a tensor); used by `encode`."""
        return self.encoder(images, training=False)

    def encode(self, images, batch_size=256):
        """Maps images to their latent codes.

        Args:
            images: one image `(H, W, C)` or a batch, uint8 or float in [0, 1].
            batch_size: how many images to encode at once.

        Returns:
            numpy array `(num_images, latent_dim)` (for a VAE: the means of
            the latent Gaussians).
        """
        self._require_built("encode")
        return self._apply_in_batches(
            self.encode_batch, self._to_array(images), batch_size
        )

    def decode(self, z, batch_size=256):
        """Maps latent codes to images.

        Args:
            z: array `(num_codes, latent_dim)`.
            batch_size: how many codes to decode at once.

        Returns:
            numpy float32 array of images in [0, 1], shaped like the
            training images.
        """
        self._require_built("decode")
        z = np.asarray(ops.convert_to_numpy(z), dtype="float32")
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(
                f"Codes must have shape (num_codes, {self.latent_dim}); got "
                f"{z.shape}."
            )
        return self._apply_in_batches(
            lambda b: self.decoder(b, training=False), z, batch_size
        ).astype("float32")

    def reconstruct(self, images, batch_size=256):
        """Encodes images and decodes the codes again (no noise is added).

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
            {"latent_dim": self.latent_dim, "filters": list(self.filters)}
        )
        return config
